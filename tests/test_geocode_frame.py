"""geocode_frame: given coordinates kept, deterministic in-district jitter, no row dropped."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import shapely

from geoalloc.districts import districts, subdistrict_zones
from geoalloc.geocode import GEO_COLUMNS, OfflineGeocoder, geocode_frame, summarise
from geoalloc.geocode.frame import _geocode_part as _real_part
from geoalloc.geocode.parser import SUBDISTRICT_JITTER_M, Parsed
from geoalloc.model import GeoPrecision, GeoStatus
from geoalloc.projection import to_metres


@pytest.fixture(scope="module")
def geo() -> OfflineGeocoder:
    return OfflineGeocoder()


def test_jitter_is_deterministic_per_member_and_differs_between_members() -> None:
    a1 = OfflineGeocoder().geocode("深圳市南山区粤海街道", "M00001")
    a2 = OfflineGeocoder().geocode("深圳市南山区粤海街道", "M00001")
    b = OfflineGeocoder().geocode("深圳市南山区粤海街道", "M00002")
    assert (a1.lon, a1.lat) == (a2.lon, a2.lat)
    assert (a1.lon, a1.lat) != (b.lon, b.lat)


def test_jitter_stays_small_and_inside_the_subdistrict(geo: OfflineGeocoder) -> None:
    subs = subdistrict_zones()
    polys = districts().geometry
    keys = [f"M{i:05d}" for i in range(200)]
    for row in subs.itertuples(index=False):
        parsed = [geo.parse(f"{row.district_zh}{row.name_zh}")] * len(keys)
        assert parsed[0].subdistrict_zh == row.name_zh
        lon, lat = geo.place(parsed, keys)
        assert shapely.contains_xy(polys[row.district_zh], lon, lat).all(), row.name_zh
        assert shapely.contains_xy(row.geometry, lon, lat).all(), row.name_zh  # the OSM subdistrict polygon
        d = np.hypot(*(to_metres(lon, lat) - to_metres([row.label_lon], [row.label_lat])).T)
        assert d.max() <= SUBDISTRICT_JITTER_M * 1.01
        assert len({(x, y) for x, y in zip(lon, lat)}) > 150  # members do not stack


def test_jitter_that_would_leave_the_district_falls_back_to_the_seed(geo: OfflineGeocoder) -> None:
    base = geo.parse("大鹏新区南澳街道")  # a coastal subdistrict
    keys = [f"k{i}" for i in range(300)]
    wide = Parsed(**{**base.__dict__, "jitter_m": 30_000.0})
    lon, lat = geo.place([wide] * 300, keys)
    assert shapely.contains_xy(districts().geometry["大鹏新区"], lon, lat).all()
    assert len(set(zip(lon, lat))) > 100  # shorter/opposite offsets keep most members apart
    absurd = Parsed(**{**base.__dict__, "jitter_m": 2_000_000.0})
    lon, lat = geo.place([absurd] * 300, keys)
    assert ((lon == base.lon) & (lat == base.lat)).all()


def test_frame_keeps_given_coordinates_and_geocodes_the_rest(geo: OfflineGeocoder) -> None:
    df = pd.DataFrame(
        {
            "member_id": ["a", "b", "c", "d", "e", "f"],
            "address": ["", "深圳市南山区粤海街道", "北京市朝阳区1号", "乱码", None, "罗湖区"],
            "lon": [114.0579, np.nan, np.nan, np.nan, np.nan, 116.40],
            "lat": [22.5431, np.nan, np.nan, np.nan, np.nan, 39.90],
        },
        index=[10, 11, 12, 13, 14, 15],
    )
    before = df.copy()
    ticks: list[int] = []
    out = geocode_frame(df, geocoder=geo, progress=ticks.append)
    pd.testing.assert_frame_equal(df, before)  # input untouched
    assert list(out.index) == list(df.index) and set(GEO_COLUMNS) <= set(out.columns)
    assert sum(ticks) == len(df)
    r = out.set_index("member_id")
    assert (r.loc["a", "lon"], r.loc["a", "lat"]) == (114.0579, 22.5431)
    assert r.loc["a", "geo_precision"] == "exact" and r.loc["a", "geo_status"] == "ok"
    assert r.loc["a", "geo_district_zh"] == "福田区"
    assert r.loc["b", "geo_precision"] == "subdistrict" and r.loc["b", "geo_subdistrict_zh"] == "粤海街道"
    assert r.loc["c", "geo_status"] == "out_of_city" and np.isnan(r.loc["c", "lon"])
    assert r.loc["d", "geo_status"] == "failed" and r.loc["e", "geo_status"] == "failed"
    # coordinates given outside the city: kept, flagged, never re-placed from the address
    assert r.loc["f", "geo_status"] == "out_of_city" and r.loc["f", "lon"] == 116.40
    assert all(isinstance(x, str) and x for x in out["geo_reason"])


def test_frame_without_coordinate_columns_and_without_member_ids(geo: OfflineGeocoder) -> None:
    df = pd.DataFrame({"address": ["深圳市南山区粤海街道", "深圳市南山区粤海街道"]})
    out = geocode_frame(df, geocoder=geo)
    assert out["geo_status"].tolist() == ["approximate", "approximate"]
    assert out["lon"].iloc[0] == out["lon"].iloc[1]  # keyed by the address text when no id


def test_frame_matches_single_geocode(geo: OfflineGeocoder) -> None:
    df = pd.DataFrame({"member_id": ["x1"], "address": ["宝安区龙华街道油松社区"]})
    row = geocode_frame(df, geocoder=geo).iloc[0]
    single = geo.geocode("宝安区龙华街道油松社区", "x1")
    assert (row["lon"], row["lat"], row["geo_district_zh"]) == (single.lon, single.lat, single.district_zh)


def test_sample_roster_every_row_gets_an_outcome(small_roster: pd.DataFrame) -> None:
    from geoalloc.geocode import to_wgs84

    df = small_roster.copy()
    has = df["datum"].astype(str) != ""
    for d in ("gcj02", "bd09"):
        sel = df["datum"] == d
        x, y = to_wgs84(df.loc[sel, "lon"].to_numpy(), df.loc[sel, "lat"].to_numpy(), d)
        df.loc[sel, "lon"], df.loc[sel, "lat"] = x, y
    out = geocode_frame(df)
    assert len(out) == len(df) and out["geo_status"].notna().all()
    assert (out.loc[has, "geo_precision"] == "exact").all()
    # the roster's own district labels agree with where the given points fall
    assert (out.loc[has, "geo_district_zh"] == df.loc[has, "district_zh"]).mean() > 0.99
    placed = out["geo_status"].isin(["ok", "approximate"])
    assert out.loc[placed, ["lon", "lat"]].notna().all().all()


def test_summarise_counts_precision_and_status(geo: OfflineGeocoder) -> None:
    df = pd.DataFrame({"member_id": ["1", "2", "3"], "address": ["福田区粤海街道", "北京市", "南山区粤海街道"]})
    s = summarise(geocode_frame(df, geocoder=geo))
    assert s["rows"] == 3
    assert s["precision"] == {"district": 1, "none": 1, "subdistrict": 1}
    assert s["status"] == {"approximate": 2, "out_of_city": 1}
    assert s["conflicts"] == 1


def test_result_is_frozen_and_uses_model_enums(geo: OfflineGeocoder) -> None:
    r = geo.geocode("深圳市南山区粤海街道", "m")
    assert isinstance(r.precision, GeoPrecision) and isinstance(r.status, GeoStatus)
    with pytest.raises(AttributeError):
        r.lon = 0.0  # type: ignore[misc]


def test_roster_district_resolves_an_ambiguous_community() -> None:
    """翠湖社区 exists in three districts; the row's district_zh picks the right one."""
    df = pd.DataFrame({
        "member_id": ["a", "b"],
        "address": ["翠湖社区翠湖苑2栋2705", "翠湖社区翠湖苑2栋2705"],
        "district_zh": ["罗湖区", ""],
    })
    out = geocode_frame(df)
    assert out.at[0, "geo_district_zh"] == "罗湖区" and out.at[0, "geo_subdistrict_zh"] == "东湖街道"
    assert out.at[0, "geo_status"] == "approximate"
    assert out.at[1, "geo_status"] == "failed" and "ambiguous" in out.at[1, "geo_reason"]


def test_summarise_counts_reasons_as_the_row_by_row_search_does() -> None:
    reasons = ["conflict: 南山区 against 福田区", None, math.nan, "historical name 宝安区民治", "ok", "conflict: x historical",
               "", "conflict: 南山区 against 福田区"] * 3
    df = pd.DataFrame({"geo_reason": pd.Series(reasons, dtype=object), "geo_precision": "district", "geo_status": "ok"})
    s = summarise(df)
    text = df["geo_reason"].astype(str)
    assert s["conflicts"] == int(text.str.contains("conflict:", regex=False).sum()) == 9
    assert s["historical_names"] == int(text.str.contains("historical", regex=False).sum()) == 6
    assert summarise(pd.DataFrame({"x": []}))["conflicts"] == 0


def _mixed_roster(n: int) -> pd.DataFrame:
    """A generated roster with some rows given coordinates, some hinted by district only, some unplaceable."""
    from geoalloc.samples import generate_roster

    df = generate_roster(n, seed=11)
    df.loc[df.index[::7], "address"] = "北京市朝阳区建国路88号"  # out of the city
    df.loc[df.index[::11], "address"] = ""
    df.loc[df.index[::13], "address"] = "大冲社区"  # named by the district column only
    return df


def test_forked_geocoding_gives_the_same_columns_as_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import geoalloc.geocode.frame as frame

    monkeypatch.setattr(frame, "PARALLEL_MIN_ROWS", 40)
    df = _mixed_roster(300)
    one = geocode_frame(df, geocoder=OfflineGeocoder(), workers=1)
    steps: list[int] = []
    three = geocode_frame(df, geocoder=OfflineGeocoder(), workers=3, progress=steps.append)
    pd.testing.assert_frame_equal(one, three)
    assert sum(steps) == len(df)  # every row reported once, the forked parts' too


def _broken_part(rows: np.ndarray) -> tuple[np.ndarray, ...]:
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        raise MemoryError("the forked process ran out of memory")
    return _real_part(rows)


def test_a_failed_geocoding_process_loses_no_row(monkeypatch: pytest.MonkeyPatch) -> None:
    import geoalloc.geocode.frame as frame

    monkeypatch.setattr(frame, "PARALLEL_MIN_ROWS", 40)
    monkeypatch.setattr(frame, "_geocode_part", _broken_part)  # runs in the forked process and fails there
    df = _mixed_roster(200)
    one = geocode_frame(df, geocoder=OfflineGeocoder(), workers=1)
    pd.testing.assert_frame_equal(one, geocode_frame(df, geocoder=OfflineGeocoder(), workers=2))
