"""The compiled matheuristic for the textbook CPMP at scale (geoalloc.solver.globalphase): every
plan it returns is valid, no step makes a plan worse, it finds the brute-force optimum of tiny
instances, its bound lies below its plan, and a work-limited run gives the same plan on one\nworker or two."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_solver_parts import brute_plan

from geoalloc.solver import globalphase as gp
from geoalloc.solver import textbook
from geoalloc.engines import LocalEngine
from geoalloc.solver.engine import InstanceResult, SearchConfig, solve_instance
from geoalloc.solver.instance import Instance

FAR = 1e18  # no deadline: the work limits decide


def cpmp(seed: int, n: int, p: int, slack: float = 1.1) -> Instance:
    """Weighted demands (the bin-packing case), capacity ``slack`` times the mean load."""
    rng = np.random.default_rng(seed)
    demand = rng.integers(1, 30, n)
    cap = int(np.ceil(demand.sum() / p * slack)) + int(demand.max())
    return Instance(xy=rng.uniform(0, 1000, (n, 2)), demand=demand, full=np.zeros(n, dtype=np.int64),
                    weight=np.ones(n), p=p, max_size=cap)


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10_000))
def test_every_step_keeps_the_plan_valid_and_never_worse(seed: int) -> None:
    inst = cpmp(seed, 150, 12)
    first = gp.global_plan(inst, np.random.default_rng(seed), FAR, local=False)
    assert first is not None
    assert inst.violations(*first) == []
    obj = inst.objective(*first)
    rng = np.random.default_rng(seed + 1)
    moved = gp._local_moves(inst, first[0], first[1], rng, FAR)
    assert inst.violations(*moved) == [] and inst.objective(*moved) <= obj + 1e-9
    paired = gp.drop_add(inst, moved[0], moved[1], FAR)
    assert inst.violations(paired[0], paired[1]) == []
    assert inst.objective(paired[0], paired[1]) <= inst.objective(*moved) + 1e-9
    searched = gp.search(inst, paired[0], paired[1], rng, FAR, kicks=15)
    assert inst.violations(*searched) == []
    assert inst.objective(*searched) <= inst.objective(paired[0], paired[1]) + 1e-9


@pytest.mark.parametrize("seed", range(6))
def test_tiny_instances_reach_the_brute_force_optimum(seed: int) -> None:
    inst = cpmp(seed, 8, 2, slack=1.05)
    opt, _, _ = brute_plan(inst)
    plan = gp.solve(inst, np.random.default_rng(seed), FAR, kicks=20)
    assert plan is not None
    assert inst.violations(plan[0], plan[1]) == []
    assert plan[2] == pytest.approx(opt, rel=1e-9)


def _hooked(seed: int) -> InstanceResult | None:
    """The engine's global-phase hook on one instance, bounded by work (a unit an engine runs)."""
    cfg = SearchConfig(global_phase=True, global_kicks=25)
    return solve_instance(cpmp(seed, 240, 12), 600.0, 5, restarts=100_000, bound_share=0.01, config=cfg)


def test_the_engine_hook_is_valid_bounded_and_does_not_depend_on_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(textbook, "MIN_N", 200)  # a smaller instance than the phase takes by default (fast)
    inst = cpmp(3, 240, 12)
    assert gp.applies(inst)
    a = _hooked(3)  # in this process (one worker) ...
    assert a is not None
    assert inst.violations(a.sites, a.branch_of) == []
    assert a.stats["ils_kicks"] == 25 and a.stats["starts"] == 0
    assert a.lower_bound <= a.objective + 1e-6
    # ... and twice at once on a pool of two (forked: the patch holds there): the same plan each time
    for _, b in LocalEngine(2).run(_hooked, [3, 3], [240, 240]):
        assert b is not None
        assert np.array_equal(a.sites, b.sites) and np.array_equal(a.branch_of, b.branch_of)
        assert a.objective == b.objective


def test_it_applies_to_the_textbook_cpmp_only() -> None:
    inst = cpmp(0, 700, 20)
    assert gp.applies(inst)
    from dataclasses import replace

    assert not gp.applies(replace(inst, min_size=3))  # the product's lower limits: the general search
    assert not gp.applies(replace(inst, p=5))  # 140 points per cluster: the general search does better
    assert not gp.applies(replace(inst, cand_xy=inst.xy[:50].copy()))  # given candidate sites



def _scan_assign(c: np.ndarray, own: np.ndarray, dem: np.ndarray, cap: int) -> tuple[float, np.ndarray]:
    """The assignment as first written: the regret greedy scans every point left in every round,
    then the same shifts and swaps (the product's own, :func:`globalphase._shift_swap`)."""
    npt, q = c.shape
    room = np.full(q, cap, dtype=np.int64)
    out = own.copy()
    for a in np.nonzero(own >= 0)[0]:
        room[own[a]] -= dem[a]
    while (out < 0).any():
        best, score, bt = -1, -1.0, -1
        for a in np.nonzero(out < 0)[0]:
            f1 = f2 = 1e300
            t1 = -1
            for t in range(q):
                if room[t] >= dem[a]:
                    if c[a, t] < f1:
                        f2, f1, t1 = f1, c[a, t], t
                    elif c[a, t] < f2:
                        f2 = c[a, t]
            if t1 < 0:
                return np.inf, out
            r = (f2 - f1 if f2 < 1e299 else 1e200) + 1e-9 * dem[a]
            if r > score:
                best, score, bt = a, r, t1
        out[best] = bt
        room[bt] -= dem[best]
    gp._shift_swap(c, own, dem.astype(np.int64), room, out)
    return float(sum(c[a, out[a]] for a in range(npt))), out


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_the_kept_regrets_give_the_scanning_greedys_plan(seed: int) -> None:
    """The compiled assignment keeps regrets between rounds (see _assign_costs): its plan and cost
    are the ones a full scan per round gives, ties (rounded costs) and group demands included."""
    rng = np.random.default_rng(seed)
    npt, q = int(rng.integers(5, 60)), int(rng.integers(2, 6))
    c = np.round(rng.uniform(0, 100, (npt, q)), int(rng.integers(0, 2)))  # rounding makes ties
    dem = rng.integers(1, 4, npt) if seed % 2 else np.ones(npt, dtype=np.int64)
    own = np.full(npt, -1, dtype=np.int64)
    own[rng.choice(npt, q, replace=False)] = np.arange(q)
    cap = int(np.ceil(dem.sum() / q * float(rng.uniform(0.95, 1.6))))
    want, plan = _scan_assign(c, own, dem, cap)
    out = np.empty(npt, dtype=np.int64)
    got = gp._assign_costs(c, own, dem.astype(np.int64), cap, out)
    if not np.isfinite(want):
        assert not np.isfinite(got)
        return
    assert got == want
    assert (out == plan).all()
