"""Derive data/national/counties.csv (city, district, centre) from the cpca package's county table.

cpca (https://pypi.org/project/cpca/, MIT licence, (c) 2018 QinYuan Du) ships
``cpca/resources/adcodes.csv``: administrative codes with names and centre coordinates. This
script keeps the mainland county-level units (districts, counties, county-level cities) with
coordinates, names each one's prefecture-level city (the municipality itself for 北京, 天津,
上海, 重庆; the county-level city itself where a province administers it directly) and gives a
prefecture-level city without counties (东莞市, 中山市, ...) one district named after it.
The synthetic national roster (geoalloc.national) spreads members around these centres.

Run from the repository root, with cpca installed (``pip install 'geoalloc[national]'``):
    python scripts/national_counties.py
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import pandas as pd

MUNICIPALITIES = {"11": "北京市", "12": "天津市", "31": "上海市", "50": "重庆市"}
NOT_MAINLAND = ("71", "81", "82")  # 台湾省, 香港, 澳门: not in the organisation's rosters
OUT = Path(__file__).resolve().parent.parent / "data" / "national" / "counties.csv"


def main() -> None:
    src = resources.files("cpca") / "resources" / "adcodes.csv"
    d = pd.read_csv(str(src), dtype=str)
    d["lon"] = pd.to_numeric(d["longitude"], errors="coerce")
    d["lat"] = pd.to_numeric(d["latitude"], errors="coerce")
    d["code"] = d["adcode"].str[:6]
    d = d[~d["code"].str[:2].isin(NOT_MAINLAND)]
    names = dict(zip(d["code"], d["name"]))
    is_city = (d["code"].str[4:] == "00") & (d["code"].str[2:4] != "00")
    is_county = (d["code"].str[4:] != "00") & d["lon"].notna() & (d["name"] != "市辖区")
    rows = []
    for code, name, lon, lat in d.loc[is_county, ["code", "name", "lon", "lat"]].itertuples(index=False):
        p = code[:2]
        if p in MUNICIPALITIES:
            city = MUNICIPALITIES[p]
        elif code[2:4] == "90":  # a county-level city the province administers directly
            city = name
        else:
            city = names.get(code[:4] + "00", name)
        rows.append((code, names.get(p + "0000", ""), city, name, round(float(lon), 6), round(float(lat), 6)))
    with_counties = {c[:4] for c, *_ in rows}
    for code, name, lon, lat in d.loc[is_city, ["code", "name", "lon", "lat"]].itertuples(index=False):
        if code[:4] not in with_counties and code[:2] not in MUNICIPALITIES and pd.notna(lon) and code[2:4] != "90":
            rows.append((code, names.get(code[:2] + "0000", ""), name, name, round(float(lon), 6), round(float(lat), 6)))
    rows.sort()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["adcode", "province_zh", "city_zh", "district_zh", "lon", "lat"])
        w.writerows(rows)
    print(f"{len(rows)} districts in {len({r[2] for r in rows})} cities -> {OUT}")


if __name__ == "__main__":
    main()
