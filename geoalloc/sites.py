"""Service centres (党群服务中心) as the only places branches may meet.

A planner gives the agency's outlets in a small table (CSV or .xlsx): ``site_id``, ``name``,
``lon``, ``lat`` and optionally ``datum`` (wgs84|gcj02|bd09), ``district_zh`` and ``capacity``
(how many branches may meet there; empty = as many as needed). :func:`read_sites` checks every
row and reports each problem with its spreadsheet row and field; a file with any bad row is
refused whole (a wrong site would silently move whole branches).

Sites travel in the policy (:attr:`geoalloc.rules.Policy.sites`, a list of plain dicts), so a stored plan
says where its branches may meet and the API takes them in its policy. For the solver they
become candidate sites (``Problem.candidate_xy``), each repeated as many times as branches may
share it (its capacity, at most the branch count of its district), so several branches can
meet at one centre. A branch then carries its ``site_id`` and ``site_name``. A rebalance keeps
branches at the centres too (:mod:`geoalloc.solver.rebalance.centres`), and a relocation that
opens a branch opens it at one.
"""

from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from geoalloc.geocode.datum import parse_datum, to_wgs84

__all__ = [
    "SITE_COLUMNS",
    "SiteError",
    "SiteProblem",
    "attach_sites",
    "label_branches",
    "read_sites",
    "sites_of",
    "site_points",
    "validate_sites",
]

SITE_COLUMNS = ("site_id", "name", "lon", "lat", "datum", "district_zh", "capacity")
_REQUIRED = ("site_id", "name", "lon", "lat")
MATCH_M = 5.0  # a branch whose meeting point is this close to a site meets at it


@dataclass(frozen=True)
class SiteProblem:
    """One problem with one site row (row as a spreadsheet shows it: the header is row 1)."""

    row: int
    site_id: str
    field: str
    reason: str

    def __str__(self) -> str:
        who = f" (site {self.site_id})" if self.site_id else ""
        return f"row {self.row}{who}, field '{self.field}': {self.reason}"


class SiteError(ValueError):
    """The site table cannot be used; ``problems`` lists every bad row and field."""

    def __init__(self, message: str, problems: list[SiteProblem] | None = None) -> None:
        self.problems = problems or []
        detail = "; ".join(str(p) for p in self.problems[:20])
        more = f" (and {len(self.problems) - 20} more)" if len(self.problems) > 20 else ""
        super().__init__(f"{message}: {detail}{more}" if self.problems else message)


def _read_table(source: str | Path | bytes | BinaryIO, name: str) -> pd.DataFrame:
    excel = name.lower().endswith((".xlsx", ".xlsm"))
    data: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        if excel:
            df = pd.read_excel(data, dtype=str, keep_default_na=False, engine="openpyxl")
        else:
            df = pd.read_csv(data, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise SiteError(f"{name}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise SiteError(f"{name}: not UTF-8 text (save the CSV as UTF-8, or use .xlsx)") from exc
    except Exception as exc:  # pandas/openpyxl raise many types for a broken file
        raise SiteError(f"{name}: cannot be read as {'Excel' if excel else 'CSV'}: {exc}") from exc
    df.columns = [unicodedata.normalize("NFKC", str(c)).strip().lower() for c in df.columns]
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise SiteError(f"{name}: required column(s) {', '.join(missing)} missing "
                        f"(columns found: {', '.join(df.columns) or 'none'})")
    return df


def read_sites(source: str | Path | bytes | BinaryIO, filename: str | None = None) -> list[dict[str, Any]]:
    """Read and check a site table; returns the sites as plain dicts (WGS-84, district filled in)."""
    name = str(source) if isinstance(source, (str, Path)) else (filename or "sites.csv")
    rows = [{str(k): v for k, v in r.items()} for r in _read_table(source, name).to_dict("records")]
    return validate_sites(rows)


def _text(row: dict[str, Any], key: str) -> str:
    v = row.get(key)
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else unicodedata.normalize("NFKC", str(v)).strip()


def validate_sites(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check site rows (from a file or the API); every problem is reported, none is guessed."""
    from geoalloc.districts import district_names, locate_districts

    known = set(district_names())
    problems: list[SiteProblem] = []
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    where: dict[tuple[float, float], int] = {}
    if not rows:
        raise SiteError("the site table has no rows")
    for k, row in enumerate(rows):
        r = k + 2
        sid = _text(row, "site_id")
        bad = len(problems)
        if not sid:
            problems.append(SiteProblem(r, "", "site_id", "empty"))
        elif sid in seen:
            problems.append(SiteProblem(r, sid, "site_id", f"appears twice (also row {seen[sid]})"))
        else:
            seen[sid] = r
        nm = _text(row, "name")
        if not nm:
            problems.append(SiteProblem(r, sid, "name", "empty"))
        coords = []
        for f, lo, hi in (("lon", -180, 180), ("lat", -90, 90)):
            raw = _text(row, f)
            try:
                v = float(raw)
            except ValueError:
                problems.append(SiteProblem(r, sid, f, f"not a number ({raw!r})" if raw else "empty"))
                continue
            if not (lo <= v <= hi) or not np.isfinite(v):
                problems.append(SiteProblem(r, sid, f, f"out of range ({v})"))
                continue
            coords.append(v)
        try:
            datum = parse_datum(_text(row, "datum")).value
        except ValueError as exc:
            problems.append(SiteProblem(r, sid, "datum", str(exc)))
            datum = "wgs84"
        cap_raw = _text(row, "capacity")
        capacity: int | None = None
        if cap_raw:
            try:
                capacity = int(float(cap_raw))
                if capacity < 1 or capacity != float(cap_raw):
                    raise ValueError
            except ValueError:
                problems.append(SiteProblem(r, sid, "capacity", f"not a whole number of branches >= 1 ({cap_raw!r})"))
        stated = _text(row, "district_zh")
        if stated and stated not in known and stated + "区" not in known:
            problems.append(SiteProblem(r, sid, "district_zh", f"unknown district {stated!r}"))
        if len(problems) > bad or len(coords) < 2:
            continue
        lon, lat = to_wgs84(coords[0], coords[1], datum)
        lon, lat = float(lon), float(lat)
        district = locate_districts([lon], [lat]).iloc[0]
        if not district:
            problems.append(SiteProblem(r, sid, "lon", f"the point ({lon:.6f}, {lat:.6f}) is not in Shenzhen"))
            continue
        if stated and district not in (stated, stated + "区"):
            problems.append(SiteProblem(r, sid, "district_zh", f"says {stated} but the point is in {district}"))
            continue
        key = (round(lon, 5), round(lat, 5))
        if key in where:
            problems.append(SiteProblem(r, sid, "lon", f"the same point as row {where[key]}: give one site a capacity instead"))
            continue
        where[key] = r
        out.append({"site_id": sid, "name": nm, "lon": round(lon, 7), "lat": round(lat, 7),
                    "district_zh": district, "capacity": capacity})
    if problems:
        raise SiteError(f"{len(problems)} problem(s) in the site table", problems)
    return out


def sites_of(policy: Any) -> list[dict[str, Any]] | None:
    """The policy's sites (None when branches may meet anywhere)."""
    sites = policy.sites
    return list(sites) if sites else None


def site_points(policy: Any, zone: int | None = None) -> np.ndarray:
    """The policy's sites in metres in ``zone`` (that of the members they serve; None: 49N), in
    the policy's order; an empty (0, 2) array without sites."""
    from geoalloc.projection import SHENZHEN_ZONE, to_metres

    sites = sites_of(policy) or []
    if not sites:
        return np.zeros((0, 2))
    return to_metres(np.array([s["lon"] for s in sites], dtype=float), np.array([s["lat"] for s in sites], dtype=float),
                     SHENZHEN_ZONE if zone is None else zone)


def attach_sites(problem: Any, policy: Any) -> Any:
    """Give the solver problem the sites as candidates, one copy per branch that may meet there.

    Copies per site: its capacity, at most the branch count of the unit it lies in (a site can
    hold every branch of its district); a site serves every region of its district (the
    residential and the themed ones). Returns the problem (changed in place).
    """
    sites = sites_of(policy)
    if not sites or problem.n == 0:
        return problem
    from geoalloc.rules import region_district as district_of_region
    from geoalloc.solver.form import branch_counts, build_units

    units = build_units(problem, policy)
    counts = branch_counts(problem, units, policy)
    zones = problem.region_zone
    cand_xy: list[np.ndarray] = []
    cand_region: list[int] = []
    for unit, p in zip(units, counts):
        districts = {district_of_region(problem.region_names[r]) for r in unit.regions}
        # a site is projected as the members it serves are (their city's zone, see build_problem)
        xy = site_points(policy, int(zones[unit.regions[0]]) if zones is not None else None)
        for s, point in zip(sites, xy):
            if not policy.cross_district and s["district_zh"] not in districts:
                continue
            copies = min(int(s.get("capacity") or p), p)
            cand_xy.extend([point] * copies)
            cand_region.extend([unit.regions[0]] * copies)
    problem.candidate_xy = np.array(cand_xy, dtype=np.float64).reshape(-1, 2)
    problem.candidate_region = None if policy.cross_district else np.array(cand_region, dtype=np.int64)
    return problem


def label_branches(branches: pd.DataFrame, policy: Any) -> pd.DataFrame:
    """Add ``site_id`` and ``site_name`` (the site each branch meets at) when the policy has sites."""
    sites = sites_of(policy)
    if not sites:
        return branches
    from scipy.spatial import cKDTree

    from geoalloc.projection import to_metres, zones_of
    from geoalloc.rules import region_city

    out = branches.copy()
    ids, names = [""] * len(out), [""] * len(out)
    if len(out):
        blon, blat = out["lon"].to_numpy(float), out["lat"].to_numpy(float)
        # sites and branches in each branch's city zone, as allocate placed them
        city = [region_city(str(r)) for r in out["region"]] if "region" in out.columns else [""] * len(out)
        bzone = zones_of(city, blon)
        for z in np.unique(bzone):
            rows = np.flatnonzero(bzone == z)
            dist, idx = cKDTree(site_points(policy, int(z))).query(to_metres(blon[rows], blat[rows], int(z)))
            for i, d, j in zip(rows, np.atleast_1d(dist), np.atleast_1d(idx)):
                if d <= MATCH_M:
                    ids[i], names[i] = sites[j]["site_id"], sites[j]["name"]
    out.insert(1, "site_id", ids)
    out.insert(2, "site_name", names)
    return out
