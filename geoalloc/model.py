"""The domain vocabulary: member statuses, datums, geocoding precision, and the allocation policy.

Everything else in geoalloc speaks these types. They are plain values (enums and frozen
dataclasses) so that they cross process, file and API boundaries unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class MemberStatus(StrEnum):
    """Where a member stands. Only ``active`` members are allocated; nobody is ever dropped."""

    ACTIVE = "active"
    LOST_CONTACT = "lost_contact"  # 失联: tracked, not allocated
    TRANSFER_OUT = "transfer_out"  # 转出: moved out of the city, flagged for transfer


class Datum(StrEnum):
    """Coordinate datums found in Chinese data. Everything is stored in WGS-84."""

    WGS84 = "wgs84"
    GCJ02 = "gcj02"  # "Mars" coordinates: AMap, Tencent, Google China
    BD09 = "bd09"  # Baidu


class GeoPrecision(StrEnum):
    """How precisely a member's point is known, from best to worst."""

    EXACT = "exact"  # coordinates given in the roster
    LANDMARK = "landmark"
    COMMUNITY = "community"
    SUBDISTRICT = "subdistrict"
    DISTRICT = "district"
    NONE = "none"


class GeoStatus(StrEnum):
    """The outcome of placing a member's residence."""

    OK = "ok"
    APPROXIMATE = "approximate"
    OUT_OF_CITY = "out_of_city"  # a transfer candidate
    FAILED = "failed"


class MoveReason(StrEnum):
    """Why a rebalance moved a member."""

    OVERSIZED = "oversized"
    UNDERSIZED = "undersized"
    RELOCATED = "relocated"
    CLOSED_BRANCH = "closed_branch"
    IMPROVEMENT = "improvement"


@dataclass(frozen=True)
class Policy:
    """The rules a plan is made under. Limits are configurable; the defaults are the organisation's.

    ``min_size``/``max_size`` bound a branch's demand (members); ``min_full`` is the number of
    full (not probationary) members every branch needs. ``n_branches`` fixes the branch count;
    otherwise it is the fewest the limits allow, or ``ceil(n / target_size)`` when a target is given.
    ``cross_district`` lets branches span district lines (off by default: each district committee
    owns its branches).
    """

    min_size: int = 3
    max_size: int = 50
    min_full: int = 3
    n_branches: int | None = None
    target_size: float | None = None
    cross_district: bool = False
    time_limit: float = 10.0
    seed: int = 0
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
        if self.n_branches is not None and self.n_branches < 1:
            problems.append(f"n_branches must be at least 1 (got {self.n_branches})")
        if self.target_size is not None and not (self.min_size <= self.target_size <= self.max_size):
            problems.append(
                f"target_size ({self.target_size}) must lie within min_size..max_size "
                f"({self.min_size}..{self.max_size})"
            )
        if self.time_limit <= 0:
            problems.append(f"time_limit must be positive (got {self.time_limit})")
        if problems:
            raise ValueError("invalid policy: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (for reports, stored plans and the API)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        """Build from a dict, ignoring keys this version does not know."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})
