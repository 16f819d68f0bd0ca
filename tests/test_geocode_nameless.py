"""A parse shared by the estates of one zone (:mod:`geoalloc.geocode.nameless`) gives what parsing each gives.

Several estates of each subdistrict, each written in the ways where sharing applies and in the ways where it
must not: a note or conflict that names places, another estate or a community named like the estate, a
community name found in several districts, a wrong district, a station, another city. Written for this test;
the names are the bundled ones.
"""

from __future__ import annotations

import pytest

from geoalloc.districts import named_places
from geoalloc.geocode import OfflineGeocoder
from geoalloc.geocode import parser as parser_module
from geoalloc.geocode.gazetteer import gazetteer

FORMS = [
    "{e}", "{e}7栋502", "{d}{e}12栋", "深圳市{d}{s}{e}", "广东省深圳市{d}{s}{c}{e}3栋1201", "{e} {ss} 人民路8号",
    "{ss}{e}", "{e} {ss}", "{c}{e}", "罗湖区{e}", "南山区{e} 宝安区", "{e} 龙岗区布吉", "{e}旁{other}", "{other}{e}",
    "{e}站", "车公庙地铁站附近{e}", "凤凰社区{e}", "{e}路8号", "北京市朝阳区{e}", "昌平区{e}", "{e}镇", "{e} 民治 {e}",
]


def _addresses() -> list[str]:
    places = named_places()
    est = places[places["kind"] == "estate"]
    out: list[str] = []
    for _, group in est.groupby("subdistrict_zh"):
        rows = group.head(4).to_dict("records")
        other = rows[-1]["name_zh"]
        for r in rows:
            d, s = str(r["district_zh"]), str(r["subdistrict_zh"])
            fields = {"e": str(r["name_zh"]), "d": d, "s": s, "ss": s.removesuffix("街道"),
                      "c": (str(r["community_zh"]) or "莲花社区"), "other": other}
            out.extend(f.format(**fields) for f in FORMS)
    # A market area of another subdistrict after the estate: the reason notes where the estate is.
    subs = est.groupby("district_zh")["subdistrict_zh"].unique().to_dict()
    for r in est.groupby("subdistrict_zh").head(3).to_dict("records"):
        other_sub = next(x for x in subs[r["district_zh"]] if x != r["subdistrict_zh"])
        out.append(f"{r['name_zh']} {other_sub.removesuffix('街道')}")
    # A community that several districts have, then an estate of one of its subdistricts: whether the estate
    # is named after the community decides (凤凰社区凤凰印象花园 says nothing about which 凤凰社区 it is).
    # The estate not named so comes first, so a shared parse would be reused for the one that is; then the same
    # with a road (a parse whose district reading was settled before, by the first address, is not shared either).
    for c, units in gazetteer().community_units.items():
        if not c.endswith("社区") or len({d for d, _ in units}) < 2:
            continue
        named = est[est["name_zh"].str.startswith(c.removesuffix("社区"))]
        for r in named.to_dict("records"):
            same = est[(est["subdistrict_zh"] == r["subdistrict_zh"]) & (est["name_zh"] != r["name_zh"])]
            for tail in ("", " 深南大道8号"):
                out += [f"{c}{x}{tail}" for x in same["name_zh"].head(2)] + [f"{c}{r['name_zh']}{tail}"]
    return out


def test_shared_parses_equal_each_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    filled: list[str] = []
    real_fill = parser_module.fill

    def counting_fill(tpl: object, name: str) -> object:
        filled.append(name)
        return real_fill(tpl, name)  # type: ignore[arg-type]

    monkeypatch.setattr(parser_module, "fill", counting_fill)
    addresses = _addresses()
    fast, full = OfflineGeocoder(), OfflineGeocoder()
    full._parser.shortcuts = False
    got = [tuple(vars(fast.parse(a)).values()) for a in addresses]
    want = [tuple(vars(full.parse(a)).values()) for a in addresses]
    assert got == want
    # Sharing happened, for many estates, and not for the addresses whose reason carries a note.
    assert len(filled) > len(addresses) // 4 and len(set(filled)) > 200
    reasons = " ".join(str(p[8]) for p in want)
    for what in ("conflict:", "ambiguous", "outside Shenzhen", "not used", "station", "(the address also names"):
        assert what in reasons, what


def test_a_filled_parse_is_the_template_with_the_estate_named() -> None:
    from dataclasses import replace

    from geoalloc.geocode.nameless import fill
    from geoalloc.geocode.parser import Parsed
    from geoalloc.model import GeoPrecision, GeoStatus

    p = Parsed(GeoStatus.APPROXIMATE, GeoPrecision.ESTATE, 114.1, 22.6, 150.0, "罗湖区", "东门街道", None,
               "estate 富达花园 (no coordinates): placed at 东门街道's point", ("subdistrict", "东门街道"))
    q = fill((p, "placed at 东门街道's point"), "鸿业苑")
    assert q == replace(p, reason="estate 鸿业苑 (no coordinates): placed at 东门街道's point")
    assert type(q) is Parsed and q is not p and p.reason.startswith("estate 富达花园") and hash(q) == hash(replace(q))
    assert fill((p, None), "鸿业苑") is p
