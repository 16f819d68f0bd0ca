"""The benchmark search's moves keep plans valid: the faster regret assignment gives the same
answers as the plain greedy it replaced, local kicks stay feasible and name what they changed,
and the local-kick search is valid and repeatable under a seed."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from geoalloc.solver.assign import regret_assign
from geoalloc.solver.engine import SearchConfig, local_kick, solve_instance
from geoalloc.solver.instance import Instance


def plain_regret(inst: Instance, sites: np.ndarray) -> np.ndarray | None:
    """The textbook greedy: re-sort every remaining point's fitting sites at each step."""
    n, p = inst.n, len(sites)
    cost = inst.cost(np.arange(n)[:, None], sites[None, :])
    room = np.full(p, float(inst.max_size))
    out = np.full(n, -1, dtype=np.int64)
    if inst.self_serve:
        out[sites] = np.arange(p)
        room -= inst.demand[sites]
    todo = np.nonzero(out < 0)[0]
    dem = inst.demand.astype(np.float64)
    while len(todo):
        c = np.where(dem[todo, None] <= room[None, :], cost[todo], np.inf)
        srt = np.sort(c, axis=1)
        if not np.isfinite(srt[:, 0]).all():
            return None
        second = srt[:, 1] if p > 1 else np.full(len(todo), np.inf)
        regret = np.where(np.isfinite(second), second - srt[:, 0], 1e300) + dem[todo] * 1e-9
        a = int(np.argmax(regret))
        b = int(np.argmin(c[a]))
        out[todo[a]] = b
        room[b] -= dem[todo[a]]
        todo = np.delete(todo, a)
    return None if inst.violations(sites, out) else out


def grouped(seed: int, n: int, p: int, slack: float) -> Instance:
    rng = np.random.default_rng(seed)
    dem = rng.integers(1, 30, n)
    cap = int(dem.sum() / p * slack) + int(dem.max())
    return Instance(xy=rng.uniform(0, 100, (n, 2)).round(0), demand=dem, full=dem, weight=np.ones(n), p=p,
                    max_size=cap)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(4, 60), st.integers(1, 7), st.floats(0.8, 1.4))
def test_regret_assign_matches_the_plain_greedy(seed: int, n: int, p: int, slack: float) -> None:
    p = min(p, n)
    inst = grouped(seed, n, p, slack)
    sites = np.random.default_rng(seed).choice(n, p, replace=False)
    a, b = plain_regret(inst, sites), regret_assign(inst, sites)
    assert (a is None) == (b is None)
    if a is not None:
        assert np.array_equal(a, b)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3))
def test_local_kick_is_feasible_and_names_the_changed_clusters(seed: int, kick: int) -> None:
    inst = grouped(seed, 40, 5, 1.1)
    sites = np.random.default_rng(seed).choice(inst.n, inst.p, replace=False)
    branch = regret_assign(inst, sites)
    if branch is None:
        return
    out = local_kick(inst, sites, branch, np.random.default_rng(seed), kick)
    if out is None:
        return
    new_sites, new_branch, dirty = out
    assert not inst.violations(new_sites, new_branch)
    changed = (new_branch != branch) | (new_sites[new_branch] != sites[branch])
    assert set(new_branch[changed].tolist()) <= dirty
    assert set(np.nonzero(new_sites != sites)[0].tolist()) <= dirty


def test_local_kick_search_is_valid_and_repeatable() -> None:
    inst = grouped(7, 120, 12, 1.0)
    runs = [solve_instance(inst, 60.0, 3, bound=False, restarts=40, config=SearchConfig(local_kicks=True)) for _ in range(2)]
    assert runs[0] is not None and runs[1] is not None
    assert not inst.violations(runs[0].sites, runs[0].branch_of)
    assert runs[0].objective == runs[1].objective
    assert np.array_equal(runs[0].branch_of, runs[1].branch_of)
    assert not runs[0].timed_out


def test_relocate_sites_gives_a_blob_without_a_site_one() -> None:
    """Four dense blobs, four clusters, and a plan with two sites in one blob and none in
    another: moving one site anywhere finds the missing blob; the plan stays valid."""
    import time

    from geoalloc.solver.assign import assign
    from geoalloc.solver.instance import Instance
    from geoalloc.solver.search import relocate_sites

    rng = np.random.default_rng(3)
    centres = np.array([[0, 0], [20_000, 0], [0, 20_000], [20_000, 20_000]], dtype=float)
    xy = np.concatenate([c + rng.normal(0, 300, (30, 2)) for c in centres])
    n = len(xy)
    inst = Instance(xy=xy, demand=np.ones(n, dtype=np.int64), full=np.ones(n, dtype=np.int64),
                    weight=np.ones(n), p=4, max_size=40, min_size=3, min_full=3)
    sites = np.array([0, 1, 30, 60])  # two in the first blob, none in the last
    branch = assign(inst, sites)
    assert branch is not None
    before = inst.objective(sites, branch)
    moved = relocate_sites(inst, sites, branch, time.perf_counter() + 10)
    assert moved is not None
    new_sites, new_branch = moved
    assert inst.violations(new_sites, new_branch) == []
    assert inst.objective(new_sites, new_branch) < 0.5 * before
    assert (new_sites >= 90).any()  # a site in the fourth blob


def test_a_work_bounded_search_goes_on_until_it_has_a_plan(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A start whose construction fails spends its work all the same; the search must not then
    stop with no plan at all (a district of the 1,000,000-member roster was reported infeasible)."""
    import geoalloc.solver.engine as engine
    from geoalloc.solver.engine import Work

    inst = grouped(3, 60, 4, 1.3)
    failed: list[int] = []
    real = engine.construct

    def fails_first(inst: Instance, rng: np.random.Generator, deadline: float, **kw):  # type: ignore[no-untyped-def]
        if not failed:
            failed.append(1)
            return None
        return real(inst, rng, deadline, **kw)

    monkeypatch.setattr(engine, "construct", fails_first)
    res = solve_instance(inst, 1.0, 0, work=Work(starts=6, search=1e-6, bound_iters=25, ceiling=30.0))
    assert failed and res is not None and not inst.violations(res.sites, res.branch_of)
    assert res.stats["starts"] == 1 and not res.timed_out


def test_the_cost_table_changes_no_plan(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The search looks costs up in one table where the unit is small enough (solver/table.py);
    with the table or without it, the same plan, the product's rules (3..40, full members) and
    a given candidate-site unit alike."""
    import geoalloc.solver.engine as engine
    from geoalloc.solver.engine import Work

    rng = np.random.default_rng(5)
    n = 160
    xy = rng.uniform(0, 5000, (n, 2))
    full = (rng.random(n) < 0.6).astype(np.int64)
    ruled = Instance(xy=xy, demand=np.ones(n, dtype=np.int64), full=full, weight=np.ones(n), p=5,
                     max_size=40, min_size=3, min_full=3)
    sited = Instance(xy=xy, demand=np.ones(n, dtype=np.int64), full=full, weight=np.ones(n), p=5,
                     max_size=40, min_size=3, min_full=3, cand_xy=rng.uniform(0, 5000, (30, 2)))
    work = Work(starts=4, search=10.0, bound_iters=25, ceiling=120.0)
    for inst in (ruled, sited):
        with_table = solve_instance(inst, 120.0, 2, work=work)
        monkeypatch.setattr(engine, "cost_table", lambda inst: None)
        without = solve_instance(inst, 120.0, 2, work=work)
        monkeypatch.undo()
        assert with_table is not None and without is not None and not with_table.timed_out
        assert np.array_equal(with_table.sites, without.sites)
        assert np.array_equal(with_table.branch_of, without.branch_of)
