"""Reading and validating member rosters (CSV or Excel).

A roster is typed by people, so every row is checked and every problem is reported with
the row number (as a spreadsheet shows it: the header is row 1) and the field at fault.
A bad row is never dropped silently: it goes to ``RosterResult.rejects`` with its reason,
and can be written to a rejects file beside the output. Coordinates given in GCJ-02 or
BD-09 are converted to WGS-84 here, once, so that nothing downstream sees another datum.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from geoalloc import districts as gaz
from geoalloc.geocode.datum import to_wgs84
from geoalloc.model import Datum, MemberStatus

#: Columns the reader understands; any others are kept as they are.
KNOWN_COLUMNS = [
    "member_id", "name", "address", "lon", "lat", "datum", "district_zh", "industry",
    "full_member", "status", "current_branch", "weight", "frozen", "theme", "role", "group_id",
]

_TRUE = {"1", "1.0", "true", "yes", "y", "是", "正式", "full"}
_FALSE = {"0", "0.0", "false", "no", "n", "否", "预备", "probationary"}
_STATUS_ALIASES = {
    "active": MemberStatus.ACTIVE, "正常": MemberStatus.ACTIVE, "在册": MemberStatus.ACTIVE,
    "lost_contact": MemberStatus.LOST_CONTACT, "失联": MemberStatus.LOST_CONTACT,
    "transfer_out": MemberStatus.TRANSFER_OUT, "转出": MemberStatus.TRANSFER_OUT,
}
_DATUM_ALIASES = {"wgs84": Datum.WGS84, "wgs-84": Datum.WGS84, "epsg:4326": Datum.WGS84, "": Datum.WGS84,
                  "gcj02": Datum.GCJ02, "gcj-02": Datum.GCJ02, "amap": Datum.GCJ02,
                  "bd09": Datum.BD09, "bd-09": Datum.BD09, "baidu": Datum.BD09}


class RosterError(ValueError):
    """The file as a whole cannot be read (unreadable, or a required column is missing)."""


@dataclass(frozen=True)
class RowError:
    """One problem with one row: spreadsheet row number, member id, field, reason."""

    row: int
    member_id: str
    field: str
    reason: str

    def __str__(self) -> str:
        who = f" (member {self.member_id})" if self.member_id else ""
        return f"row {self.row}{who}, field '{self.field}': {self.reason}"


@dataclass
class RosterResult:
    """Valid members (normalised, WGS-84) and rejected rows with their reasons."""

    members: pd.DataFrame
    rejects: pd.DataFrame
    errors: list[RowError] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        status = self.members["status"].value_counts().to_dict() if len(self.members) else {}
        return {
            "rows": len(self.members) + len(self.rejects),
            "valid": len(self.members),
            "rejected": len(self.rejects),
            "by_status": {str(k): int(v) for k, v in status.items()},
            "with_coordinates": int(self.members["lon"].notna().sum()) if len(self.members) else 0,
        }

    def write_rejects(self, path: str | Path) -> Path:
        """Write the rejected rows, with row number, field and reason first."""
        from geoalloc.outputs import write_csv  # roster text: neutralised so no cell becomes a formula

        return write_csv(self.rejects, path)


def read_roster(source: str | Path | bytes | BinaryIO, filename: str | None = None) -> RosterResult:
    """Read a CSV or .xlsx roster and validate it.

    ``source`` is a path, raw bytes or a binary file object; ``filename`` tells the format
    when ``source`` is not a path (``.xlsx``/``.xls`` for Excel, anything else is CSV).
    """
    name = str(source) if isinstance(source, (str, Path)) else (filename or "roster.csv")
    raw = _read_table(source, name)
    return validate_roster(raw)


def _read_table(source: str | Path | bytes | BinaryIO, name: str) -> pd.DataFrame:
    excel = name.lower().endswith((".xlsx", ".xlsm", ".xls"))
    data: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        if excel:
            df = pd.read_excel(data, dtype=str, keep_default_na=False, engine="openpyxl")
        else:
            df = pd.read_csv(data, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=False)
    except FileNotFoundError as exc:
        raise RosterError(f"{name}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise RosterError(f"{name}: not UTF-8 text (save the CSV as UTF-8, or use .xlsx)") from exc
    except Exception as exc:  # pandas/openpyxl raise many types for a broken file
        raise RosterError(f"{name}: cannot be read as {'Excel' if excel else 'CSV'}: {exc}") from exc
    df.columns = [unicodedata.normalize("NFKC", str(c)).strip().lower() for c in df.columns]
    if "member_id" not in df.columns:
        raise RosterError(f"{name}: required column 'member_id' is missing (columns found: {', '.join(df.columns)})")
    return df


def validate_roster(raw: pd.DataFrame) -> RosterResult:
    """Check every row; return valid members in canonical form and the rejects.

    Canonical columns: member_id, name, address, lon, lat (WGS-84, NaN when absent), datum
    (as given), district_zh, industry, full_member (0/1), status, current_branch, weight (>=1),
    frozen (0/1), theme, role, group_id, row (source row number); other columns are kept.

    Every check runs on whole columns, and a text rule once per distinct value of its column; a
    row's first problem, in the order of the checks below, is its reason in ``rejects``, and every
    problem is in ``errors``.
    """
    df = raw.copy()
    for col in KNOWN_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    for j in range(df.shape[1]):
        df.isetitem(j, _stripped_text(df.iloc[:, j]))
    n = len(df)
    df["row"] = np.arange(2, n + 2)
    rows = df["row"].to_numpy()
    text = {c: df[c].to_numpy(dtype=object) for c in KNOWN_COLUMNS}
    problems: list[tuple[int, int, str, str]] = []  # (position, check order, field, reason)

    def flag(mask: np.ndarray, order: int, fld: str, reason: str | Callable[[int], str]) -> None:
        pos = np.flatnonzero(mask)
        if isinstance(reason, str):
            problems.extend((p, order, fld, reason) for p in pos.tolist())
        else:
            problems.extend((p, order, fld, reason(p)) for p in pos.tolist())

    # member_id: present and unique (the first occurrence is kept).
    mid = text["member_id"]
    flag(mid == "", 0, "member_id", "empty: every row needs a unique member_id")
    codes, _ = pd.factorize(mid)  # codes are numbered in order of first appearance
    first = codes > np.concatenate(([-1], np.maximum.accumulate(codes)[:-1])) if n else np.zeros(0, dtype=bool)
    dup = ~first & (mid != "")
    if dup.any():
        first_row = rows[np.flatnonzero(first)][codes]
        flag(dup, 0, "member_id", lambda p: f"duplicate of row {first_row[p]}")

    # status
    status_raw = text["status"]
    aliases = {k: v.value for k, v in _STATUS_ALIASES.items()}
    status_out = _per_distinct(status_raw, lambda v: MemberStatus.ACTIVE.value if v == "" else aliases.get(v.lower()))
    bad_status = status_out == None  # noqa: E711 - elementwise over an object array
    flag(bad_status, 1, "status",
         lambda p: f"unknown status {status_raw[p]!r} (expected active, lost_contact or transfer_out)")
    status_out[bad_status] = ""

    # flags
    flags_out: dict[str, np.ndarray] = {}
    for order, (fld, default) in enumerate((("full_member", 1), ("frozen", 0)), start=2):
        values = text[fld]
        parsed = _per_distinct(values, lambda v: _flag_value(v.lower()))
        bad = parsed == None  # noqa: E711
        flag(bad, order, fld, _cell_message("expected 1 or 0, got {!r}", values))
        parsed[parsed == -1] = default
        parsed[bad] = default
        flags_out[fld] = parsed.astype(int)

    # weight: a whole number >= 1 when given
    weight_s = text["weight"]
    w = _numbers(weight_s)
    given_w = weight_s != ""
    good_w = np.isfinite(w) & (w >= 1) & (np.floor(np.where(np.isfinite(w), w, 0)) == w)
    bad_w = given_w & ~good_w
    flag(bad_w, 4, "weight", lambda p: f"expected a whole number of members >= 1, got {weight_s[p]!r}")
    weight_out = np.where(given_w & good_w, np.where(good_w, w, 1), 1).astype(int)

    # district_zh (canonicalised once per distinct value)
    known_districts = set(gaz.district_names())
    district_s = text["district_zh"]
    canon = _per_distinct(district_s, lambda v: _canonical_district(v, known_districts) if v else "")
    from geoalloc.rules import other_city

    elsewhere = other_city(df)  # rows of another city (a national roster): no Shenzhen checks
    bad_d = (canon == None) & ~elsewhere  # noqa: E711
    district_out = np.where(canon == None, "", canon).astype(object)  # noqa: E711
    if elsewhere.any():
        district_out[elsewhere] = [unicodedata.normalize("NFKC", v).replace(" ", "") for v in district_s[elsewhere]]
    expected = ", ".join(sorted(known_districts))
    flag(bad_d, 5, "district_zh", lambda p: f"unknown district {district_s[p]!r} (expected one of {expected})")

    # coordinates: one problem per row at most, in this order
    lon_s, lat_s = text["lon"], text["lat"]
    has_lon, has_lat = lon_s != "", lat_s != ""
    no_xy = ~has_lon & ~has_lat
    flag(no_xy & (text["address"] == ""), 6, "address", "neither an address nor coordinates (lon, lat) are given")
    half = has_lon != has_lat
    flag(half & has_lon, 6, "lat", "lon and lat must be given together")
    flag(half & has_lat, 6, "lon", "lon and lat must be given together")
    both = has_lon & has_lat
    lon_v = np.where(both, _numbers(np.where(both, lon_s, "")), np.nan)
    lat_v = np.where(both, _numbers(np.where(both, lat_s, "")), np.nan)
    lon_num = ~np.isnan(lon_v) | _per_distinct(lon_s, lambda v: v.lower() in _NAN_TEXT).astype(bool)
    lat_num = ~np.isnan(lat_v) | _per_distinct(lat_s, lambda v: v.lower() in _NAN_TEXT).astype(bool)
    not_num = both & ~(lon_num & lat_num)
    flag(not_num & ~lon_num, 6, "lon", lambda p: f"not a number: {lon_s[p]!r}")
    flag(not_num & lon_num, 6, "lat", lambda p: f"not a number: {lat_s[p]!r}")
    ok = both & ~not_num
    with np.errstate(invalid="ignore"):
        lon_bad = ok & ~((lon_v >= -180) & (lon_v <= 180) & np.isfinite(lon_v))
    flag(lon_bad, 6, "lon", lambda p: f"{lon_v[p]} is out of range (-180..180)")
    ok &= ~lon_bad
    with np.errstate(invalid="ignore"):
        lat_bad = ok & ~((lat_v >= -90) & (lat_v <= 90) & np.isfinite(lat_v))
    flag(lat_bad, 6, "lat", lambda p: f"{lat_v[p]} is out of range (-90..90)")
    ok &= ~lat_bad
    datum_s = text["datum"]
    datum_low = _per_distinct(datum_s, str.lower)
    datum_enum = _per_distinct(datum_s, lambda v: _DATUM_ALIASES.get(v.lower(), Datum.WGS84).value)
    datum_bad = ok & ~_per_distinct(datum_s, lambda v: v.lower() in _DATUM_ALIASES).astype(bool)
    flag(datum_bad, 6, "datum", lambda p: f"unknown datum {datum_s[p]!r} (expected wgs84, gcj02 or bd09)")
    ok &= ~datum_bad
    lon_out = np.full(n, np.nan)
    lat_out = np.full(n, np.nan)
    for d in {str(x) for x in datum_enum[ok]}:
        sel = ok & (datum_enum == d)
        wlon, wlat = to_wgs84(lon_v[sel], lat_v[sel], d)
        lon_out[sel], lat_out[sel] = np.round(np.asarray(wlon, dtype=float), 7), np.round(np.asarray(wlat, dtype=float), 7)

    # Outside-the-city check over the rows that have coordinates.
    has_xy = ~np.isnan(lon_out) & ~elsewhere
    outside_problems: list[tuple[int, int, str, str]] = []
    if has_xy.any():
        idx = np.flatnonzero(has_xy)
        located = gaz.locate_districts(lon_out[idx], lat_out[idx]).to_numpy()
        outside = located == None  # noqa: E711
        outside_problems = [(p, 7, "lon", f"point ({lon_out[p]:.6f}, {lat_out[p]:.6f}) WGS-84 lies outside Shenzhen")
                            for p in idx[outside].tolist()]
        # The point is where the member lives: it decides the district over a stated one.
        district_out[idx[~outside]] = located[~outside]

    problems.sort()
    found = problems + outside_problems
    errors = [RowError(int(rows[p]), str(mid[p]), f, r) for p, _, f, r in found]
    first_error: dict[int, RowError] = {}
    for (p, _, _, _), err in zip(found, errors):
        first_error.setdefault(p, err)

    df["lon"], df["lat"] = lon_out, lat_out
    df["status"] = status_out
    df["full_member"], df["weight"], df["frozen"] = flags_out["full_member"], weight_out, flags_out["frozen"]
    df["district_zh"] = district_out
    df["datum"] = np.where(datum_low != "", datum_low, np.where(has_xy, "wgs84", ""))

    reject_pos = sorted(first_error)
    rejects = raw.iloc[reject_pos].copy() if reject_pos else raw.iloc[0:0].copy()
    rejects.insert(0, "reason", [first_error[i].reason for i in reject_pos])
    rejects.insert(0, "field", [first_error[i].field for i in reject_pos])
    rejects.insert(0, "row", [first_error[i].row for i in reject_pos])
    cols = ["row"] + KNOWN_COLUMNS + [c for c in df.columns if c not in KNOWN_COLUMNS and c != "row"]
    if reject_pos:
        keep = np.ones(n, dtype=bool)
        keep[reject_pos] = False
        members = df.loc[keep, cols]
    else:
        members = df[cols]
    return RosterResult(members=members.reset_index(drop=True), rejects=rejects.reset_index(drop=True), errors=errors)


def _cell_message(template: str, values: np.ndarray) -> Callable[[int], str]:
    """The reason for the row at a position, quoting that row's cell."""
    return lambda p: template.format(values[p])


def _per_distinct(values: np.ndarray, rule: Callable[[str], Any]) -> np.ndarray:
    """``rule`` of each cell as an object array, evaluated once per distinct text."""
    codes, distinct = pd.factorize(values)
    return np.array([rule(v) for v in distinct] + [None], dtype=object)[codes]


def _numbers(values: np.ndarray) -> np.ndarray:
    """``pd.to_numeric(values, errors="coerce")`` as floats, parsed once per distinct text."""
    codes, distinct = pd.factorize(values)
    parsed = pd.to_numeric(pd.Series(list(distinct) + [""], dtype="str"), errors="coerce")
    return parsed.to_numpy(dtype=float)[codes]


def _flag_value(low: str) -> int | None:
    """1 or 0 for a yes/no cell, -1 when empty (the default applies), None when neither."""
    if low in _TRUE:
        return 1
    if low in _FALSE:
        return 0
    return -1 if low == "" else None


_NAN_TEXT = ["nan", "+nan", "-nan"]
_TEXT = pd.StringDtype(na_value=np.nan)  # pandas' "str" dtype, what the reader gives


def _stripped_text(col: pd.Series) -> pd.Series:
    """``col.fillna("").astype(str).str.strip()`` in one pass over the cells (all text: in C)."""
    cells = col.tolist()
    try:
        out = list(map(str.strip, cells))
    except TypeError:  # a missing or non-text cell
        out = [v.strip() if type(v) is str else ("" if _missing(v) else str(v).strip()) for v in cells]
    else:
        if col.dtype == _TEXT and out == cells:  # nothing to strip (strip returns the same objects)
            return col
    return pd.Series(out, index=col.index, dtype=_TEXT)


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _canonical_district(text: str, known: set[str]) -> str | None:
    """Accept a district with or without its 区 suffix, and the old/short forms of 大鹏新区."""
    t = unicodedata.normalize("NFKC", text).replace(" ", "")
    t = t.removeprefix("深圳市").removeprefix("深圳")
    if t in known:
        return t
    for cand in (t + "区", t + "新区"):
        if cand in known:
            return cand
    return None
