"""Where geoalloc finds its bundled data, and where it keeps what it builds from it.

The Shenzhen data lives in ``data/`` at the repository root (it is data, not code, and
has its own README with sources and licences). An installed copy can point elsewhere
with ``GEOALLOC_DATA_DIR``. Built objects (the geocoder's lexicon, compiled solver kernels) go to
the user's cache, never next to the code, so a read-only install works as well as a checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT: Path = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The folder holding ``districts/`` and ``sample/``."""
    override = os.environ.get("GEOALLOC_DATA_DIR")
    return Path(override) if override else REPO_ROOT / "data"


def districts_dir() -> Path:
    """Bundled boundaries and gazetteer (WGS-84)."""
    return data_dir() / "districts"


def sample_roster_path() -> Path:
    """The committed, deterministic sample roster."""
    return data_dir() / "sample" / "members.csv"


def shared_dir() -> Path:
    """``../shared`` beside the checkout: reference data and benchmark instances (never copied in)."""
    override = os.environ.get("GEOALLOC_SHARED_DIR")
    return Path(override) if override else REPO_ROOT.parent / "shared"


def cache_dir() -> Path | None:
    """Where built objects are kept (``GEOALLOC_CACHE_DIR``, default ``$XDG_CACHE_HOME/geoalloc`` or
    ``~/.cache/geoalloc``), or None when caching is off (``GEOALLOC_CACHE_DIR=off``)."""
    env = os.environ.get("GEOALLOC_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "no") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "geoalloc"


def compiled_cache_dir() -> Path | None:
    """Where compiled solver kernels (numba) are kept: in :func:`cache_dir`, since beside the sources a
    read-only install would compile them again on every run."""
    where = cache_dir()
    return None if where is None else where / "numba"
