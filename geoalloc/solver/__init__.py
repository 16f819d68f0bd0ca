"""Branch formation: capacitated p-median with size limits, district rule and a lower bound.

Public functions
----------------
``form_branches(problem, policy, *, progress=None) -> Solution``
    The main solver. Regions (districts) are independent problems solved in parallel worker
    processes (deterministic: each region's result depends only on its data and the seed).
    Branch counts: ``policy.n_branches`` spread over regions in proportion to demand within
    each region's limits, else ``ceil(demand / target_size)``, else the fewest the limits allow
    (``ceil(demand / max_size)``). A region too small for one branch is joined with its
    nearest neighbouring region; branches that then mix regions have ``Solution.joint`` set and
    a line in ``Solution.notes``. Raises :class:`InfeasibleError` whose ``conflicts`` name the
    region and the limit. The objective is demand-weighted (every member of a group counts).
``assign_to_sites(problem, sites, policy, extra_cost=None, *, site_region=None) -> (branch_of, cost)``
    Exact assignment to fixed sites (member indices or coordinates) by OR-Tools min-cost flow
    over each member's nearest sites, widened when infeasible; ``extra_cost`` (n, k) prices
    moves. Groups (demand > 1) stay whole (MIP fallback when the flow would split them).
``lower_bound(problem, policy, *, n_branches=None, upper=inf) -> float``
    Lagrangian lower bound for the same problem as ``form_branches``.
``solve_cpmp(xy, demand, capacity, p, *, dist="euclid"|"floor", time_limit, seed) -> Solution``
    The textbook capacitated p-median used by ``benchmarks/cpmp.py``.

Modules: ``instance`` (the shared internal problem form), ``flow`` (min-cost flow assignment),
``mip`` (exact sub-problems with OR-Tools), ``construct`` (first plan), ``search`` (improvement),
``bounds`` (Lagrangian bound), ``form`` (regions and counts), ``cpmp`` (benchmark form).
"""

from geoalloc.solver.cpmp import solve_cpmp
from geoalloc.solver.form import form_branches
from geoalloc.solver.primitives import assign_to_sites, lower_bound
from geoalloc.solver.problem import Conflict, InfeasibleError, Problem, Solution

__all__ = [
    "Conflict",
    "InfeasibleError",
    "Problem",
    "Solution",
    "assign_to_sites",
    "form_branches",
    "lower_bound",
    "solve_cpmp",
]
