"""The rules a plan is made under, written once: the policy, what a member counts for, the checks.

Every path (allocate, rebalance, relocation, the API, the store round trip, maps and reports)
imports its limits, defaults and counting rules from here; no other module restates one.

What a roster row counts for:

- ``weight`` (default 1): how many members the row stands for. A branch's size is the sum of
  its rows' weights, and a weighted row is never split.
- ``full_member`` (default 1): a full row counts ``weight`` full members, a probationary row none.
- ``group_id`` (a family): rows with the same group id stay in one branch; they share a home,
  so moving one moves them all. A family's size and full members are its rows' sums.
- ``status``: only ``active`` rows are allocated; ``lost_contact`` and ``transfer_out`` rows are
  kept and listed with their reason, as are active rows that could not be placed in the city.
- ``theme``: a member's opted-in theme; it forms themed branches only where the policy turns
  themes on (:attr:`Policy.themes`), see :func:`effective_theme`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

# By default a branch's mean size aims at this share of max_size (40 of 50): room for newcomers and
# members who move in, so a relocation into a full area does not cascade. "fewest" stays available.
DEFAULT_TARGET_SHARE = 0.8
FEWEST = "fewest"

THEME_SEP = "·"  # region names: "南山区" residential, "南山区·IT" themed
CITY_SEP = "/"  # "广州市/天河区": a region of a roster that carries city_zh (a national roster)
CITY_REGION = "深圳市"  # the city of a roster without city_zh: the one region with cross_district

#: reasons an active-looking row is not allocated, besides its status
NOT_LOCATED = "not_located"
OUT_OF_CITY = "out_of_city"


@dataclass(frozen=True)
class Policy:
    """The rules a plan is made under. Limits are configurable; the defaults are the organisation's.

    ``min_size``/``max_size`` bound a branch's size in members (weights counted); ``min_full`` is
    the number of full (not probationary) members every branch needs. ``n_branches`` fixes the
    branch count (``"fewest"``: the fewest the limits allow); otherwise each district gets
    ``ceil(members / target_size)`` branches within its limits, where ``target_size`` defaults to
    ``DEFAULT_TARGET_SHARE * max_size`` (see :meth:`target_mean`): room for newcomers.
    ``cross_district`` lets branches span district lines (off by default: each district committee
    owns its branches). ``themes``: ``None`` (off), ``"all"`` (every non-empty ``theme`` value) or a
    tuple of theme names; ``theme_industries`` restricts a theme to members of some industries.
    ``move_penalty_m`` is what a rebalance or relocation move must save; ``keep_radius_m`` is how
    far a relocated member may live from their branch and keep it. ``sites``: the service centres
    branches must meet at (checked rows of :mod:`geoalloc.sites`), or ``None`` to meet anywhere
    near the members. ``extra`` holds solver tuning knobs only, never a rule.
    """

    min_size: int = 3
    max_size: int = 50
    min_full: int = 3
    n_branches: int | Literal["fewest"] | None = None
    target_size: float | None = None
    cross_district: bool = False
    time_limit: float = 10.0
    seed: int = 0
    themes: str | tuple[str, ...] | None = None
    theme_industries: dict[str, tuple[str, ...]] | None = None
    move_penalty_m: float = 500.0
    keep_radius_m: float = 3000.0
    max_branches_per_adviser: int = 5
    advisers_per_branch: int = 1
    sites: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if self.min_size < 1:
            problems.append(f"min_size must be at least 1 (got {self.min_size})")
        if self.max_size < self.min_size:
            problems.append(f"max_size ({self.max_size}) is below min_size ({self.min_size})")
        if self.min_full < 0:
            problems.append(f"min_full must be at least 0 (got {self.min_full})")
        if self.min_full > self.max_size:
            problems.append(f"min_full ({self.min_full}) is above max_size ({self.max_size})")
        if isinstance(self.n_branches, str):
            if self.n_branches != FEWEST:
                problems.append(f"n_branches must be a whole number or {FEWEST!r} (got {self.n_branches!r})")
        elif self.n_branches is not None and (isinstance(self.n_branches, bool) or self.n_branches < 1):
            problems.append(f"n_branches must be at least 1 (got {self.n_branches})")
        if self.target_size is not None and not (self.min_size <= self.target_size <= self.max_size):
            problems.append(
                f"target_size ({self.target_size}) must lie within min_size..max_size "
                f"({self.min_size}..{self.max_size})"
            )
        if self.time_limit <= 0:
            problems.append(f"time_limit must be positive (got {self.time_limit})")
        if self.move_penalty_m < 0:
            problems.append(f"move_penalty_m must be at least 0 (got {self.move_penalty_m})")
        if self.keep_radius_m < 0:
            problems.append(f"keep_radius_m must be at least 0 (got {self.keep_radius_m})")
        if self.max_branches_per_adviser < 1 or self.advisers_per_branch < 0:
            problems.append("max_branches_per_adviser must be at least 1 and advisers_per_branch at least 0")
        if problems:
            raise ValueError("invalid policy: " + "; ".join(problems))
        # rules once kept in ``extra`` (older stored plans, older callers) go to their fields
        moved = {k: v for k, v in self.extra.items() if k in _RULE_FIELDS}
        if moved:
            object.__setattr__(self, "extra", {k: v for k, v in self.extra.items() if k not in moved})
            for k, v in moved.items():
                default: Any = self.__dataclass_fields__[k].default
                object.__setattr__(self, k, v if default is None else type(default)(v))
        # normalise the theme setting so that equal policies compare (and serialise) equal
        themes = self.themes
        if themes is True or (isinstance(themes, str) and themes.strip().lower() == "all"):
            themes = "all"
        elif isinstance(themes, str):
            themes = tuple(t.strip() for t in themes.split(",") if t.strip()) or None
        elif themes is not None:
            themes = tuple(str(t) for t in themes) or None
        object.__setattr__(self, "themes", themes)
        if self.theme_industries is not None:
            object.__setattr__(self, "theme_industries",
                               {str(k): tuple(str(v) for v in vals) for k, vals in self.theme_industries.items()})

    def target_mean(self) -> float | None:
        """The mean branch size a district's count aims at; None when the count is fixed
        (``n_branches`` a number) or the fewest allowed (``n_branches="fewest"``)."""
        if self.n_branches is not None:
            return None
        if self.target_size is not None:
            return float(self.target_size)
        return max(float(self.min_size), DEFAULT_TARGET_SHARE * self.max_size)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (for reports, stored plans and the API)."""
        d = asdict(self)
        if isinstance(d["themes"], tuple):
            d["themes"] = list(d["themes"])
        if d["theme_industries"] is not None:
            d["theme_industries"] = {k: list(v) for k, v in d["theme_industries"].items()}
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        """Build from a dict, ignoring keys this version does not know.

        Plans stored before the rules had fields of their own kept them in ``extra``; they are
        read back into their fields.
        """
        known = set(cls.__dataclass_fields__)
        args = {k: v for k, v in data.items() if k in known}
        extra = dict(args.get("extra") or {})
        for k in list(extra):
            if k in known and k != "extra":
                args.setdefault(k, extra.pop(k))
        args["extra"] = extra
        return cls(**args)


_RULE_FIELDS = frozenset({"themes", "theme_industries", "move_penalty_m", "keep_radius_m",
                          "max_branches_per_adviser", "advisers_per_branch", "sites"})


# --------------------------------------------------------------------------------------
# What a row counts for.
# --------------------------------------------------------------------------------------


def _text(df: pd.DataFrame, col: str, default: str = "") -> NDArray[np.object_]:
    if col not in df.columns:
        return np.full(len(df), default, dtype=object)
    s = df[col]
    return s.astype(object).where(s.notna(), default).astype(str).str.strip().to_numpy(dtype=object)


def _ints(df: pd.DataFrame, col: str, default: int) -> NDArray[np.int64]:
    if col not in df.columns:
        return np.full(len(df), default, dtype=np.int64)
    return pd.to_numeric(df[col], errors="coerce").fillna(default).to_numpy().astype(np.int64)


def weights(df: pd.DataFrame) -> NDArray[np.int64]:
    """Members each row stands for (``weight``, default 1, at least 1)."""
    return np.maximum(_ints(df, "weight", 1), 1)


def full_flags(df: pd.DataFrame) -> NDArray[np.int64]:
    """1 for a full member's row, 0 for a probationary one (``full_member``, default 1)."""
    return (_ints(df, "full_member", 1) > 0).astype(np.int64)


def full_counts(df: pd.DataFrame) -> NDArray[np.int64]:
    """Full members each row stands for: its weight when the row is full, else 0."""
    return weights(df) * full_flags(df)


def unit_keys(df: pd.DataFrame) -> NDArray[np.object_]:
    """The unit each row belongs to: its family (``g:<group_id>``) or itself (``m:<member_id>``).

    A unit is never split across branches and moves as one.
    """
    gid = _text(df, "group_id")
    mid = df["member_id"].astype(str).to_numpy(dtype=object)
    return np.where(gid != "", "g:" + gid.astype(str), "m:" + mid.astype(str)).astype(object)


def statuses(df: pd.DataFrame) -> NDArray[np.object_]:
    """Each row's status (empty means ``active``)."""
    s = _text(df, "status", "active")
    return np.where(s == "", "active", s).astype(object)


def unassigned_reasons(df: pd.DataFrame, *, cross_district: bool = False) -> NDArray[np.object_]:
    """Why each row is not allocated ("" for a row that must be): its status when not active,
    ``out_of_city``, or ``not_located`` (no usable point, no district or a failed geocode)."""
    status = statuses(df)
    geo = _text(df, "geo_status")
    lon = pd.to_numeric(df["lon"], errors="coerce").to_numpy(float) if "lon" in df.columns else np.full(len(df), np.nan)
    lat = pd.to_numeric(df["lat"], errors="coerce").to_numpy(float) if "lat" in df.columns else np.full(len(df), np.nan)
    located = np.isfinite(lon) & np.isfinite(lat) & (geo != "failed")
    if not cross_district:
        located &= _text(df, "district_zh") != ""
    out = np.full(len(df), "", dtype=object)
    out[~located] = NOT_LOCATED
    out[geo == OUT_OF_CITY] = OUT_OF_CITY
    inactive = status != "active"
    out[inactive] = status[inactive]
    return out


def effective_theme(df: pd.DataFrame, policy: Policy) -> NDArray[np.object_]:
    """Each row's theme for branch forming ("" for residential): opted in (``theme`` column),
    allowed by :attr:`Policy.themes`, and eligible by ``industry`` where the policy restricts it."""
    n = len(df)
    if not policy.themes:
        return np.full(n, "", dtype=object)
    theme = _text(df, "theme")
    if policy.themes != "all":
        theme = np.where(np.isin(theme, list(policy.themes)), theme, "").astype(object)
    if policy.theme_industries and "industry" in df.columns:
        ind = _text(df, "industry")
        ok = np.array([t == "" or t not in policy.theme_industries or i in policy.theme_industries[t]
                       for t, i in zip(theme, ind)], dtype=bool)
        theme = np.where(ok, theme, "").astype(object)
    return theme


def region_district(region: str) -> str:
    """``"南山区·IT"`` -> ``"南山区"``; ``"广州市/天河区·IT"`` -> ``"天河区"``."""
    return region.split(THEME_SEP, 1)[0].rsplit(CITY_SEP, 1)[-1]


def region_city(region: str) -> str:
    """``"广州市/天河区·IT"`` -> ``"广州市"``; ``""`` for a region without a city (Shenzhen's)."""
    base = region.split(THEME_SEP, 1)[0]
    return base.split(CITY_SEP, 1)[0] if CITY_SEP in base else ""


def region_theme(region: str) -> str:
    """``"南山区·IT"`` -> ``"IT"``; ``""`` for a residential region."""
    return region.split(THEME_SEP, 1)[1] if THEME_SEP in region else ""


def branch_region(branch_id: str) -> str:
    """The region a branch id names (``"南山区·IT-003"`` -> ``"南山区·IT"``)."""
    return branch_id.rsplit("-", 1)[0] if "-" in branch_id else branch_id


def can_stand_alone(size: int, n_full: int, policy: Policy) -> bool:
    """Whether members of this size and full count can form one branch on their own."""
    return size >= policy.min_size and n_full >= policy.min_full


def themes_off_note(members: pd.DataFrame, policy: Policy) -> list[str]:
    """Themes apply only when the policy turns them on; a roster whose ``theme`` column is filled
    while they are off is said so in the report, never ignored silently."""
    if policy.themes:
        return []
    opted = int((_text(members, "theme") != "").sum())
    if not opted:
        return []
    return [f"{opted} members opted into a theme (theme column) but themed branches are off: "
            "pass --themes all (the API policy's themes) to form them"]


def district_keys(df: pd.DataFrame) -> NDArray[np.object_]:
    """Each row's district as a region key: ``"南山区"``, or ``"广州市/天河区"`` with ``city_zh``."""
    city, district = _text(df, "city_zh"), _text(df, "district_zh")
    return np.array([f"{c}{CITY_SEP}{d}" if c and d else d for c, d in zip(city, district)], dtype=object)


def other_city(frame: pd.DataFrame) -> NDArray[np.bool_]:
    """Rows of a roster that lie in a city other than Shenzhen by their ``city_zh`` (a national
    roster). Their coordinates and ``district_zh`` are taken as given: Shenzhen's gazetteer and
    district checks do not apply to them. All False without ``city_zh``."""
    codes, cities = pd.factorize(_text(frame, "city_zh"))  # once per distinct city, not per row
    return np.array([is_other_city(c) for c in cities], dtype=bool)[codes]


def is_other_city(city: str | None) -> bool:
    """Whether a ``city_zh`` value names a city other than Shenzhen (see :func:`other_city`)."""
    return bool(city) and str(city).removesuffix("市") != CITY_REGION.removesuffix("市")


def region_keys(members: pd.DataFrame, policy: Policy) -> tuple[NDArray[np.int64], list[str]]:
    """(region index per row, region names): districts, split by theme where a theme can stand alone.

    Names are ``"南山区"`` (residential) and ``"南山区·IT"`` (themed). A roster that carries
    ``city_zh`` has regions (city, district), named ``"广州市/天河区"``; without it the city is
    Shenzhen and names are as before. With ``cross_district`` the district part is the city
    (``"深圳市"`` without ``city_zh``). Rows without a district get the region ``"?"`` so the
    caller can report them. A theme too small in a district to form a branch (fewer than
    ``min_size`` members or ``min_full`` full members, weights counted) falls back to the
    residential region (see :func:`theme_fallbacks`), and so does a family whose members did not
    all opt into the same theme (they share one branch).
    """
    city = _text(members, "city_zh")
    if policy.cross_district:
        district = np.array([c or CITY_REGION for c in city], dtype=object)
    else:
        district = _text(members, "district_zh")
        district = np.array([(f"{c}{CITY_SEP}" if c else "") + (d if d else "?") for c, d in zip(city, district)],
                            dtype=object)
    theme = effective_theme(members, policy)
    # a family shares one branch: its theme counts only when every member of it opted into it
    if "group_id" in members.columns and (theme != "").any():
        units = pd.Series(unit_keys(members))
        mixed = pd.Series(theme).groupby(units).transform("nunique").to_numpy() > 1
        theme = np.where(mixed, "", theme).astype(object)
    keys = np.array([f"{d}{THEME_SEP}{t}" if t else d for d, t in zip(district, theme)], dtype=object)
    themed = theme != ""
    if themed.any():
        active = statuses(members) == "active"
        df = pd.DataFrame({"k": keys, "w": weights(members), "f": full_counts(members)})[themed & active]
        g = df.groupby("k")[["w", "f"]].sum()
        viable = {k for k, r in g.iterrows() if can_stand_alone(int(r["w"]), int(r["f"]), policy)}
        keys = np.where(~themed | np.isin(keys, list(viable)), keys, district).astype(object)
    names = sorted(set(keys.tolist()))
    index = {k: i for i, k in enumerate(names)}
    return np.array([index[k] for k in keys], dtype=np.int64), names


def region_groups(members: pd.DataFrame, member_region: NDArray[np.int64], names: list[str]) -> NDArray[np.int64]:
    """The group (city) of each region, by index into the sorted cities: a small district joins
    a neighbour of its own city only. One group for a roster without ``city_zh``."""
    city = _text(members, "city_zh")
    of_region = [""] * len(names)
    for r, c in zip(np.asarray(member_region).tolist(), city):
        of_region[r] = c
    index = {c: i for i, c in enumerate(sorted(set(of_region)))}
    return np.array([index[c] for c in of_region], dtype=np.int64)


def theme_fallbacks(members: pd.DataFrame, policy: Policy) -> dict[str, int]:
    """{"南山区·IT": count} of opted-in members who fall back to residential branches (for the report)."""
    theme = effective_theme(members, policy)
    idx, names = region_keys(members, policy)
    out: dict[str, int] = {}
    for t, r, d, c in zip(theme, idx, _text(members, "district_zh"), _text(members, "city_zh")):
        if t and THEME_SEP not in names[r]:
            key = f"{c}{CITY_SEP}{d}{THEME_SEP}{t}" if c else f"{d}{THEME_SEP}{t}"
            out[key] = out.get(key, 0) + 1
    return out


# --------------------------------------------------------------------------------------
# The checks.
# --------------------------------------------------------------------------------------


def excess(size: NDArray[np.int64], n_full: NDArray[np.int64], policy: Policy) -> NDArray[np.int64]:
    """Units of limit violation per branch (0 for an empty branch): members over the maximum,
    or the larger of the members and full members missing."""
    size = np.asarray(size, dtype=np.int64)
    n_full = np.asarray(n_full, dtype=np.int64)
    over = np.maximum(size - policy.max_size, 0)
    short = np.maximum(np.maximum(policy.min_size - size, 0), np.maximum(policy.min_full - n_full, 0))
    return np.where(size > 0, over + short, 0)


def size_ok(size: NDArray[np.int64], n_full: NDArray[np.int64], policy: Policy) -> NDArray[np.bool_]:
    """True for a branch within every limit (an empty branch is closed, so fine)."""
    return excess(size, n_full, policy) == 0


VIOLATION_KEYS = ("over_max", "under_min", "under_full", "split_groups", "cross_district", "theme_mismatch",
                  "inactive_assigned", "unplaced", "unknown_members", "missing_members", "size_misreported")


@dataclass
class Violations:
    """What :func:`check_plan` found. Counts are of branches (limits, districts, themes, sizes as
    reported) or of members/families (the rest); ``details`` names the first few of each."""

    over_max: int = 0
    under_min: int = 0
    under_full: int = 0
    split_groups: int = 0
    cross_district: int = 0
    theme_mismatch: int = 0
    inactive_assigned: int = 0
    unplaced: int = 0
    unknown_members: int = 0
    missing_members: int = 0
    size_misreported: int = 0
    details: dict[str, list[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(int(getattr(self, k)) for k in VIOLATION_KEYS)

    @property
    def soft(self) -> int:
        """What a rebalance under a move budget may leave, and report: branches outside their
        limits, members kept across a district line or in a theme they left."""
        return self.over_max + self.under_min + self.under_full + self.cross_district + self.theme_mismatch

    @property
    def structural(self) -> int:
        """Violations no path may ever produce (split families, dropped or invented records,
        leavers kept in a branch, active members left out, sizes reported wrong)."""
        return self.total - self.soft

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: int(getattr(self, k)) for k in VIOLATION_KEYS}
        out["total"] = self.total
        out["details"] = {k: v[:10] for k, v in self.details.items() if v}
        return out

    def describe(self) -> str:
        """One line for an error message or a note."""
        parts = [f"{k}={getattr(self, k)}" for k in VIOLATION_KEYS if getattr(self, k)]
        if not parts:
            return "no violations"
        first = [f"{k}: {', '.join(v[:3])}" for k, v in self.details.items() if v]
        return "; ".join(parts) + (" (" + "; ".join(first) + ")" if first else "")


class PlanInvalidError(ValueError):
    """A plan broke a rule no path may break (a split family, a dropped record, ...)."""

    def __init__(self, violations: Violations, where: str):
        self.violations = violations
        super().__init__(f"{where}: the plan breaks the rules: {violations.describe()}")


def check_plan(members: pd.DataFrame, assignments: pd.DataFrame, policy: Policy,
               branches: pd.DataFrame | None = None, frozen_branches: Collection[str] = ()) -> Violations:
    """Check a plan against the roster, recomputing everything from the member table.

    ``members``: the roster rows (member_id; weight, full_member, group_id, status, district_zh,
    theme, lon, lat, geo_status where known). ``assignments``: member_id, branch_id ("" for none).
    ``branches`` (optional): branch_id with ``region`` (else the region is read from the id) and
    the ``size``/``n_full`` the plan reports, which must match what the members add up to.
    Frozen members (``frozen``, with their families) and the members of ``frozen_branches`` stay
    where a planner put them, so they are exempt from the district and theme checks. Independent of any solver's
    bookkeeping.
    """
    v = Violations()
    details: dict[str, list[str]] = {}

    def note(key: str, items: Any) -> None:
        details.setdefault(key, []).extend(str(x) for x in list(items)[:10])

    m = members.reset_index(drop=True)
    mid = m["member_id"].astype(str).to_numpy(dtype=object)
    a_ids = assignments["member_id"].astype(str)
    a_bid = assignments["branch_id"].astype(object).where(assignments["branch_id"].notna(), "").astype(str).str.strip()
    bid_of = dict(zip(a_ids, a_bid))
    unknown = sorted(set(a_ids) - set(mid))
    missing = sorted(set(mid) - set(a_ids))
    v.unknown_members, v.missing_members = len(unknown), len(missing)
    note("unknown_members", unknown)
    note("missing_members", missing)

    bid = np.array([bid_of.get(x, "") for x in mid], dtype=object)
    assigned = bid != ""
    reasons = unassigned_reasons(m, cross_district=policy.cross_district)
    inactive = assigned & (reasons != "")
    v.inactive_assigned = int(inactive.sum())
    note("inactive_assigned", mid[inactive])
    unplaced = ~assigned & (reasons == "") & np.isin(mid, a_ids.to_numpy())
    v.unplaced = int(unplaced.sum())
    note("unplaced", mid[unplaced])

    w, fc = weights(m), full_counts(m)
    # a frozen member holds their family with them (they share a home and a branch)
    units = unit_keys(m)
    frozen_units = set(units[_ints(m, "frozen", 0) > 0].tolist())
    held = np.isin(units, list(frozen_units)) | np.isin(bid, list(frozen_branches))
    frame = pd.DataFrame({"b": bid, "w": w, "f": fc, "u": units, "d": district_keys(m),
                          "raw_t": _text(m, "theme"), "held": held})[assigned]
    if len(frame):
        g = frame.groupby("b", sort=True)
        size, nfull = g["w"].sum(), g["f"].sum()
        ex_over = size > policy.max_size
        ex_min = size < policy.min_size
        ex_full = nfull < policy.min_full
        v.over_max, v.under_min, v.under_full = int(ex_over.sum()), int(ex_min.sum()), int(ex_full.sum())
        note("over_max", [f"{b} ({size[b]})" for b in size.index[ex_over]])
        note("under_min", [f"{b} ({size[b]})" for b in size.index[ex_min]])
        note("under_full", [f"{b} ({nfull[b]} full)" for b in size.index[ex_full]])

        split = frame[frame["u"].str.startswith("g:")].groupby("u")["b"].nunique()
        v.split_groups = int((split > 1).sum())
        note("split_groups", [u[2:] for u in split.index[split > 1]])

        if not policy.cross_district:
            # districts able to form a branch alone must not share one; tiny ones may join (joint)
            act = pd.DataFrame({"d": district_keys(m), "w": w, "f": fc})[reasons == ""]
            dsum = act.groupby("d")[["w", "f"]].sum()
            alone = {d for d, r in dsum.iterrows() if can_stand_alone(int(r["w"]), int(r["f"]), policy)}
            per = frame[~frame["held"]].groupby("b")["d"].agg(lambda s: {x for x in s if x})
            crossing = [b for b, ds in per.items() if len(ds & alone) > 1]
            v.cross_district = len(crossing)
            note("cross_district", crossing)

        regions = branch_regions(branches, list(size.index))
        bad_theme = []
        for b, grp in g:
            theme = region_theme(regions.get(str(b), branch_region(str(b))))
            if theme and (grp.loc[~grp["held"], "raw_t"] != theme).any():
                bad_theme.append(str(b))
        v.theme_mismatch = len(bad_theme)
        note("theme_mismatch", bad_theme)

        if branches is not None and len(branches) and {"size", "n_full"} <= set(branches.columns):
            stated = branches.set_index(branches["branch_id"].astype(str))
            stated = stated[pd.to_numeric(stated["size"], errors="coerce").fillna(0) > 0]
            got_size = size.reindex(stated.index).fillna(0).astype(int)
            got_full = nfull.reindex(stated.index).fillna(0).astype(int)
            wrong = (got_size != pd.to_numeric(stated["size"]).astype(int)) | (
                got_full != pd.to_numeric(stated["n_full"]).astype(int))
            absent = sorted(set(size.index) - set(stated.index))
            v.size_misreported = int(wrong.sum()) + len(absent)
            note("size_misreported", [*stated.index[wrong.to_numpy()], *absent])
    v.details = details
    return v


def branch_regions(branches: pd.DataFrame | None, branch_ids: list[str]) -> dict[str, str]:
    """Each branch's region: the ``region`` column where a branches table has one, else its id."""
    out = {str(b): branch_region(str(b)) for b in branch_ids}
    if branches is not None and len(branches) and "region" in branches.columns:
        for b, r in zip(branches["branch_id"].astype(str), branches["region"]):
            if isinstance(r, str) and r:
                out[b] = r
    return out


def plan_members(members: pd.DataFrame) -> pd.DataFrame:
    """The roster columns every plan path relies on, filled with the rules' defaults."""
    members = members.reset_index(drop=True).copy()
    members["weight"] = weights(members)
    members["full_member"] = full_flags(members)
    members["status"] = statuses(members)
    members["group_id"] = (members["group_id"].astype(object).where(members["group_id"].notna(), "")
                           .astype(str).str.strip() if "group_id" in members else "")
    return members


def validated(members: pd.DataFrame, assignments: pd.DataFrame, branches: pd.DataFrame, policy: Policy,
              where: str, frozen_branches: Collection[str] = (), *, strict: bool = False) -> dict[str, Any]:
    """Run :func:`check_plan` on a plan about to be written: the report's ``violations``.

    Raises :class:`PlanInvalidError` when a rule that no path may break is broken
    (:attr:`Violations.structural`), and with ``strict`` (a plan made from scratch) on any
    violation at all; otherwise the soft ones are reported and the plan is marked invalid."""
    v = check_plan(members, assignments, policy, branches, frozen_branches)
    if v.structural or (strict and v.total):
        raise PlanInvalidError(v, where)
    return v.to_dict()
