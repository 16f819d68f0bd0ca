"""The offline parser: normalisation, short forms, historical names, ambiguity, conflicts,
other cities, failures and landmarks (the metro table is read from ../shared, never copied)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoalloc.geocode import OfflineGeocoder, load_landmarks, normalise
from geoalloc.model import GeoPrecision, GeoStatus
from geoalloc.paths import shared_dir
from geoalloc.samples import OUT_OF_CITY, generate_addresses

METRO = shared_dir() / "data" / "reference" / "metro_stations.csv"


@pytest.fixture(scope="module")
def geo() -> OfflineGeocoder:
    return OfflineGeocoder()


@pytest.fixture(scope="module")
def metro() -> pd.DataFrame:
    assert METRO.exists(), f"the shared metro table is expected at {METRO}"
    return load_landmarks(METRO)


@pytest.fixture(scope="module")
def geo_lm(metro: pd.DataFrame) -> OfflineGeocoder:
    return OfflineGeocoder(metro)


def test_normalise_folds_full_width_spaces_and_punctuation() -> None:
    assert normalise("　深圳 南山区，粤海街道（大冲）１５号") == "深圳 南山区 粤海街道 大冲 15号"
    assert normalise("广东省-深圳市-福田区深南东路5015-9号A-3") == "广东省 深圳市 福田区深南东路5015-9号A-3"
    assert normalise(None) == "" and normalise(float("nan")) == ""


@pytest.mark.parametrize(
    "address",
    [
        "广东省深圳市南山区粤海街道大冲社区大冲路15号",
        "广东深圳南山区粤海街道大冲社区",
        "深圳市南山区粤海街道大冲社区",
        "深圳南山粤海大冲花园3栋",
        "南山区粤海大冲社区",
        "中国广东省深圳市南山区粤海街道办事处大冲社区居委会",
        "深圳市　南山区 粤海街道 大冲社区　１５号",
        "大冲社区大冲花园12栋",
    ],
)
def test_prefixes_suffixes_and_short_forms(geo: OfflineGeocoder, address: str) -> None:
    r = geo.geocode(address, "m1")
    assert (r.district_zh, r.subdistrict_zh, r.community_zh) == ("南山区", "粤海街道", "大冲社区")
    assert r.precision == GeoPrecision.COMMUNITY and r.status == GeoStatus.APPROXIMATE
    assert "大冲社区's point (OpenStreetMap polygon)" in r.reason


def test_same_text_in_any_width_parses_to_the_same_point(geo: OfflineGeocoder) -> None:
    a = geo.geocode("深圳市南山区粤海街道15号", "m7")
    b = geo.geocode("深圳市 南山区　粤海街道１５号", "m7")
    assert a == b


@pytest.mark.parametrize(
    ("address", "district", "subdistrict"),
    [
        ("宝安区龙华街道油松社区", "龙华区", "龙华街道"),
        ("宝安区龙华", "龙华区", "龙华街道"),
        ("深圳市宝安区观澜镇", "龙华区", "观澜街道"),
        ("宝安区民治", "龙华区", "民治街道"),
        ("宝安区大浪街道", "龙华区", "大浪街道"),
        ("宝安区光明", "光明区", "光明街道"),
        ("宝安区公明街道", "光明区", "公明街道"),
        ("深圳市宝安区光明新区凤凰街道", "光明区", "凤凰街道"),
        ("龙岗区坪山街道", "坪山区", "坪山街道"),
        ("龙岗区坑梓", "坪山区", "坑梓街道"),
        ("龙岗区葵涌街道", "大鹏新区", "葵涌街道"),
        ("龙岗区大鹏", "大鹏新区", "大鹏街道"),
        ("龙岗区南澳街道", "大鹏新区", "南澳街道"),
        ("深圳市大鹏新区南澳街道", "大鹏新区", "南澳街道"),
        ("龙华新区民治街道", "龙华区", "民治街道"),
    ],
)
def test_historical_names_map_to_todays_district(geo: OfflineGeocoder, address: str, district: str,
                                                 subdistrict: str) -> None:
    r = geo.geocode(address, "m1")
    assert (r.district_zh, r.subdistrict_zh) == (district, subdistrict)
    assert r.status == GeoStatus.APPROXIMATE


def test_historical_move_is_explained(geo: OfflineGeocoder) -> None:
    assert "historical" in geo.geocode("宝安区龙华街道").reason


def test_direct_reading_beats_historical_one(geo: OfflineGeocoder) -> None:
    # 大浪社区 is a community of 宝安区's 新安街道; 大浪街道 moved to 龙华区 in 2017.
    r = geo.geocode("宝安区大浪社区大浪街5号")
    assert (r.district_zh, r.subdistrict_zh) == ("宝安区", "新安街道")


def test_ambiguous_community_needs_its_enclosing_unit(geo: OfflineGeocoder) -> None:
    alone = geo.geocode("凤凰社区凤凰花园3栋", "m1")
    assert alone.status == GeoStatus.FAILED and alone.lon is None and "ambiguous" in alone.reason
    in_district = geo.geocode("光明区凤凰社区", "m1")
    assert (in_district.district_zh, in_district.subdistrict_zh) == ("光明区", "凤凰街道")
    in_sub = geo.geocode("龙岗区平湖街道凤凰社区", "m1")
    assert in_sub.subdistrict_zh == "平湖街道"
    # two 凤凰社区 in 龙岗区 (布吉, 平湖): the district is known, the subdistrict is not guessed
    two = geo.geocode("龙岗区凤凰社区", "m1")
    assert two.district_zh == "龙岗区" and two.subdistrict_zh is None
    assert two.precision == GeoPrecision.DISTRICT and "ambiguous" in two.reason


def test_conflict_is_flagged_not_guessed(geo: OfflineGeocoder) -> None:
    r = geo.geocode("福田区粤海街道科技园", "m1")
    assert r.district_zh == "福田区" and r.subdistrict_zh is None
    assert r.precision == GeoPrecision.DISTRICT
    assert "conflict" in r.reason and "粤海街道" in r.reason and "南山区" in r.reason


def test_short_name_of_another_subdistrict_is_a_conflict_but_a_road_is_not(geo: OfflineGeocoder) -> None:
    assert "conflict" in geo.geocode("福田区粤海科技园").reason
    road = geo.geocode("福田区笋岗西路3号")  # 笋岗西路 runs through 福田区; 笋岗街道 is in 罗湖区
    assert road.district_zh == "福田区" and "conflict" not in road.reason


@pytest.mark.parametrize(
    "address",
    [t.format(n=12) for t in OUT_OF_CITY] + ["东莞长安镇振安路3号", "湖南长沙岳麓区", "广东省佛山市顺德区", "中山市石岐区"],
)
def test_other_cities_are_out_of_city(geo: OfflineGeocoder, address: str) -> None:
    r = geo.geocode(address, "m1")
    assert r.status == GeoStatus.OUT_OF_CITY
    assert r.lon is None and r.lat is None and r.district_zh is None
    assert "outside Shenzhen" in r.reason


@pytest.mark.parametrize("address", ["罗湖区东门市场3号", "深圳湾社区深圳湾花园8栋", "深圳大学社区12栋"])
def test_shenzhen_words_are_not_mistaken_for_other_places(geo: OfflineGeocoder, address: str) -> None:
    assert geo.geocode(address).status == GeoStatus.APPROXIMATE


@pytest.mark.parametrize("address", ["", None, "asdf", "不详", "深圳市", "中心路3号"])
def test_unparseable_text_fails_with_a_reason(geo: OfflineGeocoder, address: object) -> None:
    r = geo.geocode(address, "m1")  # type: ignore[arg-type]
    assert r.status == GeoStatus.FAILED and r.precision == GeoPrecision.NONE
    assert r.lon is None and r.reason


def test_district_only_uses_the_label_point_with_precision_district(geo: OfflineGeocoder) -> None:
    r = geo.geocode("深圳市南山区", "m1")
    assert r.precision == GeoPrecision.DISTRICT and r.status == GeoStatus.APPROXIMATE
    assert r.district_zh == "南山区" and r.subdistrict_zh is None


def test_station_landmarks_give_the_table_coordinates(geo_lm: OfflineGeocoder, metro: pd.DataFrame) -> None:
    row = metro.set_index("name").loc["民治"]
    for address in ["龙华区民治地铁站附近", "民治站旁", "地铁民治站", "深圳市龙华区民治地铁站A口"]:
        r = geo_lm.geocode(address, "m1")
        assert r.precision == GeoPrecision.LANDMARK and r.status == GeoStatus.OK
        assert (r.lon, r.lat) == (row["lon"], row["lat"])  # a landmark is not jittered
        assert r.district_zh == "龙华区"
    assert geo_lm.geocode("车公庙站附近").district_zh == "福田区"


def test_landmark_in_another_district_is_not_used(geo_lm: OfflineGeocoder) -> None:
    r = geo_lm.geocode("南山区车公庙地铁站附近", "m1")  # 车公庙 station is in 福田区
    assert r.precision == GeoPrecision.DISTRICT and r.district_zh == "南山区"
    assert "车公庙" in r.reason and "not used" in r.reason


def test_without_a_landmark_table_the_bundled_stations_are_used(geo: OfflineGeocoder) -> None:
    r = geo.geocode("光明区光明大街地铁站附近", "m1")
    assert r.precision == GeoPrecision.STATION and r.status == GeoStatus.OK and r.subdistrict_zh == "光明街道"
    assert (r.lon, r.lat) == (113.938616, 22.766107) and "OpenStreetMap point" in r.reason
    # 民治 has no OSM station point: the subdistrict it names places it
    r = geo.geocode("龙华区民治地铁站附近", "m1")
    assert r.precision == GeoPrecision.SUBDISTRICT and r.subdistrict_zh == "民治街道"


def test_generated_addresses_parse_to_their_labels(geo_lm: OfflineGeocoder) -> None:
    df = generate_addresses(3000, seed=101)
    parsed = [geo_lm.parse(a) for a in df["address"]]
    district = pd.Series([p.district_zh for p in parsed])
    sub = pd.Series([p.subdistrict_zh for p in parsed])
    status = pd.Series([p.status.value for p in parsed])
    clear = df["in_city"] & ~df["ambiguous"]
    assert (district[clear] == df.loc[clear, "true_district_zh"]).mean() >= 0.995
    names = clear & (df["true_subdistrict_zh"] != "")
    assert (sub[names] == df.loc[names, "true_subdistrict_zh"]).mean() >= 0.98
    assert (status[~df["in_city"]] == "out_of_city").all()
    # A community name found in several subdistricts is flagged, not guessed. The generator's made-up
    # estate names (丽湖社区丽湖花园) sometimes are real estates of one of them, which then decides.
    wrong_guess = df["ambiguous"] & sub.notna() & (sub != df["true_subdistrict_zh"])
    reasons = pd.Series([p.reason for p in parsed])
    assert reasons[wrong_guess].str.startswith("estate ").all(), reasons[wrong_guess].tolist()


# ---- landmark tables -----------------------------------------------------------------------

def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "landmarks.csv"
    p.write_text(text, encoding="utf-8")
    return p


def test_load_landmarks_accepts_both_column_spellings(tmp_path: Path) -> None:
    t = load_landmarks(_write(tmp_path, "name,lon,lat,district\n科技园站,113.9533,22.5408,南山\n"))
    assert list(t["name"]) == ["科技园"] and list(t["district_zh"]) == ["南山区"]
    t = load_landmarks(_write(tmp_path, "station_zh,lon,lat,district_zh\n深圳北,114.0256,22.6134,\n"))
    assert list(t["district_zh"]) == ["龙华区"]  # derived from the point when not given


def test_load_landmarks_converts_a_datum_column(tmp_path: Path) -> None:
    from geoalloc.geocode import wgs84_to_gcj02

    glon, glat = wgs84_to_gcj02(113.9533, 22.5408)
    t = load_landmarks(_write(tmp_path, f"name,lon,lat,district,datum\n科技园,{glon},{glat},南山区,gcj02\n"))
    assert abs(t["lon"][0] - 113.9533) < 1e-7 and abs(t["lat"][0] - 22.5408) < 1e-7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,lon,lat,district\nA站点,abc,22.5,南山区\n", "row 1, field lon"),
        ("name,lon,lat,district\n科技园,113.95,22.54,南山区\n民治,22.62,114.03,龙华区\n", "row 2.*swapped"),
        ("name,lon,lat,district\n科技园,113.95,22.54,朝阳区\n", "row 1.*district.*朝阳区"),
        ("name,lon,lat\n科技园,113.95,22.54\n科技园站,114.05,22.54\n", "row 2: name 科技园 repeats row 1"),
        ("title,x,y\na,1,2\n", "missing column"),
        ("name,lon,lat\n站,113.95,22.54\n", "row 1, field name"),
    ],
)
def test_load_landmarks_reports_bad_rows(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_landmarks(_write(tmp_path, text))


def test_load_landmarks_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="landmark table not found"):
        load_landmarks(tmp_path / "nope.csv")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("深圳市南山区粤海街道大冲社区宝安龙华北京站路号１２ 　,-#") ), max_size=30))
def test_any_text_gets_an_outcome_and_never_raises(text: str) -> None:
    r = _SHARED.geocode(text, "p")
    assert r.status in set(GeoStatus) and r.reason
    assert (r.lon is None) == (r.status in (GeoStatus.FAILED, GeoStatus.OUT_OF_CITY))


_SHARED = OfflineGeocoder()


@pytest.mark.parametrize(("address", "district", "subdistrict"), [
    ("深圳东门步行街", "罗湖区", "东门街道"),  # not the station 深圳东 + 门步行街
    ("深圳西乡 怡景花园7栋", "宝安区", "西乡街道"),  # not 深圳西 + 乡 (a town elsewhere)
    ("深圳东晓街道布心路", "罗湖区", "东晓街道"),
    ("深圳坪山", "坪山区", None),  # the station 深圳坪山 is 深圳 + 坪山 (the district) unless written as a station
    ("深圳北", "龙华区", "民治街道"),  # a station's name standing alone is still the station
    ("深圳东站旁", "龙岗区", "布吉街道"),  # written as a station
    ("红树湾南头大厦", "南山区", "南头街道"),  # the station 红树湾南 would take 南头's first character
    ("白石洲东方新地苑8栋", "南山区", "南头街道"),  # the community 白石洲东 would take 东方新地苑's
])
def test_a_name_is_not_taken_by_a_station_or_community_whose_name_starts_with_another(
        address: str, district: str, subdistrict: str | None) -> None:
    p = OfflineGeocoder().parse(address)
    assert (p.district_zh, p.subdistrict_zh) == (district, subdistrict), p.reason


def test_a_market_area_inside_a_longer_area_name_does_not_decide() -> None:
    # 东部华侨城 (OCT East, 盐田区) holds 华侨城 (南山区's market area)
    for address in ("东部华侨城", "深圳东部华侨城茵特拉根酒店旁"):
        p = OfflineGeocoder().parse(address)
        assert p.district_zh == "盐田区", (address, p.reason)


@pytest.mark.parametrize(("address", "district", "subdistrict", "precision"), [
    ("深圳南山 海德三道88号", "南山区", None, GeoPrecision.DISTRICT),  # 南山 is 南山区 here, not 南山街道
    ("福田深南大道6008号", "福田区", None, GeoPrecision.DISTRICT),
    ("光明", "光明区", None, GeoPrecision.DISTRICT),  # not the metro station 光明 (in 新湖街道)
    ("南山区南山", "南山区", "南山街道", GeoPrecision.SUBDISTRICT),  # after its district: the subdistrict
    ("宝安区龙华", "龙华区", "龙华街道", GeoPrecision.SUBDISTRICT),  # under its old parent: the subdistrict
    ("光明站", "光明区", "新湖街道", GeoPrecision.STATION),  # written as a station
])
def test_a_district_short_name_shared_with_its_subdistrict_is_the_district_unless_more_is_written(
        address: str, district: str, subdistrict: str | None, precision: GeoPrecision) -> None:
    p = OfflineGeocoder().parse(address)
    assert (p.district_zh, p.subdistrict_zh, p.precision) == (district, subdistrict, precision), p.reason


def test_a_station_name_inside_other_text_places_only_its_district() -> None:
    # 梅林关 (龙华区) starts with 梅林 (福田区's subdistrict): cut, 梅林关xx花园 would be placed in 福田区;
    # not written as a station, the name says only where the district is (it used to say nothing)
    p = OfflineGeocoder().parse("梅林关某某花园")
    assert (p.district_zh, p.precision, p.status) == ("龙华区", GeoPrecision.DISTRICT, GeoStatus.APPROXIMATE), p.reason
    assert "station name 梅林关" in p.reason
    assert OfflineGeocoder().parse("福田区梅林关").district_zh == "福田区"  # a written district decides


@pytest.mark.parametrize("address", ["深圳东" * 3000, "白石洲东" * 2000, "深圳东门" * 2000])
def test_a_long_hostile_address_is_read_in_work_linear_in_its_length(address: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # every 深圳东 or 白石洲东 asks whether a longer name starts inside it: asked over the rest of the text,
    # a roster cell of 9,000 such characters took seconds (90,000: over a minute)
    from geoalloc.geocode.matcher import Matcher

    read = [0]
    find = Matcher.find

    def counting(self: Matcher, text: str) -> list[tuple[int, int, int]]:  # type: ignore[type-arg]
        read[0] += len(text)
        return find(self, text)

    geo = OfflineGeocoder()
    monkeypatch.setattr(Matcher, "find", counting)
    p = geo.parse(address)
    assert p.status in (GeoStatus.APPROXIMATE, GeoStatus.FAILED)
    assert read[0] <= 20 * len(address), read[0]
