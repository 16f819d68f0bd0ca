"""Spreadsheet cells that cannot become formulas (CSV/formula injection).

Why: roster text is copied into every table a planner opens in Excel or WPS, and a cell that
starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return is read there as a formula (a
hostile "name" could run one). Such a text cell is written with a leading apostrophe, the
convention spreadsheets themselves use for "this is text". A text cell that already starts
with an apostrophe gets one more, so :func:`restore` undoes :func:`neutralise` exactly and
the plan directory reads back what was written (member ids must match the roster's).
Numbers stay numbers: only text cells are touched.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["TRIGGERS", "neutralise", "neutralise_frame", "restore", "restore_frame"]

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


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if frame[c].dtype == object or isinstance(frame[c].dtype, pd.StringDtype)]


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with every text cell neutralised (numeric columns untouched)."""
    out = frame.copy()
    for c in _text_columns(out):
        out[c] = out[c].map(neutralise)
    out.columns = [neutralise(str(c)) for c in out.columns]
    return out


def restore_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo :func:`neutralise_frame` on a frame read back from CSV."""
    out = frame.copy()
    for c in _text_columns(out):
        out[c] = out[c].map(restore)
    return out
