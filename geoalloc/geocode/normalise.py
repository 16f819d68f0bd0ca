"""Text normalisation for typed Chinese addresses.

People type addresses with full-width digits, stray spaces and punctuation. Everything the
parser compares goes through :func:`normalise` first: full width folds to half width, and every
run of separators (spaces, punctuation, a dash between words as in 广东省-深圳市-福田区) becomes
one space. The spaces are kept because they carry meaning: a listing's ``富达花园 民治 民治大道``
separates the estate from the market area, and a name that stands alone between them is a firm one.
Traditional characters (深圳市南山區, 廣東省…寶安區, typed in Hong Kong or with a traditional input method)
become simplified ones, as the gazetteer writes them.
"""

from __future__ import annotations

import math
import re
import unicodedata
from functools import cache

__all__ = ["normalise"]

# Separators. "-" and "#" inside house numbers (9-1, 3#) are kept; a dash next to a
# Chinese word (深圳市-福田区) separates words; 5015-9号 and A-3 keep theirs.
_NOISE = re.compile(r"[\s,，.。、;；:：()（）\[\]【】<>《》\"'“”‘’|/\\_~·!！?？…—–]+|(?<![0-9A-Za-z])-+|-+(?![0-9A-Za-z])")
_SPACES = re.compile(r" +")
_CJK = range(0x4E00, 0x9FA6)  # the unified ideographs block: where every traditional form of a place name lies


@cache
def _to_simplified() -> dict[int, str]:
    """OpenCC's traditional-to-simplified map for the characters that simplified text never uses.

    Only characters outside GB 2312 (the simplified standard) are mapped: 於, 後 and 乾 are written in
    simplified text too (於 is a surname), and a name must never change under a reader's feet.
    """
    import opencc

    chars = [chr(c) for c in _CJK]
    simple = opencc.OpenCC("t2s").convert("\n".join(chars)).split("\n")
    return {ord(t): s for t, s in zip(chars, simple, strict=True) if t != s and len(s) == 1 and not _in_gb2312(t)}


def _in_gb2312(text: str) -> bool:
    try:
        text.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def normalise(text: object) -> str:
    """Full-width -> half-width (NFKC); traditional -> simplified; every run of separators -> one space,
    trimmed; None/NaN -> ""."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    t = unicodedata.normalize("NFKC", str(text))
    if not _in_gb2312(t):  # a traditional character, or a rare one simplified text also uses (璟)
        t = t.translate(_to_simplified())
    if t.isalnum():  # no separator in it (most addresses): nothing to replace or trim
        return t
    return _SPACES.sub(" ", _NOISE.sub(" ", t)).strip()
