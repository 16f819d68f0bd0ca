"""Geocoding a whole roster (a DataFrame) and summarising the outcome.

Rows that already carry coordinates keep them (precision ``exact``); the rest are geocoded
from ``address``: by an online provider when one is given (it is off by default), else, or
when the provider has nothing, offline. No row is ever dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from geoalloc.forked import forked_map, shared
from geoalloc.geocode.offline import OfflineGeocoder, jitter_key
from geoalloc.geocode.parser import Parsed
from geoalloc.model import GeoPrecision, GeoStatus

if TYPE_CHECKING:  # the online providers' HTTP and SQLite stack is imported only when one is used
    from geoalloc.geocode.providers import Provider

__all__ = ["GEO_COLUMNS", "geocode_frame", "place_members", "placement_counts", "summarise"]

GEO_COLUMNS = ["lon", "lat", "geo_precision", "geo_district_zh", "geo_subdistrict_zh", "geo_status", "geo_reason"]
_CHUNK = 2000
_PLACE_CHUNK = 5000
# Rows to geocode per extra process at least: below this, starting a process costs more than it saves.
PARALLEL_MIN_ROWS = 20_000


def _given_coordinates(df: pd.DataFrame) -> np.ndarray:
    if "lon" not in df.columns or "lat" not in df.columns:
        return np.zeros(len(df), dtype=bool)
    lon = pd.to_numeric(df["lon"], errors="coerce").to_numpy(dtype=float)
    lat = pd.to_numeric(df["lat"], errors="coerce").to_numpy(dtype=float)
    return np.isfinite(lon) & np.isfinite(lat)


def _provider_parse(provider: Provider, address: str, offline: Parsed, state: dict[str, str]) -> Parsed | None:
    """Ask the provider; None keeps the offline parse. A fatal provider error disables it for the run."""
    from geoalloc.geocode.providers import ProviderError

    if "disabled" in state or offline.status == GeoStatus.OUT_OF_CITY or not address.strip():
        return None
    try:
        r = provider.geocode(address)
    except ProviderError as exc:
        if exc.fatal:
            state["disabled"] = str(exc)
        return None
    if r is None or r.lon is None or r.lat is None:
        return None
    return Parsed(r.status, r.precision, r.lon, r.lat, 0.0, r.district_zh, r.subdistrict_zh, r.community_zh, r.reason)


def geocode_frame(
    df: pd.DataFrame,
    *,
    geocoder: OfflineGeocoder | None = None,
    provider: Provider | None = None,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> pd.DataFrame:
    """A copy of ``df`` with lon, lat (WGS-84) and the geo_* columns filled for every row.

    ``progress`` is called with the number of rows just finished (an increment), in chunks.
    ``workers``: processes that geocode at once (forked from this one, on platforms that fork; one
    per :data:`PARALLEL_MIN_ROWS` rows at most; never with an online provider). The result does not
    depend on it. Only for a process that is not serving other threads (a command, a batch job).
    Given coordinates must already be WGS-84 (the roster reader converts them). A row's
    ``district_zh``, when present, resolves addresses that name no district themselves.
    """
    from geoalloc.districts import locate_districts

    out = df.copy()
    n = len(out)
    geocoder = geocoder or OfflineGeocoder()
    given = _given_coordinates(out)
    columns = _empty_columns(n)
    lon, lat, precision, status, district, subdistrict, reason = columns

    from geoalloc.rules import other_city

    elsewhere = other_city(out)  # rows of another city (a national roster): taken as given
    if elsewhere.any():
        stated = out["district_zh"].astype(str).to_numpy() if "district_zh" in out.columns else np.full(n, "")
        ok = elsewhere & given
        lon[ok] = pd.to_numeric(out["lon"], errors="coerce").to_numpy(dtype=float)[ok]
        lat[ok] = pd.to_numeric(out["lat"], errors="coerce").to_numpy(dtype=float)[ok]
        district[elsewhere] = [d or None for d in stated[elsewhere]]
        precision[elsewhere] = np.where(ok[elsewhere], GeoPrecision.EXACT.value, GeoPrecision.NONE.value)
        status[elsewhere] = np.where(ok[elsewhere], GeoStatus.OK.value, GeoStatus.FAILED.value)
        reason[elsewhere] = np.where(ok[elsewhere], "coordinates given in the roster (city_zh outside Shenzhen)",
                                     "outside Shenzhen (city_zh) and no coordinates: the offline gazetteer covers Shenzhen only")
        if progress is not None:
            progress(int(elsewhere.sum()))
        given = given & ~elsewhere

    gi = np.flatnonzero(given)
    if gi.size:
        lon[gi] = pd.to_numeric(out["lon"], errors="coerce").to_numpy(dtype=float)[gi]
        lat[gi] = pd.to_numeric(out["lat"], errors="coerce").to_numpy(dtype=float)[gi]
        found = np.array(locate_districts(lon[gi].tolist(), lat[gi].tolist()).tolist(), dtype=object)
        inside = np.array([d is not None for d in found], dtype=bool)
        district[gi] = found
        precision[gi] = GeoPrecision.EXACT.value
        status[gi] = np.where(inside, GeoStatus.OK.value, GeoStatus.OUT_OF_CITY.value)
        reason[gi] = np.where(inside, "coordinates given in the roster",
                              "coordinates given in the roster lie outside Shenzhen (transfer candidate)")
        if progress is not None:
            progress(int(gi.size))

    todo = np.flatnonzero(~given & ~elsewhere)
    parts = 1 if provider is not None else max(1, min(workers, todo.size // PARALLEL_MIN_ROWS))
    if parts > 1:
        _geocode_forked(out, np.array_split(todo, parts), geocoder, progress, columns)
    elif todo.size:
        _geocode_rows(out, todo, geocoder, provider, progress, columns)

    out["lon"] = lon
    out["lat"] = lat
    out["geo_precision"] = precision
    out["geo_district_zh"] = district
    out["geo_subdistrict_zh"] = subdistrict
    out["geo_status"] = status
    out["geo_reason"] = reason
    return out


def _geocode_part(rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """The geo columns of ``rows`` (run by :func:`geoalloc.forked.forked_map`, in a forked process)."""
    out, geocoder = shared()
    columns = _empty_columns(len(out))
    _geocode_rows(out, rows, geocoder, None, None, columns)
    return tuple(c[rows] for c in columns)


def _empty_columns(n: int) -> tuple[np.ndarray, ...]:
    return (np.full(n, np.nan), np.full(n, np.nan), np.empty(n, dtype=object), np.empty(n, dtype=object),
            np.full(n, None, dtype=object), np.full(n, None, dtype=object), np.empty(n, dtype=object))


def _geocode_forked(out: pd.DataFrame, parts: list[np.ndarray], geocoder: OfflineGeocoder,
                    progress: Callable[[int], None] | None, columns: tuple[np.ndarray, ...]) -> None:
    """The first part here (with progress), the others in forked processes at the same time: each
    parse depends only on the text and each point on the row, so the columns are as from one process."""

    def here(rows: np.ndarray) -> tuple[np.ndarray, ...]:
        _geocode_rows(out, rows, geocoder, None, progress, columns)  # straight into the columns
        return ()

    for rows, values in zip(parts[1:], forked_map(_geocode_part, parts, (out, geocoder), here)[1:]):
        for target, part in zip(columns, values):
            target[rows] = part
        if progress is not None:
            progress(int(rows.size))


def _geocode_rows(out: pd.DataFrame, todo: np.ndarray, geocoder: OfflineGeocoder, provider: Provider | None,
                  progress: Callable[[int], None] | None, columns: tuple[np.ndarray, ...]) -> None:
    """Parse each distinct address of the rows ``todo`` once (and with the row's district when the text
    names none, once per distinct pair), place every row, fill ``columns``."""
    lon, lat, precision, status, district, subdistrict, reason = columns
    n = len(out)
    addresses = _cells(out, "address", n)
    hints = _cells(out, "district_zh", n)
    a_codes, a_distinct = _distinct(addresses[todo])
    h_codes, h_distinct = _distinct(hints[todo])
    pair_codes, pairs = pd.factorize(a_codes.astype(np.int64) * max(len(h_distinct), 1) + h_codes)
    a_of_pair, h_of_pair = np.divmod(pairs, max(len(h_distinct), 1))
    rows_per_pair = np.bincount(pair_codes, minlength=len(pairs))
    state: dict[str, str] = {}
    asked: dict[str, Parsed | None] = {}
    parsed: list[Parsed] = []
    by_address: list[Parsed | None] = [None] * len(a_distinct)
    # Plain lists in the loop: indexing numpy arrays one element at a time makes a numpy scalar each time.
    a_at, h_at, texts, hint_texts = a_of_pair.tolist(), h_of_pair.tolist(), a_distinct.tolist(), h_distinct.tolist()
    for start in range(0, len(pairs), _CHUNK):
        for k in range(start, min(start + _CHUNK, len(pairs))):
            ai = a_at[k]
            a, hint = texts[ai], hint_texts[h_at[k]]
            p = by_address[ai]
            if p is None:
                p = by_address[ai] = geocoder.parse(a)
            if p.district_zh is None and isinstance(hint, str) and hint and isinstance(a, str) and a.strip():
                # The roster's district column is the enclosing unit the text left out
                # (e.g. a community name shared by several districts).
                hinted = geocoder.parse(hint + a)
                if hinted.district_zh is not None:
                    p = hinted
            if provider is not None:
                text = a if isinstance(a, str) else ""
                if text not in asked:
                    asked[text] = _provider_parse(provider, text, p, state)
                p = asked[text] or p
            parsed.append(p)
        if progress is not None and start + _CHUNK < len(pairs):  # the last chunk's rows: once placed
            progress(int(rows_per_pair[start : start + _CHUNK].sum()))
    by_pair = np.empty(len(parsed), dtype=object)
    by_pair[:] = parsed
    row_parsed = by_pair[pair_codes].tolist()
    keys = _jitter_keys(out, todo, addresses)
    for start in range(0, todo.size, _PLACE_CHUNK):
        stop = start + _PLACE_CHUNK
        lon[todo[start:stop]], lat[todo[start:stop]] = geocoder.place(row_parsed[start:stop], keys[start:stop])
    for target, values in ((precision, [p.precision.value for p in parsed]), (status, [p.status.value for p in parsed]),
                           (district, [p.district_zh for p in parsed]), (subdistrict, [p.subdistrict_zh for p in parsed]),
                           (reason, [p.reason for p in parsed])):
        target[todo] = np.array(values + [None], dtype=object)[pair_codes]
    if "disabled" in state:
        note = f"; online provider disabled after: {state['disabled']}"
        reason[todo] = [r + note for r in reason[todo]]
    if progress is not None and len(pairs):
        last = (len(pairs) - 1) // _CHUNK * _CHUNK
        progress(int(rows_per_pair[last:].sum()))


def _cells(frame: pd.DataFrame, col: str, n: int) -> np.ndarray:
    """A column's cells as an object array ("" for every row when the column is absent)."""
    if col not in frame.columns:
        return np.full(n, "", dtype=object)
    values = np.empty(n, dtype=object)
    values[:] = frame[col].tolist()  # None, NaN and non-text cells as they are (the parser reads them)
    return values


def _distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code per cell, one cell per code); cells that are not text are told apart by type and repr
    (a hash table alone would merge 1, 1.0 and True, which the parser reads differently)."""
    keys = values
    if pd.api.types.infer_dtype(values, skipna=False) != "string":
        keys = np.empty(len(values), dtype=object)
        keys[:] = [v if type(v) is str else (type(v).__name__, repr(v)) for v in values.tolist()]
    codes, _ = pd.factorize(keys)
    return codes, values[np.unique(codes, return_index=True)[1]]  # codes follow first appearance


def _jitter_keys(frame: pd.DataFrame, rows: np.ndarray, addresses: np.ndarray) -> list[str]:
    """Each row's jitter key: its member id, or ``group:<id>`` for a family (one home, one point)."""
    ids = _cells(frame, "member_id", len(frame))[rows].tolist()  # no id (""): keyed by the address
    if "group_id" in frame.columns:
        gid = frame["group_id"].astype(object).where(frame["group_id"].notna(), "").astype(str).str.strip()
        g = gid.to_numpy(dtype=object)[rows].tolist()
        ids = [f"group:{f}" if f else m for m, f in zip(ids, g)]
    texts = addresses[rows].tolist()
    return [k if type(k) is str and k else jitter_key(k, a) for k, a in zip(ids, texts)]


def place_members(members: pd.DataFrame, *, geocoder: Any = None, progress: Callable[[int], None] | None = None,
                  provider: Any = None, workers: int = 1) -> pd.DataFrame:
    """Give every member a WGS-84 point (rows with coordinates keep theirs) and a district.

    ``workers``: as in :func:`geocode_frame`.

    Here, not in :mod:`geoalloc.pipeline`, so ``geoalloc geocode`` does not import the solver.

    Adds the geocoder's columns (lon, lat, geo_precision, geo_district_zh, geo_status, ...)
    and sets ``district_zh`` to the district the member lives in.
    """
    placed = geocode_frame(members, geocoder=geocoder, provider=provider, progress=progress, workers=workers)
    district = placed["geo_district_zh"].where(placed["geo_district_zh"].astype(str) != "", None)
    if "district_zh" in placed:
        stated = placed["district_zh"].where(placed["district_zh"].astype(str) != "", None)
        district = district.fillna(stated)
    placed["district_zh"] = district.fillna("")
    return placed


def summarise(df: pd.DataFrame) -> dict[str, object]:
    """Counts per geo_precision and geo_status (and conflicts flagged), for the CLI's closing summary."""
    prec = df["geo_precision"].value_counts().to_dict() if "geo_precision" in df else {}
    stat = df["geo_status"].value_counts().to_dict() if "geo_status" in df else {}
    # Each distinct reason's text searched once (a roster repeats its reasons), counted by code.
    codes, reasons = pd.factorize(df["geo_reason"] if "geo_reason" in df else pd.Series([], dtype=object))
    per_reason = np.bincount(codes[codes >= 0], minlength=len(reasons))
    texts = [str(r) for r in reasons]

    def rows_saying(word: str) -> int:
        return int(sum(n for n, t in zip(per_reason.tolist(), texts) if word in t))

    return {
        "rows": len(df),
        "precision": {str(k): int(v) for k, v in prec.items()},
        "status": {str(k): int(v) for k, v in stat.items()},
        "conflicts": rows_saying("conflict:"),
        "historical_names": rows_saying("historical"),
    }


def placement_counts(assignments: pd.DataFrame, members: pd.DataFrame) -> dict[str, object]:
    """How many allocated members are placed at each grade, and how many only at a zone's point.

    A planner reads this to know how much of a plan rests on approximate points (an estate's
    subdistrict, a community, a subdistrict, a road's or a district's point) rather than on given
    coordinates or a station, park or landmark.
    """
    placed = assignments["branch_id"].astype(str) != ""
    grade = assignments.loc[placed, "geo_precision"].fillna(GeoPrecision.EXACT.value).astype(str)
    status = members.loc[placed[placed].index, "geo_status"] if "geo_status" in members else pd.Series(dtype=str)
    approximate = int((status.astype(str) == GeoStatus.APPROXIMATE.value).sum())
    order = {p.value: i for i, p in enumerate(GeoPrecision)}
    by_grade = grade.value_counts().to_dict()
    n = int(placed.sum())
    return {
        "by_precision": {str(k): int(v) for k, v in sorted(by_grade.items(), key=lambda kv: order.get(str(kv[0]), 99))},
        "approximate": approximate,
        "share_approximate": round(approximate / n, 4) if n else 0.0,
    }
