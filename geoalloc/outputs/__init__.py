"""What a plan is written as: CSVs (neutralised), plan.xlsx, plan.gpkg, plan.geojson, the report in words.

Modules: ``cells`` (no formulas from roster text; the CSV writer), ``tables`` (the planner's tables,
privacy grid), ``xlsx``, ``geo`` (GeoPackage/GeoJSON layers), ``words`` (the report in words),
``plan_dir`` (the plan directory: :func:`write_plan_dir`, :func:`read_plan_dir`).

Names are loaded on first use: ``geoalloc geocode`` needs only the CSV writer, not the map,
workbook and GeoPackage stacks that a plan directory pulls in (a second of start-up).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from geoalloc.outputs.cells import neutralise, neutralise_frame, restore, restore_frame, write_csv
    from geoalloc.outputs.plan_dir import (
        DEFAULT_FORMATS,
        FORMATS,
        parse_formats,
        read_plan_dir,
        write_plan_dir,
        write_planner_files,
    )
    from geoalloc.outputs.words import key_figures, report_words

_WHERE = {
    "neutralise": "cells", "neutralise_frame": "cells", "restore": "cells", "restore_frame": "cells",
    "write_csv": "cells", "DEFAULT_FORMATS": "plan_dir", "FORMATS": "plan_dir", "parse_formats": "plan_dir",
    "read_plan_dir": "plan_dir", "write_plan_dir": "plan_dir", "write_planner_files": "plan_dir",
    "key_figures": "words", "report_words": "words",
}

__all__ = [
    "DEFAULT_FORMATS", "FORMATS", "key_figures", "neutralise", "neutralise_frame", "parse_formats",
    "read_plan_dir", "report_words", "restore", "restore_frame", "write_csv", "write_plan_dir",
    "write_planner_files",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'geoalloc.outputs' has no attribute {name!r}")
    value = getattr(import_module(f"geoalloc.outputs.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
