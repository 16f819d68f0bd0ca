"""The solver's plain-data input and output.

The solver never reads files: callers build a :class:`Problem` from numpy arrays (members
already projected to metres) and get a :class:`Solution` back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


@dataclass
class Problem:
    """Members to group into branches.

    ``xy``: (n, 2) projected coordinates in metres. ``demand``: (n,) positive ints, 1 per
    member or the size of a group that must stay together. ``full``: (n,) number of full
    members each point carries (0/1 for a single member). ``region``: (n,) index into
    ``region_names``; branches never mix regions unless the policy allows it.
    ``candidate_xy``/``candidate_region``: optional fixed candidate sites (for example
    service centres); by default the members' own locations are the candidates.
    ``region_group``: optional (len(region_names),) group of each region (its city): a region
    too small for a branch of its own joins a neighbour of its own group only; None: one group.
    ``region_zone``: optional (len(region_names),) UTM zone each region's points are projected in
    (its city's, :func:`geoalloc.projection.city_zone`); None: all in 49N. The solver never reads
    it; it is how the plan's sites go back to lon/lat.
    """

    xy: NDArray[np.float64]
    demand: NDArray[np.int64] | None = None
    full: NDArray[np.int64] | None = None
    region: NDArray[np.int64] | None = None
    region_names: list[str] = field(default_factory=lambda: ["all"])
    candidate_xy: NDArray[np.float64] | None = None
    candidate_region: NDArray[np.int64] | None = None
    region_group: NDArray[np.int64] | None = None
    region_zone: NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, dtype=np.float64).reshape(-1, 2)
        n = len(self.xy)
        self.demand = np.ones(n, dtype=np.int64) if self.demand is None else np.asarray(self.demand, dtype=np.int64)
        self.full = self.demand.copy() if self.full is None else np.asarray(self.full, dtype=np.int64)
        self.region = np.zeros(n, dtype=np.int64) if self.region is None else np.asarray(self.region, dtype=np.int64)
        if not (len(self.demand) == len(self.full) == len(self.region) == n):
            raise ValueError("xy, demand, full and region must have the same length")
        if n and (self.demand < 1).any():
            raise ValueError("every demand must be at least 1")
        if n and ((self.region < 0) | (self.region >= len(self.region_names))).any():
            raise ValueError("region indices must point into region_names")
        if self.region_group is not None:
            self.region_group = np.asarray(self.region_group, dtype=np.int64)
            if len(self.region_group) != len(self.region_names):
                raise ValueError("region_group must give one group per region name")

    @property
    def n(self) -> int:
        return len(self.xy)


@dataclass
class Conflict:
    """One reason the rules cannot all be met: which region, which limit, and why."""

    region: str
    limit: str
    detail: str

    def __str__(self) -> str:
        return f"{self.region}: {self.limit}: {self.detail}"


class InfeasibleError(ValueError):
    """The rules cannot all be met. ``conflicts`` names each region and limit in conflict."""

    def __init__(self, conflicts: list[Conflict]):
        self.conflicts = conflicts
        super().__init__("the rules cannot all be met:\n" + "\n".join(f"  - {c}" for c in conflicts))


@dataclass
class Solution:
    """A plan in solver terms.

    ``branch_of``: (n,) branch index per member. ``site_xy``: (k, 2) branch sites in metres;
    ``site_member``: (k,) index of the member whose location is the site (-1 for a given
    candidate site); ``site_region``: (k,) region of each branch (for a joint branch, the
    region of its site). ``objective``: sum of member-to-site distances in metres (not
    demand-weighted unless stated). ``lower_bound``: a valid lower bound on the optimum;
    ``gap`` = (objective - lower_bound) / objective. ``notes``: things the report must say
    (joint branches across districts, time limit reached, ...). ``joint``: (k,) True for a
    branch that joins a region too small for a branch of its own with its nearest neighbour.
    """

    branch_of: NDArray[np.int64]
    site_xy: NDArray[np.float64]
    site_member: NDArray[np.int64]
    site_region: NDArray[np.int64]
    objective: float
    lower_bound: float
    seconds: float
    status: str = "feasible"  # "optimal" | "feasible"
    notes: list[str] = field(default_factory=list)
    stats: dict[str, object] = field(default_factory=dict)
    joint: NDArray[np.bool_] | None = None  # (k,) True where a branch joins members of two regions

    def __post_init__(self) -> None:
        if self.joint is None:
            self.joint = np.zeros(len(self.site_xy), dtype=bool)

    @property
    def gap(self) -> float:
        if self.objective <= 0:
            return 0.0
        return max(0.0, (self.objective - self.lower_bound) / self.objective)

    @property
    def n_branches(self) -> int:
        return len(self.site_xy)
