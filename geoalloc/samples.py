"""Realistic synthetic Shenzhen rosters, for demos, tests and benchmarks.

Real rosters cannot leave the organisation, so everything that needs a roster uses these.
They imitate what real ones contain: density heavy in 南山/福田/宝安 and light in 大鹏;
addresses written the way residents write them (:data:`RESIDENT_FORMATS`): mostly a housing
estate from the bundled gazetteer, often with the market area and a road after it
(``富达花园 莲塘 罗沙路12号``), sometimes with the district, a station, the full administrative
chain, an old district name (宝安区龙华街道), separators or a repeated prefix; members who
transferred out sometimes give an address in another city; a mix of industries, full and
probationary members, statuses, and some rows that carry coordinates (in WGS-84, GCJ-02 or
BD-09) instead of, or beside, an address.

``generate_addresses`` (the labelled benchmark set) keeps the older administrative formats.

Everything is deterministic under ``seed``. Each member's true point lies inside the
member's own district polygon.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
import pandas as pd
import shapely
from shapely.prepared import prep

from geoalloc import districts as gaz
from geoalloc.geocode.datum import from_wgs84
from geoalloc.projection import to_lonlat, to_metres

#: Relative share of members living in each district (heavy where the firms are).
DISTRICT_WEIGHTS: dict[str, float] = {
    "南山区": 0.21,
    "福田区": 0.17,
    "宝安区": 0.17,
    "龙岗区": 0.12,
    "龙华区": 0.12,
    "罗湖区": 0.08,
    "光明区": 0.045,
    "坪山区": 0.035,
    "盐田区": 0.02,
    "大鹏新区": 0.008,
}

INDUSTRIES: list[tuple[str, float]] = [
    ("IT/互联网", 0.30),
    ("金融", 0.12),
    ("先进制造", 0.14),
    ("专业服务", 0.10),
    ("商贸物流", 0.09),
    ("教育培训", 0.06),
    ("医疗健康", 0.06),
    ("文化创意", 0.05),
    ("创业者", 0.08),
]

#: Industries whose members may opt into a themed branch, and the theme's name.
THEMES: dict[str, str] = {"IT/互联网": "IT", "创业者": "entrepreneur"}

STATUS_WEIGHTS: list[tuple[str, float]] = [("active", 0.95), ("lost_contact", 0.03), ("transfer_out", 0.02)]

#: Address formats, with their share of a roster.
ADDRESS_FORMATS: list[tuple[str, float]] = [
    ("full", 0.22),  # 广东省深圳市南山区粤海街道科苑社区科苑路15号…
    ("no_province", 0.16),  # 深圳市南山区粤海街道…
    ("no_city", 0.16),  # 南山区粤海科苑社区…
    ("short_names", 0.08),  # 深圳南山粤海…
    ("community_only", 0.10),  # 科苑社区…栋…
    ("landmark", 0.08),  # 南山区…地铁站附近
    ("district_only", 0.04),  # 深圳市南山区（no finer unit）
    ("fullwidth", 0.06),  # digits and letters in full width
    ("spaces", 0.05),  # stray spaces
    ("historical", 0.05),  # pre-2017 names (宝安区龙华街道, 龙岗区坪山街道…)
]

#: How today's units were written before the 2016-2018 redistricting.
HISTORICAL_PARENT: dict[str, str] = {
    "龙华区": "宝安区",
    "光明区": "宝安区",
    "坪山区": "龙岗区",
    "大鹏新区": "龙岗区",
}

#: How members write their address in the sample roster, with their share.
RESIDENT_FORMATS: list[tuple[str, float]] = [
    ("listing", 0.18),  # 富达花园 莲塘 罗沙路12号: estate, market area, road
    ("estate_unit", 0.15),  # 富达花园7栋502
    ("district_estate", 0.12),  # 罗湖区富达花园7栋502
    ("area_estate", 0.07),  # 莲塘富达花园7栋
    ("full", 0.12),  # 广东省深圳市罗湖区莲塘街道…社区富达花园7栋502
    ("road", 0.09),  # 深圳市罗湖区罗沙路12号富达花园
    ("station", 0.05),  # 莲塘地铁站附近富达花园
    ("community", 0.05),  # …社区富达花园7栋
    ("historical", 0.05),  # 深圳市宝安区龙华街道… (a unit under its pre-2017 district)
    ("separators", 0.04),  # 广东省-深圳市-罗湖区-莲塘街道 富达花园
    ("fullwidth", 0.04),  # digits in full width
    ("repeated_prefix", 0.04),  # 广东省深圳市广东省深圳市罗湖区…
]

#: Addresses elsewhere, given by some members who transferred out (names Shenzhen-like on purpose).
OTHER_CITY_ADDRESSES: list[str] = [
    "北京市昌平区沙河镇北二街{n}号",
    "浙江省嘉兴市平湖市当湖街道梅兴路{n}号",
    "东莞市长安镇乌沙村{n}号",
    "海口市龙华区滨海大道{n}号",
    "广州市天河区华夏路{n}号",
    "陕西省汉中市西乡县城关镇东街{n}号",
    "惠州市惠阳区淡水街道开城大道{n}号",
    "湖南省长沙市岳麓区麓山南路{n}号",
]

OUT_OF_CITY: list[str] = [
    "北京市朝阳区望京街道阜通东大街{n}号",
    "广东省广州市天河区珠江新城华夏路{n}号",
    "广州市番禺区市桥街道{n}号",
    "东莞市长安镇振安中路{n}号",
    "广东省东莞市松山湖园区{n}号",
    "上海市浦东新区张江镇{n}号",
    "海南省海口市龙华区金贸街道{n}号",  # a 龙华区 that is not Shenzhen's
    "湖南省长沙市岳麓区{n}号",
    "香港九龙旺角{n}号",
    "惠州市惠阳区淡水街道{n}号",
]

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉晨宇浩然子涵欣怡梓轩一诺思远嘉豪"
_ESTATE_SUFFIX = ["花园", "苑", "公寓", "家园", "新村", "大厦", "雅居", "名城"]
_ROAD_SUFFIX = ["路", "大道", "街", "一路", "二路"]


@dataclass(frozen=True)
class _Place:
    district: str
    subdistrict: str
    short: str
    community: str
    seed_lon: float
    seed_lat: float


@lru_cache(maxsize=1)
def _units() -> dict[str, list[_Place]]:
    """Every (district, subdistrict, community) of the 74 standard subdistricts, with seeds."""
    subs = gaz.subdistricts().set_index("name_zh")
    comms = gaz.communities()
    comms = comms[(comms["is_standard_subdistrict"] == 1) & (comms["is_virtual"] == 0)]
    out: dict[str, list[_Place]] = {}
    for row in comms.itertuples(index=False):
        sub = subs.loc[row.subdistrict_zh]
        out.setdefault(row.district_zh, []).append(
            _Place(row.district_zh, row.subdistrict_zh, str(sub["short_name"]), row.community_zh,
                   float(sub["seed_lon"]), float(sub["seed_lat"]))
        )
    return out


@lru_cache(maxsize=1)
def _district_shapes() -> dict[str, object]:
    return {name: prep(geom) for name, geom in zip(gaz.districts()["name_zh"], gaz.districts().geometry)}


def _pick(rng: np.random.Generator, items: list[tuple[str, float]], size: int) -> np.ndarray:
    names = [i[0] for i in items]
    p = np.array([i[1] for i in items], dtype=float)
    return rng.choice(np.array(names, dtype=object), size=size, p=p / p.sum())


def _contains(shape: Any, lon: float, lat: float) -> bool:
    """Whether a (prepared) district shape holds the point."""
    return bool(shape.contains(shapely.Point(lon, lat)))


def _true_points(rng: np.random.Generator, places: list[_Place], sigma_m: float = 1100.0) -> np.ndarray:
    """A point near each place's subdistrict seed, redrawn until it lies inside the district."""
    seeds = np.array([[p.seed_lon, p.seed_lat] for p in places])
    seeds_m = to_metres(seeds[:, 0], seeds[:, 1])
    out = np.empty_like(seeds)
    shapes = _district_shapes()
    pending = np.arange(len(places))
    for _attempt in range(30):
        if len(pending) == 0:
            break
        cand_m = seeds_m[pending] + rng.normal(0.0, sigma_m, size=(len(pending), 2))
        cand = to_lonlat(cand_m[:, 0], cand_m[:, 1])
        ok: NDArray[np.bool_] = np.array([
            bool(_contains(shapes[places[i].district], lon, lat))
            for i, (lon, lat) in zip(pending.tolist(), cand.tolist())
        ], dtype=np.bool_)
        out[pending[ok]] = cand[ok]
        pending = pending[~ok]
    out[pending] = seeds[pending]  # the seeds themselves are inside their districts
    return np.round(out, 6)


_FULLWIDTH = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})


def _stem(community: str) -> str:
    return community.removesuffix("社区")


def _street_part(rng: np.random.Generator, place: _Place) -> str:
    stem = _stem(place.community)
    road = f"{stem}{_ROAD_SUFFIX[rng.integers(len(_ROAD_SUFFIX))]}{int(rng.integers(1, 300))}号"
    estate = f"{stem}{_ESTATE_SUFFIX[rng.integers(len(_ESTATE_SUFFIX))]}"
    unit = f"{int(rng.integers(1, 30))}栋{int(rng.integers(1, 33))}{int(rng.integers(1, 9)):02d}"
    return road + estate + unit if rng.random() < 0.6 else estate + unit


def format_address(rng: np.random.Generator, place: _Place, fmt: str) -> tuple[str, bool]:
    """One address for ``place`` in format ``fmt``; the flag says whether it names the subdistrict or a community."""
    street = _street_part(rng, place)
    d, s, c = place.district, place.subdistrict, place.community
    if fmt == "full":
        return f"广东省深圳市{d}{s}{c}{street}", True
    if fmt == "no_province":
        return f"深圳市{d}{s}{street}", True
    if fmt == "no_city":
        return f"{d}{place.short}{c}{street}", True
    if fmt == "short_names":
        return f"深圳{d.removesuffix('区').removesuffix('新')}{place.short}{_stem(c)}{street}", True
    if fmt == "community_only":
        return f"{c}{street}", True
    if fmt == "landmark":
        return f"{d}{_stem(c)}{'地铁站附近' if rng.random() < 0.5 else '站旁'}{street}", True
    if fmt == "district_only":
        return f"深圳市{d}", False
    if fmt == "fullwidth":
        return f"深圳市{d}{s}{c}{street}".translate(_FULLWIDTH), True
    if fmt == "spaces":
        return f"深圳市 {d} {s}  {c} {street} ", True
    if fmt == "historical":
        old = HISTORICAL_PARENT.get(d)
        if old is None:
            return f"广东省深圳市{d}{s}{c}{street}", True
        if d == "光明区":
            return f"深圳市{old}光明新区{s}{c}{street}", True
        if d == "大鹏新区" and rng.random() < 0.5:
            return f"深圳市大鹏新区{s}{c}{street}", True
        return f"深圳市{old}{s}{c}{street}", True
    raise ValueError(f"unknown address format {fmt!r}")


@lru_cache(maxsize=1)
def _resident_tables() -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, list[str]], dict[str, list[str]]]:
    """Estates and market areas per subdistrict, roads per district, stations per subdistrict (bundled gazetteer)."""
    places = gaz.named_places()
    estates: dict[str, list[str]] = {}
    stations: dict[str, list[str]] = {}
    for r in places.itertuples(index=False):
        if r.kind == "estate" and r.subdistrict_zh and "(" not in r.name_zh:
            estates.setdefault(str(r.subdistrict_zh), []).append(str(r.name_zh))
        elif r.kind == "metro_station" and r.subdistrict_zh:
            stations.setdefault(str(r.subdistrict_zh), []).append(str(r.name_zh))
    areas: dict[str, list[str]] = {}
    for r in gaz.market_areas().itertuples(index=False):
        if r.subdistrict_zh:
            areas.setdefault(str(r.subdistrict_zh), []).append(str(r.name_zh))
    roads: dict[str, list[str]] = {}
    for r in gaz.roads().itertuples(index=False):
        for d in str(r.districts_zh).split(";"):
            if d and len(str(r.road_zh)) >= 3:
                roads.setdefault(d, []).append(str(r.road_zh))
    return estates, areas, roads, stations


def resident_address(rng: np.random.Generator, place: _Place, fmt: str) -> str:
    """One address for ``place`` written as residents do (``fmt`` from :data:`RESIDENT_FORMATS`)."""
    estates, areas, roads, stations = _resident_tables()
    d, s, c = place.district, place.subdistrict, place.community
    pool = estates.get(s)
    if not pool:  # the four subdistricts the estate list lacks: an unlisted estate, written under its community
        return f"{c}{_stem(c)}{_ESTATE_SUFFIX[rng.integers(len(_ESTATE_SUFFIX))]}{int(rng.integers(1, 30))}栋"
    estate = pool[int(rng.integers(len(pool)))]
    unit = f"{int(rng.integers(1, 30))}栋{int(rng.integers(1, 33))}{int(rng.integers(1, 9)):02d}"
    boards = [place.short] + areas.get(s, [])
    board = boards[int(rng.integers(len(boards)))]
    road_pool = roads.get(d) or [f"{_stem(c)}路"]
    road = f"{road_pool[int(rng.integers(len(road_pool)))]}{int(rng.integers(1, 400))}号"
    if fmt == "listing":
        return f"{estate} {board} {road}"
    if fmt == "estate_unit":
        return f"{estate}{unit}"
    if fmt == "district_estate":
        return f"{d}{estate}{unit}"
    if fmt == "area_estate":
        return f"{board}{estate}{int(rng.integers(1, 30))}栋"
    if fmt == "full":
        return f"广东省深圳市{d}{s}{c}{estate}{unit}"
    if fmt == "road":
        return f"深圳市{d}{road}{estate}"
    if fmt == "station":
        near = stations.get(s)
        if not near:
            return f"{estate} {board}"
        return f"{near[int(rng.integers(len(near)))]}地铁站附近{estate}"
    if fmt == "community":
        return f"{c}{estate}{unit}"
    if fmt == "historical":
        old = HISTORICAL_PARENT.get(d)
        return f"深圳市{old}{s}{estate}{unit}" if old else f"深圳{d}{estate}{unit}"
    if fmt == "separators":
        return f"广东省-深圳市-{d}-{s} {estate}"
    if fmt == "fullwidth":
        return f"{estate}{unit}".translate(_FULLWIDTH)
    if fmt == "repeated_prefix":
        return f"广东省深圳市广东省深圳市{d}{estate}{unit}"
    raise ValueError(f"unknown resident address format {fmt!r}")


def _names(rng: np.random.Generator, n: int) -> list[str]:
    sur = rng.integers(len(_SURNAMES), size=n)
    g1 = rng.integers(len(_GIVEN), size=n)
    g2 = rng.integers(len(_GIVEN), size=n)
    two = rng.random(n) < 0.7
    return [_SURNAMES[a] + _GIVEN[b] + (_GIVEN[c] if t else "") for a, b, c, t in zip(sur, g1, g2, two)]


def _places(rng: np.random.Generator, n: int) -> list[_Place]:
    units = _units()
    dists = _pick(rng, list(DISTRICT_WEIGHTS.items()), n)
    out: list[_Place] = []
    for d in dists:
        cands = units[str(d)]
        out.append(cands[int(rng.integers(len(cands)))])
    return out


def generate_roster(n: int = 7000, seed: int = 20261127, coordinate_share: float = 0.3) -> pd.DataFrame:
    """A roster of ``n`` members in the columns the roster reader accepts.

    About ``coordinate_share`` of the rows carry lon/lat (in a mix of datums) beside their
    address; the rest must be geocoded. Secretaries (about 43 per 7,000) and advisers (about
    200) are marked in ``role``; a share of IT and entrepreneur members opt into a theme.
    """
    rng = np.random.default_rng(seed)
    places = _places(rng, n)
    pts = _true_points(rng, places)
    # Address text has its own random stream, so changing how addresses are written never shifts the
    # other columns.
    arng = np.random.default_rng([seed, 18])
    fmts = _pick(arng, RESIDENT_FORMATS, n)
    addresses = [resident_address(arng, p, str(f)) for p, f in zip(places, fmts)]
    industry = _pick(rng, INDUSTRIES, n)
    status = _pick(rng, STATUS_WEIGHTS, n)
    # Some members who transferred out give their new address in another city.
    moved = np.flatnonzero((status == "transfer_out") & (arng.random(n) < 0.5))
    for i in moved:
        addresses[i] = OTHER_CITY_ADDRESSES[int(arng.integers(len(OTHER_CITY_ADDRESSES)))].format(
            n=int(arng.integers(1, 300)))
    full = (rng.random(n) < 0.9).astype(int)
    theme = np.array([THEMES.get(str(i), "") if rng.random() < 0.35 else "" for i in industry], dtype=object)
    role = np.full(n, "", dtype=object)
    picks = rng.permutation(n)
    n_sec, n_adv = round(43 * n / 7000), round(200 * n / 7000)
    role[picks[:n_sec]] = "secretary"
    role[picks[n_sec:n_sec + n_adv]] = "adviser"
    full[picks[:n_sec + n_adv]] = 1  # officers are full members

    has_xy = rng.random(n) < coordinate_share
    datum = _pick(rng, [("wgs84", 0.4), ("gcj02", 0.45), ("bd09", 0.15)], n)
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    for d in ("wgs84", "gcj02", "bd09"):
        sel = has_xy & (datum == d)
        if sel.any():
            x, y = from_wgs84(pts[sel, 0], pts[sel, 1], d)
            lon[sel], lat[sel] = np.round(x, 6), np.round(y, 6)
    # Some rows with coordinates have no address: the membership system only had a pin.
    no_address = has_xy & (rng.random(n) < 0.15)
    addresses = ["" if na else a for a, na in zip(addresses, no_address)]

    frame = pd.DataFrame({
        "member_id": [f"M{i + 1:05d}" for i in range(n)],
        "name": _names(rng, n),
        "address": addresses,
        "lon": lon,
        "lat": lat,
        "datum": np.where(has_xy, datum, ""),
        "district_zh": [p.district for p in places],
        "industry": industry,
        "full_member": full,
        "status": status,
        "theme": theme,
        "role": role,
    })
    return _households(np.random.default_rng([seed, 16]), frame)


#: Share of members living with another member (a family: rows sharing a ``group_id`` and a home),
#: and of rows that stand for several members (``weight`` 2 or 3).
FAMILY_SHARE = 0.04
WEIGHTED_SHARE = 0.01


def _households(rng: np.random.Generator, frame: pd.DataFrame) -> pd.DataFrame:
    """Families and weighted rows, on their own random stream (the other columns do not move).

    A family is two or three consecutive rows given the first one's home (address, point,
    district) and status, and one ``group_id``; about a third of them have a probationary
    member. A weighted row stands for two or three members at one address.
    """
    n = len(frame)
    out = frame.copy()
    out["weight"] = 1
    out["group_id"] = ""
    home = ["address", "lon", "lat", "datum", "district_zh", "status"]
    anchors = np.sort(rng.choice(np.arange(0, max(n - 3, 1), 3), size=int(FAMILY_SHARE * n / 2.5), replace=False))
    for k, i in enumerate(anchors):
        rows = list(range(int(i), min(n, int(i) + int(rng.integers(2, 4)))))
        out.loc[rows, home] = out.loc[[rows[0]] * len(rows), home].to_numpy()
        out.loc[rows, "group_id"] = f"F{k + 1:04d}"
        if rng.random() < 0.35 and out.at[rows[-1], "role"] == "":  # officers stay full members
            out.at[rows[-1], "full_member"] = 0
    single = np.flatnonzero(out["group_id"].to_numpy() == "")
    heavy = rng.choice(single, size=int(WEIGHTED_SHARE * n), replace=False)
    out.loc[heavy, "weight"] = rng.integers(2, 4, len(heavy))
    return out


def generate_addresses(n: int = 20000, seed: int = 7, out_of_city_share: float = 0.03) -> pd.DataFrame:
    """Labelled addresses for the geocoding benchmark.

    Columns: ``address``, ``member_id``, ``true_district_zh``, ``true_subdistrict_zh`` (empty
    when the address names neither the subdistrict nor one of its communities),
    ``true_community_zh``, ``format``, ``in_city``, ``ambiguous`` (the address names only a
    community whose name exists in more than one subdistrict, so its text alone cannot tell
    the subdistrict: a geocoder should flag it, not guess).
    """
    shared_names = _ambiguous_communities()
    rng = np.random.default_rng(seed)
    places = _places(rng, n)
    fmts = _pick(rng, ADDRESS_FORMATS, n)
    rows = []
    for i, (p, f) in enumerate(zip(places, fmts)):
        if rng.random() < out_of_city_share:
            tmpl = OUT_OF_CITY[int(rng.integers(len(OUT_OF_CITY)))]
            rows.append((tmpl.format(n=int(rng.integers(1, 500))), f"A{i:06d}", "", "", "", "out_of_city",
                         False, False))
            continue
        addr, names_sub = format_address(rng, p, str(f))
        ambiguous = f == "community_only" and p.community in shared_names
        rows.append((addr, f"A{i:06d}", p.district, p.subdistrict if names_sub else "",
                     p.community if names_sub else "", str(f), True, ambiguous))
    return pd.DataFrame(rows, columns=["address", "member_id", "true_district_zh", "true_subdistrict_zh",
                                       "true_community_zh", "format", "in_city", "ambiguous"])


@lru_cache(maxsize=1)
def _ambiguous_communities() -> frozenset[str]:
    """Community names that occur in more than one subdistrict."""
    counts = gaz.communities()["community_zh"].value_counts()
    return frozenset(counts[counts > 1].index)


def write_sample(path: str | None = None, n: int = 7000, seed: int = 20261127) -> str:
    """Regenerate the committed sample roster (``data/sample/members.csv``)."""
    from geoalloc.paths import sample_roster_path

    target = path or str(sample_roster_path())
    generate_roster(n, seed).to_csv(target, index=False, encoding="utf-8")
    return target


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    print(write_sample())
