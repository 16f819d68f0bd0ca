"""plan.xlsx: the plan as a workbook a planner opens in Excel or WPS (openpyxl).

Sheets: 支部 (branches), 成员 (members, at the privacy grid), 汇总 (the report in words and
numbers) and, for a rebalance, 调整 (moves). Every text cell is neutralised (no formulas from
roster text) and written as a string cell, never a formula.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from geoalloc.outputs.cells import neutralise

__all__ = ["SHEETS", "write_xlsx"]

SHEETS = {"zh": {"branches": "支部", "members": "成员", "summary": "汇总", "moves": "调整"},
          "en": {"branches": "branches", "members": "members", "summary": "summary", "moves": "moves"}}


def _cell_value(v: Any) -> Any:
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA:
        return None
    if hasattr(v, "item") and not isinstance(v, str):  # numpy scalars
        v = v.item()
    return neutralise(v) if isinstance(v, str) else v


def _put(ws: Any, row: int, col: int, value: Any) -> Any:
    cell = ws.cell(row=row, column=col, value=_cell_value(value))
    if isinstance(cell.value, str):
        cell.data_type = "s"  # openpyxl would otherwise read a leading "=" as a formula
    return cell


def _table(ws: Any, frame: pd.DataFrame) -> None:
    bold = Font(bold=True)
    for j, name in enumerate(frame.columns, start=1):
        _put(ws, 1, j, str(name)).font = bold
    for i, row in enumerate(frame.itertuples(index=False), start=2):
        for j, v in enumerate(row, start=1):
            _put(ws, i, j, v)
    ws.freeze_panes = "A2"
    for j, name in enumerate(frame.columns, start=1):
        sample = [len(str(name))] + [len(str(v)) for v in frame.iloc[:200, j - 1]]
        ws.column_dimensions[get_column_letter(j)].width = min(40, max(8, max(sample) * 1.6 + 2))


def _summary(ws: Any, words: list[dict[str, Any]], figures: list[tuple[str, Any]], title: str) -> None:
    ws.column_dimensions["A"].width = 30
    ws.column_dimensions["B"].width = 100
    _put(ws, 1, 1, title).font = Font(bold=True, size=14)
    r = 3
    wrap = Alignment(wrap_text=True, vertical="top")
    for section in words:
        _put(ws, r, 1, section["title"]).font = Font(bold=True, size=12)
        r += 1
        for line in section["lines"]:
            _put(ws, r, 2, line).alignment = wrap
            r += 1
        r += 1
    for label, value in figures:
        _put(ws, r, 1, label)
        _put(ws, r, 2, value).alignment = Alignment(horizontal="left")
        r += 1


def write_xlsx(path: str | Path, *, branches: pd.DataFrame, members: pd.DataFrame, words: list[dict[str, Any]],
               figures: list[tuple[str, Any]], moves: pd.DataFrame | None = None, lang: str = "zh",
               title: str = "") -> Path:
    """Write the workbook; the summary sheet comes first (what a planner reads first)."""
    names = SHEETS[lang]
    wb = Workbook()
    ws = wb.active
    ws.title = names["summary"]
    _summary(ws, words, figures, title)
    _table(wb.create_sheet(names["branches"]), branches)
    _table(wb.create_sheet(names["members"]), members)
    if moves is not None:
        _table(wb.create_sheet(names["moves"]), moves)
    out = Path(path)
    wb.save(out)
    return out
