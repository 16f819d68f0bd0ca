"""Which instances the compiled global phase (:mod:`geoalloc.solver.globalphase`) takes.

Kept apart from its numba kernels: the engine, the construction and the benchmark form ask
this of every instance, and importing numba costs about a second that every product command
would otherwise pay, although the product's instances (lower size limits, full members) never
take that path.
"""

from __future__ import annotations

from geoalloc.solver.instance import Instance

MAX_CLUSTER_MEAN = 60  # points per cluster at most on average: with larger clusters the regions it
# reassigns hold too few clusters to move sites between them, and the general search does better
MIN_N = 600  # below this the general construction is fast enough (and the small benchmarks keep their tuning)


def _fits(inst: Instance, min_n: int) -> bool:
    """Sites are points, at least ``min_n`` of them, and clusters small enough for the compiled moves."""
    return inst.self_serve and inst.p >= 2 and inst.n >= min_n and inst.n <= MAX_CLUSTER_MEAN * inst.p


def applies(inst: Instance) -> bool:
    """The textbook CPMP: sites are points, the maximum size is the only size rule."""
    return inst.min_size == 0 and inst.min_full == 0 and _fits(inst, MIN_N)


REFINE_MIN_N = 400  # smaller districts: the starts already find their best plans (and numba stays unimported)


def refines(inst: Instance) -> bool:
    """A product district whose plan the compiled local phase refines after the starts
    (:func:`geoalloc.solver.globalphase.refine`): sites are points, and clusters are small enough
    for its moves."""
    return _fits(inst, REFINE_MIN_N)
