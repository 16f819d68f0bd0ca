"""Solve one :class:`Instance` end to end: first plan, improvement search, lower bound."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from geoalloc.solver.arcmip import arc_mip, pool_arcs
from geoalloc.solver.assign import assign
from geoalloc.solver.bounds import lagrangian_bound
from geoalloc.solver.construct import construct, construct_means
from geoalloc.solver.instance import Instance
from geoalloc.solver.lns import LnsConfig, lns
from geoalloc.solver.pool import POOL_MAX_N, ClusterPool
from geoalloc.solver.search import RELOCATE_MAX_P, improve, polish_mip, relocate_sites, whole_mip_polish
from geoalloc.solver.swaps import ranked_swaps
from geoalloc.solver.table import cost_table
from geoalloc.solver.textbook import applies, refines
from geoalloc.solver.work import BUILD_CALL, BUILD_POINT, REFINE_KICK, REFINE_POLISH_SHARE, RELOCATE_SHARE, Meter, flow, refine_kicks

FRESH_STARTS = 2  # independent k-means++ starts; later starts kick the best plan instead
FRESH_EVERY_LOCAL = 20  # with local kicks (cheap descents), a fresh start only this seldom
RECOMBINE_EVERY = 30  # descents between set-partitioning solves over the pool (work, not clock)
RECOMBINE_TIME = 0.05  # share of the time limit one solve may take at most (a safety net)
SWAP_TRIES = 20  # ranked swaps tried on each new best plan before random kicks resume
PROOF_AFTER = 10  # descents before a small instance first tries to prove its best plan optimal
PROOF_MAX_N = 150  # ... on instances up to this many points (the bound costs milliseconds there)
PROOF_BOUND_SHARE = 0.05  # share of the time limit all those bounds may take together ...
PROOF_BOUND_STEP = 0.01  # ... and one of them (a few milliseconds each up to 150 points)
PROOF_GAP = 1e-5  # a bound this close to the plan ends the search (the subgradient stops short
# of exact equality: TA25 at 632.4788 for 632.4826; at most 0.001% could still be gained)
PROOF_MIP_SHARE = 0.2  # share of the time limit the early whole-instance MIP may take
GROUP_MIP_SHARE = 0.3  # metered, with groups under the full-member rule: the search work kept for the MIP descent
BOUND_CEILING_MARGIN = 1.0  # seconds a work-bounded search keeps before its ceiling for the bound
LNS_STREAM = 2**31 - 1  # the random stream of the large-neighbourhood search (starts use 0, 1, ...)
REFINE_STREAM = 2**31 - 3  # the random stream of the compiled refinement (globalphase.refine)


def perturb(
    inst: Instance, sites: NDArray[np.int64], branch: NDArray[np.int64], rng: np.random.Generator, kick: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
    """Close ``kick`` random sites and open them where points are served worst, then reassign."""
    sites = sites.copy()
    cost = inst.cost(np.arange(inst.n), sites[branch])
    for _ in range(kick):
        b = int(rng.integers(len(sites)))
        w = cost.copy()
        if inst.self_serve:
            w[sites] = 0.0
        if w.sum() <= 0:
            return None
        i = int(rng.choice(inst.n, p=w / w.sum()))
        if inst.self_serve:
            sites[b] = i
        else:
            order = np.argsort(np.hypot(*(inst.cand_xy - inst.xy[i]).T), kind="stable")
            free = [int(j) for j in order[: len(sites) + 1] if int(j) not in set(sites.tolist())]
            if not free:
                return None
            sites[b] = free[0]
        cost[i] = 0.0
    new = assign(inst, sites)
    return None if new is None else (sites, new)


def local_kick(
    inst: Instance, sites: NDArray[np.int64], branch: NDArray[np.int64], rng: np.random.Generator, kick: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], set[int]] | None:
    """Ruin and recreate: move ``kick`` random sites to badly served points and re-place only the
    points they leave behind (greedy by regret), so the rest of the plan stays as the search left it.

    Returns (sites, branch, clusters changed) or None (candidate sites, lower limits, or no room:
    the caller then falls back to :func:`perturb`).
    """
    if not inst.self_serve or inst.min_size > 0 or inst.min_full > 0:
        return None
    sites, branch = sites.copy(), branch.copy()
    p = len(sites)
    cost = inst.cost(np.arange(inst.n), sites[branch])
    dirty: set[int] = set()
    for _ in range(kick):
        b = int(rng.integers(p))
        w = cost.copy()
        w[sites] = 0.0
        if w.sum() <= 0:
            return None
        i = int(rng.choice(inst.n, p=w / w.sum()))
        _ruin(sites, branch, cost, b, i, dirty)
    return (sites, branch, dirty) if _recreate(inst, sites, branch, dirty) else None


def swap_kick(
    inst: Instance, sites: NDArray[np.int64], branch: NDArray[np.int64], b: int, i: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], set[int]] | None:
    """Move site ``b`` to point ``i`` as :func:`local_kick` moves one (a ranked swap, tried for real)."""
    if not inst.self_serve or inst.min_size > 0 or inst.min_full > 0 or i in set(sites.tolist()):
        return None
    sites, branch = sites.copy(), branch.copy()
    cost = inst.cost(np.arange(inst.n), sites[branch])
    dirty: set[int] = set()
    _ruin(sites, branch, cost, b, i, dirty)
    return (sites, branch, dirty) if _recreate(inst, sites, branch, dirty) else None


def _ruin(sites: NDArray[np.int64], branch: NDArray[np.int64], cost: NDArray[np.float64], b: int, i: int,
          dirty: set[int]) -> None:
    """Close cluster ``b`` (its points become unplaced, -1) and reopen it at point ``i``, in place."""
    dirty.update((b, int(branch[i])))
    left = np.nonzero(branch == b)[0]
    branch[left] = -1
    cost[left] = 0.0
    sites[b] = i
    branch[i] = b
    cost[i] = 0.0


def _recreate(inst: Instance, sites: NDArray[np.int64], branch: NDArray[np.int64], dirty: set[int]) -> bool:
    """Place the unplaced points (greedy by regret) in place; False when one finds no room."""
    p = len(sites)
    todo = np.nonzero(branch < 0)[0]
    room = inst.max_size - np.bincount(branch[branch >= 0], weights=inst.demand[branch >= 0], minlength=p)
    c = inst.cost(todo[:, None], sites[None, :])
    dem = inst.demand[todo].astype(np.float64)
    alive = np.ones(len(todo), dtype=bool)
    for _ in range(len(todo)):
        cc = np.where(dem[:, None] <= room[None, :], c, np.inf)
        two = np.partition(cc, 1, axis=1)[:, :2] if p > 1 else np.concatenate([cc, cc], axis=1)
        if not np.isfinite(two[alive, 0]).all():
            return False
        with np.errstate(invalid="ignore"):
            regret = np.where(np.isfinite(two[:, 1]), two[:, 1] - two[:, 0], 1e300)
        a = int(np.argmax(np.where(alive, regret, -np.inf)))
        j = int(np.argmin(cc[a]))
        branch[todo[a]] = j
        room[j] -= dem[a]
        alive[a] = False
        dirty.add(j)
    return True


def _try_proof(
    inst: Instance, best: tuple[NDArray[np.int64], NDArray[np.int64], float], time_limit: float,
    search_deadline: float, stats: dict[str, object], *, mip: bool,
) -> tuple[NDArray[np.int64], NDArray[np.int64], float, float]:
    """Try to prove a small instance's best plan optimal: the Lagrangian bound first (it meets
    the plan on easy instances in milliseconds), then the whole instance as one MIP from the plan
    when ``mip`` and the instance is small enough (about a second). Returns (sites, branch, objective, bound);
    ``stats["proved_early"]`` (and ``"whole_mip_optimal"``) is set when the plan is proved optimal.

    Why: a small instance is often solved to optimality in its first descents, and the search
    would otherwise run on to the time limit with nothing left to find (an exact solver such as
    spopt's CBC then answers sooner).
    """
    sites, branch, obj = best
    now = time.perf_counter()
    lam0 = inst.cost(np.arange(inst.n), sites[branch])
    # without the size cuts: this runs whenever the plan improves, and the plain bound settles
    # in milliseconds (the cuts cost several times more)
    lb = lagrangian_bound(inst, obj, deadline=min(search_deadline, now + PROOF_BOUND_STEP * time_limit), start=lam0,
                          size_cuts=False)
    if lb >= obj - PROOF_GAP * max(1.0, obj):
        stats["proved_early"] = "bound"  # the bound itself is reported, not rounded up to the plan
        return sites, branch, obj, lb
    if not mip:
        return sites, branch, obj, lb
    mip_stats: dict[str, object] = {}
    out = whole_mip_polish(inst, sites, branch, min(search_deadline, time.perf_counter() + PROOF_MIP_SHARE * time_limit),
                           mip_stats)
    if out is not None and inst.objective(*out) < obj - 1e-9:
        sites, branch = out
        obj = inst.objective(sites, branch)
    if mip_stats.get("whole_mip_optimal"):
        stats.update({"proved_early": "mip", "whole_mip_optimal": True})
        return sites, branch, obj, obj
    return sites, branch, obj, lb


def _arc_round(
    inst: Instance, pool: ClusterPool, best: tuple[NDArray[np.int64], NDArray[np.int64], float], deadline: float,
    rng: np.random.Generator, stats: dict[str, object],
) -> tuple[NDArray[np.int64], NDArray[np.int64], float] | None:
    """Solve the MIP over the pool's arcs (:mod:`geoalloc.solver.arcmip`) from the best plan until
    ``deadline``, descend from its plan; the plan when it beats ``best``, else None."""
    tp = time.perf_counter()
    ai, aj = pool_arcs(pool, best[0], best[1])
    out = arc_mip(inst, ai, aj, deadline, start=best[0][best[1]])
    stats["arc_mip_seconds"] = round(float(stats.get("arc_mip_seconds", 0.0)) + time.perf_counter() - tp, 3)  # type: ignore[arg-type]
    if out is None or inst.objective(*out) >= best[2] - 1e-9:
        return None
    sites, branch, _ = improve(inst, out[0], out[1], rng, deadline + 0.05, {}, reassign_mip=False, whole_mip=False)
    pool.add(sites, branch)
    stats["arc_mip_gains"] = int(stats.get("arc_mip_gains", 0)) + 1  # type: ignore[call-overload]
    return sites, branch, inst.objective(sites, branch)


def _lns_round(
    inst: Instance, best: tuple[NDArray[np.int64], NDArray[np.int64], float], rng: np.random.Generator,
    deadline: float, cfg: LnsConfig, stats: dict[str, object],
) -> tuple[tuple[NDArray[np.int64], NDArray[np.int64], float], bool]:
    """The large-neighbourhood search from ``best`` until it settles or ``deadline``: (plan, settled)."""
    sites, branch, settled = lns(inst, best[0], best[1], rng, deadline, stats, cfg)
    obj = inst.objective(sites, branch)
    if obj < best[2] - 1e-9:
        return (sites, branch, obj), settled
    return best, settled


def _refine_round(
    inst: Instance, best: tuple[NDArray[np.int64], NDArray[np.int64], float], work: Work, meter: Meter,
    rng: np.random.Generator, deadline: float, table: NDArray[np.float64] | None, stats: dict[str, object],
) -> tuple[tuple[NDArray[np.int64], NDArray[np.int64], float], bool]:
    """The starts' best plan refined by the compiled local phase and kicks on the capacity-only
    relaxation (:func:`geoalloc.solver.globalphase.refine`), its points assigned to the sites it
    found under every rule (min-cost flow: sizes, full members; groups whole), then the pair
    descent; the plan when valid and better, else ``best``, and whether that plan is the descent's
    own, run to its end (not cut short by its work). Its kicks come from the work
    (:func:`~geoalloc.solver.work.refine_kicks`), so the plan does not depend on the clock."""
    from geoalloc.solver import globalphase  # numba: only where its kernels run

    tr = time.perf_counter()
    kicks = refine_kicks(work.search)
    meter.charge(kicks * REFINE_KICK)
    gst: dict[str, object] = {}
    sites = globalphase.refine(inst, best[0], best[1], rng, deadline, kicks=kicks, stats=gst)
    out = best
    settled = False
    branch = assign(inst, sites, time_limit=max(0.5, deadline - time.perf_counter()))
    if branch is not None and not inst.violations(sites, branch):
        polish = Meter(REFINE_POLISH_SHARE * work.search)
        s2, b2, cut = improve(inst, sites, branch, rng, deadline, {}, meter=polish, table=table)
        obj = inst.objective(s2, b2)
        if obj < best[2] - 1e-9 * max(1.0, best[2]) and not inst.violations(s2, b2):
            out = (s2, b2, obj)
            settled = not cut
    stats["refine"] = {"kicks": kicks, "gain": round(best[2] - out[2], 3), "seconds": round(time.perf_counter() - tr, 3),
                       "local_steps": gst.get("local_steps", 0), "ils_gains": gst.get("ils_gains", 0)}
    return out, settled


@dataclass
class InstanceResult:
    """A plan for one instance: ``sites`` (candidate indices) and ``branch_of`` (position in sites)."""

    sites: NDArray[np.int64]
    branch_of: NDArray[np.int64]
    objective: float
    lower_bound: float
    seconds: float
    timed_out: bool = False
    stats: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Work:
    """A search bounded by work, not by the clock (the product's district solve).

    ``starts``: at most this many search starts (a construction or a kick, then a descent);
    ``search``: the work they may use in all (a :class:`~geoalloc.solver.work.Meter`'s limit);
    ``bound_iters``: subgradient steps of the lower bound. ``ceiling``: seconds after which
    the search stops wherever it is, a safety net far above what the work should take; a search
    that reaches it is ``timed_out`` (its plan then depends on the machine, and the plan's notes
    say so). Sub-MIPs keep their node limits and get the time left to the ceiling, never a
    clock cap of their own, so any limit that bites on the clock shows as the ceiling reached.
    """

    starts: int
    search: float
    bound_iters: int
    ceiling: float


@dataclass(frozen=True)
class SearchConfig:
    """The search's switches beyond the product's defaults (the benchmark form sets most of them).

    ``patience``: stop after that many starts in a row found nothing better.
    ``polish``: share of the time for a final MIP over the whole instance (sparse arcs, started
    from the best plan); it is clock-bound, so only the benchmark form uses it.
    ``local_kicks``: after a kick, descend from the changed clusters only (many more kicks per
    second when ``p`` is large).
    ``swaps``: with local kicks, first try the best-ranked swaps of the best plan (see
    :mod:`geoalloc.solver.swaps`), then random kicks until the best plan changes again.
    ``reassign_mip``: passed to :func:`~geoalloc.solver.search.improve`.
    ``recombine``: keep the clusters of every local optimum and, every few descents, pick the
    best partition of the points among them (:mod:`geoalloc.solver.pool`).
    ``whole_mip_last``: small instances are not one MIP per start but the polish is the exact
    whole-instance MIP from the best plan (see :func:`~geoalloc.solver.search.whole_mip_polish`).
    ``accept_worse``: kicks start from the last kicked plan that came within this share above the
    best (a walk, which feeds the pool more varied clusters); 0 kicks the best plan only.
    ``prove_early``: on small instances, value the lower bound whenever the best plan improves,
    and after ``PROOF_AFTER`` descents (when the instance is small enough) solve it whole as one
    MIP from the best plan; a plan proved optimal ends the search there, not at the time limit.
    ``arc_mips``: (when, share) pairs, with ``recombine``: once the search has used ``when`` of its
    time (1.0: at its end), solve the MIP over the pool's arcs for up to ``share`` of the time limit
    (:mod:`geoalloc.solver.arcmip`); the search goes on from its plan when it is better.
    ``fresh_every``: after the first ``FRESH_STARTS``, every this many descents is a fresh start
    (default ``FRESH_EVERY_LOCAL`` with local kicks, else 3).
    ``lns``: the large-neighbourhood search with exact sub-MIPs (:mod:`geoalloc.solver.lns`; None:
    off) from the best plan of the starts, on instances of at least ``lns_min_n`` points whose
    clusters are small enough for its sub-problems (:meth:`~geoalloc.solver.lns.LnsConfig.fits`). It stops
    when its sub-problems stop finding gains. ``lns_share`` 0: it runs after the last start in the
    search time the starts left, so it never takes time from them. It is off in the product
    (``SearchConfig()``): there it rarely settled before its deadline, which made a district's plan
    depend on the clock, and it found at most 0.2% per district on the sample. ``lns_share`` > 0
    (the benchmark's clock-bound kicks): the starts get the rest of the search time, the LNS takes
    over from them, and the time it does not need goes back to kicks from its plan.
    ``global_phase``: on the textbook CPMP at scale (:func:`geoalloc.solver.textbook.applies`)
    the compiled matheuristic replaces the starts (:func:`geoalloc.solver.globalphase.solve`), with
    ``global_kicks`` as its work limit (None: until ``global_share`` of the search time); with a
    share below 1 the starts and kicks go on from its plan in the time left.
    ``greedy_seeds``: the starts' sites by greedy k-means++ (:func:`~geoalloc.solver.construct.seed_sites`).
    ``refine``: in a work-bounded search (the product) of a district it fits
    (:func:`geoalloc.solver.textbook.refines`), the best plan of the starts goes through the
    compiled local phase on its capacity-only relaxation (:func:`_refine_round`).
    """

    patience: int | None = None
    polish: float = 0.0
    local_kicks: bool = False
    swaps: bool = False
    reassign_mip: bool = True
    recombine: bool = False
    whole_mip_last: bool = False
    accept_worse: float = 0.0
    prove_early: bool = False
    arc_mips: tuple[tuple[float, float], ...] = ()
    fresh_every: int | None = None
    lns: LnsConfig | None = None
    lns_share: float = 0.0
    lns_min_n: int = 0
    global_phase: bool = False
    global_kicks: int | None = None
    global_share: float = 1.0
    greedy_seeds: bool = True
    refine: bool = True

def solve_instance(
    inst: Instance, time_limit: float, seed: int, *, bound: bool = True, restarts: int = 6,
    bound_share: float = 0.2, config: SearchConfig | None = None, work: Work | None = None,
) -> InstanceResult | None:
    """Best plan found within ``time_limit`` seconds, or None when no feasible plan was found.

    Up to ``restarts`` independent starts (k-means++ seeding, then the improvement search);
    the best plan wins. The work is counted in starts, search rounds and sub-MIP nodes, not
    seconds, so the answer depends only on the seed unless the time limit cuts it short
    (``timed_out``). ``bound_share`` of the time is kept for the lower bound (``bound``).
    ``config``: the search's other switches (:class:`SearchConfig`). ``work``: instead of
    ``time_limit`` and ``restarts``, a fixed amount of work (:class:`Work`): the answer then
    depends only on the instance, the seed and ``work``, unless its ceiling is reached.
    """
    cfg = config or SearchConfig()
    patience, polish, local_kicks, swaps = cfg.patience, cfg.polish, cfg.local_kicks, cfg.swaps
    reassign_mip, recombine, whole_mip_last = cfg.reassign_mip, cfg.recombine, cfg.whole_mip_last
    accept_worse, prove_early, arc_mips, fresh_every = cfg.accept_worse, cfg.prove_early, cfg.arc_mips, cfg.fresh_every
    t0 = time.perf_counter()
    if work is not None:  # every deadline below is the ceiling; the work ends the search
        time_limit, restarts, bound_share, polish = work.ceiling, work.starts, 0.0, 0.0
    deadline = t0 + time_limit
    fresh_every = fresh_every or (FRESH_EVERY_LOCAL if local_kicks else 3)
    bound_share = bound_share if bound else 0.0
    search_end = deadline - (bound_share + polish) * time_limit
    # Metered, with groups under the full-member rule: the starts descend by closed forms only and the
    # sub-MIPs those groups need (a pair move's, the exact reassignment) refine the best plan at the end,
    # in GROUP_MIP_SHARE of the work; run inside every start, a few of them took the whole budget.
    group_mips = work is not None and inst.min_full > 0 and bool((inst.demand > 1).any()) and reassign_mip
    meter = Meter(work.search * (1.0 - GROUP_MIP_SHARE if group_mips else 1.0)) if work is not None else None
    start_mips = not group_mips
    final_arc = sum(share for when, share in arc_mips if when >= 1.0)
    search_deadline = search_end - final_arc * time_limit
    lns_cfg = cfg.lns if cfg.lns is not None and inst.n >= cfg.lns_min_n and cfg.lns.fits(inst.n, inst.p) else None
    lns_end = search_deadline
    if lns_cfg is not None and cfg.lns_share > 0:  # the starts first, then the LNS from their best plan
        search_deadline = t0 + (1.0 - cfg.lns_share) * (lns_end - t0)
    lns_done = False
    arc_stats: dict[str, object] = {}
    mid_arcs = sorted((t0 + when * (search_deadline - t0), share) for when, share in arc_mips if when < 1.0)
    best: tuple[NDArray[np.int64], NDArray[np.int64], float] | None = None
    stats: dict[str, object] = {}
    timed_out = False
    starts = since = 0
    early_lb = proof_seconds = 0.0  # the best bound of the early proof attempts, their time
    mip_tried = False
    unit = bool((inst.demand == 1).all())
    table = cost_table(inst)  # the starts' cost look-ups (None: too large to keep)
    costs = table if swaps and local_kicks else None
    ranked: list[tuple[int, int, float]] = []
    ranked_for = -1  # version of the plan the swaps were ranked for
    cur: tuple[NDArray[np.int64], NDArray[np.int64], float] | None = None  # the plan kicks start from
    cur_version = 0
    pool = ClusterPool(inst) if recombine and inst.self_serve and inst.n <= POOL_MAX_N else None
    recombined = 0
    pool_seconds = 0.0
    stats_lns: dict[str, object] = {}
    if cfg.global_phase and applies(inst):
        from geoalloc.solver import globalphase  # numba: only where its kernels run

        gdl = t0 + cfg.global_share * (search_deadline - t0)
        best = cur = globalphase.solve(inst, np.random.default_rng([seed, LNS_STREAM - 1]), gdl,
                                       kicks=cfg.global_kicks, stats=stats)
        restarts = 0 if best is not None and cfg.global_share >= 1.0 else restarts  # none: the starts try
    for r in range(restarts):
        if lns_cfg is not None and cfg.lns_share > 0 and not lns_done and best is not None and \
                time.perf_counter() > search_deadline:
            best, settled_lns = _lns_round(inst, best, np.random.default_rng([seed, LNS_STREAM]), lns_end, lns_cfg,
                                           stats_lns)
            cur = best
            cur_version += 1
            lns_done = True
            search_deadline = lns_end  # the time the LNS did not need goes back to kicks
            if not settled_lns:
                timed_out = True
                break
        if r and time.perf_counter() > search_deadline:
            timed_out = True
            break
        if r and meter is not None and meter.spent and best is not None:
            break  # the work is done (not the clock: the same on every machine); without a plan yet, go on
        rng = np.random.default_rng([seed, r])
        if mid_arcs and pool is not None and best is not None and time.perf_counter() >= mid_arcs[0][0]:
            share = mid_arcs.pop(0)[1]
            got = _arc_round(inst, pool, best, min(search_deadline, time.perf_counter() + share * time_limit), rng,
                             arc_stats)
            if got is not None:
                best = cur = got
                cur_version += 1
        dirty: set[int] | None = None
        if best is None or r < FRESH_STARTS or r % fresh_every == 0:
            # a first plan may take longer than the search share, never past the whole time limit
            cdl = min(deadline, max(search_deadline, time.perf_counter() + 0.5 * time_limit))
            # capacitated k-means starts help large unit-demand regions; groups keep median starts
            if meter is not None:
                meter.charge(BUILD_CALL + BUILD_POINT * inst.n)
            first = construct_means(inst, rng, cdl, table=table, greedy=cfg.greedy_seeds) \
                if r % 2 == 0 and unit else None
            if first is None:
                first = construct(inst, rng, cdl, table=table, greedy=cfg.greedy_seeds)
        else:  # iterated local search: kick the best plan, then descend again
            assert cur is not None
            if meter is not None:
                meter.charge(flow(inst.n))
            if costs is not None and cur_version != ranked_for:
                ranked, ranked_for = ranked_swaps(inst, costs, cur[0], cur[1], SWAP_TRIES), cur_version
            kicked = None
            while ranked and kicked is None:
                b, k, _ = ranked.pop(0)
                kicked = swap_kick(inst, cur[0], cur[1], b, k)
            if kicked is None and local_kicks:
                kicked = local_kick(inst, cur[0], cur[1], rng, kick=1 + r % 3)
            if kicked is not None:
                first, dirty = kicked[:2], kicked[2]
            else:
                first = perturb(inst, cur[0], cur[1], rng, kick=1 + r % 3)
        if first is None:
            continue
        starts += 1
        sites, branch = first
        rstats: dict[str, object] = {"construct_objective": inst.objective(sites, branch)}
        sites, branch, cut = improve(inst, sites, branch, rng, search_deadline, rstats, dirty=dirty,
                                     reassign_mip=reassign_mip and start_mips, whole_mip=not whole_mip_last,
                                     meter=meter, table=table, pair_mips=start_mips)
        obj = inst.objective(sites, branch)
        if pool is not None and not cut:
            pool.add(sites, branch)
            if starts % RECOMBINE_EVERY == 0 and len(pool) > pool.solved_size:
                tp = time.perf_counter()
                out = pool.solve(inst.p, min(search_deadline, time.perf_counter() + RECOMBINE_TIME * time_limit),
                                 start=best[:2] if best is not None else None)
                pool_seconds += time.perf_counter() - tp
                if out is not None and inst.objective(*out) < min(obj, best[2] if best else np.inf) - 1e-9:
                    sites, branch, cut = improve(inst, out[0], out[1], rng, search_deadline, rstats,
                                                 reassign_mip=reassign_mip, whole_mip=not whole_mip_last,
                                                 meter=meter, table=table)
                    obj = inst.objective(sites, branch)
                    pool.add(sites, branch)
                    recombined += 1
        if best is None or obj < best[2] - 1e-9:
            best = cur = (sites, branch, obj)
            cur_version += 1
            stats = rstats
            since = 0
        else:
            if dirty is not None and cur is not None and obj < best[2] * (1 + accept_worse) and obj != cur[2]:
                cur = (sites, branch, obj)  # a walk near the best plan: kicks from here next
                cur_version += 1
            since += 1
            if patience is not None and since >= patience:
                break
        if cut:
            timed_out = timed_out or meter is None  # metered: the work ran out (the ceiling is checked at the end)
            break
        if rstats.get("whole_mip_optimal"):
            break  # proved optimal: nothing left to find
        if prove_early and inst.n <= PROOF_MAX_N and best is not None and (
                since == 0 and proof_seconds < PROOF_BOUND_SHARE * time_limit or starts == PROOF_AFTER):
            tp = time.perf_counter()
            proof = _try_proof(inst, best, time_limit, search_deadline, stats, mip=starts >= PROOF_AFTER and not mip_tried)
            proof_seconds += time.perf_counter() - tp
            mip_tried = mip_tried or starts >= PROOF_AFTER
            early_lb = max(early_lb, proof[3])
            if proof[2] < best[2] - 1e-9:
                best = cur = (proof[0], proof[1], proof[2])
                cur_version += 1
            if stats.get("proved_early"):
                break
    if lns_cfg is not None and not lns_done and best is not None and time.perf_counter() < lns_end \
            and not stats.get("proved_early") and not stats.get("whole_mip_optimal"):
        best, _ = _lns_round(inst, best, np.random.default_rng([seed, LNS_STREAM]), lns_end, lns_cfg, stats_lns)
    polished = False  # the plan came from the refinement's descent, run to its end
    if best is not None and work is not None and meter is not None and cfg.refine and refines(inst) \
            and not stats.get("proved_early"):
        # with groups the descent after the kicks runs the groups' sub-MIPs too: when it ran to its end, the
        # descent below would start from its local optimum (on the geocoded sample it never gained there)
        best, polished = _refine_round(inst, best, work, meter, np.random.default_rng([seed, REFINE_STREAM]), deadline,
                                       table, stats)
    if best is None:
        return None
    if group_mips and meter is not None and work is not None and not stats.get("whole_mip_optimal") and not polished:
        meter.limit = work.search
        s2, b2, _ = improve(inst, best[0], best[1], np.random.default_rng([seed, restarts + 2]), search_deadline, {},
                            meter=meter, table=table)
        if inst.objective(s2, b2) < best[2] - 1e-9:
            best = (s2, b2, inst.objective(s2, b2))
            stats["group_mips"] = True
    if final_arc > 0 and pool is not None and not stats.get("proved_early"):
        got = _arc_round(inst, pool, best, search_end, np.random.default_rng([seed, restarts + 1]), arc_stats)
        best = got if got is not None else best
    sites, branch, obj = best
    stats["starts"] = starts
    if meter is not None:
        stats["work_used"] = round(meter.used, 4)
    stats.update(stats_lns)
    if proof_seconds:
        stats["proof_seconds"] = round(proof_seconds, 3)
    stats.update(arc_stats)
    settled = bool(stats.get("whole_mip_optimal") or stats.get("proved_early"))  # nothing left to find
    if pool is not None:
        stats.update({"pool": len(pool), "recombined": recombined, "pool_seconds": round(pool_seconds, 3)})
    if inst.p <= RELOCATE_MAX_P and not settled:
        # few clusters: also move single sites anywhere (see relocate_sites), then descend again;
        # it may use up to half the bound's time, which small instances do not need
        rdl = deadline - 0.5 * bound_share * time_limit
        moved = relocate_sites(inst, sites, branch, rdl, Meter(RELOCATE_SHARE * work.search) if work else None)
        if moved is not None:
            s2, b2, _ = improve(inst, moved[0], moved[1], np.random.default_rng([seed, restarts]), rdl, {},
                                meter=meter, table=table)
            if inst.objective(s2, b2) < obj - 1e-9:
                sites, branch, obj = s2, b2, inst.objective(s2, b2)
                stats["relocated_sites"] = True
    if polish > 0 and not settled:
        pdl = deadline - bound_share * time_limit
        out = whole_mip_polish(inst, sites, branch, pdl, stats) if whole_mip_last else None
        if out is None and not stats.get("whole_mip_optimal"):
            out = polish_mip(inst, sites, branch, pdl)
        if out is not None and inst.objective(*out) < obj - 1e-9:
            sites, branch = out
            obj = inst.objective(sites, branch)
            stats["polished"] = True
    lb = 0.0
    if bound and not settled:
        lam0 = inst.cost(np.arange(inst.n), sites[branch])
        tb = time.perf_counter()
        if work is not None:
            # the bound's own clock checks (which phases it tries) must not bite: too close to the
            # ceiling, the search counts as cut
            timed_out = timed_out or deadline - tb < BOUND_CEILING_MARGIN
            lb = lagrangian_bound(inst, obj, deadline=deadline, start=lam0, iters=work.bound_iters)
        else:
            lb = lagrangian_bound(inst, obj, deadline=max(deadline, time.perf_counter() + 0.05), start=lam0)
        stats["bound_seconds"] = round(time.perf_counter() - tb, 3)
        stats["search_seconds"] = round(tb - t0, 3)
    lb = max(lb, early_lb)
    if stats.get("whole_mip_optimal"):
        lb = max(lb, obj)
    if work is not None and time.perf_counter() > deadline:
        timed_out = True  # some step ran into the ceiling: it, not the work, ended that step
    return InstanceResult(sites, branch, obj, lb, time.perf_counter() - t0, timed_out, stats)
