"""A synthetic national roster: members in China's cities and districts, for tests and benchmarks.

Mobile members' files are held in every city, so a national roster has a few very large cities
and many small ones. Cities get members by a Zipf law over their rank (a fixed list of the
largest cities first, then the others in a seeded order), districts within a city by a milder
one with urban districts (区) weighted up; points scatter around a few neighbourhood centres
near each district's centre. The district centres come from ``data/national/counties.csv``
(derived from the cpca package's county table, MIT licence; see data/national/README.md).

Everything is drawn from one seeded generator: the same ``members`` and ``seed`` give the same
roster, row for row. No real person is in it.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from geoalloc.paths import data_dir

COLUMNS = ["member_id", "lon", "lat", "city_zh", "district_zh", "full_member", "status", "weight", "group_id",
           "theme", "industry"]
# the largest cities first (by resident population, roughly); the rest follow in a seeded order
LARGEST = ["重庆市", "上海市", "北京市", "成都市", "广州市", "深圳市", "天津市", "武汉市", "西安市", "苏州市",
           "郑州市", "杭州市", "石家庄市", "临沂市", "东莞市", "青岛市", "长沙市", "哈尔滨市", "宁波市", "合肥市",
           "佛山市", "南京市", "沈阳市", "昆明市", "济南市", "南宁市", "长春市", "泉州市", "福州市", "厦门市"]
CITY_ZIPF = 1.0  # members of the k-th city ~ 1 / k ** CITY_ZIPF
DISTRICT_ZIPF = 0.8  # within a city, of the k-th district (urban districts first, seeded order)
URBAN_WEIGHT = 3.0  # an urban district (区) draws this many times the members of a county
MEMBERS_PER_CITY = 40  # smaller rosters use only the largest members // this many cities
CITY_FLOOR = 12  # every city used gets at least this many members (and 3 full members)
SPREAD_M = 1500.0  # a neighbourhood's spread at 100 members; grows with the square root of size
NEIGHBOURHOOD_MEMBERS = 400  # one more neighbourhood centre per this many members of a district
STATUS = (("active", 0.95), ("lost_contact", 0.03), ("transfer_out", 0.02))
FULL_SHARE = 0.88
WEIGHTED_SHARE = 0.015  # rows standing for 2 or 3 members
FAMILY_SHARE = 0.03  # members in a two-person family (same group_id, same home)
THEMES = (("IT", "信息技术", 0.04), ("entrepreneur", "企业家", 0.02))
M_PER_DEG = 111_320.0
LOST_SPREAD_M = 600.0  # a Shenzhen point scattered out of the city goes back this near its district's centre
LOST_TRIES = 5


@cache
def counties() -> pd.DataFrame:
    """The bundled district table: adcode, province_zh, city_zh, district_zh, lon, lat (WGS-84 centres)."""
    return pd.read_csv(data_dir() / "national" / "counties.csv", dtype={"adcode": str})


def _city_order(cities: list[str], rng: np.random.Generator) -> list[str]:
    known = [c for c in LARGEST if c in cities]
    rest = sorted(set(cities) - set(known))
    return known + [rest[i] for i in rng.permutation(len(rest))]


def generate_national(members: int, seed: int = 0) -> pd.DataFrame:
    """A roster of ``members`` rows (columns :data:`COLUMNS`) over China's cities and districts."""
    if members < CITY_FLOOR:
        raise ValueError(f"a national roster needs at least {CITY_FLOOR} members (got {members})")
    rng = np.random.default_rng(seed)
    table = counties()
    order = _city_order(sorted(table["city_zh"].unique()), rng)
    n_cities = int(min(len(order), max(1, members // MEMBERS_PER_CITY)))
    cities = order[:n_cities]
    share = 1.0 / np.arange(1, n_cities + 1) ** CITY_ZIPF
    per_city = CITY_FLOOR + rng.multinomial(members - CITY_FLOOR * n_cities, share / share.sum())

    lon, lat, city_col, district_col = [], [], [], []
    for city, count in zip(cities, per_city):
        ds = table[table["city_zh"] == city].reset_index(drop=True)
        urban = ds["district_zh"].str.endswith("区").to_numpy()
        rank = np.empty(len(ds))
        rank[rng.permutation(len(ds))] = np.arange(1, len(ds) + 1)
        w = (np.where(urban, URBAN_WEIGHT, 1.0)) / rank ** DISTRICT_ZIPF
        per_district = rng.multinomial(int(count), w / w.sum())
        for (_, row), k in zip(ds.iterrows(), per_district):
            if k == 0:
                continue
            x, y = _scatter(int(k), rng)
            coslat = np.cos(np.radians(row["lat"]))
            lon.append(row["lon"] + x / (M_PER_DEG * coslat))
            lat.append(row["lat"] + y / M_PER_DEG)
            city_col.append(np.full(k, city, dtype=object))
            district_col.append(np.full(k, row["district_zh"], dtype=object))
    lon_a, lat_a = np.concatenate(lon), np.concatenate(lat)
    n = len(lon_a)
    out = pd.DataFrame({
        "member_id": [f"N{i:07d}" for i in range(n)],
        "lon": np.round(lon_a, 6),
        "lat": np.round(lat_a, 6),
        "city_zh": np.concatenate(city_col),
        "district_zh": np.concatenate(district_col),
    })
    _inside_shenzhen(out, table, np.random.default_rng([seed, 1]))
    full = (rng.random(n) < FULL_SHARE).astype(int)
    status = rng.choice([s for s, _ in STATUS], size=n, p=[p for _, p in STATUS])
    starts = np.cumsum([0] + [int(c) for c in per_city[:-1]])
    for s in starts:  # every city can form at least one branch: its first three are full and active
        full[s:s + 3] = 1
        status[s:s + 3] = "active"
    out["full_member"] = full
    out["status"] = status
    weight = np.ones(n, dtype=int)
    heavy = np.flatnonzero(rng.random(n) < WEIGHTED_SHARE)
    heavy = heavy[~np.isin(heavy, _first_three(starts))]
    weight[heavy] = rng.integers(2, 4, size=len(heavy))
    out["weight"] = weight
    out["group_id"], homes = _families(out["city_zh"].to_numpy(), out["district_zh"].to_numpy(), rng)
    out.loc[homes[:, 1], ["lon", "lat"]] = out.loc[homes[:, 0], ["lon", "lat"]].to_numpy()
    theme = np.full(n, "", dtype=object)
    industry = np.full(n, "", dtype=object)
    draw = rng.random(n)
    low = 0.0
    for name, trade, p in THEMES:
        pick = (draw >= low) & (draw < low + p)
        theme[pick], industry[pick] = name, trade
        low += p
    out["theme"], out["industry"] = theme, industry
    return out[COLUMNS]


def _inside_shenzhen(out: pd.DataFrame, table: pd.DataFrame, rng: np.random.Generator) -> None:
    """Shenzhen's rows are checked against its district polygons when a roster is read: a point
    scattered into the sea or across the border goes back near its district's centre (within
    about ``LOST_SPREAD_M``, a few tries, else the centre itself: thousands of members on one
    point, as a large roster's coastal districts had, is no roster anyone has), and the district
    is the one the point lies in (as the roster reader decides it). ``rng``: a stream of its own,
    so the other columns' draws do not depend on how many points were lost."""
    sz = np.flatnonzero(out["city_zh"].to_numpy() == "深圳市")
    if not len(sz):
        return
    from geoalloc.districts import locate_districts

    where = locate_districts(out["lon"].to_numpy()[sz], out["lat"].to_numpy()[sz]).to_numpy()
    centres = table[table["city_zh"] == "深圳市"].set_index("district_zh")
    lost = sz[[w is None for w in where]]
    names = out["district_zh"].to_numpy()[lost]
    c_lon, c_lat = centres.loc[names, "lon"].to_numpy(), centres.loc[names, "lat"].to_numpy()
    lon, lat = c_lon.copy(), c_lat.copy()
    todo = np.arange(len(lost))
    for _ in range(LOST_TRIES):
        if not len(todo):
            break
        dx, dy = rng.normal(0.0, LOST_SPREAD_M, size=(2, len(todo)))
        tlon = c_lon[todo] + dx / (M_PER_DEG * np.cos(np.radians(c_lat[todo])))
        tlat = c_lat[todo] + dy / M_PER_DEG
        inside = np.array([w is not None for w in locate_districts(tlon, tlat).to_numpy()], dtype=bool)
        lon[todo[inside]], lat[todo[inside]] = tlon[inside], tlat[inside]
        todo = todo[~inside]
    out.loc[lost, "lon"] = lon
    out.loc[lost, "lat"] = lat
    where = locate_districts(out["lon"].to_numpy()[sz], out["lat"].to_numpy()[sz]).to_numpy()
    out.loc[sz, "district_zh"] = [w or d for w, d in zip(where, out["district_zh"].to_numpy()[sz])]


def _first_three(starts: np.ndarray) -> np.ndarray:
    return (starts[:, None] + np.arange(3)[None, :]).ravel()


def _scatter(k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Offsets in metres of ``k`` homes: a few neighbourhoods around the district centre."""
    hoods = 1 + k // NEIGHBOURHOOD_MEMBERS
    spread = SPREAD_M * np.sqrt(max(k, 1) / 100.0) / np.sqrt(hoods)
    centres = rng.normal(0.0, 2.0 * spread if hoods > 1 else 0.0, size=(hoods, 2))
    which = rng.integers(0, hoods, size=k)
    pts = centres[which] + rng.normal(0.0, max(spread, 300.0), size=(k, 2))
    return pts[:, 0], pts[:, 1]


def _families(city: np.ndarray, district: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two-person families: a member and the next one in the same district share a group id and a
    home. Returns the group ids and the (member, family member) pairs whose homes are the same."""
    n = len(city)
    group = np.full(n, "", dtype=object)
    cand = np.flatnonzero(rng.random(n - 1) < FAMILY_SHARE / 2) if n > 1 else np.zeros(0, dtype=int)
    used = np.zeros(n, dtype=bool)
    pairs = []
    for i in cand.tolist():
        j = i + 1
        if used[i] or used[j] or district[i] != district[j] or city[i] != city[j]:
            continue
        used[i] = used[j] = True
        group[i] = group[j] = f"F{i:07d}"
        pairs.append((i, j))
    return group, np.array(pairs, dtype=np.int64).reshape(-1, 2)
