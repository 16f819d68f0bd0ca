"""Binary programmes solved by HiGHS through ``highspy``, silently and from a starting point.

Why not scipy's ``milp`` (HiGHS too): it takes no starting solution, and the HiGHS build inside
scipy prints a debug line to stdout on some set-partitioning solves (ali535's cluster pool), which
broke the benchmark's one-JSON-object-per-line output. With the search's best plan as HiGHS's
first incumbent, a solve cut short by its time limit returns at least that plan.
"""

from __future__ import annotations

import os
import sys

import highspy
import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csc_array

_BANNER_SHOWN = False
INF = highspy.kHighsInf


def _highs() -> highspy.Highs:
    """A silent HiGHS. The first ``Highs()`` of a process prints HiGHS's banner to file
    descriptor 1 before any option can be set (its callbacks are enabled in the constructor);
    that one is built with descriptor 1 pointed at the null device."""
    global _BANNER_SHOWN
    if _BANNER_SHOWN:
        h = highspy.Highs()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 1)
                h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        _BANNER_SHOWN = True
    h.setOptionValue("output_flag", False)
    return h


def solve_binary(
    cost: NDArray[np.float64], a: csc_array, lo: NDArray[np.float64], hi: NDArray[np.float64], seconds: float,
    start: NDArray[np.float64] | None = None, max_nodes: int | None = None,
) -> NDArray[np.float64] | None:
    """Minimise ``cost @ x`` over binary ``x`` with ``lo <= a @ x <= hi`` (``INF`` for no limit)
    within ``seconds`` (one thread); the best ``x`` found, or None when none was found.
    ``start``: a feasible ``x`` to start from. ``max_nodes``: a branch-and-bound node limit (a work
    limit, so the answer does not depend on the machine's speed when the clock does not bind)."""
    n = len(cost)
    a = csc_array(a)
    a.sum_duplicates()
    a.sort_indices()
    h = _highs()
    h.setOptionValue("time_limit", float(max(seconds, 0.01)))
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", 0)
    if max_nodes is not None:
        h.setOptionValue("mip_max_nodes", int(max_nodes))
    h.passModel(n, a.shape[0], a.nnz, 1, 1, 0.0, np.asarray(cost, dtype=np.float64), np.zeros(n), np.ones(n),
                np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64), a.indptr.astype(np.int32),
                a.indices.astype(np.int32), a.data.astype(np.float64), np.ones(n, dtype=np.int32))
    if start is not None:
        h.setSolution(n, np.arange(n, dtype=np.int32), np.asarray(start, dtype=np.float64))
    h.run()
    if h.getInfo().primal_solution_status != 2:  # kSolutionStatusFeasible
        return None
    x = np.asarray(h.getSolution().col_value)
    value = float(np.asarray(cost, dtype=np.float64) @ x)
    if start is not None and abs(h.getInfo().objective_function_value - value) > 1e-6 * max(1.0, abs(value)):
        # presolve with a starting solution can report an optimum its returned solution does not
        # have (highspy 1.16: the start came back, "optimal" at a lower value); solve again without it
        h.clearSolver()
        h.setOptionValue("presolve", "off")
        h.setOptionValue("time_limit", float(max(seconds - h.getRunTime(), 0.01)))
        h.setSolution(n, np.arange(n, dtype=np.int32), np.asarray(start, dtype=np.float64))
        h.run()
        if h.getInfo().primal_solution_status != 2:
            return np.asarray(start, dtype=np.float64)
        x = np.asarray(h.getSolution().col_value)
    return x
