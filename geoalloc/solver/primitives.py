"""Assignment and bound primitives on a whole :class:`Problem`, for rebalancing and the API.

They apply the same district rule and size limits as :func:`form_branches` but take the sites
as given, so a rebalance can keep existing branch sites and price moves with ``extra_cost``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from geoalloc.rules import Policy
from geoalloc.solver.assign import assign
from geoalloc.solver.bounds import lagrangian_bound
from geoalloc.solver.form import _instance, branch_counts, build_units
from geoalloc.solver.instance import Instance
from geoalloc.solver.problem import Conflict, InfeasibleError, Problem


def _site_region(problem: Problem, sites: NDArray, site_region: ArrayLike | None) -> NDArray[np.int64]:
    assert problem.region is not None
    if site_region is not None:
        return np.asarray(site_region, dtype=np.int64)
    if sites.ndim == 1:
        return problem.region[sites]
    from scipy.spatial import cKDTree

    _, near = cKDTree(problem.xy).query(sites, k=1)
    return problem.region[np.atleast_1d(near)]


def assign_to_sites(
    problem: Problem,
    sites: ArrayLike,
    policy: Policy,
    extra_cost: ArrayLike | None = None,
    *,
    site_region: ArrayLike | None = None,
) -> tuple[NDArray[np.int64], float]:
    """Best assignment of every member to the given sites under the policy's limits.

    ``sites``: (k,) member indices (a site's own member then belongs to it) or (k, 2) site
    coordinates in metres. ``extra_cost``: optional (n, k) cost added per member and site, in
    the objective's units (metres x demand); ``inf`` forbids a pair. Unless
    ``policy.cross_district``, members only go to sites of their own region (``site_region``;
    by default the region of the site's member, or of the member nearest to the coordinates).
    Returns (site position per member, demand-weighted distance sum without ``extra_cost``).
    Raises :class:`InfeasibleError` naming the region when the limits cannot be met.
    """
    assert problem.region is not None and problem.demand is not None and problem.full is not None
    s = np.asarray(sites)
    by_index = s.ndim == 1
    s = s.astype(np.int64) if by_index else s.astype(np.float64).reshape(-1, 2)
    extra = None if extra_cost is None else np.asarray(extra_cost, dtype=np.float64)
    sreg = _site_region(problem, s, site_region)
    groups = [np.arange(problem.n)] if policy.cross_district else [
        np.nonzero(problem.region == r)[0] for r in range(len(problem.region_names))
    ]
    branch_of = np.full(problem.n, -1, dtype=np.int64)
    total = 0.0
    conflicts: list[Conflict] = []
    for g, members in enumerate(groups):
        if len(members) == 0:
            continue
        name = "all" if policy.cross_district else problem.region_names[g]
        pos = np.arange(len(s)) if policy.cross_district else np.nonzero(sreg == g)[0]
        if len(pos) == 0:
            conflicts.append(Conflict(name, "n_branches", "members but no branch site in this region"))
            continue
        dem = problem.demand[members]
        local = {int(m): a for a, m in enumerate(members)}
        if by_index:
            if any(int(x) not in local for x in s[pos]):
                conflicts.append(Conflict(name, "sites", "a site member is not a member of this region"))
                continue
            cand_xy, lsites = None, np.array([local[int(x)] for x in s[pos]], dtype=np.int64)
        else:
            cand_xy, lsites = s[pos], np.arange(len(pos))
        inst = Instance(xy=problem.xy[members], demand=dem, full=problem.full[members], weight=dem.astype(float),
                        p=len(pos), max_size=policy.max_size, min_size=policy.min_size,
                        min_full=policy.min_full, cand_xy=cand_xy)
        ex = None if extra is None else extra[np.ix_(members, pos)]
        out = assign(inst, lsites, extra=ex, time_limit=policy.time_limit)
        if out is None:
            conflicts.append(Conflict(name, "max_size/min_size/min_full",
                                      f"{int(dem.sum())} members cannot be assigned to these {len(pos)} sites within the limits"))
            continue
        branch_of[members] = pos[out]
        total += inst.objective(lsites, out)
    if conflicts:
        raise InfeasibleError(conflicts)
    return branch_of, total


def lower_bound(
    problem: Problem,
    policy: Policy,
    *,
    n_branches: list[int] | None = None,
    upper: float = math.inf,
) -> float:
    """A valid lower bound on the demand-weighted distance sum of any plan under ``policy``.

    Uses the same districts (and joint districts) as :func:`form_branches`; ``n_branches``
    overrides the branch count per unit (in :func:`geoalloc.solver.form.build_units` order).
    ``upper``: a known plan's objective (sharpens the subgradient steps; the bound never
    exceeds it).
    """
    units = build_units(problem, policy)
    counts = n_branches if n_branches is not None else branch_counts(problem, units, policy)
    total = 0.0
    for u, p in zip(units, counts):
        inst, _ = _instance(problem, u, p, policy)
        total += lagrangian_bound(inst, math.inf)
    return min(total, upper)
