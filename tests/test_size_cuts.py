"""Rounded size cuts (geoalloc.solver.sizecuts): the groups nest, the prefix-sum formulas agree
with counting by hand, every feasible plan meets every cut, and the bound that uses them stays
below the optimum while rising above the bound without them where whole branches do not fit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_solver_parts import brute_plan

from geoalloc.solver.bounds import _forced_unit_bound, forced_size
from geoalloc.solver.engine import solve_instance
from geoalloc.solver.instance import Instance
from geoalloc.solver.sizecuts import SizeCuts, crossings_needed


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(6, 70))
def test_discounts_and_crossings_match_counting_by_hand(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 1000, (n, 2))
    cuts = SizeCuts.build(xy, max(1, n // 8), 6, 8)
    if cuts is None:
        return
    member = cuts.membership()  # spelled out from the runs of leaf positions
    start = 0
    for family in cuts.families:  # in one dendrogram, any two groups nest or are disjoint
        own = member[:, start:start + len(family.rhs)]
        start += len(family.rhs)
        for a in range(own.shape[1]):
            for b in range(own.shape[1]):
                both = own[:, a] & own[:, b]
                assert not both.any() or both.sum() == min(own[:, a].sum(), own[:, b].sum())
    assert np.array_equal(cuts.rhs, crossings_needed(member.sum(axis=0), n, max(1, n // 8), 6, 8))
    i, j = rng.integers(0, n, 300), rng.integers(0, n, 300)
    i, j = i[i != j], j[i != j]
    prepared = cuts.prepare(i, j)
    crossed = member[i] != member[j]
    mu = rng.uniform(0, 5, cuts.size)
    assert np.allclose(cuts.discounts(mu, i, j, prepared), crossed @ mu)
    assert np.array_equal(cuts.crossings(i, j, prepared), crossed.sum(axis=0))


def tight(xy: np.ndarray, p: int, cap: int) -> Instance:
    n = len(xy)
    return Instance(xy=xy, demand=np.ones(n, dtype=np.int64), full=np.ones(n, dtype=np.int64),
                    weight=np.ones(n), p=p, max_size=cap, min_size=1)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.integers(4, 5))
def test_the_optimal_plan_meets_every_cut(seed: int, cap: int) -> None:
    """Validity: in a feasible plan, every group has at least r(S) members crossing its edge."""
    inst = tight(np.random.default_rng(seed).uniform(0, 1000, (8, 2)), 2, cap)
    cuts = SizeCuts.build(inst.xy, inst.p, forced_size(inst), cap)
    assert cuts is not None
    _, sites, branch = brute_plan(inst)
    i = np.arange(inst.n)
    j = sites[branch]
    arcs = i != j
    assert (cuts.crossings(i[arcs], j[arcs], cuts.prepare(i[arcs], j[arcs])) >= cuts.rhs).all()


def test_cuts_raise_the_bound_where_whole_branches_do_not_fit() -> None:
    """Villages of 13 and 12 members, 5 km apart, and five branches of exactly five: at least two
    members must cross between the villages. The relaxation without cuts opens 2.6 and 2.4
    branches and moves nobody; with the cuts, the bound counts about two crossings."""
    rng = np.random.default_rng(7)
    xy = np.repeat([[0.0, 0.0], [5_000.0, 0.0]], [13, 12], axis=0) + rng.uniform(-100, 100, (25, 2))
    inst = tight(xy, 5, 5)
    plan = solve_instance(inst, 5.0, 0, bound=False)
    assert plan is not None
    plain = _forced_unit_bound(inst, plan.objective, 2000, None, 15, None, 2.0, size_cuts=False)
    cut = _forced_unit_bound(inst, plan.objective, 2000, None, 15, None, 2.0, size_cuts=True)
    assert plain is not None and cut is not None
    assert plan.objective > 2 * 4_800
    assert plain[0] < plan.objective - 1.5 * 4_800
    assert plain[0] + 1.5 * 4_800 < cut[0] <= plan.objective + 1e-6
