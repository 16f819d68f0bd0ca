"""Recombination of the clusters seen in the search's local optima, by set partitioning.

Why: each kick of the iterated local search re-optimises a few clusters; a kicked plan that is
worse as a whole is thrown away although some of its clusters may be better than the best
plan's clusters over the same points. Keeping every distinct cluster (its points, its best
site and cost) and choosing ``p`` of them that cover every point exactly once at least cost is
a set-partitioning MIP (HiGHS, :mod:`geoalloc.solver.highs`, started from the best plan's own
clusters, which are in the pool), so the answer is never worse than that plan; it is better
when clusters from different descents fit.
"""

from __future__ import annotations

import time

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csc_array

from geoalloc.solver.highs import solve_binary
from geoalloc.solver.instance import Instance

POOL_MAX = 60_000  # clusters kept at most (the oldest are not dropped: later ones are not added)
POOL_MAX_N = 2000  # larger instances: big clusters make pricing (size^2) and the MIP too costly


def _clusters(branch: NDArray[np.int64], p: int) -> list[NDArray[np.int64]]:
    """The sorted members of each of the ``p`` clusters of a plan."""
    order = np.argsort(branch, kind="stable")
    return [np.sort(m) for m in np.split(order, np.searchsorted(branch[order], np.arange(1, p)))]


class ClusterPool:
    """Distinct clusters (self-serving sites only) with their cheapest own site."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.index: dict[bytes, int] = {}
        self.members: list[NDArray[np.int64]] = []
        self.site: list[int] = []
        self.cost: list[float] = []
        self.solved_size = 0

    def __len__(self) -> int:
        return len(self.members)

    def add(self, sites: NDArray[np.int64], branch: NDArray[np.int64]) -> int:
        """Add the plan's clusters; returns how many were new."""
        if not self.inst.self_serve or len(self.members) >= POOL_MAX:
            return 0
        new = 0
        for mem in _clusters(branch, len(sites)):
            key = mem.tobytes()
            if key in self.index:
                continue
            tot = self.inst.cost(mem[:, None], mem[None, :]).sum(axis=0)
            j = int(np.argmin(tot))
            self.index[key] = len(self.members)
            self.members.append(mem)
            self.site.append(int(mem[j]))
            self.cost.append(float(tot[j]))
            new += 1
        return new

    def solve(self, p: int, deadline: float, start: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None,
              ) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
        """The cheapest ``p`` pool clusters covering every point once, or None (no time, no answer).
        ``start``: a plan (sites, branch) whose clusters were added, HiGHS's first incumbent."""
        left = deadline - time.perf_counter()
        if left < 0.05 or not self.members:
            return None
        self.solved_size = len(self.members)
        n, k = self.inst.n, len(self.members)
        rows = np.concatenate(self.members)
        cols = np.repeat(np.arange(k), [len(m) for m in self.members])
        a = csc_array((np.ones(len(rows) + k), (np.concatenate([rows, np.full(k, n)]),
                                                 np.concatenate([cols, np.arange(k)]))), shape=(n + 1, k))
        rhs = np.ones(n + 1)
        rhs[n] = p
        x0 = None
        if start is not None:
            held = [self.index.get(m.tobytes()) for m in _clusters(start[1], len(start[0]))]
            if all(c is not None for c in held):
                x0 = np.zeros(k)
                x0[[int(c) for c in held if c is not None]] = 1.0
        x = solve_binary(np.asarray(self.cost), a, rhs, rhs, left, start=x0)
        if x is None:
            return None
        chosen = np.nonzero(x > 0.5)[0]
        if len(chosen) != p:
            return None
        sites = np.array([self.site[c] for c in chosen], dtype=np.int64)
        branch = np.full(n, -1, dtype=np.int64)
        for b, c in enumerate(chosen):
            branch[self.members[c]] = b
        if (branch < 0).any():
            return None
        return sites, branch
