"""Improvement by exact two-cluster moves and global re-centring (the descent of every start).

A pair move re-solves two neighbouring clusters exactly (:mod:`geoalloc.solver.pairs`: best
site pair and best split); between passes all sites are re-centred and the points reassigned
exactly by min-cost flow. Small instances are solved as one MIP outright. Larger neighbourhoods
(a few clusters re-solved by a sub-MIP) are :mod:`geoalloc.solver.lns`.

The search stops on work (passes without improvement, or a :class:`~geoalloc.solver.work.Meter`
that ran out), not on the clock, so its answer depends only on the seed; the deadline is a
safety net that returns the best plan so far.
"""

from __future__ import annotations

import time

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from geoalloc.solver.assign import assign, reassign_exact
from geoalloc.solver.construct import recentre
from geoalloc.solver.instance import Instance
from geoalloc.solver.mip import solve_part
from geoalloc.solver.pairs import best_pair
from geoalloc.solver.work import MIP_ARC, PAIR_CALL, PAIR_POINT, WHOLE_MIP_ARC, Meter, flow

WHOLE_MIP_MAX_ARCS = 2500  # below this many point-site pairs the whole instance is one MIP
ARCS_PER_POINT = 16
PAIR_MIP_SHARE = 0.1  # the most of a descent's work one pair MIP may take (see benchmarks/README.md)
PAIR_NEIGHBOURS = 4  # each cluster is paired with its nearest clusters
PAIR_CANDIDATES = 8  # candidate sites per side in a pair move
POLISH_MAX_N = 1200  # the whole-instance MIP polish is tried up to this many points
REASSIGN_MIP_MAX_N = 3000  # exact reassignment of groups by MIP up to this many points
REASSIGN_MIP_MAX_P = 40  # ... and this many clusters (beyond, the MIP costs more than it finds)
RELOCATE_MAX_P = 4  # instances with this few clusters also try moving one site anywhere
RELOCATE_TARGETS = 12  # ... to where the worst-served points are
SUB_TIME = 5.0  # seconds per sub-MIP at most (they usually finish far sooner)
REASSIGN_TIME = 2.0  # seconds per exact reassignment at most


def _part_arcs(
    inst: Instance, points: NDArray[np.int64], cands: NDArray[np.int64], current: NDArray[np.int64], k: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Each freed point's ``k`` nearest candidates in the part, plus its current site and itself."""
    cxy = inst.sites_xy[cands]
    kk = min(k, len(cands))
    _, nb = cKDTree(cxy).query(inst.xy[points], k=kk)
    nb = np.asarray(nb).reshape(len(points), kk)
    ai = [np.repeat(points, kk), points]
    aj = [cands[nb.ravel()], current]
    if inst.self_serve:
        ai.append(points)
        aj.append(points)
    pairs = np.unique(np.stack([np.concatenate(ai), np.concatenate(aj)]), axis=1)
    return pairs[0], pairs[1]


def _whole(inst: Instance, sites: NDArray[np.int64], branch: NDArray[np.int64], deadline: float,
           stats: dict[str, object]) -> tuple[NDArray[np.int64], NDArray[np.int64], bool] | None:
    pts = np.arange(inst.n)
    cands = np.arange(inst.m)
    ai = np.repeat(pts, inst.m)
    aj = np.tile(cands, inst.n)
    res = solve_part(inst, pts, cands, inst.p, ai, aj, hint=sites[branch],
                     time_limit=max(0.5, deadline - time.perf_counter()))
    if res is None:
        return None
    site_of, optimal = res
    new_sites = np.unique(site_of)
    pos = np.searchsorted(new_sites, site_of)
    stats["whole_mip_optimal"] = optimal
    if inst.objective(new_sites, pos) <= inst.objective(sites, branch) + 1e-9:
        return new_sites, pos, not optimal
    return sites, branch, not optimal


def _cands_for(inst: Instance, pts: NDArray[np.int64], mine: NDArray[np.int64], taken: set[int]) -> NDArray[np.int64]:
    """Candidate sites for freed points: the points themselves, or nearby free candidates."""
    if inst.self_serve:
        return pts
    kk = min(inst.m, 8)
    _, nb = cKDTree(inst.cand_xy).query(inst.xy[pts], k=kk)
    cset = set(np.asarray(nb).ravel().tolist()) | set(mine.tolist())
    return np.array(sorted(cset - (taken - set(mine.tolist()))), dtype=np.int64)


def _pair_mip(inst: Instance, pts: NDArray[np.int64], cands: NDArray[np.int64], current: NDArray[np.int64],
              deadline: float, meter: Meter | None = None) -> tuple[float, int, int, NDArray[np.bool_]] | None:
    """The pair move by MIP, for groups under the full-member rule (no closed form there)."""
    cost = MIP_ARC * len(pts) * (ARCS_PER_POINT + 1)  # about its arcs (each point's nearest, its own)
    if meter is not None and (cost > PAIR_MIP_SHARE * meter.limit or not meter.take(cost)):
        return None  # a MIP cannot stop half-way: only when the work left pays for it, and never most of it
    ai, aj = _part_arcs(inst, pts, cands, current, ARCS_PER_POINT)
    left = max(0.2, deadline - time.perf_counter())
    # metered: only the node limit and the deadline (the ceiling) stop it, never a clock cap
    res = solve_part(inst, pts, cands, 2, ai, aj, hint=current, time_limit=left if meter else min(SUB_TIME, left))
    if res is None:
        return None
    site_of, _ = res
    opened = np.unique(site_of)
    if len(opened) != 2:
        return None
    sa, sb = int(opened[0]), int(opened[1])
    return float(inst.cost(pts, site_of).sum()), sa, sb, site_of == sa


def pair_search(
    inst: Instance,
    sites: NDArray[np.int64],
    branch: NDArray[np.int64],
    rng: np.random.Generator,
    deadline: float,
    neighbours: int | None = None,
    dirty: set[int] | None = None,
    meter: Meter | None = None,
    table: NDArray[np.float64] | None = None,
    mips: bool = True,
) -> tuple[int, int, bool]:
    """Improve ``sites``/``branch`` in place by exact two-cluster moves until none helps.

    ``dirty``: the clusters that changed since the plan was last a local optimum (after a kick);
    pairs of two clean clusters are then not re-solved, which makes a descent after a small kick
    cost in proportion to the kick, not to ``p``. ``meter``: each pair is charged to it, and the
    search stops (as if cut) once it is spent. ``table``: the instance's costs
    (:func:`~geoalloc.solver.table.cost_table`), if at hand. ``mips``: a pair with groups under the
    full-member rule, which the closed form cannot split, is solved as a MIP (off: skipped).
    Returns (moves made, pairs tried, cut short).
    """
    p = len(sites)
    neighbours = PAIR_NEIGHBOURS if neighbours is None else neighbours
    moves = tried = 0
    # pass in which a cluster last changed; a pair is re-solved only if one side changed since
    last_change = {b: (1 if dirty is None or b in dirty else 0) for b in range(p)}
    checked: dict[tuple[int, int], int] = {}
    for rnd in range(2, 10_000):
        improved = False
        for a in rng.permutation(p):
            a = int(a)
            sxy = inst.sites_xy[sites]
            dist = np.hypot(*(sxy - sxy[a]).T)
            for b in np.argsort(dist, kind="stable")[1 : neighbours + 1]:
                b = int(b)
                key = (min(a, b), max(a, b))
                stamp = max(last_change[a], last_change[b])
                if checked.get(key, 0) >= stamp:
                    continue  # nothing changed in either cluster since this pair was solved
                if time.perf_counter() > deadline or (meter is not None and meter.spent):
                    return moves, tried, True
                checked[key] = rnd
                ma = np.nonzero(branch == a)[0]
                mb = np.nonzero(branch == b)[0]
                pts = np.concatenate([ma, mb])
                cands = _cands_for(inst, pts, sites[[a, b]], set(sites.tolist()))
                tried += 1
                if meter is not None:
                    meter.charge(PAIR_CALL + PAIR_POINT * len(pts))
                here = sites[branch[pts]]
                before = float((inst.cost(pts, here) if table is None else table[pts, here]).sum())
                res = best_pair(inst, pts, ma, mb, cands, t=PAIR_CANDIDATES, cutoff=before, table=table)
                if res is None and mips and inst.min_full > 0 and (inst.demand[pts] > 1).any():
                    res = _pair_mip(inst, pts, cands, sites[branch[pts]], deadline, meter)
                if res is None:
                    continue
                val, sa, sb, on_a = res
                if val < before - 1e-9 * max(1.0, before):
                    sites[a], sites[b] = sa, sb
                    branch[pts[on_a]] = a
                    branch[pts[~on_a]] = b
                    moves += 1
                    improved = True
                    last_change[a] = last_change[b] = rnd
                    sxy = inst.sites_xy[sites]
                    dist = np.hypot(*(sxy - sxy[a]).T)
        if not improved:
            break
    return moves, tried, False


def improve(
    inst: Instance,
    sites: NDArray[np.int64],
    branch: NDArray[np.int64],
    rng: np.random.Generator,
    deadline: float,
    stats: dict[str, object],
    *,
    dirty: set[int] | None = None,
    reassign_mip: bool = True,
    whole_mip: bool = True,
    meter: Meter | None = None,
    table: NDArray[np.float64] | None = None,
    pair_mips: bool = True,
) -> tuple[NDArray[np.int64], NDArray[np.int64], bool]:
    """Return a plan at least as good as the given one, and whether the deadline cut it short.

    ``dirty``: clusters changed by a kick of a local optimum; the descent then starts from
    them and is only the pair search. ``reassign_mip``: with groups, also re-assign all points
    exactly by MIP between pair passes (0.3-0.5 s a call on SJC; the benchmark's many short
    descents do better without it). ``whole_mip``: solve small instances as one MIP here (else
    the caller may do it once at the end, see :func:`whole_mip_polish`). ``meter``: every step
    is charged to it and the descent stops once it is spent (reported as cut short); its
    sub-MIPs then stop at their node limits or ``deadline`` only, never at a clock cap of their own.
    ``table``: the instance's costs (:func:`~geoalloc.solver.table.cost_table`), if at hand.
    ``pair_mips``: the pair moves' MIPs for groups (:func:`pair_search`).
    """
    sites = sites.copy()
    branch = branch.copy()
    if len(sites) < 2 and (inst.n * inst.m > WHOLE_MIP_MAX_ARCS or not whole_mip):
        return sites, branch, False
    moves = tried = 0
    timed_out = False
    unit = bool((inst.demand == 1).all())
    for _ in range(50):  # pair moves and global re-centring + exact assignment, in turn
        if len(sites) < 2:
            break
        m1, t1, timed_out = pair_search(inst, sites, branch, rng, deadline, dirty=dirty, meter=meter, table=table,
                                        mips=pair_mips)
        moves, tried = moves + m1, tried + t1
        if timed_out or dirty is not None:
            break  # after a kick the pair descent is the whole step (a global re-assignment costs more)
        cost = MIP_ARC * inst.n * min(7, len(sites))  # its arcs: each point's 6 nearest sites and its own
        if reassign_mip and not unit and inst.n <= REASSIGN_MIP_MAX_N and len(sites) <= REASSIGN_MIP_MAX_P and (
                meter is None or meter.take(cost)):
            left = max(0.2, deadline - time.perf_counter())
            nb = reassign_exact(inst, sites, branch, time_limit=left if meter else min(REASSIGN_TIME, left))
            if nb is not None and inst.objective(sites, nb) < inst.objective(sites, branch) - 1e-9:
                branch[:] = nb
                continue
        new = recentre(inst, sites, branch, table)
        if np.array_equal(new, sites):
            break
        if meter is not None:
            meter.charge(flow(inst.n))
        nb = assign(inst, new, time_limit=max(0.5, deadline - time.perf_counter()))
        if nb is None or inst.objective(new, nb) >= inst.objective(sites, branch) - 1e-9:
            break
        sites[:], branch[:] = new, nb
    stats.update({"pair_moves": moves, "pair_tried": tried})
    # metered: only when the work left pays for it (it cannot stop half-way)
    if whole_mip and not timed_out and inst.n * inst.m <= WHOLE_MIP_MAX_ARCS and (
            meter is None or meter.take(WHOLE_MIP_ARC * inst.n * inst.m)):
        out = _whole(inst, sites, branch, deadline, stats)
        if out is not None:
            return out
    return sites, branch, timed_out


def whole_mip_polish(
    inst: Instance, sites: NDArray[np.int64], branch: NDArray[np.int64], deadline: float, stats: dict[str, object]
) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
    """The exact whole-instance MIP (all arcs) from the search's best plan, for small instances
    (``n * m`` up to ``WHOLE_MIP_MAX_ARCS``); sets ``stats["whole_mip_optimal"]`` when it proves
    the plan optimal. None when the instance is too large or nothing came back.

    Why at the end: started on a first plan it can use the whole time limit and stop above the
    optimum the local search finds in seconds; from that plan it only has to prove it.
    """
    if inst.n * inst.m > WHOLE_MIP_MAX_ARCS or time.perf_counter() >= deadline:
        return None
    out = _whole(inst, sites, branch, deadline, stats)
    return None if out is None else (out[0], out[1])


def polish_mip(
    inst: Instance, sites: NDArray[np.int64], branch: NDArray[np.int64], deadline: float
) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
    """The whole instance as one MIP over sparse arcs, started from the best plan, until ``deadline``.

    Each point may go to its nearest candidates (about three clusters' worth) or stay where it
    is. The solver's own improvement heuristics work from the start plan; whatever it holds at
    the deadline comes back.
    """
    if inst.n > POLISH_MAX_N:
        return None
    pts = np.arange(inst.n)
    site_of = sites[branch]
    found = False
    k = 8
    while True:  # widen the arcs whenever the MIP proves the current arc set optimal
        ai, aj = _part_arcs(inst, pts, np.arange(inst.m), site_of, min(k, inst.m))
        left = deadline - time.perf_counter()
        if left < 0.3:
            break
        res = solve_part(inst, pts, np.arange(inst.m), inst.p, ai, aj, hint=site_of, time_limit=left,
                         node_limit=None)
        if res is None:
            break
        if len(np.unique(res[0])) == inst.p and float(inst.cost(pts, res[0]).sum()) < float(inst.cost(pts, site_of).sum()):
            site_of, found = res[0], True
        if not res[1] or k >= inst.m:
            break
        k *= 2
    if not found:
        return None
    new_sites = np.unique(site_of)
    return new_sites, np.searchsorted(new_sites, site_of)


def relocate_sites(
    inst: Instance, sites: NDArray[np.int64], branch: NDArray[np.int64], deadline: float, meter: Meter | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
    """Move one site to where the worst-served points are, the best such move while one helps;
    None when no move helps.

    Why: pair moves re-choose sites among two clusters' own candidates. With few clusters over
    a few dense blobs (members placed at subdistrict seeds), a blob left without a site can stay
    without one from every start. Trying each site at each of the worst-served places costs
    p x 12 assignments, cheap when p is small. ``meter``: each assignment is charged to it, and
    the moves stop when it cannot pay for the next.
    """
    best = inst.objective(sites, branch)
    found = None
    tree = cKDTree(inst.sites_xy)
    while time.perf_counter() < deadline:
        cost = inst.cost(np.arange(inst.n), sites[branch])
        open_now = set(sites.tolist())
        targets: list[int] = []
        for i in np.argsort(-cost, kind="stable"):
            _, near = tree.query(inst.xy[int(i)], k=min(inst.m, len(sites) + 1))
            free = [int(j) for j in np.atleast_1d(near) if int(j) not in open_now and int(j) not in targets]
            if free:
                targets.append(free[0])
            if len(targets) >= RELOCATE_TARGETS:
                break
        move = None
        for b in range(len(sites)):
            for j in targets:
                if meter is not None and not meter.take(flow(inst.n)):
                    return found if move is None else move
                trial = sites.copy()
                trial[b] = j
                nb = assign(inst, trial, time_limit=max(0.05, deadline - time.perf_counter()))
                if nb is not None and inst.objective(trial, nb) < best - 1e-9:
                    best, move = inst.objective(trial, nb), (trial, nb)
        if move is None:
            break
        sites, branch = move
        found = move
    return found
