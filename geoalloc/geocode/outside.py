"""The names of China's other provinces, cities and counties, so an address elsewhere is never put in Shenzhen.

Built from ``data/districts/china_divisions.csv`` (every province, prefecture-level city and
county-level unit, from jionlp's table). Only whole names from that list count, so a word that
merely ends in 市 (荣超城市花园, 东门市场) is not a city. A county name that also exists outside
Shenzhen without being Shenzhen's (昌平区, 南湖区) is reported with every city it may belong to:
the address does not say which one, and the geocoder does not guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from geoalloc import districts as dist

__all__ = ["OtherPlace", "other_places"]

SHENZHEN = "深圳市"
GUANGDONG = "广东省"


@dataclass(frozen=True)
class OtherPlace:
    """One surface form of a place outside Shenzhen: its level, and every unit it may name."""

    level: str  # province | city | county
    full: bool  # written with its suffix (省, 市, 区, 县, ...)
    where: tuple[str, ...]  # e.g. ("北京市昌平区",) or ("北京市朝阳区", "吉林省长春市朝阳区")


@lru_cache(maxsize=1)
def other_places() -> dict[str, OtherPlace]:
    """Surface form -> place, for every province, city and county that is not Shenzhen or one of its districts.

    Short forms (北京, 东莞) are included for provinces and cities only: a bare county short name
    (朝阳, 南湖) is an ordinary word far too often.
    """
    table = dist.china_divisions()
    shenzhen_counties = set(table.loc[(table["city_zh"] == SHENZHEN) & (table["level"] == "county"), "name_zh"])
    found: dict[tuple[str, str, bool], list[str]] = {}
    for row in table.itertuples(index=False):
        name, short, level = str(row.name_zh), str(row.short_zh), str(row.level)
        if name in (SHENZHEN, GUANGDONG) or row.city_zh == SHENZHEN:
            continue
        if level == "county":
            if len(name) < 3:
                continue  # 南区, 东区, 城区 (Hong Kong's, and generic words) would match inside Shenzhen text
            if name in shenzhen_counties:
                continue  # 南山区 of 鹤岗, 龙华区 of 海口: a Shenzhen roster means Shenzhen's unless a city says otherwise
            city = "" if row.city_zh == row.province_zh else str(row.city_zh)
            label = f"{row.province_zh}{city}{name}" if city != name else f"{row.province_zh}{name}"
            found.setdefault((name, level, True), []).append(label)
            continue
        label = name if level == "province" or row.province_zh == name else f"{row.province_zh}{name}"
        found.setdefault((name, level, True), []).append(label)
        if len(short) >= 2 and short != name:
            found.setdefault((short, level, False), []).append(label)
    out: dict[str, OtherPlace] = {}
    rank = {"province": 0, "city": 1, "county": 2}
    for (name, level, full), labels in sorted(found.items(), key=lambda kv: (kv[0][0], rank[kv[0][1]])):
        if name in out:  # 北京市 is both a province and a city: the coarser reading is enough
            continue
        out[name] = OtherPlace(level, full, tuple(sorted(set(labels))))
    return out
