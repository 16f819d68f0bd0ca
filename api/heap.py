"""Keep the garbage collector's full passes short in the long-running service.

Why: CPython's oldest-generation collection walks every tracked object. With the app imported
and a plan's in-memory state loaded that is a few hundred thousand objects, and a full pass
took 100-160 ms in the serving process (``benchmarks.api`` with a ``gc.callbacks`` probe), all
of it holding the GIL: every relocation that arrived meanwhile waited, which was the whole
99th-percentile tail of the relocation benchmark. Objects that live as long as the process
(modules, the app, a loaded plan) never become garbage, so they are moved out of the
collector's sight with :func:`gc.freeze` once they exist; full passes then only walk what
requests allocated since.

A frozen object is still freed by reference counting when its last reference goes (a replaced
``PlanState`` holds no reference cycles: ``tests/test_api_heap.py`` checks it), only cyclic
garbage frozen by mistake would stay; :func:`settle` collects first so none is frozen.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect what is garbage now, then freeze every surviving object; returns objects frozen.

    Call it off the request path when long-lived objects have just been built (at start-up,
    after a plan's state is loaded): the collection here costs one full pass, once.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
