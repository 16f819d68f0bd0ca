"""Request and response bodies (pydantic v2). These shapes are the API contract in the OpenAPI schema."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from geoalloc.model import Datum, MemberStatus
from geoalloc.rules import Policy
from geoalloc.store.members import ADDRESS_MAX, TEXT_LIMITS, text_problem

_RULES = Policy()  # the defaults are the library's own

Role = Literal["viewer", "planner", "admin"]

#: Most items of one ``POST /relocations``.
MAX_BULK_ITEMS = 10_000


def _text(field: str) -> Any:
    """A text field under the store's rule (``geoalloc.store.members.text_problem``): the same
    length limit and control-character refusal as a roster import."""

    def check(value: str | None) -> str | None:
        if value is not None:
            why = text_problem(field, value)
            if why is not None:
                raise ValueError(why)
        return value

    return AfterValidator(check)


Address = Annotated[str, Field(min_length=1, max_length=ADDRESS_MAX), _text("address")]
MemberIdIn = Annotated[str, Field(min_length=1, max_length=TEXT_LIMITS["member_id"]), _text("member_id")]


class MemberOut(BaseModel):
    """A member as a planner of their district or an admin sees them."""

    member_id: str
    name: str = ""
    address: str = ""
    lon: float | None = None
    lat: float | None = None
    city_zh: str = Field("", description="the member's city (a national roster); empty: Shenzhen")
    district_zh: str = ""
    subdistrict_zh: str = ""
    industry: str = ""
    full_member: bool = True
    status: str = "active"
    theme: str = ""
    role: str = ""
    frozen: bool = False
    weight: int = 1
    geo_precision: str = "none"
    geo_status: str = "failed"
    version: int = 1
    branch_id: str | None = Field(None, description="branch in the newest plan, if any")


class AddressOut(BaseModel):
    """One entry of a member's address history."""

    address: str
    lon: float | None
    lat: float | None
    district_zh: str
    geo_precision: str
    geo_status: str
    source: str
    valid_from: datetime
    valid_to: datetime | None


class MemberDetail(MemberOut):
    """A member with their address history (oldest first)."""

    addresses: list[AddressOut] = []


class MemberPage(BaseModel):
    """A page of members."""

    total: int
    limit: int
    offset: int
    items: list[MemberOut]


class MemberPatch(BaseModel):
    """Fields a planner may change; a changed status or full-member flag is applied to the newest plan.

    Addresses are changed with ``POST /members/{id}/relocate`` so they are geocoded and re-placed.
    """

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str | None, Field(max_length=TEXT_LIMITS["name"]), _text("name")] = None
    industry: Annotated[str | None, Field(max_length=TEXT_LIMITS["industry"]), _text("industry")] = None
    full_member: bool | None = None
    status: MemberStatus | None = None
    theme: Annotated[str | None, Field(max_length=TEXT_LIMITS["theme"]), _text("theme")] = None
    role: Annotated[str | None, Field(max_length=TEXT_LIMITS["role"]), _text("role")] = None
    frozen: bool | None = None


class RejectOut(BaseModel):
    """One rejected roster row: spreadsheet row number, member id, field, reason."""

    row: int
    member_id: str
    field: str
    reason: str


class ImportReport(BaseModel):
    """The validation report of ``POST /members/import``."""

    filename: str
    summary: dict[str, Any]
    created: int
    updated: int
    unchanged: int
    geocoded: dict[str, int] = Field(default_factory=dict, description="members by geocoding status")
    rejects: list[RejectOut]


class RelocateIn(BaseModel):
    """A new address (geocoded offline), or a point with its datum."""

    model_config = ConfigDict(extra="forbid")

    address: Address | None = None
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    datum: Datum = Datum.WGS84

    @model_validator(mode="after")
    def _one_of(self) -> RelocateIn:
        has_point = self.lon is not None or self.lat is not None
        if self.address is None and not has_point:
            raise ValueError("give either 'address' or both 'lon' and 'lat'")
        if self.address is not None and has_point:
            raise ValueError("give 'address' or 'lon'/'lat', not both")
        if has_point and (self.lon is None or self.lat is None):
            raise ValueError("'lon' and 'lat' must be given together")
        return self


class ChangeOut(BaseModel):
    """One member whose branch changed because of a relocation."""

    member_id: str
    from_branch: str | None
    to_branch: str | None


class RelocationOut(BaseModel):
    """The outcome of a relocation: the member's new branch and why."""

    member_id: str
    plan_id: int
    plan_version: int
    from_branch: str | None
    to_branch: str | None
    action: str
    reason: str
    distance_m: float | None
    status: str
    geo_status: str
    geo_precision: str
    changes: list[ChangeOut]
    event_id: int


class RelocationItem(RelocateIn):
    """One relocation of ``POST /relocations``: the member and their new address or point."""

    member_id: MemberIdIn


class RelocationsIn(BaseModel):
    """Many relocations at once (a bulk sync); each is applied as ``POST /members/{id}/relocate`` would."""

    model_config = ConfigDict(extra="forbid")

    items: list[RelocationItem] = Field(..., min_length=1, max_length=MAX_BULK_ITEMS)


class ItemProblem(BaseModel):
    """Why one item was refused."""

    title: str
    detail: str | None = None


class RelocationItemOut(BaseModel):
    """One item's answer: its relocation (status 200) or the problem (the status its own call would get)."""

    index: int = Field(..., description="position in the request's items")
    member_id: str
    status: int
    result: RelocationOut | None = None
    problem: ItemProblem | None = None


class RelocationsOut(BaseModel):
    """Every item's answer, in the request's order."""

    total: int
    applied: int
    refused: int
    items: list[RelocationItemOut]


class SiteIn(BaseModel):
    """A service centre (党群服务中心) where branches may meet (``geoalloc.sites``)."""

    model_config = ConfigDict(extra="forbid")

    site_id: str = Field(..., min_length=1, max_length=64)
    name: str = Field(..., min_length=1, max_length=128)
    lon: float = Field(..., ge=-180, le=180)
    lat: float = Field(..., ge=-90, le=90)
    datum: Datum = Datum.WGS84
    district_zh: str | None = Field(None, max_length=32)
    capacity: int | None = Field(None, ge=1, le=10_000, description="branches that may meet here (empty: any number)")


class PolicyIn(BaseModel):
    """The rules a new plan is formed under (``geoalloc.rules.Policy``)."""

    model_config = ConfigDict(extra="forbid")

    min_size: int = Field(_RULES.min_size, ge=1, le=10_000)
    max_size: int = Field(_RULES.max_size, ge=1, le=10_000)
    min_full: int = Field(_RULES.min_full, ge=0, le=10_000)
    n_branches: Annotated[int, Field(ge=1, le=100_000)] | Literal["fewest"] | None = Field(
        None, description="A branch count, or 'fewest' (the fewest the limits allow); default: a mean of 80% of max_size per district")
    target_size: float | None = Field(None, ge=1, le=10_000)
    cross_district: bool = _RULES.cross_district
    time_limit: float = Field(_RULES.time_limit, gt=0, le=3600)
    seed: int = Field(_RULES.seed, ge=0, le=2**31 - 1)
    themes: list[Annotated[str, Field(min_length=1, max_length=TEXT_LIMITS["theme"]), _text("theme")]] | Literal["all"] | None = Field(
        None, max_length=50, description="themed branches (as the CLI's --themes): theme names members opted into, "
                                         "or 'all' for any theme; none by default")
    theme_industries: dict[Annotated[str, Field(max_length=32)], list[Annotated[str, Field(max_length=64)]]] | None = Field(
        None, max_length=20, description="Restrict a theme to members of some industries.")
    move_penalty_m: float = Field(_RULES.move_penalty_m, ge=0, le=1_000_000)
    keep_radius_m: float = Field(_RULES.keep_radius_m, ge=0, le=100_000)
    max_branches_per_adviser: int = Field(_RULES.max_branches_per_adviser, ge=1, le=1_000)
    advisers_per_branch: int = Field(_RULES.advisers_per_branch, ge=0, le=100)

    sites: list[SiteIn] | None = Field(None, max_length=5000,
                                       description="service centres: branches meet only at these sites")

    def to_policy_args(self) -> dict[str, Any]:
        """Keyword arguments of ``geoalloc.rules.Policy``."""
        return self.model_dump(exclude={"sites"})


class RebalanceIn(BaseModel):
    """Disruption controls for a rebalance; the policy is the plan's own unless overridden."""

    model_config = ConfigDict(extra="forbid")

    max_moves: int | None = Field(None, ge=0, le=1_000_000)
    move_penalty_m: float | None = Field(None, ge=0, le=1_000_000)
    policy: PolicyIn | None = None


class JobOut(BaseModel):
    """A background job and, when it succeeded, the plan it made."""

    job_id: str
    kind: str
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: float
    message: str
    parent_plan_id: int | None
    plan_id: int | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class PlanOut(BaseModel):
    """A plan's summary (no personal data)."""

    plan_id: int
    parent_id: int | None
    kind: str
    status: str
    newest: bool
    version: int = Field(..., description="bumped by every relocation applied to this plan")
    policy: dict[str, Any]
    created_at: datetime
    n_branches: int
    n_members: int
    n_assigned: int


class BranchOut(BaseModel):
    """A branch: id, meeting site, district, size and full members (sites are generalised for viewers)."""

    branch_id: str
    lon: float | None
    lat: float | None
    city_zh: str = Field("", description="the branch's city (a national roster); empty: Shenzhen")
    district_zh: str
    size: int
    n_full: int
    mean_distance_m: float
    max_distance_m: float
    joint: bool
    site_id: str | None = Field(None, description="the service centre the branch meets at (plans with sites)")
    site_name: str | None = None


class DiffMove(BaseModel):
    """A member whose branch differs between two plans."""

    member_id: str
    from_branch: str | None
    to_branch: str | None
    reason: str | None = None


class DiffOut(BaseModel):
    """What changed from plan ``a`` to plan ``b``; member-level moves only for those who may see them."""

    a: int
    b: int
    moved: int
    by_reason: dict[str, int]
    branches_opened: list[str]
    branches_closed: list[str]
    size_changes: dict[str, list[int]] = Field(..., description="branch -> [size in a, size in b], changed branches only")
    moves: list[DiffMove]


class KeyIn(BaseModel):
    """A new API key."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    district_zh: str | None = Field(None, max_length=32)
    label: str = Field("", max_length=128)


class KeyOut(BaseModel):
    """An API key without its secret."""

    key_id: str
    role: str
    district_zh: str | None
    label: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    """A new key: ``key`` is shown this once and never again."""

    key: str


class Health(BaseModel):
    """Liveness / readiness."""

    status: str
    checks: dict[str, str] = {}
