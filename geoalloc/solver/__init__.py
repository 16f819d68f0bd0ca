"""Branch formation: capacitated p-median with size limits, district rule and a lower bound.

Public functions
----------------
``form_branches(problem, policy, *, progress=None) -> Solution``
    The main solver. Regions (districts) are independent problems solved in parallel worker
    processes (deterministic: each region's result depends only on its data and the seed).
    Branch counts (``form.branch_counts``, stated in ``Solution.stats["branch_rule"]``):
    ``policy.n_branches`` spread over regions in proportion to demand within each region's
    limits; ``n_branches="fewest"``: the fewest the limits allow (``ceil(demand / max_size)``);
    else ``ceil(demand / target)`` per region within its limits, ``target`` being
    ``policy.target_size`` or by default 80% of ``max_size``. A region too small for one branch is joined with its
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

How a region is solved (``engine.solve_instance``): k-means++ seeding and assign/re-centre
rounds (``construct``); then, in turn, exact two-cluster moves over neighbouring clusters
(``pairs``: best site pair and best split, by sorted prefix sums for unit demands or a knapsack
DP for groups), global re-centring with exact min-cost-flow reassignment (``flow``), and for
groups an exact reassignment MIP (``assign.reassign_exact``); instances with at most 2,500
point-site pairs are solved as one MIP. Several starts (fresh or kicked from the best plan).
Optionally (``engine.SearchConfig.lns``; the benchmark form uses it) a large-neighbourhood
search (``lns``): a seed cluster and its nearest clusters re-solved exactly by a HiGHS sub-MIP
over each point's nearest shortlisted sites, warm-started from the plan, taken only when valid
and shorter. The search's switches are one object (``engine.SearchConfig``).
The Lagrangian bound (``bounds``) relaxes "each member in exactly one branch"; on tight
regions it adds rounded size cuts (``sizecuts``: a group of members that no whole number of
branches can hold must send members across its edge), which the LP relaxation lacks. The benchmark
form (``solve_cpmp``) runs an iterated local search instead: cheap ruin-and-recreate kicks,
ranked swaps (``swaps``), set-partitioning recombination of the clusters seen (``pool``), a MIP
over the point-site arcs of those clusters on 151-450 points, started from the best plan (HiGHS
through ``highspy``, ``arcmip``), and a whole-instance MIP polish on small instances
(``search``); up to 150 points it stops once the bound or the whole MIP proves the plan optimal.
It runs two such searches with different seeds at once, in two processes whatever the core
count, and keeps the better plan and the higher bound (``cpmp``); on unit-demand instances of
600 points or more half its search time goes to the large-neighbourhood search.

Determinism: work is counted in starts, search rounds and sub-MIP nodes, so the same seed gives
the same plan, whatever the number of cores or workers, unless the time limit cuts the search
short (then ``Solution.notes`` says so).

Modules: ``instance`` (the shared internal problem form), ``flow`` (min-cost flow assignment),
``assign`` (assignment with groups), ``mip`` (exact sub-problems with OR-Tools SCIP),
``highs`` (binary programmes with HiGHS, silent and started from a plan),
``construct`` (first plan), ``pairs`` (two-cluster moves), ``search`` (improvement),
``lns`` (large-neighbourhood search with exact sub-MIPs),
``engine`` (one region end to end), ``bounds`` (Lagrangian bound), ``form`` (regions, counts,
joint branches, parallel workers), ``primitives`` (assign_to_sites, lower_bound), ``cpmp``,
and for the benchmark search ``swaps``, ``pool`` and ``arcmip``.
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
