"""Addresses as residents write them: bare estates, market areas after the estate, unit names inside
place names, 市/省 inside names, separators, other cities with Shenzhen-like district names.

Every address here is written for this test (estate, park and station names are the bundled ones).
The development sample of real addresses is read from ../shared (never copied) for one aggregate check.
"""

from __future__ import annotations

import pandas as pd
import pytest

from geoalloc.districts import OSM_ATTRIBUTION, named_places
from geoalloc.geocode import OfflineGeocoder, geocode_frame, summarise
from geoalloc.model import GeoPrecision, GeoStatus
from geoalloc.paths import REPO_ROOT, shared_dir

DEV = shared_dir() / "data" / "reference" / "real_addresses_dev.csv"


@pytest.fixture(scope="module")
def geo() -> OfflineGeocoder:
    return OfflineGeocoder()


def _where(geo: OfflineGeocoder, address: str) -> tuple[str | None, str | None, str, str]:
    r = geo.geocode(address, "m1")
    return r.district_zh, r.subdistrict_zh, r.precision.value, r.status.value


# ---- no administrative name at all ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "district", "subdistrict"),
    [
        ("富达花园7栋502", "罗湖区", "莲塘街道"),
        ("龙祥苑", "南山区", "桃源街道"),
        ("碧海红树园 3座12B", "福田区", "沙头街道"),
        ("招商华侨城曦城 二期", "宝安区", "新安街道"),  # a phase written apart from the estate's name
        ("东方·尊峪花园", "罗湖区", "莲塘街道"),  # the list's own punctuation
    ],
)
def test_a_bare_estate_is_placed_at_its_subdistrict(geo: OfflineGeocoder, address: str, district: str,
                                                    subdistrict: str) -> None:
    r = geo.geocode(address, "m1")
    assert (r.district_zh, r.subdistrict_zh) == (district, subdistrict)
    assert r.precision == GeoPrecision.ESTATE and r.status == GeoStatus.APPROXIMATE
    assert "no coordinates" in r.reason and "subdistrict" in r.reason


def test_a_station_and_a_park_give_their_own_points(geo: OfflineGeocoder) -> None:
    st = geo.geocode("光明大街站B口旁出租屋", "m1")
    assert st.precision == GeoPrecision.STATION and st.status == GeoStatus.OK and st.district_zh == "光明区"
    assert (st.lon, st.lat) == (113.938616, 22.766107)
    park = geo.geocode("莲花山公园北门对面", "m1")
    assert park.precision == GeoPrecision.PARK and park.status == GeoStatus.OK and park.district_zh == "福田区"
    again = geo.geocode("莲花山公园北门对面", "m2")
    assert (park.lon, park.lat) == (again.lon, again.lat)  # a place's own point is not spread


def test_a_road_alone_gives_its_district_graded_road(geo: OfflineGeocoder) -> None:
    r = geo.geocode("深南东路5015-9号", "m1")
    assert r.precision == GeoPrecision.ROAD and r.status == GeoStatus.APPROXIMATE
    assert r.district_zh == "罗湖区" and r.subdistrict_zh is None and "no geometry" in r.reason


def test_an_estate_name_shared_by_two_districts_is_flagged_not_guessed(geo: OfflineGeocoder) -> None:
    r = geo.geocode("和平大厦1206", "m1")
    assert r.status == GeoStatus.FAILED and "ambiguous" in r.reason and "罗湖区" in r.reason and "龙华区" in r.reason
    named = geo.geocode("和平大厦1206 罗湖区", "m1")
    assert (named.district_zh, named.precision) == ("罗湖区", GeoPrecision.ESTATE)


# ---- market area after the estate ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "district", "subdistrict"),
    [
        ("锦绣东方苑 西乡 宝民二路", "宝安区", "西乡街道"),
        ("嘉盛公寓 民治", "龙华区", "民治街道"),
        ("新天地名居 布吉", "龙岗区", "布吉街道"),
        ("海悦华府 车公庙", "福田区", "沙头街道"),  # a market area (板块), not an administrative unit
        ("某小区6栋 宝安中心区", "宝安区", "新安街道"),
    ],
)
def test_a_market_area_anywhere_in_the_string_places_the_address(geo: OfflineGeocoder, address: str,
                                                                 district: str, subdistrict: str) -> None:
    assert _where(geo, address)[:2] == (district, subdistrict)


@pytest.mark.parametrize(
    ("address", "district", "subdistrict"),
    [
        ("南山科技园科苑路8号", "南山区", "粤海街道"),  # 南山 alone would be 南山街道
        ("深圳市南山区华侨城 2栋", "南山区", "沙河街道"),
        ("福田车公庙 某大厦12楼", "福田区", "沙头街道"),  # 福田 alone would be 福田街道
        ("广东省深圳市福田区车公庙泰然四路", "福田区", "沙头街道"),
        ("深圳华侨城", "南山区", "沙河街道"),
    ],
)
def test_a_market_area_written_right_after_a_district_places_the_address(geo: OfflineGeocoder, address: str,
                                                                         district: str, subdistrict: str) -> None:
    # Written glued to the district (no space), the market area is its own name, not text inside another.
    assert _where(geo, address)[:2] == (district, subdistrict)


def test_order_does_not_matter(geo: OfflineGeocoder) -> None:
    assert _where(geo, "锦绣东方苑 西乡")[:2] == _where(geo, "西乡 锦绣东方苑")[:2] == ("宝安区", "西乡街道")


# ---- an administrative name inside another name ---------------------------------------------------
def test_explicit_district_outranks_a_unit_name_inside_an_estate_or_road(geo: OfflineGeocoder) -> None:
    # 招商 (a 南山区 subdistrict) opens an estate's name in 宝安区
    assert _where(geo, "招商华侨城曦城3期12栋")[:1] == ("宝安区",)
    # 新湖 is a 光明区 subdistrict; 新湖路 runs through 宝安区's centre, and 宝安区 is written
    assert _where(geo, "宝安区新湖路88号")[:1] == ("宝安区",)
    # 桃源 (南山区's subdistrict) inside an estate name, with the market area named
    assert _where(geo, "桃源居十六区 西乡")[:2] == ("宝安区", "西乡街道")
    # a district named outright beats a subdistrict short name opening an unknown estate's name
    assert _where(geo, "招商锦绣苑 龙岗区布吉")[:2] == ("龙岗区", "布吉街道")


def test_a_full_unit_name_that_contradicts_the_district_is_a_conflict(geo: OfflineGeocoder) -> None:
    r = geo.geocode("罗湖区西乡街道宝民一路", "m1")
    assert r.district_zh == "罗湖区" and r.subdistrict_zh is None
    assert "conflict: 西乡街道 is in 宝安区西乡街道, not 罗湖区" in r.reason


# ---- in-city addresses that look like other places --------------------------------------------------
@pytest.mark.parametrize(
    ("address", "district"),
    [
        ("荣超城市春天花园5栋", "福田区"),  # 市 inside a name
        ("金祥都市花园3栋", "罗湖区"),
        ("中山花园 罗湖区凤凰路12号", "罗湖区"),  # an estate named after another city
        ("广东省-深圳市-福田区-沙头街道 上沙村", "福田区"),  # separators
        ("广东省深圳市广东省深圳市罗湖区东门中路", "罗湖区"),  # a repeated prefix
        ("广东 深圳 南山 粤海 科苑路8号", "南山区"),
        ("深圳市湖南商会大厦 福田区", "福田区"),  # a province's name inside a building's name
    ],
)
def test_in_city_addresses_are_never_called_out_of_city(geo: OfflineGeocoder, address: str, district: str) -> None:
    d, _, _, status = _where(geo, address)
    assert status in ("ok", "approximate") and d == district


# ---- other cities ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "address",
    [
        "昌平区沙河镇北二街5号",  # Beijing's 昌平区; 沙河 is also a Shenzhen subdistrict
        "南湖区中山路9号",  # 嘉兴; Shenzhen has 南湖街道
        "西乡县城关镇东街3号",  # 汉中; Shenzhen has 西乡街道
        "平湖市当湖街道梅兴路6号",  # 嘉兴; Shenzhen has 平湖街道
        "海口市龙华区滨海大道100号",  # Haikou also has a 龙华区
        "黑龙江省鹤岗市南山区",  # and 鹤岗 a 南山区
        "温州龙岗区柳南街9号",  # a bare city name right before a Shenzhen-like district
        "宁海县桃源街道桃源北路",
        "东莞长安镇乌沙村",
        "江西省赣州市石城县",
        "惠州市惠阳区淡水街道开城大道",
    ],
)
def test_other_cities_with_shenzhen_like_names_are_out_of_city(geo: OfflineGeocoder, address: str) -> None:
    r = geo.geocode(address, "m1")
    assert r.status == GeoStatus.OUT_OF_CITY and r.lon is None and r.district_zh is None, r.reason


def test_a_district_name_of_several_cities_is_flagged_with_every_candidate(geo: OfflineGeocoder) -> None:
    r = geo.geocode("朝阳区望京西园4区", "m1")
    assert r.status == GeoStatus.OUT_OF_CITY
    assert "ambiguous without a city" in r.reason and "北京市朝阳区" in r.reason and "长春市朝阳区" in r.reason


def test_shenzhen_district_names_that_exist_elsewhere_stay_in_shenzhen(geo: OfflineGeocoder) -> None:
    assert _where(geo, "龙华区民治大道")[0] == "龙华区"
    assert _where(geo, "南山区南头街道")[:2] == ("南山区", "南头街道")


# ---- grades in the summary, and the real development sample -------------------------------------------
def test_summary_counts_members_per_grade(geo: OfflineGeocoder) -> None:
    df = pd.DataFrame({"member_id": list("abcdef"),
                       "address": ["富达花园", "光明大街站", "深南东路1号", "南山区", "北京市朝阳区", "乱七八糟"]})
    s = summarise(geocode_frame(df, geocoder=geo))
    assert s["precision"] == {"estate": 1, "station": 1, "road": 1, "district": 1, "none": 2}
    assert s["status"] == {"approximate": 3, "ok": 1, "out_of_city": 1, "failed": 1}


def test_the_bundled_estate_list_parses_to_its_own_units(geo: OfflineGeocoder) -> None:
    estates = named_places()
    estates = estates[estates["kind"] == "estate"]
    parsed = [geo.parse(n) for n in estates["name_zh"]]
    d = pd.Series([p.district_zh for p in parsed], index=estates.index)
    s = pd.Series([p.subdistrict_zh for p in parsed], index=estates.index)
    assert (d == estates["district_zh"]).mean() >= 0.995
    assert (s == estates["subdistrict_zh"]).mean() >= 0.99


def test_real_development_sample(geo: OfflineGeocoder) -> None:
    assert DEV.exists(), f"the shared development sample is expected at {DEV}"
    df = pd.read_csv(DEV, dtype=str, keep_default_na=False)
    parsed = [geo.parse(a) for a in df["address"]]
    district = pd.Series([p.district_zh for p in parsed])
    placed = pd.Series([p.lon is not None for p in parsed])
    in_city = df["true_district_zh"] != "OUT"
    assert (district[in_city] == df.loc[in_city, "true_district_zh"]).mean() >= 0.97
    assert not (placed & ~in_city).any()


# ---- attribution -----------------------------------------------------------------------------------
def test_odbl_attribution_is_in_the_readmes() -> None:
    for path in (REPO_ROOT / "README.md", REPO_ROOT / "data" / "districts" / "README.md", REPO_ROOT / "NOTICE"):
        assert OSM_ATTRIBUTION in path.read_text(encoding="utf-8"), path


def test_odbl_attribution_is_on_the_map() -> None:
    from geoalloc.maps import plan_map, render_html
    from geoalloc.maps.synthetic import synthetic_plan

    a, b, r = synthetic_plan(60, seed=2)
    for lang in ("zh", "en"):
        html = render_html(plan_map(a, b, r, lang=lang))
        assert OSM_ATTRIBUTION.replace("©", "&copy;") in html or OSM_ATTRIBUTION in html


def test_report_counts_how_many_allocated_members_rest_on_approximate_points(geo: OfflineGeocoder) -> None:
    from geoalloc.geocode.frame import placement_counts

    members = geocode_frame(pd.DataFrame({"member_id": ["a", "b", "c", "d"],
                                          "address": ["富达花园", "光明大街站", "南山区", "北京市朝阳区"]}), geocoder=geo)
    assignments = members[["member_id", "geo_precision"]].assign(branch_id=["B1", "B1", "B2", ""])
    counts = placement_counts(assignments, members)
    assert counts["by_precision"] == {"station": 1, "estate": 1, "district": 1}
    assert counts["approximate"] == 2 and counts["share_approximate"] == round(2 / 3, 4)


def test_shared_parses_equal_fresh_ones() -> None:
    """The memo keys (mention structure; deciding mentions) must capture everything a parse depends on."""
    from geoalloc.geocode.gazetteer import gazetteer
    from geoalloc.geocode.landmarks import LandmarkIndex
    from geoalloc.geocode.lexicon import lexicon
    from geoalloc.geocode.normalise import normalise
    from geoalloc.geocode.parser import AddressParser
    from geoalloc.samples import generate_roster

    texts = [normalise(a) for a in generate_roster(1500, seed=31)["address"] if a]
    texts += [normalise(a) for a in ["深南东路1号", "深南东路1号 富达花园", "富达花园 深南东路1号", "北京市朝阳区",
                                     "朝阳区 罗湖区", "宝安区新湖路", "新湖路", "光明大街站", "光明大街"]]
    shared = AddressParser(gazetteer(), lexicon(), LandmarkIndex(None))
    warm = [shared.parse(t) for t in texts] + [shared.parse(t) for t in reversed(texts)]
    fresh = [AddressParser(gazetteer(), lexicon(), LandmarkIndex(None)).parse(t) for t in texts]
    assert warm[: len(texts)] == fresh and warm[len(texts):] == fresh[::-1]


def test_a_road_named_after_another_city_is_not_that_city(geo: OfflineGeocoder) -> None:
    assert geo.geocode("北京路8号", "m1").status != GeoStatus.OUT_OF_CITY  # most cities have a 北京路
    assert _where(geo, "北京路8号 福田区")[0] == "福田区"
    assert geo.geocode("北京朝阳区望京", "m1").status == GeoStatus.OUT_OF_CITY
