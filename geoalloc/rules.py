"""The rules a plan is made under, written once: the policy, what a member counts for, the checks.

Every path (allocate, rebalance, relocation, the API, the store round trip, maps and reports)
imports its limits and defaults from here; no other module restates one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# By default a branch's mean size aims at this share of max_size (40 of 50): room for newcomers and
# members who move in, so a relocation into a full area does not cascade. "fewest" stays available.
DEFAULT_TARGET_SHARE = 0.8
FEWEST = "fewest"


@dataclass(frozen=True)
class Policy:
    """The rules a plan is made under. Limits are configurable; the defaults are the organisation's.

    ``min_size``/``max_size`` bound a branch's demand (members); ``min_full`` is the number of
    full (not probationary) members every branch needs. ``n_branches`` fixes the branch count
    (``"fewest"``: the fewest the limits allow); otherwise each district gets
    ``ceil(members / target_size)`` branches within its limits, where ``target_size`` defaults to
    ``DEFAULT_TARGET_SHARE * max_size`` (see :meth:`target_mean`).
    ``cross_district`` lets branches span district lines (off by default: each district committee
    owns its branches).
    """

    min_size: int = 3
    max_size: int = 50
    min_full: int = 3
    n_branches: int | Literal["fewest"] | None = None
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
        if problems:
            raise ValueError("invalid policy: " + "; ".join(problems))

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
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        """Build from a dict, ignoring keys this version does not know."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})
