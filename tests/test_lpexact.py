"""benchmarks/lpexact.py, the LP behind the closing note's proof: its two solvers (clusters for
unit demands, arcs otherwise) give the optimum of the dense LP solved directly, and the cluster
pricing is the exact best cluster."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for benchmarks/
from benchmarks.certificate import lp_value, strong_model  # noqa: E402
from benchmarks.lpexact import cluster_prices, dw_lp, exact_lp  # noqa: E402
from geoalloc.solver.bounds import forced_size  # noqa: E402
from geoalloc.solver.engine import solve_instance  # noqa: E402
from geoalloc.solver.instance import Instance  # noqa: E402


def _instance(seed: int, n: int, p: int, slack: float, groups: bool = False) -> Instance:
    rng = np.random.default_rng(seed)
    demand = rng.integers(1, 3, n) if groups else np.ones(n, dtype=np.int64)
    full = np.where(rng.random(n) < 0.7, demand, 0)
    cap = int(np.ceil(demand.sum() / p * slack)) + int(demand.max()) - 1
    return Instance(xy=rng.uniform(0, 1000, (n, 2)), demand=demand, full=full, weight=demand.astype(np.float64),
                    p=p, max_size=cap, min_size=3, min_full=2)


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([1.02, 1.1, 1.5]))
def test_cluster_lp_equals_the_dense_lp(seed: int, slack: float) -> None:
    inst = _instance(seed, 24, 3, slack)
    res = solve_instance(inst, 1.0, 0)
    assert res is not None
    dense, _ = lp_value(strong_model(inst))
    got = dw_lp(inst, (res.sites, res.branch_of))
    assert got.upper == pytest.approx(dense, rel=1e-6)
    assert got.lower <= dense + 1e-6 * dense and got.lower == pytest.approx(dense, rel=1e-5)
    assert got.lower <= res.objective + 1e-6


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([1.05, 1.5]), st.booleans())
def test_arc_generation_equals_the_dense_lp(seed: int, slack: float, groups: bool) -> None:
    inst = _instance(seed, 20, 3, slack, groups)
    if groups and forced_size(inst) > inst.min_size:
        return  # the dense model takes min_size alone for groups; the arc LP also the implied size
    dense, _ = lp_value(strong_model(inst))
    assert exact_lp(inst, start_k=2).value == pytest.approx(dense, rel=1e-6)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4), st.integers(3, 6), st.integers(0, 3), st.booleans())
def test_cluster_pricing_is_the_best_cluster(seed: int, low: int, high: int, min_full: int, own: bool) -> None:
    """Against every subset of 7 points: the least reduced cost of a cluster of low..high points
    with min_full full ones (a site's own point in it when ``own``)."""
    rng = np.random.default_rng(seed)
    n = 7
    rows = rng.uniform(0, 10, (n, n))
    np.fill_diagonal(rows, 0.0)  # a site's own point costs nothing (sites are points)
    u = rng.uniform(0, 12, n)
    full = rng.random(n) < 0.5
    sites = np.arange(n)
    v, mem = cluster_prices(rows.copy(), sites, u, full, low, high, min_full, own, members=True)
    assert mem is not None
    for j in range(n):
        best = np.inf
        for k in range(1, n + 1):
            for s in itertools.combinations(range(n), k):
                if own and j not in s:
                    continue
                if low <= k <= high and full[list(s)].sum() >= min_full:
                    best = min(best, float((rows[j, list(s)] - u[list(s)]).sum()))
        assert v[j] == pytest.approx(best, abs=1e-9) if np.isfinite(best) else not np.isfinite(v[j])
        if np.isfinite(best):
            s = mem[j]
            assert low <= len(s) <= high and full[s].sum() >= min_full and (j in s or not own)
            assert float((rows[j, s] - u[s]).sum()) == pytest.approx(best, abs=1e-9)
