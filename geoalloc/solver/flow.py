"""Exact assignment of points to fixed sites by min-cost flow over sparse nearest-site arcs.

Given the open sites, the best assignment under the size limits is a transportation problem.
Each point gets arcs to its ``k`` nearest open sites only (a point almost never belongs far
away), which keeps the network small; when that sparse network is infeasible the arcs are
widened until every site is reachable. Lower limits (``min_size``, ``min_full``) become arcs
with lower bounds, which turn into node supplies. Full members reach their site through an
extra node, so the full-member minimum is a lower bound on that node's outgoing arc.

Flow is exact for unit demands. A group (demand > 1) may be split by the flow; such groups are
pinned to the site that received most of them and the flow is solved again.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from ortools.graph.python import min_cost_flow
from scipy.spatial import cKDTree

from geoalloc.solver.instance import Instance, pair_dist

_COST_RANGE = 1e6  # largest arc cost after scaling to integers


def _arcs(
    inst: Instance,
    sites: NDArray[np.int64],
    k: int,
    extra: NDArray[np.float64] | None,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Each point's ``k`` cheapest open sites: (n, k) site positions and costs."""
    p = len(sites)
    sxy = inst.sites_xy[sites]
    if extra is None:
        if k >= p:
            nb = np.broadcast_to(np.arange(p), (inst.n, p)).copy()
        else:
            _, nb = cKDTree(sxy).query(inst.xy, k=k)
            nb = nb.reshape(inst.n, k)
        d = pair_dist(inst.xy[:, None, :], sxy[nb], inst.floor)
        return nb.astype(np.int64), inst.weight[:, None] * d
    full = inst.weight[:, None] * pair_dist(inst.xy[:, None, :], sxy[None, :, :], inst.floor) + extra
    if k < p:
        nb = np.argpartition(full, k - 1, axis=1)[:, :k]
    else:
        nb = np.broadcast_to(np.arange(p), (inst.n, p)).copy()
    return nb.astype(np.int64), np.take_along_axis(full, nb, axis=1)


def _solve_network(
    inst: Instance,
    p: int,
    nb: NDArray[np.int64],
    cost: NDArray[np.float64],
    usable: NDArray[np.bool_],
    scale: float,
) -> NDArray[np.int64] | None:
    """Solve one network; returns flow per (point, arc slot) or None when infeasible."""
    n = inst.n
    # a point's full members reach the site through F, the others through S (a family of mixed
    # members has an arc of each kind to every site it may use)
    fpart = inst.full_part if inst.min_full > 0 else np.zeros(n, dtype=np.int64)
    spart = inst.demand - fpart
    f_node = n + np.arange(p)
    s_node = n + p + np.arange(p)
    sink = n + 2 * p
    rows0, cols0 = np.nonzero(usable)
    fr = fpart[rows0] > 0
    sr = spart[rows0] > 0
    rows = np.concatenate([rows0[fr], rows0[sr]])
    cols = np.concatenate([cols0[fr], cols0[sr]])
    heads = np.concatenate([f_node[nb[rows0[fr], cols0[fr]]], s_node[nb[rows0[sr], cols0[sr]]]])
    tails = rows
    caps = np.concatenate([fpart[rows0[fr]], spart[rows0[sr]]])
    costs = np.rint(cost[rows, cols] * scale).astype(np.int64)
    big = int(inst.demand.sum())
    tails = np.concatenate([tails, f_node, s_node])
    heads = np.concatenate([heads, s_node, np.full(p, sink)])
    caps = np.concatenate(
        [caps, np.full(p, max(inst.max_size - inst.min_full, 0)), np.full(p, inst.max_size - inst.min_size)]
    )
    costs = np.concatenate([costs, np.zeros(2 * p, dtype=np.int64)])
    supply = np.zeros(n + 2 * p + 1, dtype=np.int64)
    supply[:n] = inst.demand
    supply[sink] = -big
    if inst.min_full > 0:
        supply[f_node] -= inst.min_full
        supply[s_node] += inst.min_full
    supply[s_node] -= inst.min_size
    supply[sink] += inst.min_size * p
    smcf = min_cost_flow.SimpleMinCostFlow()
    smcf.add_arcs_with_capacity_and_unit_cost(
        tails.astype(np.int32), heads.astype(np.int32), caps.astype(np.int64), costs
    )
    smcf.set_nodes_supplies(np.arange(len(supply), dtype=np.int32), supply)
    if smcf.solve() != smcf.OPTIMAL:
        return None
    flows = smcf.flows(np.arange(len(rows), dtype=np.int32))
    out = np.zeros(nb.shape, dtype=np.int64)
    np.add.at(out, (rows, cols), flows)
    return out


def _pin(
    inst: Instance,
    p: int,
    nb: NDArray[np.int64],
    flows: NDArray[np.int64],
    usable: NDArray[np.bool_],
    pinned: NDArray[np.int64],
    split: NDArray[np.int64],
) -> NDArray[np.int64]:
    """The site each split group is pinned to: the one that received most of it among those the
    groups pinned so far leave room for, the largest group first.

    Pins add up across rounds: pinned blindly to the site with most of their flow, groups on one
    point (equal costs to many sites, the flow splits them anyhow) piled onto the same sites
    past ``max_size`` and made the network infeasible, though the limits could be met.
    """
    held = pinned >= 0
    load = np.bincount(pinned[held], weights=inst.demand[held], minlength=p)
    out = np.empty(len(split), dtype=np.int64)
    for a in np.argsort(-inst.demand[split], kind="stable"):
        i = int(split[a])
        d = float(inst.demand[i])
        slots = np.flatnonzero(usable[i])
        # most flow first, ties by arc slot (the same choice on every machine)
        order = slots[np.lexsort((slots, -flows[i, slots]))]
        fits = [c for c in order if load[nb[i, c]] + d <= inst.max_size]
        c = fits[0] if fits else int(order[0])
        out[a] = nb[i, c]
        load[nb[i, c]] += d
    return out


def flow_assign(
    inst: Instance,
    sites: NDArray[np.int64],
    *,
    k: int = 8,
    extra: NDArray[np.float64] | None = None,
) -> NDArray[np.int64] | None:
    """Best assignment to the open ``sites`` (candidate indices): cluster index per point.

    ``extra``: optional (n, len(sites)) additional cost (for example a penalty for moving a
    member away from its current branch; ``inf`` forbids the pair). Returns None when no
    assignment meets the limits (after widening the arcs to all sites). Groups that the flow
    splits are pinned and re-solved; if pinning makes it infeasible, None as well (callers then
    fall back to the exact MIP in :mod:`geoalloc.solver.mip`).
    """
    sites = np.asarray(sites, dtype=np.int64)
    p = len(sites)
    if p == 0:
        return None
    k = min(max(k, 1), p)
    pinned = np.full(inst.n, -1, dtype=np.int64)
    if inst.self_serve:
        pinned[sites] = np.arange(p)
    while True:
        nb, cost = _arcs(inst, sites, k, extra)
        usable = np.isfinite(cost)
        rows = np.nonzero(pinned >= 0)[0]
        if len(rows):
            # a pinned point keeps one arc: to its pinned site, whatever its rank
            nb[rows, 0] = pinned[rows]
            cost[rows, 0] = inst.cost(rows, sites[pinned[rows]])
            if extra is not None:
                cost[rows, 0] += extra[rows, pinned[rows]]
            usable[rows, :] = False
            usable[rows, 0] = True
        finite = cost[usable]
        top = float(finite.max()) if finite.size else 1.0
        integral = inst.floor and bool(np.all(inst.weight == np.rint(inst.weight))) and extra is None
        scale = 1.0 if integral and top * inst.n < 1e15 else _COST_RANGE / max(top, 1e-12)
        flows = _solve_network(inst, p, nb, np.where(usable, cost, 0.0), usable, scale)
        if flows is None:
            if k >= p:
                return None
            k = min(p, k * 3)
            continue
        used = flows > 0
        nused = used.sum(axis=1)
        split = np.nonzero(nused > 1)[0]
        if len(split) == 0:
            return nb[np.arange(inst.n), np.argmax(flows, axis=1)]
        pinned[split] = _pin(inst, p, nb, flows, usable, pinned, split)
