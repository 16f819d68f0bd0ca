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

    Every check runs on whole columns (a 100,000-row roster takes a fraction of a second); a row's
    first problem, in the order of the checks below, is its reason in ``rejects``, and every
    problem is in ``errors``.
    """
    df = raw.copy()
    for col in KNOWN_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    for col in df.columns:
        df[col] = _stripped_text(df[col])
    n = len(df)
    df["row"] = np.arange(2, n + 2)
    rows = df["row"].to_numpy()
    problems: list[tuple[int, int, str, str]] = []  # (position, check order, field, reason)

    def flag(mask: np.ndarray | pd.Series, order: int, fld: str, reasons: Any) -> None:
        m = np.asarray(mask, dtype=bool)
        if not m.any():
            return
        pos = np.flatnonzero(m)
        texts = [reasons] * len(pos) if isinstance(reasons, str) else list(np.asarray(reasons, dtype=object)[pos])
        problems.extend((int(p), order, fld, str(t)) for p, t in zip(pos, texts))

    # member_id: present and unique (the first occurrence is kept).
    mid = df["member_id"]
    flag(mid == "", 0, "member_id", "empty: every row needs a unique member_id")
    dup = mid.duplicated(keep="first").to_numpy() & (mid != "").to_numpy()
    if dup.any():
        first_row = df.groupby("member_id", sort=False)["row"].transform("first").to_numpy()
        flag(dup, 0, "member_id", np.array([f"duplicate of row {r}" for r in first_row], dtype=object))

    # status
    status_raw = df["status"]
    status_low = status_raw.str.lower()
    aliases = {k: v.value for k, v in _STATUS_ALIASES.items()}
    status_out = status_low.map(aliases)
    status_out = status_out.where(status_low != "", MemberStatus.ACTIVE.value)
    bad_status = status_out.isna().to_numpy()
    flag(bad_status, 1, "status", np.array(
        [f"unknown status {v!r} (expected active, lost_contact or transfer_out)" for v in status_raw], dtype=object)
        if bad_status.any() else "")
    status_out = status_out.fillna("")

    # flags
    flags_out: dict[str, np.ndarray] = {}
    for order, (fld, default) in enumerate((("full_member", 1), ("frozen", 0)), start=2):
        low = df[fld].str.lower()
        is_true, is_false, empty = low.isin(_TRUE).to_numpy(), low.isin(_FALSE).to_numpy(), (low == "").to_numpy()
        out = np.where(is_true, 1, np.where(is_false, 0, default)).astype(int)
        bad = ~(is_true | is_false | empty)
        if bad.any():
            flag(bad, order, fld, np.array([f"expected 1 or 0, got {v!r}" for v in df[fld]], dtype=object))
        flags_out[fld] = out

    # weight: a whole number >= 1 when given
    weight_s = df["weight"]
    w = pd.to_numeric(weight_s, errors="coerce").to_numpy(dtype=float)
    given_w = (weight_s != "").to_numpy()
    good_w = np.isfinite(w) & (w >= 1) & (np.floor(np.where(np.isfinite(w), w, 0)) == w)
    bad_w = given_w & ~good_w
    if bad_w.any():
        flag(bad_w, 4, "weight", np.array(
            [f"expected a whole number of members >= 1, got {v!r}" for v in weight_s], dtype=object))
    weight_out = np.where(given_w & good_w, np.where(good_w, w, 1), 1).astype(int)

    # district_zh (canonicalised once per distinct value)
    known_districts = set(gaz.district_names())
    district_s = df["district_zh"]
    canon = {v: _canonical_district(v, known_districts) for v in district_s.unique() if v}
    district_out = district_s.map({v: canon.get(v) or "" for v in district_s.unique()}).to_numpy(dtype=object)
    from geoalloc.rules import other_city

    elsewhere = other_city(df)  # rows of another city (a national roster): no Shenzhen checks
    if elsewhere.any():
        district_out[elsewhere] = [unicodedata.normalize("NFKC", v).replace(" ", "") for v in district_s[elsewhere]]
    bad_d = district_s.isin([v for v in district_s.unique() if v and canon.get(v) is None]).to_numpy() & ~elsewhere
    if bad_d.any():
        flag(bad_d, 5, "district_zh", np.array(
            [f"unknown district {v!r} (expected one of {', '.join(sorted(known_districts))})" for v in district_s],
            dtype=object))

    # coordinates: one problem per row at most, in this order
    lon_s, lat_s = df["lon"], df["lat"]
    has_lon, has_lat = (lon_s != "").to_numpy(), (lat_s != "").to_numpy()
    no_xy = ~has_lon & ~has_lat
    flag(no_xy & (df["address"] == "").to_numpy(), 6, "address", "neither an address nor coordinates (lon, lat) are given")
    half = has_lon != has_lat
    flag(half & has_lon, 6, "lat", "lon and lat must be given together")
    flag(half & has_lat, 6, "lon", "lon and lat must be given together")
    both = has_lon & has_lat
    lon_v = pd.to_numeric(lon_s.where(both, ""), errors="coerce").to_numpy(dtype=float)
    lat_v = pd.to_numeric(lat_s.where(both, ""), errors="coerce").to_numpy(dtype=float)
    lon_num = ~np.isnan(lon_v) | lon_s.str.lower().isin(_NAN_TEXT).to_numpy()
    lat_num = ~np.isnan(lat_v) | lat_s.str.lower().isin(_NAN_TEXT).to_numpy()
    not_num = both & ~(lon_num & lat_num)
    flag(not_num & ~lon_num, 6, "lon", np.array([f"not a number: {v!r}" for v in lon_s], dtype=object)
         if (not_num & ~lon_num).any() else "")
    flag(not_num & lon_num, 6, "lat", np.array([f"not a number: {v!r}" for v in lat_s], dtype=object)
         if (not_num & lon_num).any() else "")
    ok = both & ~not_num
    with np.errstate(invalid="ignore"):
        lon_bad = ok & ~((lon_v >= -180) & (lon_v <= 180) & np.isfinite(lon_v))
    flag(lon_bad, 6, "lon", np.array([f"{v} is out of range (-180..180)" for v in lon_v], dtype=object)
         if lon_bad.any() else "")
    ok &= ~lon_bad
    with np.errstate(invalid="ignore"):
        lat_bad = ok & ~((lat_v >= -90) & (lat_v <= 90) & np.isfinite(lat_v))
    flag(lat_bad, 6, "lat", np.array([f"{v} is out of range (-90..90)" for v in lat_v], dtype=object)
         if lat_bad.any() else "")
    ok &= ~lat_bad
    datum_s = df["datum"]
    datum_low = datum_s.str.lower()
    datum_bad = ok & ~datum_low.isin(list(_DATUM_ALIASES)).to_numpy()
    flag(datum_bad, 6, "datum", np.array(
        [f"unknown datum {v!r} (expected wgs84, gcj02 or bd09)" for v in datum_s], dtype=object)
        if datum_bad.any() else "")
    ok &= ~datum_bad
    lon_out = np.full(n, np.nan)
    lat_out = np.full(n, np.nan)
    datum_enum = datum_low.map({v: _DATUM_ALIASES.get(v, Datum.WGS84).value for v in datum_low.unique()}
                               ).to_numpy(dtype=object)
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
        for pos, where in zip(idx, located):
            if where is None:
                outside_problems.append((int(pos), 7, "lon",
                                         f"point ({lon_out[pos]:.6f}, {lat_out[pos]:.6f}) WGS-84 lies outside Shenzhen"))
            else:
                # The point is where the member lives: it decides the district over a stated one.
                district_out[pos] = where

    problems.sort()
    mids = mid.to_numpy(dtype=object)
    errors = [RowError(int(rows[p]), str(mids[p]), f, r) for p, _, f, r in problems + sorted(outside_problems)]
    first_error: dict[int, RowError] = {}
    for (p, _, _, _), err in zip(problems + sorted(outside_problems), errors):
        first_error.setdefault(p, err)

    df["lon"], df["lat"] = lon_out, lat_out
    df["status"] = status_out.to_numpy(dtype=object)
    df["full_member"], df["weight"], df["frozen"] = flags_out["full_member"], weight_out, flags_out["frozen"]
    df["district_zh"] = district_out
    df["datum"] = np.where(datum_low != "", datum_low, np.where(has_xy, "wgs84", ""))

    reject_pos = sorted(first_error)
    rejects = raw.iloc[reject_pos].copy() if reject_pos else raw.iloc[0:0].copy()
    rejects.insert(0, "reason", [first_error[i].reason for i in reject_pos])
    rejects.insert(0, "field", [first_error[i].field for i in reject_pos])
    rejects.insert(0, "row", [first_error[i].row for i in reject_pos])
    keep = np.ones(n, dtype=bool)
    keep[reject_pos] = False
    members = df.loc[keep].reset_index(drop=True)
    cols = ["row"] + KNOWN_COLUMNS + [c for c in members.columns if c not in KNOWN_COLUMNS and c != "row"]
    return RosterResult(members=members[cols], rejects=rejects.reset_index(drop=True), errors=errors)


_NAN_TEXT = ["nan", "+nan", "-nan"]


def _stripped_text(col: pd.Series) -> pd.Series:
    """``col.fillna("").astype(str).str.strip()`` in one pass over the cells (a third of the time)."""
    out = [v.strip() if type(v) is str else ("" if _missing(v) else str(v).strip()) for v in col.tolist()]
    return pd.Series(out, index=col.index, dtype="str")


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
