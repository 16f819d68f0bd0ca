"""The synthetic roster generator: deterministic, realistic, points inside their own district."""

from __future__ import annotations

import numpy as np
import pandas as pd

from geoalloc.districts import locate_districts
from geoalloc.geocode.datum import to_wgs84
from geoalloc.paths import sample_roster_path
from geoalloc.samples import generate_addresses, generate_roster


def test_deterministic_under_seed() -> None:
    a, b = generate_roster(300, seed=5), generate_roster(300, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert not generate_roster(300, seed=6)["address"].equals(a["address"])


def test_committed_sample_is_the_generated_one() -> None:
    committed = pd.read_csv(sample_roster_path(), dtype=str, keep_default_na=False)
    fresh = generate_roster()
    assert committed.to_csv(index=False) == fresh.astype(str).replace("nan", "").to_csv(index=False)


def test_points_fall_inside_their_own_district() -> None:
    df = generate_roster(800, seed=3, coordinate_share=1.0)
    lon, lat = [], []
    for row in df.itertuples():
        x, y = to_wgs84(row.lon, row.lat, row.datum)
        lon.append(x)
        lat.append(y)
    assert list(locate_districts(lon, lat)) == list(df["district_zh"])


def test_density_and_statuses_look_like_a_real_roster() -> None:
    df = generate_roster(7000)
    counts = df["district_zh"].value_counts()
    assert len(df) == 7000 and df["member_id"].is_unique
    assert set(counts.index[:3]) == {"南山区", "福田区", "宝安区"}
    assert counts["大鹏新区"] < counts["南山区"] / 10
    share_active = (df["status"] == "active").mean()
    assert 0.93 < share_active < 0.97
    assert {"lost_contact", "transfer_out"} <= set(df["status"])
    assert 0.85 < df["full_member"].mean() < 0.95
    assert (df["role"] == "secretary").sum() == 43 and (df["role"] == "adviser").sum() == 200
    assert set(df.loc[df["theme"] != "", "industry"]) <= {"IT/互联网", "创业者"}
    has_xy = df["lon"].notna()
    assert 0.2 < has_xy.mean() < 0.4
    assert set(df.loc[has_xy, "datum"]) == {"wgs84", "gcj02", "bd09"}
    assert (df.loc[~has_xy, "address"] != "").all()  # no row without both


def test_addresses_come_in_every_real_format() -> None:
    df = generate_addresses(3000, seed=1)
    text = df["address"]
    assert text.str.contains("广东省深圳市").any()
    assert text.str.match(r"^[^深广]+区").any()  # no city
    assert text.str.contains("[０-９]").any()  # full-width digits
    assert text.str.contains("  ").any()  # stray spaces
    assert text.str.contains("宝安区龙华街道|宝安区民治街道|宝安区观澜街道|龙岗区坪山街道").any()  # pre-2017 names
    assert text.str.contains("地铁站附近").any()
    out = df[~df["in_city"]]
    assert 0.01 < len(out) / len(df) < 0.06 and (out["true_district_zh"] == "").all()
    named = df[df["in_city"] & (df["true_subdistrict_zh"] != "")]
    assert len(named) > 0.8 * len(df)
    assert df["ambiguous"].sum() > 0 and (df.loc[df["ambiguous"], "format"] == "community_only").all()
    assert np.all(df["member_id"].is_unique)


def test_single_point_lookup_agrees_with_the_vectorised_one() -> None:
    from geoalloc.districts import district_at

    df = generate_roster(300, seed=8, coordinate_share=1.0)
    lon, lat = to_wgs84(df["lon"].to_numpy(float), df["lat"].to_numpy(float), "gcj02")
    many = list(locate_districts(lon, lat))
    assert many == [district_at(x, y) for x, y in zip(lon, lat)]
    assert district_at(116.40, 39.90) is None and list(locate_districts([116.40, np.nan], [39.90, 22.5])) == [None, None]


def test_grid_lookup_agrees_with_the_polygons_everywhere() -> None:
    """district_at answers most points from a grid of cells wholly inside one district: over
    the whole city's box, on cell corners and edges, and outside it, it must agree with the
    polygon test of locate_districts point for point."""
    from geoalloc.districts import GRID_DEG, _district_grid, district_at

    grid = _district_grid()
    assert 0 < sum(k == -2 for k in grid.owner) < len(grid.owner) / 2  # most cells need no polygon test
    rng = np.random.default_rng(5)
    lon = rng.uniform(grid.x0 - 0.05, grid.x0 + grid.nx * GRID_DEG + 0.05, 20_000)
    lat = rng.uniform(grid.y0 - 0.05, grid.y0 + grid.ny * GRID_DEG + 0.05, 20_000)
    ix, iy = rng.integers(0, grid.nx, 2_000), rng.integers(0, grid.ny, 2_000)
    corner_lon, corner_lat = grid.x0 + ix * GRID_DEG, grid.y0 + iy * GRID_DEG
    lon = np.concatenate([lon, corner_lon, corner_lon + GRID_DEG / 2])
    lat = np.concatenate([lat, corner_lat, corner_lat])
    assert list(locate_districts(lon, lat)) == [district_at(x, y) for x, y in zip(lon, lat)]
    assert district_at(float("nan"), 22.5) is None and district_at(114.05, float("inf")) is None


def test_roster_addresses_are_written_as_residents_write_them() -> None:
    from geoalloc.districts import named_places
    from geoalloc.geocode import OfflineGeocoder

    df = generate_roster(2000, seed=12)
    text = df["address"]
    estates = set(named_places().query("kind == 'estate'")["name_zh"])
    assert text.map(lambda a: any(a.startswith(e) for e in estates if len(e) >= 3)).mean() > 0.25  # a bare estate first
    assert text.str.contains(r"^\S+ \S+ \S+路\d+号$").any()  # estate, market area, road
    assert text.str.contains("广东省-深圳市-").any() and text.str.contains("广东省深圳市广东省深圳市").any()
    assert text.str.contains("地铁站附近").any() and text.str.contains("[０-９]").any()
    other = text.str.contains("北京市|嘉兴市|东莞市|海口市|广州市|汉中市|惠州市|长沙市")
    assert other.any() and (df.loc[other, "status"] == "transfer_out").all()  # only members who moved away
    geo = OfflineGeocoder()
    parsed = [geo.parse(a) for a in text]
    in_city = (text != "") & ~other
    district = pd.Series([p.district_zh for p in parsed])
    assert (district[in_city] == df.loc[in_city, "district_zh"]).mean() > 0.97
    assert all(parsed[i].status.value == "out_of_city" for i in np.flatnonzero(other))
