"""Units of work on the local engine: one plan whatever the worker count, restarts from
checkpoints, regions (city, district), infeasible districts named, Ray never imported.

The Ray engine's own tests (same plan on Ray, a node killed mid-run) are in test_ray.py.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geoalloc.engines import Checkpoints, EngineError, LocalEngine, get_engine, largest_first
from geoalloc.national import COLUMNS, generate_national
from geoalloc.pipeline import allocate, build_problem
from geoalloc.rules import Policy, region_keys
from geoalloc.solver.form import form_branches, unit_budget, unit_seed, unit_work
from geoalloc.solver.problem import InfeasibleError, Problem

# small: most units' work budgets run out before their planned starts (the clock would have cut
# them before the budgets were counted in work); no plan depends on the clock all the same
POLICY = Policy(time_limit=0.3, seed=3)


def plan_hash(assignments: pd.DataFrame) -> str:
    a = assignments.sort_values("member_id")[["member_id", "branch_id"]].astype(str)
    return hashlib.sha256("\n".join(a["member_id"] + "," + a["branch_id"]).encode()).hexdigest()


def active_problem(members: pd.DataFrame, policy: Policy) -> Problem:
    m = members[members["status"] == "active"].copy()
    m["_full_count"] = m["weight"] * m["full_member"]
    return build_problem(m, policy)[0]


@pytest.fixture(scope="module")
def national() -> pd.DataFrame:
    return generate_national(3000, seed=5)


@pytest.fixture(scope="module")
def local_plan(national: pd.DataFrame) -> tuple[str, dict]:
    res = allocate(national, POLICY, engine=LocalEngine(1))
    return plan_hash(res.assignments), res.report


def test_national_sample_is_deterministic_skewed_and_feasible_per_city() -> None:
    a, b, c = generate_national(4000, seed=1), generate_national(4000, seed=1), generate_national(4000, seed=2)
    assert list(a.columns) == COLUMNS and len(a) == 4000
    assert a.equals(b) and not a.equals(c)
    per_city = a.groupby("city_zh").size().sort_values(ascending=False)
    assert len(per_city) == 100 and per_city.iloc[0] > 10 * per_city.median()  # a few very large cities
    assert a.groupby(["city_zh", "district_zh"]).ngroups > 400
    assert a["lon"].between(73, 136).all() and a["lat"].between(18, 54).all()
    act = a[a["status"] == "active"]
    assert (act.groupby("city_zh")["full_member"].sum() >= 3).all()
    families = a[a["group_id"] != ""].groupby("group_id")
    assert len(families) > 20 and (families.size() == 2).all() and (families["lon"].nunique() == 1).all()


def test_regions_carry_the_city_and_small_districts_join_within_their_own_city() -> None:
    rng = np.random.default_rng(0)

    def block(city: str, district: str, n: int, lon: float, lat: float) -> pd.DataFrame:
        return pd.DataFrame({"city_zh": city, "district_zh": district, "lon": lon + rng.normal(0, 0.01, n),
                             "lat": lat + rng.normal(0, 0.01, n), "full_member": 1, "status": "active",
                             "weight": 1})

    # 甲市/小区 (2 members) lies next to 乙市/东区 and far from its own city's 西区
    m = pd.concat([block("甲市", "西区", 30, 113.0, 23.0), block("甲市", "小区", 2, 114.0, 23.0),
                   block("乙市", "东区", 30, 114.02, 23.0)], ignore_index=True)
    m["member_id"] = [f"m{i}" for i in range(len(m))]
    res = allocate(m, Policy(time_limit=2.0))
    branch = res.assignments.set_index("member_id")["branch_id"]
    small = branch[[f"m{i}" for i in range(30, 32)]]
    assert small.str.startswith("甲市/西区-").all()
    assert res.assignments["city_zh"].tolist() == m["city_zh"].tolist()
    assert set(res.branches["city_zh"]) == {"甲市", "乙市"}
    assert any("甲市/小区" in n and "甲市/西区" in n for n in res.report["notes"])
    # without city_zh a region is the district as before
    _, names = region_keys(m.drop(columns="city_zh"), Policy())
    assert names == ["东区", "小区", "西区"]


def test_a_units_seed_and_budget_depend_on_the_unit_and_the_policy_only() -> None:
    p = Policy(seed=7)
    assert unit_seed("广州市/天河区", p) == unit_seed("广州市/天河区", Policy(seed=7, time_limit=3))
    assert len({unit_seed("广州市/天河区", p), unit_seed("广州市/越秀区", p), unit_seed("广州市/天河区", Policy(seed=8))}) == 3
    assert unit_budget(500, p) == unit_budget(500, Policy(seed=9)) < unit_budget(1000, p)
    assert unit_work(500, p) == unit_work(500, Policy(seed=9))
    small, large = unit_work(500, Policy(time_limit=0.3)), unit_work(500, Policy(time_limit=30))
    assert small.search < large.search and small.bound_iters < large.bound_iters
    assert small.ceiling > 10 * unit_budget(500, Policy(time_limit=0.3))  # the clock is only a safety net


def test_same_plan_with_one_and_two_local_workers(national: pd.DataFrame, local_plan: tuple[str, dict]) -> None:
    digest, report = local_plan
    assert report["engine"]["name"] == "local" and report["engine"]["clock_cut"] == 0
    assert report["engine"]["units"] > 30 and report["violations"]["over_max"] == 0
    # the work, not the planned starts, ended searches here (the old clock-bound budgets cut them)
    sol = form_branches(active_problem(national, POLICY), POLICY, engine=LocalEngine(1))
    searched = [u for u in sol.stats["units"] if "work" in u]
    assert searched and any(u["starts"] < u["work"]["starts"] for u in searched)
    assert all(u["work_used"] >= u["work"]["search"] for u in searched if u["starts"] < u["work"]["starts"])
    two = allocate(national, POLICY, engine=LocalEngine(2))
    assert two.report["engine"]["workers"] == 2
    assert plan_hash(two.assignments) == digest


class DriverStopped(Exception):
    pass


def test_a_rerun_after_the_driver_stopped_skips_the_finished_units(tmp_path: Path, national: pd.DataFrame) -> None:
    problem = active_problem(national, POLICY)
    fresh = form_branches(problem, POLICY, engine=LocalEngine(1))
    seen: list[float] = []

    def stop_after_five(fraction: float) -> None:
        seen.append(fraction)
        if len(seen) == 5:
            raise DriverStopped

    folder = tmp_path / ".units"
    with pytest.raises(DriverStopped):
        form_branches(problem, POLICY, engine=LocalEngine(1), checkpoints=folder, progress=stop_after_five)
    assert len(Checkpoints(folder)) == 5
    again = form_branches(problem, POLICY, engine=LocalEngine(2), checkpoints=folder)
    run = again.stats["engine"]
    assert run["resumed"] == 5 and run["solved"] == run["units"] - 5
    assert np.array_equal(again.branch_of, fresh.branch_of) and again.objective == pytest.approx(fresh.objective)
    assert len(Checkpoints(folder)) == run["units"]
    # a changed input (another seed) is never served from the checkpoints
    other = form_branches(problem, Policy(time_limit=20.0, seed=4), engine=LocalEngine(1), checkpoints=folder)
    assert other.stats["engine"]["resumed"] == 0


def test_an_infeasible_district_is_reported_with_its_region(tmp_path: Path) -> None:
    # a city that cannot form one branch even with all its districts joined
    m = generate_national(600, seed=5)
    lonely = pd.DataFrame({"member_id": ["x1", "x2"], "lon": [90.0, 90.01], "lat": [30.0, 30.0],
                           "city_zh": "孤城市", "district_zh": "孤区", "full_member": 1, "status": "active",
                           "weight": 1, "group_id": "", "theme": "", "industry": ""})
    with pytest.raises(InfeasibleError) as err:
        allocate(pd.concat([m, lonely], ignore_index=True), POLICY)
    assert [(c.region, c.limit) for c in err.value.conflicts] == [("孤城市/孤区", "min_size")]
    # families that fit no two branches of 10 (6 + 6 + 6): the solver finds no plan for that district;
    # the other district's plan is checkpointed for the rerun once the data is fixed
    problem = infeasible_groups()
    with pytest.raises(InfeasibleError) as err:
        form_branches(problem, Policy(max_size=10, min_full=0, n_branches="fewest"), engine=LocalEngine(1),
                      checkpoints=tmp_path)
    assert [(c.region, c.limit) for c in err.value.conflicts] == [("某市/甲区", "max_size")]
    assert len(Checkpoints(tmp_path)) == 1


def infeasible_groups() -> Problem:
    rng = np.random.default_rng(1)
    xy = np.vstack([rng.normal(0, 100, (3, 2)), rng.normal(5000, 100, (12, 2))])
    demand = np.array([6, 6, 6] + [1] * 12)
    region = np.array([0, 0, 0] + [1] * 12)
    return Problem(xy=xy, demand=demand, full=demand, region=region, region_names=["某市/甲区", "某市/乙区"],
                   region_group=np.array([0, 0]))


def die_once(task: tuple[int, str]) -> int:
    """A unit whose first run kills its worker process (as the kernel's OOM killer would)."""
    i, marker = task
    if i == 2 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return i * i


def test_the_local_pool_reruns_the_units_of_a_worker_that_died(tmp_path: Path) -> None:
    engine = LocalEngine(2)
    tasks = [(i, str(tmp_path / "died")) for i in range(6)]
    got = dict(engine.run(die_once, tasks, [1, 5, 3, 2, 4, 6]))
    assert got == {i: i * i for i in range(6)} and engine.retried == 1
    assert largest_first([1, 5, 3, 5]) == [1, 3, 2, 0]


def test_engine_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EngineError, match="unknown engine"):
        get_engine("spark")
    with pytest.raises(EngineError, match="at least 1"):
        get_engine("local", 0)
    monkeypatch.setenv("GEOALLOC_ENGINE", "local")
    monkeypatch.setenv("GEOALLOC_WORKERS", "3")
    engine = get_engine()
    assert isinstance(engine, LocalEngine) and engine.workers == 3


def test_the_local_engine_and_the_cli_never_import_ray_or_numba(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import geoalloc.cli\n"
        "from geoalloc.engines import get_engine\n"
        "from geoalloc.national import generate_national\n"
        "from geoalloc.pipeline import allocate\n"
        "from geoalloc.rules import Policy\n"
        "res = allocate(generate_national(200, seed=1), Policy(time_limit=1.0), engine=get_engine('local', 2))\n"
        "assert res.report['engine']['name'] == 'local'\n"
        "allocate(generate_national(200, seed=2), Policy(time_limit=1.0), engine=get_engine('local', 1))\n"
        "print('ray' in sys.modules, any(m.startswith('ray.') for m in sys.modules), 'numba' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GEOALLOC_ENGINE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    # numba (about a second to import) only where the compiled global phase runs
    assert out.stdout.split() == ["False", "False", "False"]


def test_rebalance_gives_the_same_plan_on_a_pool_of_workers(national: pd.DataFrame,
                                                             local_plan: tuple[str, dict]) -> None:
    from geoalloc.solver.rebalance import rebalance

    current = allocate(national, Policy(time_limit=2.0, seed=1), engine=LocalEngine(1)).assignments
    moved = national.copy()
    rng = np.random.default_rng(2)
    pick = rng.choice(len(moved), 40, replace=False)  # 40 members move a few kilometres
    moved.loc[pick, "lon"] += rng.normal(0, 0.03, 40)
    inline = rebalance(moved, current, Policy(), certify=False)
    pooled = rebalance(moved, current, Policy(), certify=False, engine=LocalEngine(2))
    assert pooled.report["engine"]["workers"] == 2 and inline.report["engine"]["name"] == "inline"
    assert plan_hash(pooled.assignments) == plan_hash(inline.assignments)
    assert pooled.moves.equals(inline.moves)


def test_a_single_branch_unit_is_solved_exactly_and_no_worse_than_the_search() -> None:
    from geoalloc.solver.engine import solve_instance
    from geoalloc.solver.form import single_branch
    from geoalloc.solver.instance import Instance

    rng = np.random.default_rng(4)
    for n in (3, 7, 20, 48):
        xy = rng.normal(0, 1000, (n, 2))
        demand = np.ones(n, dtype=np.int64)
        inst = Instance(xy=xy, demand=demand, full=demand, weight=demand.astype(float), p=1, max_size=50,
                        min_size=3, min_full=3)
        exact = single_branch(inst)
        assert exact is not None and exact.lower_bound == exact.objective
        brute = min(np.hypot(*(xy - xy[j]).T).sum() for j in range(n))
        assert exact.objective == pytest.approx(brute)
        searched = solve_instance(inst, 1.0, 0)
        assert searched is not None and exact.objective <= searched.objective + 1e-6


def test_a_western_city_is_measured_in_its_own_zone_and_shenzhen_in_49n() -> None:
    from pyproj import Geod

    from geoalloc.projection import city_zone, to_metres

    rng = np.random.default_rng(4)
    n = 80
    kashgar = pd.DataFrame({"member_id": [f"k{i}" for i in range(n)], "city_zh": "喀什地区", "district_zh": "喀什市",
                            "lon": 75.99 + rng.normal(0, 0.03, n), "lat": 39.47 + rng.normal(0, 0.03, n),
                            "full_member": 1, "status": "active", "weight": 1})
    res = allocate(kashgar, Policy(time_limit=0.5))
    a = res.assignments.merge(res.branches[["branch_id", "lon", "lat"]], on="branch_id", suffixes=("", "_site"))
    _, _, geodesic = Geod(ellps="WGS84").inv(a["lon"], a["lat"], a["lon_site"], a["lat_site"])
    far = geodesic > 100  # members at their branch's own site are 0 m either way
    assert far.sum() > 40
    assert np.abs(a["distance_m"][far] / geodesic[far] - 1).max() < 0.005
    # under 49N, Shenzhen's zone, the same distances come out several percent long
    xy, sxy = to_metres(a["lon"], a["lat"]), to_metres(a["lon_site"], a["lat_site"])
    assert np.median(np.hypot(*(xy - sxy).T)[far] / geodesic[far]) > 1.03
    assert city_zone("喀什地区") == 43 and city_zone("深圳市") == city_zone("") == 49
