"""The service keeps long-lived objects out of the garbage collector's full passes (api.heap)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from api import heap
from api.context import PlanCache
from geoalloc.solver.relocate import PlanState
from test_relocate import POLICY, plan


@pytest.fixture(autouse=True)
def _unfreeze() -> Iterator[None]:
    """Frozen objects are never collected: give the rest of the test run its collector back."""
    yield
    gc.unfreeze()


def _tracked(obj: object) -> bool:
    """Whether a full collection would walk ``obj`` (frozen objects are not listed)."""
    return any(o is obj for o in gc.get_objects())


def test_settle_freezes_what_exists_and_collects_garbage_first() -> None:
    survivor: dict[str, list[int]] = {"a": [1]}
    cycle: list[object] = []
    cycle.append(cycle)
    dead = weakref.ref(_Node(cycle))  # garbage only through a cycle
    assert _tracked(survivor)
    frozen = heap.settle()
    assert frozen == gc.get_freeze_count() > 0
    assert not _tracked(survivor)
    assert dead() is None  # collected before the freeze, not frozen with the rest
    later: list[list[int]] = [[2]]
    assert _tracked(later)  # what requests allocate afterwards is still collected as usual


class _Node:
    def __init__(self, ref: object) -> None:
        self.ref = ref
        self.me = self


def test_a_replaced_plan_state_is_freed_without_the_collector() -> None:
    """Frozen objects are only freed by reference counting: a PlanState must hold no cycle."""
    members, assignments, branches = plan(0)
    state = PlanState.from_frames(assignments, branches, POLICY)
    for k, row in enumerate(members.head(20).itertuples()):
        other = members.iloc[(k * 7) % len(members)]
        state.relocate(row.member_id, lon=float(other.lon), lat=float(other.lat), district_zh=other.district_zh,
                       full_member=bool(row.full_member))
    state.take_events()
    ref = weakref.ref(state)
    gc.disable()
    try:
        del state
        assert ref() is None
    finally:
        gc.enable()


def test_plan_cache_freezes_a_loaded_state(monkeypatch: pytest.MonkeyPatch) -> None:
    members, assignments, branches = plan(1)
    import api.context as context

    monkeypatch.setattr(context, "plan_frames", lambda conn, plan_id: (assignments.copy(), branches.copy()))
    cache = PlanCache()
    state = cache.get(None, 1, 1, POLICY.to_dict())
    assert isinstance(state, PlanState)
    assert not _tracked(state) and not _tracked(state.members_of)
    assert cache.get(None, 1, 1, POLICY.to_dict()) is state  # cached: no second load
