"""The benchmark search's faster and wider moves stay exact and valid: the LP bound that prunes
pair splits never exceeds the exact split, and pruning with a cutoff finds the same best value."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoalloc.solver.instance import Instance
from geoalloc.solver.pairs import best_pair, lp_split_bound


def grouped(seed: int, n: int, p: int, slack: float, floor: bool = False) -> Instance:
    rng = np.random.default_rng(seed)
    dem = rng.integers(1, 30, n)
    cap = int(dem.sum() / p * slack) + int(dem.max())
    return Instance(xy=rng.uniform(0, 100, (n, 2)).round(0), demand=dem, full=dem, weight=np.ones(n), p=p,
                    max_size=cap, floor=floor)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 10), st.integers(0, 60), st.integers(0, 60))
def test_lp_split_bound_is_below_every_exact_split(seed: int, n: int, lo: int, width: int) -> None:
    rng = np.random.default_rng(seed)
    diff = rng.normal(0, 10, (3, n))
    dem = rng.integers(1, 15, n)
    free = rng.random((3, n)) < 0.8
    lo_a = np.full(3, lo)
    hi_a = lo_a + width - 10
    bound = lp_split_bound(np.where(free, diff, np.inf), dem, free, lo_a, hi_a)
    for r in range(3):
        exact = np.inf
        idx = np.nonzero(free[r])[0]
        for k in range(len(idx) + 1):
            for sub in itertools.combinations(idx, k):
                load = int(dem[list(sub)].sum())
                if lo_a[r] <= load <= hi_a[r]:
                    exact = min(exact, float(diff[r, list(sub)].sum()))
        if np.isfinite(exact):
            assert bound[r] <= exact + 1e-9
        else:  # no integral split: the LP may still have one, but it is never below -inf
            assert bound[r] > -np.inf


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(3, 30), st.floats(0.5, 1.0), st.booleans(), st.floats(-5, 20))
def test_pair_cutoff_keeps_every_improving_split(seed: int, n: int, slack: float, floor: bool, margin: float) -> None:
    inst = grouped(seed, n, 2, slack, floor)
    pts = np.arange(n)
    k = max(1, n // 2)
    full = best_pair(inst, pts, pts[:k], pts[k:], pts, t=5)
    cut = (full[0] if full is not None else 100.0) + margin
    pruned = best_pair(inst, pts, pts[:k], pts[k:], pts, t=5, cutoff=cut)
    if full is not None and full[0] < cut - 1e-9 * max(1.0, cut):
        assert pruned is not None and pruned[0] == pytest.approx(full[0], abs=1e-9)
        on_a = pruned[3]
        val = float(inst.cost(pts[on_a], np.full(on_a.sum(), pruned[1])).sum()
                    + inst.cost(pts[~on_a], np.full((~on_a).sum(), pruned[2])).sum())
        assert val == pytest.approx(pruned[0], abs=1e-6)
        assert inst.demand[on_a].sum() <= inst.max_size and inst.demand[~on_a].sum() <= inst.max_size
    else:
        assert pruned is None
