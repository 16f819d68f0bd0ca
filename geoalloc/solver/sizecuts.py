"""Rounded size cuts: the lower bound's answer to "no whole number of branches fits this group".

Take any group S of members (unit demands) in a plan whose branches hold between L and Q
members, p branches in all. If k branches meet inside S, those branches hold between kL and kQ
members, and the other p - k between (p - k)L and (p - k)Q. When |S| fits no such k, members
must cross S's edge: some of S belong to a branch outside, or outsiders to a branch inside,
at least ``r(S)`` of them (the distance from |S| to the nearest size that fits). The same
reasoning gives the rounded capacity inequalities of vehicle routing.

The LP relaxation does not see this: it opens 2.6 branches for a group of 130 and moves nobody.
On tight districts (every branch at least 43-48 of 50) that is much of the gap between plan and
bound. 光明区 of the sample roster, ``benchmarks/certificate.py``'s model solved by HiGHS with
these cuts added:
- geocoded points: LP 172,020, with the cuts of four dendrograms 195,596, plan 195,722;
- generated points: LP about 312,300, with the average-linkage cuts 326,906, with the
  average- and single-linkage cuts 334,960, plan 341,410.

The groups are the clusters of a dendrogram of the points, so they nest. Average linkage alone
is the default: on the whole roster (30 s) more dendrograms gained little and cost time.
A point pair (i, j) crosses exactly the groups on the tree path from i or j up to their lowest
common ancestor, so with multipliers ``mu`` per group, an arc's discount is
``P(i) + P(j) - 2 P(lca(i, j))`` with P the sum of ``mu`` over the groups holding a node. In the
dendrogram's leaf order every group is a run of positions, and the lowest common ancestor of
two positions is the latest merge among the adjacent pairs between them (a range maximum), so
every quantity is a prefix sum or a table lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.cluster.hierarchy import leaves_list, linkage

CUTS_MAX_N = 2_000  # a dendrogram costs O(n^2) memory and time
METHODS = ("average",)  # the dendrograms whose groups are cut
# only groups of at least this share of the forced branch size are cut: the many small ones
# (a handful of neighbours) add little that the forced sizes do not already say, and they slow
# the subgradient down (benchmarks/README.md, "Bound settings")
MIN_GROUP_SHARE = 0.5


def crossings_needed(size: NDArray[np.int64], n: int, p: int, low: int, high: int) -> NDArray[np.float64]:
    """r(S) for groups of these sizes: how many members must cross the group's edge."""
    size = np.asarray(size, dtype=np.int64)
    best = np.full(size.shape, np.inf)
    for k in range(p + 1):
        lo, hi = max(k * low, n - (p - k) * high), min(k * high, n - (p - k) * low)
        if lo > hi:
            continue
        best = np.minimum(best, np.maximum(lo - size, 0) + np.maximum(size - hi, 0))
    return np.where(np.isfinite(best), best, 0.0)


@dataclass
class CutFamily:
    """The groups of one dendrogram whose size forces crossings, as runs of leaf positions."""

    pos: NDArray[np.int64]  # each point's leaf position
    lo: NDArray[np.int64]  # first position of each group
    hi: NDArray[np.int64]  # last position of each group
    rhs: NDArray[np.float64]  # r(S) of each group
    _split_of: NDArray[np.int64]  # position q of each merge index
    _table: list[NDArray[np.int64]]  # sparse table of range maxima over the merge joining q and q + 1

    @classmethod
    def build(cls, xy: NDArray[np.float64], p: int, low: int, high: int, method: str) -> CutFamily | None:
        """The cuts of ``xy``'s dendrogram by ``method``; None when no group forces a crossing."""
        n = len(xy)
        z = linkage(xy, method)
        order = leaves_list(z)
        pos = np.empty(n, dtype=np.int64)
        pos[order] = np.arange(n)
        first = np.concatenate([pos, np.zeros(n - 1, dtype=np.int64)])
        last = first.copy()
        split_of = np.empty(n - 1, dtype=np.int64)
        for t, (a, b) in enumerate(z[:, :2].astype(np.int64)):
            # scipy's leaf order lists a merge's first child, then its second
            split_of[t] = last[a]
            first[n + t], last[n + t] = first[a], last[b]
        merge_at = np.empty(n - 1, dtype=np.int64)
        merge_at[split_of] = np.arange(n - 1)
        sizes = z[:, 3].astype(np.int64)
        rhs = crossings_needed(sizes, n, p, low, high)
        keep = np.nonzero((rhs > 0) & (sizes < n) & (sizes >= MIN_GROUP_SHARE * low))[0]
        if len(keep) == 0:
            return None
        table = [merge_at]
        width = 1
        while 2 * width <= n - 1:
            prev = table[-1]
            table.append(np.maximum(prev[:-width], prev[width:]))
            width *= 2
        return cls(pos, first[n + keep], last[n + keep], rhs[keep], split_of, table)

    def membership(self) -> NDArray[np.bool_]:
        """Point-by-group membership, spelled out (for LP rows and checks, not the hot path)."""
        by_position = np.argsort(self.pos)
        member = np.zeros((len(self.pos), len(self.rhs)), dtype=bool)
        for s, (lo, hi) in enumerate(zip(self.lo, self.hi)):
            member[by_position[lo:hi + 1], s] = True
        return member

    def lca(self, i: NDArray[np.int64], j: NDArray[np.int64]) -> NDArray[np.int64]:
        """Split position of the lowest common group of points i and j (i != j; 0 where i == j)."""
        a, b = self.pos[i], self.pos[j]
        lo, hi = np.minimum(a, b), np.maximum(a, b) - 1  # the adjacent pairs lo..hi lie between
        same = hi < lo
        lo, hi = np.where(same, 0, lo), np.where(same, 0, hi)
        level = np.floor(np.log2(hi - lo + 1)).astype(np.int64)
        out = np.empty(np.shape(lo), dtype=np.int64)
        for lv in np.unique(level):
            sel = level == lv
            row = self._table[int(lv)]
            out[sel] = np.maximum(row[lo[sel]], row[hi[sel] - (1 << int(lv)) + 1])
        return np.where(same, 0, self._split_of[out])

    def node_sums(self, mu: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(P at each point, P at each split position): the multipliers of the groups holding them."""
        n = len(self.pos)
        leaf = np.zeros(n + 1)
        np.add.at(leaf, self.lo, mu)
        np.add.at(leaf, self.hi + 1, -mu)
        split = np.zeros(n)
        np.add.at(split, self.lo, mu)
        np.add.at(split, self.hi, -mu)
        return np.cumsum(leaf)[:n][self.pos], np.cumsum(split)[: n - 1]

    def crossings(self, i: NDArray[np.int64], j: NDArray[np.int64], lca: NDArray[np.int64]) -> NDArray[np.float64]:
        """How many of the arcs (i, j) cross each group's edge."""
        n = len(self.pos)
        ends = np.bincount(self.pos[i], minlength=n) + np.bincount(self.pos[j], minlength=n)
        inner = np.bincount(lca, minlength=n - 1)
        ce = np.concatenate([[0], np.cumsum(ends)])
        ci = np.concatenate([[0], np.cumsum(inner)])
        return (ce[self.hi + 1] - ce[self.lo] - 2 * (ci[self.hi] - ci[self.lo])).astype(np.float64)


@dataclass
class SizeCuts:
    """The cuts of several dendrograms of the same points, one multiplier per group."""

    families: list[CutFamily]
    rhs: NDArray[np.float64] = field(init=False)  # r(S) of every group, family after family
    _ends: NDArray[np.int64] = field(init=False)  # where each family's multipliers end

    def __post_init__(self) -> None:
        self.rhs = np.concatenate([f.rhs for f in self.families])
        self._ends = np.cumsum([len(f.rhs) for f in self.families])

    @classmethod
    def build(cls, xy: NDArray[np.float64], p: int, low: int, high: int,
              methods: tuple[str, ...] | None = None) -> SizeCuts | None:
        """None when the instance is too small or too large, or no group forces a crossing."""
        if len(xy) < 3 or len(xy) > CUTS_MAX_N:
            return None
        families = [f for f in (CutFamily.build(xy, p, low, high, m) for m in methods or METHODS)
                    if f is not None]
        return cls(families) if families else None

    @property
    def size(self) -> int:
        return len(self.rhs)

    def _split(self, mu: NDArray[np.float64]) -> list[NDArray[np.float64]]:
        return np.split(mu, self._ends[:-1])

    def membership(self) -> NDArray[np.bool_]:
        """Point-by-group membership over all families, in the order of ``rhs``."""
        return np.hstack([f.membership() for f in self.families])

    def prepare(self, i: NDArray[np.int64], j: NDArray[np.int64]) -> list[NDArray[np.int64]]:
        """What :meth:`discounts` and :meth:`crossings` need of the arcs (i, j), computed once."""
        return [f.lca(i, j) for f in self.families]

    def discounts(self, mu: NDArray[np.float64], i: NDArray[np.int64], j: NDArray[np.int64],
                  prepared: list[NDArray[np.int64]]) -> NDArray[np.float64]:
        """Each arc's share of the multipliers: the sum of ``mu`` over the groups it crosses."""
        out = np.zeros(np.shape(i))
        for f, m, lca in zip(self.families, self._split(mu), prepared):
            at_point, at_split = f.node_sums(m)
            out += at_point[i] + at_point[j] - 2 * at_split[lca]
        return out

    def crossings(self, i: NDArray[np.int64], j: NDArray[np.int64], prepared: list[NDArray[np.int64]]) -> NDArray[np.float64]:
        """How many of the arcs (i, j) cross each group's edge."""
        return np.concatenate([f.crossings(i, j, lca) for f, lca in zip(self.families, prepared)])
