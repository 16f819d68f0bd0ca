"""One independent capacitated clustering problem, in the form every solver stage shares.

:func:`form_branches` cuts a :class:`~geoalloc.solver.problem.Problem` into one
:class:`Instance` per region (or joint region), and :func:`solve_cpmp` builds one from a
benchmark file. Keeping a single internal form means assignment, search and bounds are
written once and tested once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


def pair_dist(a: NDArray[np.float64], b: NDArray[np.float64], floor: bool) -> NDArray[np.float64]:
    """Distances between matching rows of ``a`` and ``b`` (``floor``: rounded down, per pair)."""
    d = np.hypot(a[..., 0] - b[..., 0], a[..., 1] - b[..., 1])
    return np.floor(d) if floor else d


@dataclass
class Instance:
    """Points to split into exactly ``p`` clusters, each served by one open site.

    Sites are the points themselves (``cand_xy`` is None; an open site's point then serves
    itself) or the given candidate locations. The cost of serving point i from site j is
    ``weight[i] * dist(i, j)``. A cluster's demand lies within ``min_size..max_size`` and it
    holds at least ``min_full`` demand from points that are entirely full members.
    """

    xy: NDArray[np.float64]
    demand: NDArray[np.int64]
    full: NDArray[np.int64]
    weight: NDArray[np.float64]
    p: int
    max_size: int
    min_size: int = 0
    min_full: int = 0
    floor: bool = False
    cand_xy: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        self.xy = np.ascontiguousarray(self.xy, dtype=np.float64).reshape(-1, 2)
        self.demand = np.asarray(self.demand, dtype=np.int64)
        self.full = np.asarray(self.full, dtype=np.int64)
        self.weight = np.asarray(self.weight, dtype=np.float64)
        if self.cand_xy is not None:
            self.cand_xy = np.ascontiguousarray(self.cand_xy, dtype=np.float64).reshape(-1, 2)

    @property
    def n(self) -> int:
        return len(self.xy)

    @property
    def m(self) -> int:
        """Number of candidate sites."""
        return self.n if self.cand_xy is None else len(self.cand_xy)

    @property
    def self_serve(self) -> bool:
        """True when sites are points, so an open site's own point must belong to it."""
        return self.cand_xy is None

    @property
    def sites_xy(self) -> NDArray[np.float64]:
        return self.xy if self.cand_xy is None else self.cand_xy

    @property
    def is_full(self) -> NDArray[np.bool_]:
        """Points whose whole demand counts towards the full-member minimum."""
        return (self.full >= self.demand) & (self.full > 0)

    @property
    def full_part(self) -> NDArray[np.int64]:
        """Full members of each point (a family of two full members and a probationary one: 2)."""
        return np.minimum(self.full, self.demand)

    def cost(self, i: NDArray[np.int64], j: NDArray[np.int64]) -> NDArray[np.float64]:
        """Cost of serving points ``i`` from candidate sites ``j`` (broadcasting)."""
        i = np.asarray(i)
        j = np.asarray(j)
        return self.weight[i] * pair_dist(self.xy[i], self.sites_xy[j], self.floor)

    def objective(self, sites: NDArray[np.int64], branch_of: NDArray[np.int64]) -> float:
        """Total cost of a plan: ``branch_of`` indexes into ``sites``."""
        return float(self.cost(np.arange(self.n), sites[branch_of]).sum())

    def violations(self, sites: NDArray[np.int64], branch_of: NDArray[np.int64]) -> list[str]:
        """Every rule a plan breaks (empty when it is valid). Used by tests and as a guard."""
        out: list[str] = []
        k = len(sites)
        if len(np.unique(sites)) != k:
            out.append("a site is opened twice")
        if k != self.p:
            out.append(f"{k} sites instead of {self.p}")
        if len(branch_of) != self.n or (branch_of < 0).any() or (branch_of >= k).any():
            out.append("a point is not assigned")
            return out
        size = np.bincount(branch_of, weights=self.demand, minlength=k)
        nfull = np.bincount(branch_of, weights=self.full_part, minlength=k)
        if (size > self.max_size).any():
            out.append(f"a cluster holds {int(size.max())} > max_size {self.max_size}")
        if (size < self.min_size).any():
            out.append(f"a cluster holds {int(size.min())} < min_size {self.min_size}")
        if (nfull < self.min_full).any():
            out.append(f"a cluster has {int(nfull.min())} full < min_full {self.min_full}")
        if self.self_serve and (branch_of[sites] != np.arange(k)).any():
            out.append("an open site's point belongs to another cluster")
        return out
