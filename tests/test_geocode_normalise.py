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
