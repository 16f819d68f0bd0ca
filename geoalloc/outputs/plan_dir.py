"""A plan directory: the CSVs and report.json it is read back from, plus the planner's files.

Always written: ``assignments.csv``, ``branches.csv``, ``report.json`` (and ``moves.csv`` for a
rebalance): the contract other tools and ``geoalloc map``/``rebalance --current`` read.
Chosen with ``formats`` (default ``csv,xlsx,gpkg``): ``plan.xlsx``, ``plan.gpkg``,
``plan.geojson``. Every text cell of every CSV and of the workbook is neutralised
(:mod:`geoalloc.outputs.cells`); :func:`read_plan_dir` restores it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geoalloc.maps.privacy import DEFAULT_SNAP_M
from geoalloc.outputs.cells import restore_frame, write_csv
from geoalloc.outputs.geo import plan_layers, write_geojson, write_gpkg
from geoalloc.outputs.tables import branch_sheet, member_sheet, moves_sheet
from geoalloc.outputs.words import key_figures, report_words
from geoalloc.outputs.xlsx import write_xlsx

__all__ = [
    "DEFAULT_FORMATS",
    "FORMATS",
    "parse_formats",
    "read_plan_dir",
    "write_csv",
    "write_plan_dir",
    "write_planner_files",
]

FORMATS = ("csv", "xlsx", "gpkg", "geojson")
DEFAULT_FORMATS = ("csv", "xlsx", "gpkg")


def parse_formats(spec: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"csv,xlsx"`` -> ("csv", "xlsx"); an unknown name is a ValueError naming the known ones."""
    if spec is None:
        return DEFAULT_FORMATS
    items = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    bad = [s for s in items if s not in FORMATS]
    if bad:
        raise ValueError(f"unknown output format(s) {', '.join(bad)}: choose from {', '.join(FORMATS)}")
    if not items:
        raise ValueError(f"no output format given: choose from {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(items))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_planner_files(out: Path, assignments: pd.DataFrame, branches: pd.DataFrame, report: dict[str, Any], *,
                        formats: Iterable[str] = DEFAULT_FORMATS, moves: pd.DataFrame | None = None,
                        lang: str = "zh", snap_m: float = DEFAULT_SNAP_M,
                        names: pd.Series | None = None) -> dict[str, Path]:
    """plan.xlsx / plan.gpkg / plan.geojson as chosen (the API's export uses this too)."""
    formats = tuple(formats)
    paths: dict[str, Path] = {}
    if "xlsx" in formats:
        title = "支部分配方案" if lang == "zh" else "Branch plan"
        paths["xlsx"] = write_xlsx(
            out / "plan.xlsx", branches=branch_sheet(branches, report, lang=lang, snap_m=snap_m),
            members=member_sheet(assignments, report, lang=lang, snap_m=snap_m, names=names),
            words=report_words(report, branches, lang=lang, moves=moves), figures=key_figures(report, lang=lang),
            moves=moves_sheet(moves, lang=lang) if moves is not None else None, lang=lang, title=title)
    if "gpkg" in formats or "geojson" in formats:
        layers = plan_layers(assignments, branches, report, snap_m=snap_m)
        if "gpkg" in formats:
            paths["gpkg"] = write_gpkg(out / "plan.gpkg", layers)
        if "geojson" in formats:
            paths["geojson"] = write_geojson(out / "plan.geojson", layers)
    return paths


def write_plan_dir(result: Any, out_dir: str | Path, *, formats: Iterable[str] | str | None = None,
                   moves: pd.DataFrame | None = None, lang: str = "zh",
                   snap_m: float = DEFAULT_SNAP_M, names: pd.Series | None = None) -> dict[str, Path]:
    """Write the plan directory of an :class:`~geoalloc.pipeline.AllocationResult` (the map is the caller's).
    ``snap_m`` (0: exact points) and ``names`` (member_id -> name) are the planner's opt-ins."""
    chosen = parse_formats(formats) if not isinstance(formats, tuple) else formats
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "assignments": write_csv(result.assignments, out / "assignments.csv"),
        "branches": write_csv(result.branches, out / "branches.csv"),
        "report": out / "report.json",
    }
    paths["report"].write_text(json.dumps(result.report, ensure_ascii=False, indent=2, default=_json_default),
                               encoding="utf-8")
    if moves is not None:
        paths["moves"] = write_csv(moves, out / "moves.csv")
    paths.update(write_planner_files(out, result.assignments, result.branches, result.report, formats=chosen,
                                     moves=moves, lang=lang, snap_m=snap_m, names=names))
    return paths


def read_plan_dir(plan_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], pd.DataFrame | None]:
    """Read a plan directory back: assignments, branches, report, and moves (None when absent)."""
    d = Path(plan_dir)
    for name in ("assignments.csv", "branches.csv", "report.json"):
        if not (d / name).exists():
            raise FileNotFoundError(f"{d}: not a plan directory ({name} is missing)")
    assignments = restore_frame(pd.read_csv(
        d / "assignments.csv", dtype={"member_id": str, "branch_id": str}, keep_default_na=False,
        na_values={"lon": [""], "lat": [""], "distance_m": [""]}))
    branches = restore_frame(pd.read_csv(d / "branches.csv", dtype={"branch_id": str}))
    report = json.loads((d / "report.json").read_text(encoding="utf-8"))
    moves = (restore_frame(pd.read_csv(d / "moves.csv", dtype=str, keep_default_na=False))
             if (d / "moves.csv").exists() else None)
    return assignments, branches, report, moves
