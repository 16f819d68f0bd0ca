"""Addresses written in Latin letters (pinyin or English), read as the Chinese names they stand for.

Why: a roster exported from an English-language HR system, or typed by a member used to one, says
``Room 1601, Block 25, Yingqiao Garden, Minzhi Street, Longhua District, Shenzhen``. The names
whose romanisation is sure are read: Shenzhen's districts and subdistricts (alone or with a suffix:
District/Qu, Subdistrict/Street/Jiedao), its communities (only with Community/Shequ/Village: a bare
pinyin word is too often something else), Shenzhen and Guangdong, and China's provinces and
prefecture-level cities (so an address elsewhere is never placed in Shenzhen). They are written
back in Chinese in the administrative order (province, city, district, subdistrict, community) for
the parser; estate and road names in English are not read, so such an address is graded at the
finest unit it names, and the reason says the names were read from their romanisation.
"""

from __future__ import annotations

import re
from functools import cache

__all__ = ["from_latin", "is_latin"]

# Kinds in the order an address is rebuilt, and the words that may follow each name in Latin text.
_PROVINCE, _CITY, _DISTRICT, _SUBDISTRICT, _COMMUNITY = range(5)
_SUFFIXES: dict[int, frozenset[str]] = {
    _PROVINCE: frozenset({"province", "sheng"}),
    _CITY: frozenset({"city", "shi"}),
    _DISTRICT: frozenset({"district", "dist", "qu", "new district", "xinqu", "xin qu"}),
    _SUBDISTRICT: frozenset({"subdistrict", "sub district", "street", "st", "jiedao", "jie dao", "town", "zhen"}),
    _COMMUNITY: frozenset({"community", "shequ", "she qu", "village", "cun"}),
}
# Readings that the characters' standard pinyin does not give (Cantonese-era names) and English names.
_SPELLINGS = {"葵涌": ("kuichong",), "香港特别行政区": ("hongkong",), "澳门特别行政区": ("macau", "macao"),
              "广州市": ("canton",)}
_WORD = re.compile(r"[a-z]+")
_LATIN = re.compile(r"[A-Za-z]{3,}")
_MAX_TOKENS = 4  # a name is at most this many Latin words (Hua Qiang Bei, Bao An)


def is_latin(norm: str) -> bool:
    """Whether a normalised address is written in Latin letters only (with digits and separators)."""
    return norm.isascii() and _LATIN.search(norm) is not None


@cache
def _names() -> dict[str, tuple[tuple[int, str], ...]]:
    """Latin key (pinyin without spaces) -> (kind, Chinese name written back) for every sure name."""
    from pypinyin import lazy_pinyin

    from geoalloc import districts as dist
    from geoalloc.geocode.gazetteer import gazetteer

    g = gazetteer()
    named: list[tuple[int, str, str]] = []  # (kind, the name's core to romanise, the name written back)
    for d in g.district_label:
        named.append((_DISTRICT, d.removesuffix("新区").removesuffix("区"), d))
    for s in g.sub_district:
        named.append((_SUBDISTRICT, s.removesuffix("街道"), s))
    for c in g.community_units:
        named.append((_COMMUNITY, c.removesuffix("社区"), c.removesuffix("社区") + "社区"))  # 上村 -> 上村社区
    table = dist.china_divisions()
    for row in table.itertuples(index=False):
        if row.level == "province":
            named.append((_PROVINCE, str(row.short_zh), str(row.name_zh)))
        elif row.level == "city":
            named.append((_CITY, str(row.short_zh), str(row.name_zh)))
    out: dict[str, dict[tuple[int, str], None]] = {}
    for kind, core, written in named:
        keys = _SPELLINGS.get(core, ()) + _SPELLINGS.get(written, ()) + ("".join(lazy_pinyin(core)).lower(),)
        for key in keys:
            if key.isascii() and key.isalpha():
                out.setdefault(key, {})[(kind, written)] = None
    return {k: tuple(v) for k, v in out.items()}


def from_latin(norm: str) -> tuple[str, list[str]] | None:
    """The Chinese names a Latin-letter address writes, as one address for the parser, and how each was
    written (``Longhua District`` ...); None when it names none of them."""
    words = _WORD.findall(norm.lower().replace("'", ""))
    names = _names()
    found: dict[int, tuple[str, str]] = {}
    i = 0
    while i < len(words):
        hit = None
        for k in range(min(_MAX_TOKENS, len(words) - i), 0, -1):
            key = "".join(words[i : i + k])
            if key in names:
                hit = (key, k)
                break
        if hit is None:
            i += 1
            continue
        key, k = hit
        nxt = words[i + k] if i + k < len(words) else ""
        pair = f"{nxt} {words[i + k + 1]}" if i + k + 1 < len(words) else ""
        choice = _choose(names[key], nxt, pair)
        if choice is None:
            i += k
            continue
        kind, written, used = choice
        shown = " ".join(words[i : i + k + used])
        if kind not in found:
            found[kind] = (written, shown)
        i += k + used
    if not found:
        return None
    ordered = [found[kind] for kind in sorted(found)]
    return "".join(w for w, _ in ordered), [f"{shown} -> {w}" for w, shown in ordered]


def _choose(readings: tuple[tuple[int, str], ...], nxt: str, pair: str) -> tuple[int, str, int] | None:
    """The reading a suffix word (or pair) after the name picks, or without one the coarsest Shenzhen
    unit (a district over a subdistrict of the same name), else the coarsest other place; (kind, name,
    words of suffix used)."""
    for kind, written in readings:
        if pair in _SUFFIXES[kind]:
            return kind, written, 2
    for kind, written in readings:
        if nxt in _SUFFIXES[kind]:
            return kind, written, 1
    # Bare: Shenzhen's own unit first (a Shenzhen roster means Shenzhen's 南头 unless a city is written).
    bare = [(kind, written) for kind, written in readings if kind in (_DISTRICT, _SUBDISTRICT)] or [
        (kind, written) for kind, written in readings if kind != _COMMUNITY]
    if not bare:
        return None
    kind = min(k for k, _ in bare)
    same = [w for k, w in bare if k == kind]
    return (kind, same[0], 0) if len(same) == 1 else None
