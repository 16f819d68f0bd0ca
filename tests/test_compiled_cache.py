"""Compiled solver kernels are cached in the user's cache, not beside the sources (a read-only install)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _cache_dir_seen(env: dict[str, str]) -> str:
    code = "import numba, geoalloc.solver.knapsack, geoalloc.solver.globalphase; print(numba.config.CACHE_DIR)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_kernels_cache_in_the_geoalloc_cache_unless_numba_is_told_otherwise(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    assert _cache_dir_seen({**env, "GEOALLOC_CACHE_DIR": str(tmp_path / "c")}) == str(tmp_path / "c" / "numba")
    assert _cache_dir_seen({**env, "GEOALLOC_CACHE_DIR": "off"}) == ""  # off: numba's own default (its __pycache__)
    mine = str(tmp_path / "mine")
    assert _cache_dir_seen({**env, "GEOALLOC_CACHE_DIR": str(tmp_path / "c"), "NUMBA_CACHE_DIR": mine}) == mine
