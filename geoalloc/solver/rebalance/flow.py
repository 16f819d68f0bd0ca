"""Exact assignment of units (members, weighted rows, families) to fixed sites by min-cost flow.

Branch limits are soft arcs costing ``V`` per unit of violation, so the flow first removes
violations and then trades distance against moves; ``V`` far above any distance makes them
hard whenever they can be met. A unit of demand 1 is a single member and the flow is exact.
A unit standing for several members (a weighted row, a family) must not be split: the flow
is then solved with each unit's demand as its supply, every unit goes to the site that took
most of it, and a short repair moves single units until the limits hold again (or no move
can help). Both paths report cost the same way: distance plus ``V`` per unit of violation,
counting an empty site as short by its whole minimum (callers that close empty sites take
that back out).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from ortools.graph.python import min_cost_flow

V_HARD = 100_000_000  # cost per unit of limit violation: far above any distance in metres


def assign_min_cost(
    arc_member: NDArray[np.int64],
    arc_site: NDArray[np.int64],
    arc_cost: NDArray[np.int64],
    full: NDArray[np.int64],
    site_lo: NDArray[np.int64],
    site_hi: NDArray[np.int64],
    site_lo_full: NDArray[np.int64],
    violation_cost: int = V_HARD,
    demand: NDArray[np.int64] | None = None,
) -> tuple[NDArray[np.int64], int]:
    """Assign every unit to one site along the given arcs at minimum cost.

    Each site should hold between ``site_lo`` and ``site_hi`` members (``demand`` per unit,
    default 1), ``site_lo_full`` of them full (``full`` per unit: its full members); every
    missing or excess member costs ``violation_cost``. Returns (site per unit, total cost
    including violation costs). Every unit needs at least one arc.
    """
    n = len(full)
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0
    full = np.asarray(full, dtype=np.int64)
    if demand is None or (np.all(demand == 1) and np.all(full <= 1)):
        return _unit_flow(arc_member, arc_site, arc_cost, full, site_lo, site_hi, site_lo_full, int(violation_cost))
    return _weighted(arc_member, arc_site, arc_cost, np.asarray(demand, dtype=np.int64), full,
                     site_lo, site_hi, site_lo_full, int(violation_cost))


def _bounds(site_lo: NDArray[np.int64], site_hi: NDArray[np.int64], site_lo_full: NDArray[np.int64],
            ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    lo = np.maximum(site_lo, site_lo_full).astype(np.int64)
    lo_full = np.minimum(site_lo_full, site_hi).astype(np.int64)
    hi = np.maximum(site_hi, lo).astype(np.int64)
    return lo, lo_full, hi


#: one family of arcs from units to sites: (unit, site, to the full-member node?, (capacities, costs))
SupplyArcs = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_], tuple[NDArray[np.int64], NDArray[np.int64]]]


def _network(supply_arcs: list[SupplyArcs],
             n: int, supplies: NDArray[np.int64], lo: NDArray[np.int64], lo_full: NDArray[np.int64],
             hi: NDArray[np.int64], V: int) -> tuple[min_cost_flow.SimpleMinCostFlow, list[NDArray[np.int64]], int]:
    """The flow: unit -> F_j (full members) or S_j; F_j -> S_j; F_j -> T (lo_full, -V);
    S_j -> T (lo - lo_full, -V), (hi - lo, 0), (overflow, +V)."""
    m = len(lo)
    fnode = n + np.arange(m)
    snode = n + m + np.arange(m)
    sink = n + 2 * m
    total = int(supplies.sum())
    f = min_cost_flow.SimpleMinCostFlow()
    arcs = []
    for tails, sites, to_full, caps_cost in supply_arcs:
        caps, costs = caps_cost
        heads = np.where(to_full, fnode[sites], snode[sites])
        arcs.append(f.add_arcs_with_capacity_and_unit_cost(tails, heads.astype(np.int64), caps, costs))
    ones = np.ones(m, dtype=np.int64)
    f.add_arcs_with_capacity_and_unit_cost(fnode, snode, ones * total, ones * 0)
    f.add_arcs_with_capacity_and_unit_cost(fnode, np.full(m, sink), lo_full, ones * -V)
    f.add_arcs_with_capacity_and_unit_cost(snode, np.full(m, sink), lo - lo_full, ones * -V)
    f.add_arcs_with_capacity_and_unit_cost(snode, np.full(m, sink), hi - lo, ones * 0)
    f.add_arcs_with_capacity_and_unit_cost(snode, np.full(m, sink), ones * total, ones * V)
    sup = np.zeros(sink + 1, dtype=np.int64)
    sup[:n] = supplies
    sup[sink] = -total
    f.set_nodes_supplies(np.arange(sink + 1), sup)
    status = f.solve()
    if status != f.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed with status {status} (a unit without any arc?)")
    return f, arcs, int(f.optimal_cost()) + V * int(lo.sum())


def _unit_flow(arc_member: NDArray[np.int64], arc_site: NDArray[np.int64], arc_cost: NDArray[np.int64],
               full: NDArray[np.int64], site_lo: NDArray[np.int64], site_hi: NDArray[np.int64],
               site_lo_full: NDArray[np.int64], V: int) -> tuple[NDArray[np.int64], int]:
    n = len(full)
    lo, lo_full, hi = _bounds(site_lo, site_hi, site_lo_full)
    am = arc_member.astype(np.int64)
    ones = np.ones(len(am), dtype=np.int64)
    f, arcs, cost = _network([(am, arc_site.astype(np.int64), full[am] > 0, (ones, arc_cost.astype(np.int64)))],
                             n, np.ones(n, dtype=np.int64), lo, lo_full, hi, V)
    used = f.flows(arcs[0]) > 0
    site_of = np.full(n, -1, dtype=np.int64)
    site_of[am[used]] = arc_site[used]
    if (site_of < 0).any():
        raise RuntimeError("min-cost flow left a member unassigned")
    return site_of, cost


def _weighted(arc_member: NDArray[np.int64], arc_site: NDArray[np.int64], arc_cost: NDArray[np.int64],
              demand: NDArray[np.int64], full: NDArray[np.int64], site_lo: NDArray[np.int64],
              site_hi: NDArray[np.int64], site_lo_full: NDArray[np.int64], V: int) -> tuple[NDArray[np.int64], int]:
    """Units with demand: splittable flow, each unit to its largest share, then repair."""
    n, m = len(demand), len(site_lo)
    lo, lo_full, hi = _bounds(site_lo, site_hi, site_lo_full)
    am, asite, acost = arc_member.astype(np.int64), arc_site.astype(np.int64), arc_cost.astype(np.int64)
    fcap = np.minimum(full, demand)[am]
    scap = (demand - np.minimum(full, demand))[am]
    f, arcs, _ = _network([(am, asite, np.ones(len(am), dtype=np.bool_), (fcap.astype(np.int64), acost)),
                           (am, asite, np.zeros(len(am), dtype=np.bool_), (scap.astype(np.int64), acost))],
                          n, demand, lo, lo_full, hi, V)
    share = f.flows(arcs[0]) + f.flows(arcs[1])
    # each unit to the site that took most of it (ties: the cheaper arc)
    order = np.lexsort((acost, -share, am))
    first = np.ones(len(order), dtype=bool)
    first[1:] = am[order][1:] != am[order][:-1]
    pick = order[first]
    site_of = np.full(n, -1, dtype=np.int64)
    site_of[am[pick]] = asite[pick]
    if (site_of < 0).any():
        raise RuntimeError("min-cost flow left a unit unassigned")
    cost_of = {(int(i), int(j)): int(c) for i, j, c in zip(am, asite, acost)}
    site_of = _repair(site_of, cost_of, am, asite, demand, full, lo, lo_full, hi)
    load = np.bincount(site_of, weights=demand, minlength=m).astype(np.int64)
    fl = np.bincount(site_of, weights=full, minlength=m).astype(np.int64)
    dist = sum(cost_of[(i, int(j))] for i, j in enumerate(site_of))
    return site_of, int(dist) + V * int(_violation(load, fl, lo, lo_full, hi).sum())


def _violation(load: NDArray[np.int64], fl: NDArray[np.int64], lo: NDArray[np.int64], lo_full: NDArray[np.int64],
               hi: NDArray[np.int64]) -> NDArray[np.int64]:
    return np.maximum(load - hi, 0) + np.maximum(np.maximum(lo - load, 0), np.maximum(lo_full - fl, 0))


def _repair(site_of: NDArray[np.int64], cost_of: dict[tuple[int, int], int], am: NDArray[np.int64],
            asite: NDArray[np.int64], demand: NDArray[np.int64], full: NDArray[np.int64], lo: NDArray[np.int64],
            lo_full: NDArray[np.int64], hi: NDArray[np.int64]) -> NDArray[np.int64]:
    """Move one unit at a time, the move that removes most violation at least extra distance,
    until no move lowers the total violation (bounded by the number of units). Only units at a
    site in violation, or with an arc into one, are looked at."""
    m = len(lo)
    site_of = site_of.copy()
    arcs_of: dict[int, list[int]] = {}
    into: dict[int, list[int]] = {}
    for i, j in zip(am.tolist(), asite.tolist()):
        arcs_of.setdefault(i, []).append(j)
        into.setdefault(j, []).append(i)
    load = np.bincount(site_of, weights=demand, minlength=m).astype(np.int64)
    fl = np.bincount(site_of, weights=full, minlength=m).astype(np.int64)
    for _ in range(len(site_of)):
        viol = _violation(load, fl, lo, lo_full, hi)
        bad = np.flatnonzero(viol)
        if not len(bad):
            break
        bad_set = set(bad.tolist())
        cands = set(np.flatnonzero(np.isin(site_of, bad)).tolist())
        for j in bad.tolist():
            cands.update(into.get(j, []))
        best: tuple[int, int, int, int] | None = None  # (gain, -extra cost, unit, to)
        for i in sorted(cands):
            a = int(site_of[i])
            d, fu = int(demand[i]), int(full[i])
            for b in arcs_of[i]:
                if b == a or (a not in bad_set and b not in bad_set):
                    continue
                pair = np.array([a, b])
                after = int(_violation(np.array([load[a] - d, load[b] + d]), np.array([fl[a] - fu, fl[b] + fu]),
                                       lo[pair], lo_full[pair], hi[pair]).sum())
                gain = int(viol[a] + viol[b]) - after
                if gain <= 0:
                    continue
                key = (gain, cost_of[(i, a)] - cost_of[(i, b)], i, b)
                if best is None or key > best:
                    best = key
        if best is None:
            break
        _, _, i, b = best
        a = int(site_of[i])
        load[a] -= demand[i]
        fl[a] -= full[i]
        load[b] += demand[i]
        fl[b] += full[i]
        site_of[i] = b
    return site_of
