"""Spreadsheet cells that cannot become formulas (CSV/formula injection).

Why: roster text is copied into every table a planner opens in Excel or WPS, and a cell that
starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return is read there as a formula (a
hostile "name" could run one). Such a text cell is written with a leading apostrophe, the
convention spreadsheets themselves use for "this is text". A text cell that already starts
with an apostrophe gets one more, so :func:`restore` undoes :func:`neutralise` exactly and
the plan directory reads back what was written (member ids must match the roster's).
Numbers stay numbers: only text cells are touched.

A column is scanned once as one joined string (C speed); only a column with a cell that needs
the apostrophe is rewritten cell by cell, so a clean 100,000-row roster costs a few scans.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geoalloc.outputs.csvtext import csv_text

__all__ = ["TRIGGERS", "neutralise", "neutralise_frame", "restore", "restore_frame", "write_csv"]

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_QUOTE = "'"


def neutralise(value: Any) -> Any:
    """``value`` safe for a spreadsheet cell (non-text values are returned unchanged)."""
    if isinstance(value, str) and value and (value[0] in TRIGGERS or value[0] == _QUOTE):
        return _QUOTE + value
    return value


def restore(value: Any) -> Any:
    """The original text of a cell written by :func:`neutralise`."""
    if isinstance(value, str) and value.startswith(_QUOTE):
        return value[1:]
    return value


def _is_text(col: pd.Series) -> bool:
    return col.dtype == object or isinstance(col.dtype, pd.StringDtype)


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if _is_text(frame[c])]


_SEP = "\x00"
_STARTS = frozenset("".join(TRIGGERS) + _QUOTE)
# A cell start right after a separator followed by a trigger or a quote (a literal first: fast).
_NEEDS = re.compile("\x00[" + re.escape("".join(TRIGGERS) + _QUOTE) + "]")


def _needs(joined: str) -> bool:
    """Whether some cell of a NUL-joined column starts with a trigger or a quote."""
    return joined[:1] in _STARTS or _NEEDS.search(joined) is not None


def _joined(values: np.ndarray) -> str:
    """The column's text cells joined by NUL (other cells as empty text), for whole-column scans.

    A NUL inside a cell can only make the scan report a cell that needs no change, never miss
    one: the exact per-cell rule is applied to every column the scan flags.
    """
    cells = values.tolist()
    try:
        return _SEP.join(cells)  # all text: the common case, at C speed
    except TypeError:
        return _SEP.join([v if type(v) is str else "" for v in cells])


def _neutralised(frame: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """:func:`neutralise_frame`, and whether any text cell holds a carriage return."""
    out = frame.copy(deep=False)
    has_cr = False
    for j in range(frame.shape[1]):
        col = frame.iloc[:, j]
        if not _is_text(col):
            if col.dtype.kind not in "biufcmM":  # e.g. categorical: cell by cell, as rare as it is
                has_cr = has_cr or any(isinstance(v, str) and "\r" in v for v in col.tolist())
            continue
        values = col.to_numpy(dtype=object)
        joined = _joined(values)
        has_cr = has_cr or "\r" in joined
        if _needs(joined):
            out.isetitem(j, pd.array([neutralise(v) for v in values.tolist()], dtype=col.dtype))
    out.columns = [neutralise(str(c)) for c in frame.columns]
    return out, has_cr


def _safe_cells(cells: list[str], joined: str) -> list[str] | None:
    """A text column's cells neutralised for :func:`csv_text`; None (pandas writes) when one holds a CR."""
    if "\r" in joined:
        return None
    return [neutralise(v) for v in cells] if _needs(joined) else cells


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with every text cell neutralised (numeric columns untouched)."""
    return _neutralised(frame)[0]


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """A UTF-8 CSV whose text cells cannot become formulas."""
    out = Path(path)
    text = csv_text(frame, labels=[neutralise(str(c)) for c in frame.columns], texts=_safe_cells)
    if text is not None:
        out.write_bytes(text.encode("utf-8"))
        return out
    safe, has_cr = _neutralised(frame)
    # the csv module quotes a field with "\n" but not one with a bare "\r", which readers take
    # for a line break: when any text has one, every text field is quoted
    safe.to_csv(out, index=False, encoding="utf-8", quoting=csv.QUOTE_NONNUMERIC if has_cr else csv.QUOTE_MINIMAL)
    return out


def restore_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo :func:`neutralise_frame` on a frame read back from CSV."""
    out = frame.copy()
    for c in _text_columns(out):
        out[c] = out[c].map(restore)
    return out
