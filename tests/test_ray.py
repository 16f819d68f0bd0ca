"""The Ray engine on a local multi-node cluster (ray.cluster_utils.Cluster): the same plan as
the local engine, a node killed mid-run and the plan still complete and identical, an
infeasible district returned (not retried). Ray comes from the cluster extra, which
``make test`` installs. One small cluster serves the whole module, to keep it to seconds.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
from ray.cluster_utils import Cluster

import geoalloc.solver.form as form
from geoalloc.engines import LocalEngine, RayEngine
from geoalloc.national import generate_national
from geoalloc.pipeline import allocate
from geoalloc.rules import Policy
from geoalloc.solver.problem import InfeasibleError

from test_engines import POLICY, infeasible_groups, plan_hash  # noqa: E402

SOLVE = form.solve_unit  # the real one (the kill test wraps form.solve_unit)
NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # a quick health check, so that a removed node is noticed in about a second
    head = {**NODE, "include_dashboard": False,
            "_system_config": {"health_check_period_ms": 300, "health_check_failure_threshold": 3}}
    c = Cluster(initialize_head=True, connect=False, head_node_args=head)
    c.add_node(**NODE)
    c.wait_for_nodes()
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
    # the test's task wrapper lives in this module, which Ray's workers cannot import by name
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def roster() -> pd.DataFrame:
    return generate_national(240, seed=8)


@pytest.fixture(scope="module")
def cities() -> pd.DataFrame:
    """The four largest cities of a national sample: districts of several branches among them,
    whose searches the small limit of POLICY ends by their work budget before their planned starts."""
    national = generate_national(3000, seed=5)
    return national[national["city_zh"].isin(national["city_zh"].value_counts().index[:4])]


@pytest.fixture(scope="module")
def local_hash(cities: pd.DataFrame) -> str:
    res = allocate(cities, POLICY, engine=LocalEngine(1))
    assert res.report["engine"]["clock_cut"] == 0
    assert plan_hash(allocate(cities, POLICY, engine=LocalEngine(2)).assignments) == plan_hash(res.assignments)
    return plan_hash(res.assignments)


def test_the_plan_on_ray_is_the_plan_of_the_local_engine(cluster: Cluster, cities: pd.DataFrame, local_hash: str) -> None:
    engine = RayEngine()
    assert engine.workers == 2  # the cluster's CPUs
    res = allocate(cities, POLICY, engine=engine)
    assert res.report["engine"]["name"] == "ray" and res.report["engine"]["clock_cut"] == 0
    assert plan_hash(res.assignments) == local_hash


def marked(folder: str, doomed: str, task: form.UnitTask) -> object:
    """solve_unit, leaving a start mark and an end mark per run with the node it ran on; slow
    (0.3 s), and on the doomed node slow enough (3 s) that the unit seen under way there is still
    under way when the node goes."""
    node = ray.get_runtime_context().get_node_id()
    tag = f"{hashlib.blake2b(task.name.encode(), digest_size=6).hexdigest()}-{os.getpid()}-{node}"
    Path(folder, tag + ".start").touch()
    time.sleep(3.0 if node == doomed else 0.3)
    out = SOLVE(task)
    Path(folder, tag + ".end").touch()
    return out


def test_a_node_killed_mid_run_leaves_the_plan_complete_and_identical(
        cluster: Cluster, roster: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doomed = cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    monkeypatch.setattr(form, "solve_unit", functools.partial(marked, str(tmp_path), doomed.node_id))
    killed: list[str] = []

    def running_on_doomed() -> list[str]:
        starts = {p.stem for p in tmp_path.glob("*.start")}
        ends = {p.stem for p in tmp_path.glob("*.end")}
        return [s for s in starts - ends if s.endswith(doomed.node_id)]

    def kill_when_busy(fraction: float) -> None:
        # as soon as a unit is under way on the doomed node (its worker process has started)
        busy = running_on_doomed()
        if not killed and busy:
            killed.extend(b.split("-")[0] for b in busy)
            cluster.remove_node(doomed, allow_graceful=False)

    from geoalloc.pipeline import build_problem

    m = roster[roster["status"] == "active"].copy()
    m["_full_count"] = m["weight"] * m["full_member"]
    problem = build_problem(m, POLICY)[0]
    sol = form.form_branches(problem, POLICY, engine=RayEngine(3), progress=kill_when_busy)
    assert killed, "no unit ran on the added node before the run ended"
    ends = {p.stem for p in tmp_path.glob("*.end")}
    for unit in killed:  # each unit under way on the removed node ran again, and finished, elsewhere
        again = [e for e in ends if e.startswith(unit) and not e.endswith(doomed.node_id)]
        assert again, f"unit {unit} was not run again after its node was removed"
    assert (sol.branch_of >= 0).all() and sol.stats["engine"]["units"] == len({e.split("-")[0] for e in ends})
    # the same plan as an undisturbed run on the local engine
    ref = form.form_branches(problem, POLICY, engine=LocalEngine(1))
    assert np.array_equal(sol.branch_of, ref.branch_of)


def test_an_infeasible_district_on_ray_is_returned_with_its_region_not_retried(cluster: Cluster) -> None:
    engine = RayEngine()
    with pytest.raises(InfeasibleError) as err:
        form.form_branches(infeasible_groups(), Policy(max_size=10, min_full=0, n_branches="fewest"), engine=engine)
    assert [(c.region, c.limit) for c in err.value.conflicts] == [("某市/甲区", "max_size")]
    assert engine.retried == 0
