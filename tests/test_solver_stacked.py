"""Members stacked as geocoding leaves them (most in small discs around an estate's or a subdistrict's
point), with families under the full-member rule: the search's first plans and its budget.

On the geocoded sample a district's first plan put two sites in one disc and none in another (42% above
its optimum), and one sub-MIP for a family took most of a district's work, so more time gave a worse plan.
"""

from __future__ import annotations

import numpy as np
import pytest

from geoalloc.rules import Policy
from geoalloc.solver.construct import seed_sites
from geoalloc.solver.form import solve_unit, unit_task
from geoalloc.solver.instance import Instance
from geoalloc.solver.mip import solve_part
from geoalloc.solver.search import ARCS_PER_POINT, PAIR_MIP_SHARE, _pair_mip
from geoalloc.solver.work import MIP_ARC, Meter


def stacked(seed: int, discs: int, per_disc: tuple[int, int], *, families: float = 0.05) -> Instance:
    """Discs of 400 m around points a few km apart; a share of the members are families of 2-3."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 5_000, (discs, 2))
    parts = []
    for c in centres:
        k = int(rng.integers(*per_disc))
        r, a = 400 * np.sqrt(rng.random(k)), rng.uniform(0, 2 * np.pi, k)
        parts.append(c + np.column_stack([r * np.cos(a), r * np.sin(a)]))
    xy = np.concatenate(parts)
    n = len(xy)
    demand = np.where(rng.random(n) < families, rng.integers(2, 4, n), 1)
    full = np.where(rng.random(n) < 0.9, demand, 0)
    p = int(np.ceil(demand.sum() / 40))
    return Instance(xy=xy, demand=demand, full=full, weight=demand.astype(float), p=p, max_size=50, min_size=3,
                    min_full=3, floor=False)


def _solve(inst: Instance, time_limit: float) -> tuple[float, list[str]]:
    res = solve_unit(unit_task("d", inst, Policy(min_size=3, max_size=50, min_full=3, time_limit=time_limit)))
    assert res is not None
    return res.objective, inst.violations(np.asarray(res.sites), np.asarray(res.branch_of))


@pytest.mark.parametrize("seed", [0, 1])
def test_more_time_never_gives_a_worse_plan(seed: int) -> None:
    inst = stacked(seed, 7, (40, 70))
    plans = [_solve(inst, t) for t in (2, 10, 30)]
    assert all(not v for _, v in plans)
    values = [o for o, _ in plans]
    assert values[1] <= values[0] + 1e-6 and values[2] <= values[1] + 1e-6, values


def test_a_short_search_finds_the_optimum_of_stacked_members() -> None:
    inst = stacked(3, 3, (35, 45))
    pts = np.arange(inst.n)
    exact = solve_part(inst, pts, pts, inst.p, np.repeat(pts, inst.n), np.tile(pts, inst.n), time_limit=120,
                       node_limit=None)
    assert exact is not None and exact[1], "the reference MIP must be proved optimal"
    optimum = float(inst.cost(pts, exact[0]).sum())
    value, violations = _solve(inst, 2)
    assert not violations
    assert value <= optimum * 1.005


def test_seeding_puts_a_site_in_every_far_disc() -> None:
    # Discs of one size, far apart, as many sites as discs: each disc must get one, whatever the seed.
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [3000, 0], [0, 3000], [3000, 3000], [1500, 1500], [6000, 6000]], float)
    xy = np.concatenate([c + rng.normal(0, 60, (40, 2)) for c in centres])
    n = len(xy)
    inst = Instance(xy=xy, demand=np.ones(n, np.int64), full=np.ones(n, np.int64), weight=np.ones(n), p=6,
                    max_size=50, min_size=3, min_full=0, floor=False)
    for seed in range(40):
        sites = seed_sites(inst, np.random.default_rng(seed))
        assert sorted(set((sites // 40).tolist())) == list(range(6)), seed


def test_a_pair_mip_never_takes_most_of_the_work() -> None:
    inst = stacked(2, 2, (40, 45), families=0.3)
    pts = np.arange(inst.n)
    cost = MIP_ARC * len(pts) * (ARCS_PER_POINT + 1)
    meter = Meter(cost / PAIR_MIP_SHARE * 0.9)  # it would fit, but take more than its share
    everyone_at_the_first = np.full(inst.n, pts[0])
    assert _pair_mip(inst, pts, pts, everyone_at_the_first, 1e18, meter) is None
    assert meter.used == 0.0
