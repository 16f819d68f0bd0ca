"""Branch policies on top of geography: themed branches, secretaries and advisers.

Themed branches (for example IT/Internet or entrepreneurs) gather members who opted in
and are eligible by industry; they are still formed near home, inside the member's
district, so each (district, theme) pair is its own sub-problem for the solver, named
``"南山区·IT"`` beside the residential ``"南山区"``. A theme too small in a district to
form a branch of its own (fewer than ``min_size`` members or ``min_full`` full members)
falls back to residential branches, and the fallback is reported, never silent.

Secretaries and advisers are people, not slots: this module labels, it never moves
anyone. A branch without a secretary gets a *suggestion* (the nearest secretary from a
branch that has two or more); acting on it is a move the planner makes through a
rebalance (``frozen`` then keeps the secretary in place). Advisers are spread with a
small min-cost flow so that each serves at most ``max_branches_per_adviser`` branches,
the nearest ones first.

Policy knobs live in ``Policy.extra``:
- ``themes``: themed branches are off unless this is set: a list of theme names, or
  ``True`` / ``"all"`` for any non-empty ``theme`` value,
- ``theme_industries``: {theme: [industry, ...]} eligibility by ``industry`` column
  (default: opting in is enough),
- ``max_branches_per_adviser`` (default 5), ``advisers_per_branch`` (default 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from ortools.graph.python import min_cost_flow
from scipy.spatial import cKDTree

from geoalloc.rules import Policy
from geoalloc.projection import to_metres

THEME_SEP = "·"
CITY_SEP = "/"  # "广州市/天河区": a region of a roster that carries city_zh
CITY_REGION = "深圳市"


def other_city(frame: pd.DataFrame) -> NDArray[np.bool_]:
    """Rows of a roster that lie in a city other than Shenzhen by their ``city_zh`` (a national
    roster). Their coordinates and ``district_zh`` are taken as given: Shenzhen's gazetteer and
    district checks do not apply to them. All False without ``city_zh``."""
    n = len(frame)
    if "city_zh" not in frame.columns:
        return np.zeros(n, dtype=bool)
    city = _text(frame["city_zh"], n)
    return np.array([c != "" and c.removesuffix("市") != CITY_REGION.removesuffix("市") for c in city], dtype=bool)


def _text(series: pd.Series | None, n: int) -> NDArray[np.object_]:
    if series is None:
        return np.array([""] * n, dtype=object)
    return series.astype(object).where(series.notna(), "").astype(str).str.strip().to_numpy(dtype=object)


def theme_of(members: pd.DataFrame, policy: Policy) -> NDArray[np.object_]:
    """Each member's effective theme ("" for residential): opted in, allowed and eligible by industry."""
    n = len(members)
    allowed = policy.extra.get("themes")
    if not allowed:
        return np.array([""] * n, dtype=object)
    theme = _text(members["theme"] if "theme" in members.columns else None, n)
    if allowed is not True and allowed != "all":
        allowed_set = {str(t) for t in allowed}
        theme = np.array([t if t in allowed_set else "" for t in theme], dtype=object)
    industries: dict[str, list[str]] | None = policy.extra.get("theme_industries")
    if industries and "industry" in members.columns:
        ind = _text(members["industry"], n)
        ok = {str(k): {str(v) for v in vals} for k, vals in industries.items()}
        theme = np.array(
            [t if (t == "" or t not in ok or i in ok[t]) else "" for t, i in zip(theme, ind)], dtype=object
        )
    return theme


def region_keys(members: pd.DataFrame, policy: Policy) -> tuple[NDArray[np.int64], list[str]]:
    """(region index per member, region names): districts, split by theme where a theme can stand alone.

    Names are ``"南山区"`` (residential) and ``"南山区·IT"`` (themed). A roster that carries
    ``city_zh`` has regions (city, district), named ``"广州市/天河区"``; without it the city is
    Shenzhen and names are as before. With ``policy.cross_district`` the district part is the
    city (``"深圳市"`` without ``city_zh``). Members without a district get the region ``"?"`` so
    the caller can report them. Themes too small to form a branch in a district fall back to the
    residential region (see :func:`theme_fallbacks`).
    """
    n = len(members)
    city = _text(members["city_zh"] if "city_zh" in members.columns else None, n)
    if policy.cross_district:
        district = np.array([c or CITY_REGION for c in city], dtype=object)
    else:
        district = _text(members["district_zh"] if "district_zh" in members.columns else None, n)
        district = np.array([(f"{c}{CITY_SEP}" if c else "") + (d if d else "?") for c, d in zip(city, district)],
                            dtype=object)
    theme = theme_of(members, policy)
    full = (
        pd.to_numeric(members["full_member"], errors="coerce").fillna(0).to_numpy(int)
        if "full_member" in members.columns
        else np.ones(n, int)
    )
    active = _active_mask(members)
    # A themed sub-region must be able to form at least one branch on its own.
    keys = np.array([f"{d}{THEME_SEP}{t}" if t else d for d, t in zip(district, theme)], dtype=object)
    themed = theme != ""
    if themed.any():
        df = pd.DataFrame({"k": keys[themed & active], "f": full[themed & active]})
        g = df.groupby("k")["f"].agg(["size", "sum"])
        viable = set(g.index[(g["size"] >= policy.min_size) & (g["sum"] >= policy.min_full)])
        keys = np.array([k if (not t or k in viable) else d for k, d, t in zip(keys, district, theme)], dtype=object)
    names = sorted(set(keys.tolist()))
    index = {k: i for i, k in enumerate(names)}
    return np.array([index[k] for k in keys], dtype=np.int64), names


def theme_fallbacks(members: pd.DataFrame, policy: Policy) -> dict[str, int]:
    """{"南山区·IT": count} of opted-in members who fall back to residential branches (for the report)."""
    theme = theme_of(members, policy)
    idx, names = region_keys(members, policy)
    out: dict[str, int] = {}
    n = len(members)
    city = _text(members["city_zh"] if "city_zh" in members.columns else None, n)
    for t, r, d, c in zip(theme, idx, _text(members.get("district_zh"), n), city):
        if t and THEME_SEP not in names[r]:
            key = f"{c}{CITY_SEP}{d}{THEME_SEP}{t}" if c else f"{d}{THEME_SEP}{t}"
            out[key] = out.get(key, 0) + 1
    return out


def region_groups(members: pd.DataFrame, member_region: NDArray[np.int64], names: list[str]) -> NDArray[np.int64]:
    """The group (city) of each region, by index into the sorted cities: a small district joins
    a neighbour of its own city only. One group for a roster without ``city_zh``."""
    city = _text(members["city_zh"] if "city_zh" in members.columns else None, len(members))
    of_region = [""] * len(names)
    for r, c in zip(np.asarray(member_region).tolist(), city):
        of_region[r] = c
    index = {c: i for i, c in enumerate(sorted(set(of_region)))}
    return np.array([index[c] for c in of_region], dtype=np.int64)


def district_of_region(name: str) -> str:
    """``"南山区·IT"`` -> ``"南山区"``; ``"广州市/天河区·IT"`` -> ``"天河区"``."""
    return name.split(THEME_SEP, 1)[0].rsplit(CITY_SEP, 1)[-1]


def city_of_region(name: str) -> str:
    """``"广州市/天河区·IT"`` -> ``"广州市"``; ``""`` for a region without a city (Shenzhen's)."""
    base = name.split(THEME_SEP, 1)[0]
    return base.split(CITY_SEP, 1)[0] if CITY_SEP in base else ""


def _active_mask(members: pd.DataFrame) -> NDArray[np.bool_]:
    if "status" not in members.columns:
        return np.ones(len(members), dtype=bool)
    s = members["status"].astype(object).where(members["status"].notna(), "active").astype(str).str.strip()
    return (s.isin(["active", ""])).to_numpy()


def _roles(members: pd.DataFrame) -> pd.Series:
    if "role" not in members.columns:
        return pd.Series([""] * len(members), index=members.index)
    return members["role"].astype(object).where(members["role"].notna(), "").astype(str).str.strip().str.lower()


def attach_roles(
    assignments: pd.DataFrame, branches: pd.DataFrame, members: pd.DataFrame, policy: Policy
) -> pd.DataFrame:
    """Branches with ``secretary``, ``n_secretaries``, ``secretary_suggestion`` and ``advisers`` columns.

    Labels only (no member changes branch): the secretary of a branch is its secretary
    nearest the site; a branch with none gets the nearest surplus secretary as a
    suggestion. Advisers (who need not belong to a branch) each serve at most
    ``max_branches_per_adviser`` branches, chosen by a min-cost flow on distance.
    """
    out = branches.copy()
    roles = _roles(members)
    ids = members["member_id"].astype(str)
    role_of = dict(zip(ids, roles))
    a = assignments.copy()
    a["member_id"] = a["member_id"].astype(str)
    a = a[a["branch_id"].notna() & (a["branch_id"].astype(str) != "")]
    a["role"] = a["member_id"].map(role_of).fillna("")
    bxy = to_metres(out["lon"].to_numpy(float), out["lat"].to_numpy(float)) if len(out) else np.zeros((0, 2))
    bpos = {str(b): i for i, b in enumerate(out["branch_id"].astype(str))}

    # Secretaries: label the one nearest the site.
    secs = a[a["role"] == "secretary"]
    secretary = [""] * len(out)
    n_secs = np.zeros(len(out), dtype=int)
    surplus: list[tuple[str, str, NDArray[np.float64]]] = []  # (member, branch, xy)
    if len(secs):
        sxy = to_metres(secs["lon"].to_numpy(float), secs["lat"].to_numpy(float))
        for (bid, grp) in secs.assign(_i=np.arange(len(secs))).groupby("branch_id"):
            j = bpos.get(str(bid))
            if j is None:
                continue
            pts = sxy[grp["_i"].to_numpy()]
            order = np.argsort(np.hypot(*(pts - bxy[j]).T))
            mids = grp["member_id"].to_numpy()[order]
            secretary[j] = str(mids[0])
            n_secs[j] = len(mids)
            for k in order[1:]:
                surplus.append((str(grp["member_id"].to_numpy()[k]), str(bid), pts[k]))
    suggestion = [""] * len(out)
    if surplus:
        taken: set[str] = set()
        pxy = np.array([s[2] for s in surplus])
        for j in np.flatnonzero(n_secs == 0):
            d = np.hypot(*(pxy - bxy[j]).T)
            for k in np.argsort(d):
                if surplus[k][0] not in taken:
                    taken.add(surplus[k][0])
                    suggestion[j] = f"{surplus[k][0]} (from {surplus[k][1]}, {d[k]:.0f} m)"
                    break
    out["secretary"] = secretary
    out["n_secretaries"] = n_secs
    out["secretary_suggestion"] = suggestion
    out["advisers"] = _spread_advisers(members[roles == "adviser"], bxy, policy) if len(out) else []
    return out


def _spread_advisers(advisers: pd.DataFrame, bxy: NDArray[np.float64], policy: Policy) -> list[str]:
    """Semicolon-joined adviser ids per branch: capacity-limited nearest assignment by min-cost flow."""
    nb = len(bxy)
    if len(advisers) == 0 or nb == 0:
        return [""] * nb
    advisers = advisers[advisers["lon"].notna() & advisers["lat"].notna()]
    if len(advisers) == 0:
        return [""] * nb
    cap = int(policy.extra.get("max_branches_per_adviser", 5))
    per_branch = int(policy.extra.get("advisers_per_branch", 1))
    axy = to_metres(advisers["lon"].to_numpy(float), advisers["lat"].to_numpy(float))
    aid = advisers["member_id"].astype(str).to_numpy()
    na = len(axy)
    k = min(na, max(3 * per_branch, 8))
    dist, idx = cKDTree(axy).query(bxy, k=k)
    dist = np.asarray(dist).reshape(nb, k)
    idx = np.asarray(idx).reshape(nb, k)
    # nodes: branches 0..nb-1, advisers nb..nb+na-1, sink nb+na
    sink = nb + na
    unserved = int(dist.max() * 10 + 1_000_000)
    f = min_cost_flow.SimpleMinCostFlow()
    tails = np.repeat(np.arange(nb), k)
    heads = nb + idx.ravel()
    arcs = f.add_arcs_with_capacity_and_unit_cost(
        tails, heads, np.ones(nb * k, dtype=np.int64), np.round(dist.ravel()).astype(np.int64)
    )
    f.add_arcs_with_capacity_and_unit_cost(
        nb + np.arange(na), np.full(na, sink), np.full(na, cap, dtype=np.int64), np.zeros(na, dtype=np.int64)
    )
    # unserved slots go straight to the sink at a high cost
    f.add_arcs_with_capacity_and_unit_cost(
        np.arange(nb), np.full(nb, sink), np.full(nb, per_branch, dtype=np.int64), np.full(nb, unserved, dtype=np.int64)
    )
    f.set_nodes_supplies(np.arange(nb + 1 + na), np.concatenate([np.full(nb, per_branch), np.zeros(na), [-nb * per_branch]]).astype(np.int64))
    if f.solve() != f.OPTIMAL:
        return [""] * nb
    flows = f.flows(arcs).reshape(nb, k)
    out = []
    for j in range(nb):
        chosen = idx[j][flows[j] > 0]
        out.append(";".join(aid[c] for c in sorted(chosen, key=lambda c: c)))
    return out


def role_summary(branches: pd.DataFrame) -> dict[str, Any]:
    """Counts for the report: branches with/without a secretary, with an adviser."""
    if "secretary" not in branches.columns:
        return {}
    return {
        "branches_with_secretary": int((branches["secretary"] != "").sum()),
        "branches_without_secretary": int((branches["secretary"] == "").sum()),
        "secretary_suggestions": int((branches["secretary_suggestion"] != "").sum()),
        "branches_with_adviser": int((branches["advisers"] != "").sum()),
    }
