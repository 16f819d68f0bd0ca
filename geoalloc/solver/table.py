"""Every point-to-site cost of a unit in one table, for the search's many small cost blocks.

Why: the pair moves, the re-centring and the ranked swaps ask for the same costs thousands of times (each
cluster's members against each other, again after every change); looking them up in one
``n x m`` table, computed once per solve, is cheaper than computing them again, as long as the
table is small. The entries are the very numbers :meth:`Instance.cost` gives, so a plan does
not depend on whether the table was used.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from geoalloc.solver.instance import Instance

TABLE_MAX_N = 2000  # points and candidates at most (32 MB of float64); larger units compute costs as they go


def cost_table(inst: Instance) -> NDArray[np.float64] | None:
    """The ``(n, m)`` costs, or None when the unit is too large for the table."""
    if inst.n > TABLE_MAX_N or inst.m > TABLE_MAX_N:
        return None
    return inst.cost(np.arange(inst.n)[:, None], np.arange(inst.m)[None, :])
