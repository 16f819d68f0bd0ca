"""A DataFrame as CSV text built column by column, the bytes ``DataFrame.to_csv(index=False)`` writes.

Why: pandas formats and quotes a frame row by row, the largest cost of writing a geocoded roster;
here each column becomes a list of field texts at once (numbers by ``repr``/``str``, which is what
pandas' ``astype(str)`` gives, missing cells empty) and the rows are joined in C. Only a cell with
a delimiter, quote or line-break character goes through the ``csv`` module itself, so quoting is
the csv module's rule whatever the Python version. A frame with anything else (other dtypes, a
text column holding non-text objects, one column, non-text labels) gets ``None``: the caller
writes it with pandas.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable

import numpy as np
import pandas as pd

__all__ = ["csv_text"]

_SEP = "\x00"
_SPECIAL_CHARS = ',"\n\r'  # what can make the csv module quote a field (QUOTE_MINIMAL)
_SPECIAL = re.compile("[" + re.escape(_SPECIAL_CHARS) + "]")

#: A rule for a text column's cells, given them and their NUL-joined text: the cells to write, or
#: None to leave the whole frame to pandas.
TextRule = Callable[[list[str], str], "list[str] | None"]


def csv_text(frame: pd.DataFrame, *, labels: list[str] | None = None, texts: TextRule | None = None) -> str | None:
    """``frame.to_csv(index=False)`` (QUOTE_MINIMAL, ``os.linesep``), or None when not handled here.

    ``labels`` replaces the header's texts; ``texts`` rewrites each text column's cells first.
    """
    if frame.shape[1] < 2 or isinstance(frame.columns, pd.MultiIndex):
        return None  # one column: the csv module writes a lone empty field as ""
    labels = list(frame.columns) if labels is None else labels
    if len(labels) != frame.shape[1] or not all(type(c) is str for c in labels):
        return None
    fields: list[list[str]] = []
    for j in range(frame.shape[1]):
        cells = _column_fields(frame.iloc[:, j], texts)
        if cells is None:
            return None
        fields.append(cells)
    quoted_labels = _quoted(labels, _SEP.join(labels))
    lines = [",".join(quoted_labels)]
    if len(frame):
        lines.extend(map(",".join, zip(*fields)))
    return os.linesep.join(lines) + os.linesep


def _column_fields(col: pd.Series, rule: TextRule | None) -> list[str] | None:
    dtype = col.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return _integers(col.to_numpy())
    if dtype == np.bool_:
        return col.to_numpy().astype(str).tolist()
    if dtype == np.float64:
        values = col.to_numpy()
        out = list(map(repr, values.tolist()))  # == values.astype(str), the text pandas writes
        if np.isnan(values).any():
            for i in np.flatnonzero(np.isnan(values)).tolist():
                out[i] = ""
        return out
    if (isinstance(dtype, np.dtype) and dtype.kind == "O") or isinstance(dtype, pd.StringDtype):
        texts = _texts(col)
        if texts is None:
            return None
        cells, joined = texts
        if rule is not None:
            ruled = rule(cells, joined)
            if ruled is None:
                return None
            if ruled is not cells:
                cells, joined = ruled, _SEP.join(ruled)
        return _quoted(cells, joined)
    return None


_SMALL_RANGE = 4096


def _integers(values: np.ndarray) -> list[str]:
    """``str`` of each integer; a narrow range (flags, counts) by table look-up."""
    if values.size and int(values.max()) - int(values.min()) < _SMALL_RANGE:
        lo = int(values.min())
        table = np.array([str(v) for v in range(lo, int(values.max()) + 1)], dtype=object)
        return table[values - lo].tolist()
    return list(map(str, values.tolist()))


def _texts(col: pd.Series) -> tuple[list[str], str] | None:
    """The column's cells as text (missing cells empty) and joined by NUL; None if a cell is not text."""
    values = col.to_numpy(dtype=object).tolist()
    try:
        return values, _SEP.join(values)
    except TypeError:
        pass
    missing = col.isna().to_numpy()
    cells: list[str] = []
    for v, m in zip(values, missing.tolist()):
        if type(v) is str:
            cells.append(v)
        elif m:
            cells.append("")
        else:
            return None
    return cells, _SEP.join(cells)


def _quoted(cells: list[str], joined: str) -> list[str]:
    """``cells`` with each that holds a special character formatted by the csv module (once per distinct text)."""
    if not any(ch in joined for ch in _SPECIAL_CHARS):  # substring tests: far faster than a regex here
        return cells
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=os.linesep)
    end = 1 + len(os.linesep)
    fields: dict[str, str] = {}
    for v in dict.fromkeys(cells):
        if _SPECIAL.search(v):
            buf.seek(0)
            buf.truncate()
            writer.writerow([v, ""])  # two fields, so an empty one is never written as ""
            fields[v] = buf.getvalue()[:-end]  # without the "," before the empty field and the line end
    return list(map(fields.get, cells, cells))
