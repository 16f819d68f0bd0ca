"""How good is the certificate? Plan, our lower bound, the LP relaxation and the exact optimum,
district by district, on the bundled Shenzhen roster.

    .venv/bin/python -m benchmarks.certificate [--points true|geocoded] [--time-limit 5]
        [--lp-max-n 300] [--mip-max-n 130] [--mip-time-limit 300] [--districts 盐田区,坪山区] [--cuts]

The product reports ``gap = (plan - bound) / plan``. A large gap can mean a poor plan or a weak
bound; this benchmark tells which. For each district (as :func:`form_branches` cuts the roster)
it prints the plan and bound found within the product's time limit, then, where the district is
small enough, two independent references computed with HiGHS (through SciPy):

* ``lp``: the linear relaxation of the strong textbook model (``x_ij <= y_j``, capacities, the
  full-member minimum, each open site serving itself) with the implied forced cluster size
  ``L = max(min_size, n - (p - 1) * max_size)``. No bound built from an LP or a Lagrangian
  relaxation of these constraints can exceed it; where ``bound`` is close to ``lp``, the rest of
  the gap is the model's integrality gap and only branching can close it.
* ``cuts``: that LP with the rounded size cuts the product's bound dualizes
  (:mod:`geoalloc.solver.sizecuts`) added as rows. Where ``bound`` stays below it, more time for
  the bound would help; the rest, between ``cuts`` and the plan, needs branching or more cuts.
* ``opt``: the same model as a MIP, solved by HiGHS within ``--mip-time-limit``; ``proved`` when
  HiGHS closed its own gap, so the plan's distance to the true optimum is known exactly.

Heavy (minutes): a quality study, not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import csr_array, hstack, identity, kron, vstack

from geoalloc.solver.bounds import forced_size
from geoalloc.solver.instance import Instance


@dataclass
class Model:
    """The strong CPMP model of one instance as sparse matrices (x row-major, then y)."""

    c: np.ndarray
    a_ub: csr_array
    b_ub: np.ndarray
    a_eq: csr_array
    b_eq: np.ndarray
    n_vars: int
    n_y: int


def strong_model(inst: Instance) -> Model:
    """Variables x_ij (every point-site pair) and y_j; unit-demand or weighted, self-serving or not."""
    n, m = inst.n, inst.m
    cost = inst.cost(np.arange(n)[:, None], np.arange(m)[None, :]).ravel()
    c = np.concatenate([cost, np.zeros(m)])
    eye_m = identity(m, format="csr")
    ones_m = csr_array(np.ones((1, m)))
    demand = inst.demand.astype(float)
    fulls = np.where(inst.is_full, inst.demand, 0).astype(float)
    low = float(forced_size(inst)) if (inst.demand == 1).all() else float(inst.min_size)
    # x_ij - y_j <= 0
    link = hstack([identity(n * m, format="csr"), -kron(csr_array(np.ones((n, 1))), eye_m)])
    # sum_i d_i x_ij - Q y_j <= 0 ; L y_j - sum_i d_i x_ij <= 0 ; min_full y_j - sum_i f_i x_ij <= 0
    load = kron(csr_array(demand[None, :]), eye_m)
    full = kron(csr_array(fulls[None, :]), eye_m)
    rows = [link, hstack([load, -float(inst.max_size) * eye_m]), hstack([-load, low * eye_m])]
    if inst.min_full > 0:
        rows.append(hstack([-full, float(inst.min_full) * eye_m]))
    if inst.self_serve:  # y_j - x_jj <= 0 : an open site serves its own point
        jj = np.arange(m) * m + np.arange(m)
        own = csr_array((np.ones(m), (np.arange(m), jj)), shape=(m, n * m))
        rows.append(hstack([-own, eye_m]))
    a_ub = vstack(rows, format="csr")
    b_ub = np.zeros(a_ub.shape[0])
    assign = hstack([kron(identity(n, format="csr"), ones_m), csr_array((n, m))])
    count = hstack([csr_array((1, n * m)), ones_m])
    a_eq = vstack([assign, count], format="csr")
    b_eq = np.concatenate([np.ones(n), [float(inst.p)]])
    return Model(c, a_ub, b_ub, a_eq, b_eq, n * m + m, m)


def with_size_cuts(model: Model, inst: Instance) -> Model:
    """The model plus one row per size cut: the arcs crossing the group's edge carry at least
    r(S) members (self-serving instances, whose sites are the points)."""
    from geoalloc.solver.sizecuts import SizeCuts

    m = inst.m
    cuts = SizeCuts.build(inst.xy, inst.p, forced_size(inst), int(inst.max_size)) if inst.self_serve else None
    if cuts is None:
        return model
    rows = []
    for inside in cuts.membership().T:
        crossing = (inside[:, None] != inside[None, :m]).ravel().astype(float)
        rows.append(csr_array(np.concatenate([-crossing, np.zeros(m)])[None, :]))
    a_ub = vstack([model.a_ub, *rows], format="csr")
    b_ub = np.concatenate([model.b_ub, -cuts.rhs])
    return Model(model.c, a_ub, b_ub, model.a_eq, model.b_eq, model.n_vars, model.n_y)


def lp_value(model: Model) -> tuple[float, float]:
    """The LP relaxation's optimum and the seconds HiGHS took."""
    t = time.perf_counter()
    res = linprog(model.c, A_ub=model.a_ub, b_ub=model.b_ub, A_eq=model.a_eq, b_eq=model.b_eq,
                  bounds=(0, 1), method="highs")
    if res.status != 0:
        raise RuntimeError(f"LP relaxation failed: {res.message}")
    return float(res.fun), time.perf_counter() - t


def mip_value(model: Model, time_limit: float) -> tuple[float, float, bool, float]:
    """(best plan, best bound, proved, seconds) of the exact model solved by HiGHS."""
    t = time.perf_counter()
    integrality = np.zeros(model.n_vars)
    integrality[-model.n_y:] = 1
    res = milp(model.c, integrality=integrality, bounds=Bounds(0, 1),
               constraints=[LinearConstraint(model.a_ub, -np.inf, model.b_ub),
                            LinearConstraint(model.a_eq, model.b_eq, model.b_eq)],
               options={"time_limit": time_limit, "mip_rel_gap": 1e-6})
    sec = time.perf_counter() - t
    value = float(res.fun) if res.x is not None else float("nan")
    bound = float(getattr(res, "mip_dual_bound", float("nan")))
    return value, bound, res.status == 0, sec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.certificate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", choices=["true", "geocoded"], default="true",
                    help="members at their generated points, or geocoded as the product does")
    ap.add_argument("--time-limit", type=float, default=5.0, help="the product's solver limit for the whole roster")
    ap.add_argument("--lp-max-n", type=int, default=300, help="LP relaxation for districts up to this many points")
    ap.add_argument("--mip-max-n", type=int, default=130, help="exact MIP for districts up to this many points")
    ap.add_argument("--mip-time-limit", type=float, default=300.0)
    ap.add_argument("--districts", default="", help="comma-separated district names (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cuts", action="store_true", help="also the LP with the size cuts (minutes per district)")
    args = ap.parse_args(argv)

    from benchmarks.cpmp import sample_problem, shenzhen_problem
    from geoalloc.rules import Policy
    from geoalloc.solver import form_branches
    from geoalloc.solver.form import unit_instances

    problem = sample_problem() if args.points == "geocoded" else shenzhen_problem()
    policy = Policy(min_size=3, max_size=50, time_limit=args.time_limit, seed=args.seed)
    sol = form_branches(problem, policy)
    units = dict(unit_instances(problem, policy))
    wanted = {d for d in args.districts.split(",") if d}
    print(f"roster ({args.points} points): plan {sol.objective:,.0f} m, bound {sol.lower_bound:,.0f} m, "
          f"gap {sol.gap:.2%}, {sol.seconds:.2f} s", flush=True)
    for st in sol.stats["units"]:  # type: ignore[union-attr]
        name = str(st["name"])
        if wanted and name not in wanted:
            continue
        inst = units[name]
        obj, lb = float(st["objective"]), float(st["lower_bound"])
        line = (f"{name:<8} n={inst.n:<5} p={inst.p:<3} L={forced_size(inst):<3} plan={obj:>11,.0f} "
                f"bound={lb:>11,.0f} gap={(obj - lb) / obj:7.2%}")
        if inst.n <= args.lp_max_n:
            model = strong_model(inst)
            lp, sec = lp_value(model)
            line += f"  lp={lp:>11,.0f} ({(obj - lp) / obj:6.2%} below the plan, {sec:.1f} s)"
            if args.cuts:
                cut_lp, sec = lp_value(with_size_cuts(model, inst))
                line += f"  cuts={cut_lp:>11,.0f} ({(obj - cut_lp) / obj:6.2%} below, {sec:.1f} s)"
            if inst.n <= args.mip_max_n:
                best, dual, proved, sec = mip_value(model, args.mip_time_limit)
                line += (f"  opt={best:>11,.0f} {'proved' if proved else f'not proved (bound {dual:,.0f})'} "
                         f"in {sec:.1f} s: plan {(obj - best) / best:+.2%}")
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
