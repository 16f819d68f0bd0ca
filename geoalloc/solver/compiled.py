"""numba for the solver's compiled kernels, with their cache in the user's geoalloc cache.

Why a module: every kernel module imports ``njit`` from here, so the cache location is set once,
before any kernel is made (numba reads it as each ``@njit(cache=True)`` function is decorated).
Beside the sources, the default, a read-only install would compile every kernel on every run.
``NUMBA_CACHE_DIR``, when the user sets it, wins. Only modules that run kernels import this one:
commands that form no large plan never import numba.
"""

from __future__ import annotations

import numba
from numba import njit

from geoalloc.paths import compiled_cache_dir

__all__ = ["njit"]

# numba's config attributes are made at run time, so a type checker does not know them
if not getattr(numba.config, "CACHE_DIR", ""):
    setattr(numba.config, "CACHE_DIR", str(compiled_cache_dir() or ""))  # noqa: B010
