"""Addresses in Latin letters (pinyin or English): the names whose romanisation is sure, read in Chinese."""

from __future__ import annotations

import pytest

from geoalloc.geocode import OfflineGeocoder
from geoalloc.model import GeoPrecision, GeoStatus


@pytest.fixture(scope="module")
def geo() -> OfflineGeocoder:
    return OfflineGeocoder()


@pytest.mark.parametrize(("address", "district", "subdistrict", "precision"), [
    ("Flat 2203, Tower B, Hongshan 6979, Minzhi Sub-district, Longhua District, Shenzhen 518131",
     "龙华区", "民治街道", GeoPrecision.SUBDISTRICT),
    ("Xixiang Street, Bao'an District, Shenzhen City, Guangdong Province, China", "宝安区", "西乡街道",
     GeoPrecision.SUBDISTRICT),
    ("shen zhen shi nan shan qu yue hai jie dao", "南山区", "粤海街道", GeoPrecision.SUBDISTRICT),
    ("Gaoxin Road, Dachong Community, Nanshan", "南山区", "粤海街道", GeoPrecision.COMMUNITY),
    ("Kuichong, Dapeng New District", "大鹏新区", "葵涌街道", GeoPrecision.SUBDISTRICT),  # not the pinyin kuiyong
    ("Futian District", "福田区", None, GeoPrecision.DISTRICT),
])
def test_romanised_shenzhen_units_are_read(geo: OfflineGeocoder, address: str, district: str,
                                           subdistrict: str | None, precision: GeoPrecision) -> None:
    p = geo.parse(address)
    assert (p.district_zh, p.subdistrict_zh, p.precision) == (district, subdistrict, precision), p.reason
    assert p.status == GeoStatus.APPROXIMATE and p.reason.startswith("read from Latin letters")


@pytest.mark.parametrize("address", [
    "Chaoyang District, Beijing",  # a district name Shenzhen lacks, with its city
    "Longgang District, Wenzhou, Zhejiang",  # a Shenzhen district name under another city
    "Room 5, Nathan Road, Kowloon, Hong Kong",
    "Chang'an Town, Dongguan City",
])
def test_romanised_addresses_elsewhere_are_never_placed_in_shenzhen(geo: OfflineGeocoder, address: str) -> None:
    p = geo.parse(address)
    assert p.status == GeoStatus.OUT_OF_CITY and p.lon is None and p.district_zh is None, p.reason


def test_a_bare_community_word_and_unknown_latin_text_are_not_guessed(geo: OfflineGeocoder) -> None:
    # "dachong" alone could be any word; a community is read only with Community/Shequ/Village after it
    for address in ("Dachong Garden 3-1201", "Unit 7, 88 Orchard Road", "Shenzhen"):
        p = geo.parse(address)
        assert p.status == GeoStatus.FAILED and p.lon is None, (address, p.reason)
    assert "Latin letters" in geo.parse("Unit 7, 88 Orchard Road").reason


def test_a_romanised_subdistrict_under_another_district_is_flagged_not_placed_there(geo: OfflineGeocoder) -> None:
    p = geo.parse("Minzhi Street, Nanshan District, Shenzhen")
    assert p.subdistrict_zh != "民治街道"  # 民治 is 龙华区's: the written district is not overruled silently


def test_chinese_text_with_latin_words_keeps_the_chinese_reading(geo: OfflineGeocoder) -> None:
    p = geo.parse("深圳市南山区粤海街道 Tower A 1203")
    assert (p.district_zh, p.subdistrict_zh) == ("南山区", "粤海街道")
    assert not p.reason.startswith("read from Latin letters")
