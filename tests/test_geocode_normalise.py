"""normalise's shortcut for text without separators gives what the full rule gives."""

from __future__ import annotations

import random
import unicodedata

from geoalloc.geocode.normalise import _NOISE, _SPACES, normalise


def test_normalise_equals_the_full_rule_on_mixed_text() -> None:
    rng = random.Random(18)
    pool = "富达花园７栋５０２ABCabc123一二三-_·.,，、 \u3000（）()【】#号ⅫⅧ①²³ﬁ٣४"
    texts = ["鸿业苑12栋3007", "富达花园７栋５０２", "Ⅻ区", "①栋", "ﬁ", "", "　", "5015-9号"]
    texts += ["".join(rng.choice(pool) for _ in range(rng.randint(0, 12))) for _ in range(5000)]
    for t in texts:
        assert normalise(t) == _SPACES.sub(" ", _NOISE.sub(" ", unicodedata.normalize("NFKC", t))).strip(), t
    assert normalise("富达花园７栋５０２") == "富达花园7栋502" and normalise(" 广东省-深圳市 ") == "广东省 深圳市"


def test_traditional_characters_become_simplified_and_simplified_text_is_untouched() -> None:
    assert normalise("廣東省深圳市寶安區西鄉街道") == "广东省深圳市宝安区西乡街道"
    assert normalise("深圳市 羅湖區（東門）") == "深圳市 罗湖区 东门"
    # 於 (a surname), 後, 乾 are written in simplified text too; 璟 is a rare character, not a traditional one
    for kept in ("於家花园", "後海", "乾龙苑", "璟庭", "鸿业苑12栋3007"):
        assert normalise(kept) == kept


def test_a_traditional_address_reads_as_its_simplified_form() -> None:
    from geoalloc.geocode import OfflineGeocoder

    geo = OfflineGeocoder()
    for traditional, simplified in [("深圳市南山區粵海街道", "深圳市南山区粤海街道"), ("華僑城錦繡花園", "华侨城锦绣花园"),
                                    ("龍崗區布吉街道長龍社區", "龙岗区布吉街道长龙社区")]:
        t, s = geo.geocode(traditional, "m1"), geo.geocode(simplified, "m1")
        assert (t.district_zh, t.subdistrict_zh, t.precision) == (s.district_zh, s.subdistrict_zh, s.precision)
        assert t.subdistrict_zh is not None
