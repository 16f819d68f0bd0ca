"""Batch work on parts of one in-memory table, in processes forked from this one.

Why: a command that geocodes a hundred thousand rows spends seconds in Python on one core; forked
processes inherit the table and the geocoder's lexicon without copying or pickling them, so only
each part's answer travels back. (Each pays for the memory pages it touches being copied:
formatting a CSV's halves this way was no faster than one process, so the writer does not.) The
first part runs here meanwhile. Results are the same as from one process (each part's answer
depends only on its rows), a part whose process cannot start or fails is worked out here (no row
is lost), and where the platform cannot fork every part runs here. Only for a process that serves no other threads: a command or a batch job,
never the API server (a forked copy of a threaded server can inherit a held lock).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

__all__ = ["forked_map", "shared"]

P = TypeVar("P")
R = TypeVar("R")

_SHARED: Any = None  # what the forked processes work on: set just before the fork


def shared() -> Any:
    """In a function run by :func:`forked_map`: the ``state`` it was given."""
    return _SHARED


def forked_map(fn: Callable[[P], R], parts: Sequence[P], state: Any, here: Callable[[P], R] | None = None) -> list[R]:
    """``[fn(p) for p in parts]``: ``parts[1:]`` in forked processes (``fn`` a module-level function,
    which reads ``state`` through :func:`shared`), ``parts[0]`` here by ``here`` (default ``fn``)."""
    global _SHARED
    if not parts:
        return []
    here = here or fn
    _SHARED = state
    try:
        if len(parts) < 2 or "fork" not in multiprocessing.get_all_start_methods():
            return [here(parts[0])] + [fn(p) for p in parts[1:]]
        with ProcessPoolExecutor(len(parts) - 1, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(fn, p) for p in parts[1:]]
            out = [here(parts[0])]
            for part, future in zip(parts[1:], futures):
                try:
                    out.append(future.result())
                except Exception:  # noqa: BLE001 - a lost process loses no work: its part is done here
                    out.append(fn(part))
            return out
    finally:
        _SHARED = None
