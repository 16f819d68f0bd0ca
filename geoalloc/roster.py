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
        path = Path(path)
        self.rejects.to_csv(path, index=False, encoding="utf-8")
        return path


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
    """
    df = raw.copy()
    for col in KNOWN_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    df = df.fillna("").astype(str).apply(lambda s: s.str.strip())
    df["row"] = np.arange(2, len(df) + 2)

    errors: list[RowError] = []
    bad: dict[int, RowError] = {}

    def reject(i: int, fld: str, reason: str) -> None:
        err = RowError(int(df.at[i, "row"]), df.at[i, "member_id"], fld, reason)
        errors.append(err)
        bad.setdefault(i, err)

    known_districts = set(gaz.district_names())
    from geoalloc.policies import other_city

    elsewhere = other_city(df)  # rows of another city (a national roster): no Shenzhen checks
    first_seen: dict[str, int] = {}
    lon_out = np.full(len(df), np.nan)
    lat_out = np.full(len(df), np.nan)
    status_out = [""] * len(df)
    full_out = np.ones(len(df), dtype=int)
    weight_out = np.ones(len(df), dtype=int)
    frozen_out = np.zeros(len(df), dtype=int)
    district_out = [""] * len(df)

    for pos, i in enumerate(df.index):
        mid = df.at[i, "member_id"]
        if not mid:
            reject(i, "member_id", "empty: every row needs a unique member_id")
        elif mid in first_seen:
            reject(i, "member_id", f"duplicate of row {first_seen[mid]}")
        else:
            first_seen[mid] = int(df.at[i, "row"])

        status = df.at[i, "status"].lower()
        if status == "":
            status_out[pos] = MemberStatus.ACTIVE.value
        elif status in _STATUS_ALIASES:
            status_out[pos] = _STATUS_ALIASES[status].value
        else:
            reject(i, "status", f"unknown status {df.at[i, 'status']!r} (expected active, lost_contact or transfer_out)")

        for fld, out, default in (("full_member", full_out, 1), ("frozen", frozen_out, 0)):
            value = df.at[i, fld].lower()
            if value == "":
                out[pos] = default
            elif value in _TRUE:
                out[pos] = 1
            elif value in _FALSE:
                out[pos] = 0
            else:
                reject(i, fld, f"expected 1 or 0, got {df.at[i, fld]!r}")

        weight = df.at[i, "weight"]
        if weight:
            try:
                w = float(weight)
                if w < 1 or w != int(w):
                    raise ValueError
                weight_out[pos] = int(w)
            except ValueError:
                reject(i, "weight", f"expected a whole number of members >= 1, got {weight!r}")

        district = df.at[i, "district_zh"]
        if district and elsewhere[pos]:
            district_out[pos] = unicodedata.normalize("NFKC", district).replace(" ", "")
        elif district:
            canon = _canonical_district(district, known_districts)
            if canon is None:
                reject(i, "district_zh", f"unknown district {district!r} (expected one of {', '.join(sorted(known_districts))})")
            else:
                district_out[pos] = canon

        lon_s, lat_s = df.at[i, "lon"], df.at[i, "lat"]
        has_lon, has_lat = bool(lon_s), bool(lat_s)
        if not has_lon and not has_lat:
            if not df.at[i, "address"]:
                reject(i, "address", "neither an address nor coordinates (lon, lat) are given")
            continue
        if has_lon != has_lat:
            reject(i, "lat" if has_lon else "lon", "lon and lat must be given together")
            continue
        try:
            lon, lat = float(lon_s), float(lat_s)
        except ValueError:
            fld = "lon" if not _is_number(lon_s) else "lat"
            reject(i, fld, f"not a number: {df.at[i, fld]!r}")
            continue
        if not (-180 <= lon <= 180) or not np.isfinite(lon):
            reject(i, "lon", f"{lon} is out of range (-180..180)")
            continue
        if not (-90 <= lat <= 90) or not np.isfinite(lat):
            reject(i, "lat", f"{lat} is out of range (-90..90)")
            continue
        datum_s = df.at[i, "datum"].lower()
        if datum_s not in _DATUM_ALIASES:
            reject(i, "datum", f"unknown datum {df.at[i, 'datum']!r} (expected wgs84, gcj02 or bd09)")
            continue
        wlon, wlat = to_wgs84(lon, lat, _DATUM_ALIASES[datum_s])
        lon_out[pos], lat_out[pos] = round(float(wlon), 7), round(float(wlat), 7)

    # Outside-the-city check, vectorised over the rows that have coordinates.
    has_xy = ~np.isnan(lon_out)
    home = has_xy & ~elsewhere
    if home.any():
        located = gaz.locate_districts(lon_out[home], lat_out[home]).to_numpy()
        for pos, where in zip(np.flatnonzero(home), located):
            i = df.index[pos]
            if where is None:
                reject(i, "lon", f"point ({lon_out[pos]:.6f}, {lat_out[pos]:.6f}) WGS-84 lies outside Shenzhen")
            else:
                # The point is where the member lives: it decides the district over a stated one.
                district_out[pos] = where

    df["lon"], df["lat"] = lon_out, lat_out
    df["status"] = status_out
    df["full_member"], df["weight"], df["frozen"] = full_out, weight_out, frozen_out
    df["district_zh"] = district_out
    df["datum"] = [d.lower() or ("wgs84" if x else "") for d, x in zip(df["datum"], has_xy)]

    reject_pos = sorted(bad)
    rejects = raw.loc[reject_pos].copy() if reject_pos else raw.iloc[0:0].copy()
    rejects.insert(0, "reason", [bad[i].reason for i in reject_pos])
    rejects.insert(0, "field", [bad[i].field for i in reject_pos])
    rejects.insert(0, "row", [bad[i].row for i in reject_pos])
    members = df.drop(index=reject_pos).reset_index(drop=True)
    cols = ["row"] + KNOWN_COLUMNS + [c for c in members.columns if c not in KNOWN_COLUMNS and c != "row"]
    return RosterResult(members=members[cols], rejects=rejects.reset_index(drop=True), errors=errors)


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
