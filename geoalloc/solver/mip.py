"""Exact solution of a small part of the problem as a mixed-integer programme (OR-Tools).

Two uses: the large-neighbourhood search frees a few neighbouring clusters and re-solves their
points here (which sites to open among them and who goes where), and the assignment falls back
to it when groups of members cannot be split and the flow cannot place them.

The model is the classic capacitated p-median with strong linking (x_ij <= y_j) over sparse
arcs. When sites are the points themselves, y_j is x_jj (an open site serves itself).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from ortools.linear_solver import pywraplp

from geoalloc.solver.instance import Instance

MAX_SECONDS = 86_400.0  # the longest time limit handed to a MIP solver
MIP_GAP = 1e-9  # relative gap at which a MIP counts as solved (a proof of optimality, not 0.01%)

BACKEND = "SCIP"
_VERBOSE = False
# stop polishing the root early: the neighbourhood solves want good plans fast, not proofs
SCIP_EXTRA = "presolving/maxrestarts = 0\nseparating/maxroundsroot = 5\nseparating/maxrounds = 1\n"


def solve_part(
    inst: Instance,
    points: NDArray[np.int64],
    cands: NDArray[np.int64],
    p: int,
    arc_i: NDArray[np.int64],
    arc_j: NDArray[np.int64],
    *,
    hint: NDArray[np.int64] | None = None,
    fixed_open: bool = False,
    time_limit: float = 5.0,
    backend: str = BACKEND,
    node_limit: int | None = 2000,
) -> tuple[NDArray[np.int64], bool] | None:
    """Best assignment of ``points`` to ``p`` of the candidate sites ``cands``.

    ``arc_i``/``arc_j`` (global point and candidate indices) list the allowed pairs; with
    self-serving sites every candidate must also be a point of the part. ``hint``: the current
    site (candidate index) per point, used as a start. ``fixed_open``: all ``cands`` are open
    (then ``p == len(cands)``). Returns (site per point, proved optimal) or None when the
    solver found no feasible assignment in time.
    """
    solver = pywraplp.Solver.CreateSolver(backend)
    if solver is None:  # pragma: no cover - depends on the OR-Tools build
        raise RuntimeError(f"OR-Tools has no {backend} backend")
    pos = {int(i): a for a, i in enumerate(points)}
    cpos = {int(j): b for b, j in enumerate(cands)}
    ia = np.array([pos[int(i)] for i in arc_i], dtype=np.int64)
    jb = np.array([cpos[int(j)] for j in arc_j], dtype=np.int64)
    cost = inst.cost(arc_i, arc_j)
    x = [solver.BoolVar(f"x{a}") for a in range(len(arc_i))]
    if inst.self_serve:
        self_arc = {}
        for a, (i, j) in enumerate(zip(arc_i, arc_j)):
            if i == j:
                self_arc[int(j)] = a
        missing = [int(j) for j in cands if int(j) not in self_arc]
        if missing:
            raise ValueError("every candidate needs its self arc when sites serve themselves")
        y = [x[self_arc[int(j)]] for j in cands]
    else:
        y = [solver.BoolVar(f"y{b}") for b in range(len(cands))]
    by_point: list[list[int]] = [[] for _ in points]
    by_cand: list[list[int]] = [[] for _ in cands]
    for a in range(len(arc_i)):
        by_point[ia[a]].append(a)
        by_cand[jb[a]].append(a)
    # rows through Constraint/SetCoefficient: about 3x faster to build than the natural API
    # (solver.Add(sum(...))); see benchmarks/README.md
    inf = solver.infinity()
    for arcs in by_point:
        row = solver.Constraint(1.0, 1.0)
        for a in arcs:
            row.SetCoefficient(x[a], 1.0)

    def load_row(arcs_d: list[tuple[int, float]], yb: pywraplp.Variable, y_coef: float, sign: float) -> None:
        """sign * load + y_coef * y <= 0; a site serving itself has y as its own arc's variable,
        so its demand goes into y's coefficient."""
        row = solver.Constraint(-inf, 0.0)
        own = 0.0
        for a, d in arcs_d:
            if x[a] is yb:
                own += d
            else:
                row.SetCoefficient(x[a], sign * d)
        row.SetCoefficient(yb, y_coef + sign * own)

    full = inst.full_part
    for b, arcs in enumerate(by_cand):
        loads = [(a, float(inst.demand[arc_i[a]])) for a in arcs]
        load_row(loads, y[b], -float(inst.max_size), 1.0)  # load <= max_size * y
        if inst.min_size > 0:
            load_row(loads, y[b], float(inst.min_size), -1.0)  # load >= min_size * y
        if inst.min_full > 0:
            load_row([(a, float(full[arc_i[a]])) for a, _ in loads if full[arc_i[a]]], y[b], float(inst.min_full), -1.0)
        for a in arcs:
            if x[a] is not y[b]:
                link = solver.Constraint(-inf, 0.0)  # x - y <= 0
                link.SetCoefficient(x[a], 1.0)
                link.SetCoefficient(y[b], -1.0)
    opened = float(len(cands) if fixed_open else p)
    count = solver.Constraint(opened, opened)
    for v in y:
        count.SetCoefficient(v, 1.0)
        if fixed_open:
            v.SetLb(1.0)
    objective = solver.Objective()
    for c, v in zip(cost, x):
        objective.SetCoefficient(v, float(c))
    objective.SetMinimization()
    if hint is not None:
        hint_site = {int(i): int(s) for i, s in zip(points, hint)}
        vals = [1.0 if hint_site[int(i)] == int(j) else 0.0 for i, j in zip(arc_i, arc_j)]
        hv = list(x)
        if not inst.self_serve:
            open_ = set(hint_site.values())
            hv += y
            vals += [1.0 if int(j) in open_ else 0.0 for j in cands]
        solver.SetHint(hv, vals)
    # milliseconds in an int64: "no deadline" (1e18 s) is capped at a day
    solver.SetTimeLimit(max(1, int(min(time_limit, MAX_SECONDS) * 1000)))
    if _VERBOSE:
        solver.EnableOutput()
    solver.SetNumThreads(1)
    if backend == "SCIP" and node_limit is not None:
        # a work limit keeps the answer independent of machine load (the clock is a safety net)
        solver.SetSolverSpecificParametersAsString(f"limits/totalnodes = {int(node_limit)}\n" + SCIP_EXTRA)
    # "optimal" must mean optimal: the solvers' default relative gap (1e-4) let a plan 0.001% above
    # the optimum end a portfolio as proved (found by its property test)
    params = pywraplp.MPSolverParameters()
    params.SetDoubleParam(pywraplp.MPSolverParameters.RELATIVE_MIP_GAP, MIP_GAP)
    status = solver.Solve(params)
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return None
    xv = np.array([v.solution_value() for v in x]) > 0.5
    site = np.full(len(points), -1, dtype=np.int64)
    site[ia[xv]] = arc_j[xv]
    if (site < 0).any():
        return None
    return site, status == pywraplp.Solver.OPTIMAL
