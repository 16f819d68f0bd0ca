"""Work counted, not timed: what the district search's steps cost, from their sizes alone.

A search that stops on the clock gives a plan that depends on the machine and its load; one
that stops after a fixed amount of work gives the same plan everywhere. The meter below adds a
cost for each step of a descent from the step's size (points of a pair move, arcs of a sub-MIP,
points of an assignment or a construction), in seconds as measured on the machine the constants
were fitted on (benchmarks/README.md), so a work budget made from a time budget still takes
about that long there, and the same work anywhere else.
"""

from __future__ import annotations

PAIR_POINT = 15e-6  # a two-cluster move by its closed form, per point of the pair ...
PAIR_CALL = 0.5e-3  # ... and per move tried
MIP_ARC = 150e-6  # a sparse sub-MIP (pair move with families, exact reassignment), per arc
WHOLE_MIP_ARC = 600e-6  # a small instance as one dense MIP (all arcs; each costs more), per arc
FLOW_POINT = 6e-6  # an assignment by min-cost flow, per point ...
FLOW_CALL = 2e-3  # ... and per assignment
BUILD_POINT = 130e-6  # a start's first plan (k-means++ and assign/re-centre rounds), per point ...
BUILD_CALL = 10e-3  # ... and per plan
RELOCATE_SHARE = 0.25  # the single-site moves after the starts (p <= 4) get this share of the search's work


def flow(n: int) -> float:
    """What one assignment of ``n`` points costs."""
    return FLOW_CALL + FLOW_POINT * n


class Meter:
    """Work used against a limit, in calibrated seconds (see the module docstring)."""

    def __init__(self, limit: float) -> None:
        self.limit = float(limit)
        self.used = 0.0

    def charge(self, seconds: float) -> None:
        self.used += seconds

    @property
    def spent(self) -> bool:
        return self.used >= self.limit

    def affords(self, seconds: float) -> bool:
        """Whether a step that cannot stop half-way (a sub-MIP) fits in what is left: the search
        skips one that does not, so a small budget is not overrun many times by one step."""
        return self.used + seconds <= self.limit

    def take(self, seconds: float) -> bool:
        """Charge a step that cannot stop half-way if it :meth:`affords` it; whether it did."""
        if not self.affords(seconds):
            return False
        self.charge(seconds)
        return True


REFINE_KICK = 0.05  # a kick of the compiled refinement and its descent (globalphase.refine; 南山区) ...
REFINE_SHARE = 0.2  # ... which gets this share of a district's search work, as a count of kicks
REFINE_POLISH_SHARE = 0.25  # the pair descent after it gets at most this share of the search work


def refine_kicks(search: float) -> int:
    """Kicks of the compiled refinement for a district with ``search`` work: a count fixed by the
    budget alone (the same plan on every machine), growing with it (more time, more kicks)."""
    return int(REFINE_SHARE * search / REFINE_KICK)
