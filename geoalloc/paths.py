"""Where geoalloc finds its bundled data.

The Shenzhen data lives in ``data/`` at the repository root (it is data, not code, and
has its own README with sources and licences). An installed copy can point elsewhere
with ``GEOALLOC_DATA_DIR``.
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
