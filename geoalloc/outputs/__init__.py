"""What a plan is written as: CSVs (neutralised), plan.xlsx, plan.gpkg, plan.geojson, the report in words.

Modules: ``cells`` (no formulas from roster text), ``tables`` (the planner's tables, privacy
grid), ``xlsx``, ``geo`` (GeoPackage/GeoJSON layers), ``words`` (the report in words),
``plan_dir`` (the plan directory: :func:`write_plan_dir`, :func:`read_plan_dir`).
"""

from geoalloc.outputs.cells import neutralise, neutralise_frame, restore, restore_frame
from geoalloc.outputs.plan_dir import (
    DEFAULT_FORMATS,
    FORMATS,
    parse_formats,
    read_plan_dir,
    write_csv,
    write_plan_dir,
    write_planner_files,
)
from geoalloc.outputs.words import key_figures, report_words

__all__ = [
    "DEFAULT_FORMATS", "FORMATS", "key_figures", "neutralise", "neutralise_frame", "parse_formats",
    "read_plan_dir", "report_words", "restore", "restore_frame", "write_csv", "write_plan_dir",
    "write_planner_files",
]
