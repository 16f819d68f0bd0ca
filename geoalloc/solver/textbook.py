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


def applies(inst: Instance) -> bool:
    """The textbook CPMP: sites are points, the maximum size is the only size rule."""
    return inst.self_serve and inst.min_size == 0 and inst.min_full == 0 and inst.n >= MIN_N and inst.p >= 2 \
        and inst.n <= MAX_CLUSTER_MEAN * inst.p


REFINE_MIN_N = 400  # smaller districts: the starts already find their best plans (and numba stays unimported)


def refines(inst: Instance) -> bool:
    """A product district whose plan the compiled local phase refines after the starts
    (:func:`geoalloc.solver.globalphase.refine`): sites are points, and clusters are small enough
    for its moves."""
    return inst.self_serve and inst.p >= 2 and inst.n >= REFINE_MIN_N and inst.n <= MAX_CLUSTER_MEAN * inst.p
