"""Shared fixtures: small rosters built from the sample generator, and paths."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from geoalloc.samples import generate_roster


@pytest.fixture(scope="session")
def small_roster() -> pd.DataFrame:
    """A 400-member roster in every address format, deterministic."""
    return generate_roster(400, seed=11)


@pytest.fixture
def roster_csv(tmp_path: Path, small_roster: pd.DataFrame) -> Path:
    path = tmp_path / "roster.csv"
    small_roster.to_csv(path, index=False)
    return path
