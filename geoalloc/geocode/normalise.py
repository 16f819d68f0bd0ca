"""Text normalisation for typed Chinese addresses.

People type addresses with full-width digits, stray spaces and punctuation. Everything the
parser compares goes through :func:`normalise` first, so that ``深圳 南山区　粤海街道１５号``
and ``深圳南山区粤海街道15号`` are the same key (and share one cached parse).
"""

from __future__ import annotations

import math
import re
import unicodedata

__all__ = ["normalise"]

# Separators that carry no meaning inside a Chinese address. "-" and "#" are kept: they
# belong to house numbers (9-1, 3#).
_NOISE = re.compile(r"[\s,，.。、;；:：()（）\[\]【】<>《》\"'“”‘’|/\\_~·!！?？…]+")


def normalise(text: object) -> str:
    """Full-width -> half-width (NFKC), drop whitespace and punctuation; None/NaN -> ""."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    t = unicodedata.normalize("NFKC", str(text))
    return _NOISE.sub("", t)
