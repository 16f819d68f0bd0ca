"""Text normalisation for typed Chinese addresses.

People type addresses with full-width digits, stray spaces and punctuation. Everything the
parser compares goes through :func:`normalise` first: full width folds to half width, and every
run of separators (spaces, punctuation, a dash between words as in 广东省-深圳市-福田区) becomes
one space. The spaces are kept because they carry meaning: a listing's ``富达花园 民治 民治大道``
separates the estate from the market area, and a name that stands alone between them is a firm one.
"""

from __future__ import annotations

import math
import re
import unicodedata

__all__ = ["normalise"]

# Separators. "-" and "#" inside house numbers (9-1, 3#) are kept; a dash next to a
# Chinese word (深圳市-福田区) separates words; 5015-9号 and A-3 keep theirs.
_NOISE = re.compile(r"[\s,，.。、;；:：()（）\[\]【】<>《》\"'“”‘’|/\\_~·!！?？…—–]+|(?<![0-9A-Za-z])-+|-+(?![0-9A-Za-z])")
_SPACES = re.compile(r" +")


def normalise(text: object) -> str:
    """Full-width -> half-width (NFKC); every run of separators -> one space, trimmed; None/NaN -> ""."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    t = unicodedata.normalize("NFKC", str(text))
    if t.isalnum():  # no separator in it (most addresses): nothing to replace or trim
        return t
    return _SPACES.sub(" ", _NOISE.sub(" ", t)).strip()
