"""Every name the offline parser looks for, in one leftmost-longest matcher (:mod:`geoalloc.geocode.matcher`).

Shenzhen's administrative units (full names, short forms, old names), its housing estates,
parks, stations, market areas (板块) and road names, Shenzhen and Guangdong themselves, and every
other province, city and county of China. One pass over an address finds every mention of any
of them, wherever it is written; :mod:`geoalloc.geocode.parser` then decides what they say.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache

from geoalloc import districts as dist
from geoalloc.geocode.gazetteer import DISTRICT_ALIASES, gazetteer
from geoalloc.geocode.matcher import Matcher
from geoalloc.geocode.normalise import normalise
from geoalloc.geocode.outside import other_places

__all__ = ["Entry", "Lexicon", "build_lexicon", "lexicon"]

# Kinds of entry. Shenzhen units and places carry a district; other places carry ``where``.
DISTRICT, SUBDISTRICT, COMMUNITY = "district", "subdistrict", "community"
ESTATE, PARK, STATION, AREA, ROAD = "estate", "park", "station", "area", "road"
SHENZHEN, GUANGDONG, OTHER = "shenzhen", "guangdong", "other"
ADMIN = frozenset({DISTRICT, SUBDISTRICT, COMMUNITY})
PLACES = frozenset({ESTATE, PARK, STATION, AREA})

# Districts whose subdistricts were towns (镇) until 2004: 观澜镇 is an old name, 沙河镇 is not Shenzhen's.
_TOWN_DISTRICTS = frozenset({"宝安区", "龙岗区", "龙华区", "光明区", "坪山区", "大鹏新区"})
_DISAMBIGUATOR = re.compile(r"\(.*\)$")
DIGITS = re.compile(r"[0-9]+")
_PHASE = re.compile(r"(?:[一二三四五六七八九十]+|\d+)期$|[A-Z]区$")
# An estate name this short is matched only as a whole segment of the address.
MIN_FREE_ESTATE = 3


# Slots: an unpickled instance (the build cache) then reads its fields as fast as a built one; with a
# per-instance dict it would not (unpickled dicts share no keys), and parsing was a quarter slower.
@dataclass(frozen=True, slots=True)
class Entry:
    """One reading of a surface form."""

    kind: str
    name: str  # the official name (or the place's name)
    full: bool  # written with its suffix (区, 街道, 社区) / the place's whole name
    district: str | None = None
    subdistrict: str | None = None
    community: str | None = None
    lon: float | None = None
    lat: float | None = None
    note: str | None = None
    where: tuple[str, ...] = ()  # other places: every unit the name may be
    level: str = ""  # other places: province | city | county


@dataclass(frozen=True, slots=True)
class FormInfo:
    """What the parser asks about every surface form, worked out once."""

    unit: bool  # reads as a district or subdistrict
    chain_next: bool  # a district, subdistrict or full community name (continues a chain after it)
    shenzhen: bool  # 深圳 / 深圳市
    subdistrict: bool  # reads as a subdistrict
    coarse: bool  # a market area, district or subdistrict (not also read as a community short name alone)
    units: frozenset[str]  # the districts and subdistricts it reads as
    sure: bool  # always speaks for a district at tier 2 or more (a full unit name, an estate, park or market area)
    road_only: bool  # only a road name
    station: bool = False  # has a station reading
    city_word: bool = False  # another place's name ending in 市 (东门市场 is not one)
    station_only: bool = False  # only a station's name
    splits: bool = False  # a station's name made of unit names (宝龙同乐 = 宝龙 + 同乐)
    # A station's name or a community's short name that starts with another name (深圳东: 深圳; 红树湾南:
    # 红树湾; 白石洲东: 白石洲): unless written as a station, when its last characters begin a longer name,
    # that name and then the rest read afresh (深圳东门 is 深圳 + 东门).
    reread: bool = False
    reread_unit: bool = False  # ... and the rest is a unit's name (深圳坪山: 深圳 + 坪山, even standing alone)
    other: bool = False  # reads as a place outside Shenzhen (only then can the address be out of the city)
    one_estate: bool = False  # read only as one estate (see :mod:`geoalloc.geocode.nameless`)
    names: frozenset[str] = frozenset()  # the names of its readings


def _info(entries: tuple[Entry, ...]) -> FormInfo:
    kinds = {e.kind for e in entries}
    return FormInfo(
        unit=bool(kinds & {DISTRICT, SUBDISTRICT}),
        chain_next=bool(kinds & {DISTRICT, SUBDISTRICT}) or any(e.kind == COMMUNITY and e.full for e in entries),
        shenzhen=SHENZHEN in kinds,
        subdistrict=SUBDISTRICT in kinds,
        coarse=bool(kinds & {AREA, DISTRICT, SUBDISTRICT}),
        units=frozenset(u for e in entries if e.kind in (DISTRICT, SUBDISTRICT) for u in (e.district, e.subdistrict) if u),
        sure=any(e.district is not None and ((e.kind in (DISTRICT, SUBDISTRICT, COMMUNITY) and e.full
                                              and not (e.note and "former town" in e.note))
                                             or e.kind == AREA or (e.kind in (ESTATE, PARK) and len(e.name) >= MIN_FREE_ESTATE))
                 for e in entries),
        road_only=kinds == {ROAD},
        station=STATION in kinds,
        city_word=OTHER in kinds and any(e.name.endswith("市") for e in entries),
        other=OTHER in kinds,
        one_estate=len(entries) == 1 and entries[0].kind == ESTATE,
        names=frozenset(e.name for e in entries),
    )


#: A mention as the lexicon finds it: (start, end, form, readings, info).
Found = tuple[int, int, str, tuple[Entry, ...], FormInfo]


@dataclass(frozen=True)
class Lexicon:
    """The matcher (surface form -> (form, readings, info)) and what the parser asks of it."""

    automaton: Matcher[tuple[str, tuple[Entry, ...], FormInfo]]
    forms: dict[str, tuple[Entry, ...]]
    # The few names with digits (书院街5号大院), with every digit run written 0: an address whose
    # digits-as-0 text holds none of them reads the same whatever its house numbers.
    digit_forms: Matcher[None] | None = None
    # What a station's name made of unit names (info.splits) reads as when it is not written as a station.
    splits: dict[str, list[Found]] = field(default_factory=dict)
    # The longest name a ``reread`` form starts with, as the matcher has it (form, readings, info).
    heads: dict[str, tuple[str, tuple[Entry, ...], FormInfo]] = field(default_factory=dict)

    def numbers_matter(self, skeleton: str) -> bool:
        """Whether a name with digits may occur in an address whose digit runs were written 0."""
        return self.digit_forms is not None and self.digit_forms.any_in(skeleton)

    def find(self, text: str) -> list[Found]:
        """The leftmost-longest known names in ``text`` (none inside or across another): (start, end, form, readings, info).

        南山南园 is 南山 + 南园, never 山南 (a city in Tibet); 招商 inside 招商华侨城曦城 is part of that name.
        """
        values = self.automaton.values
        return [(a, b, *values[i]) for i, a, b in self.automaton.find(text)]

    def find_inside(self, form: str) -> list[Found]:
        """The leftmost-longest names strictly shorter than ``form`` inside it (how a station's name splits)."""
        values = self.automaton.values
        found = sorted(((a, b, *values[i]) for i, a, b in self.automaton.find_all(form) if b - a < len(form)),
                       key=lambda m: (m[0], m[0] - m[1]))
        out: list[Found] = []
        reach = 0
        for m in found:
            if m[0] >= reach:
                out.append(m)
                reach = m[1]
        return out


def _point(lon: str, lat: str) -> tuple[float | None, float | None]:
    try:
        x, y = float(lon), float(lat)
    except ValueError:
        return None, None
    return (x, y) if math.isfinite(x) and math.isfinite(y) else (None, None)


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    """The automaton from the bundled data: built once per data and code version (half a second),
    then loaded from the user's cache (:mod:`geoalloc.geocode.buildcache`)."""
    from pathlib import Path

    from geoalloc.geocode.buildcache import cached_build, input_key
    from geoalloc.paths import districts_dir

    here = Path(__file__).parent
    sources = [*here.glob("*.py"), here.parent / "districts.py", here.parent / "paths.py"]
    key = input_key([*(p for p in districts_dir().iterdir() if p.is_file()), *sources], packages=("ahocorasick-rs", "pandas", "numpy", "opencc"))
    return cached_build("lexicon", key, build_lexicon, Lexicon)


def build_lexicon() -> Lexicon:
    """Build the automaton from the bundled data (no cache)."""
    forms: dict[str, list[Entry]] = {}

    def add(form: str, e: Entry) -> None:
        if len(form) < 2:
            return
        bucket = forms.setdefault(form, [])
        if e not in bucket:
            bucket.append(e)

    g = gazetteer()
    for name in g.district_label:
        add(name, Entry(DISTRICT, name, True, district=name))
        short = name[:-2] if name.endswith("新区") else name[:-1]
        add(short, Entry(DISTRICT, name, False, district=name))
    for alias, name in DISTRICT_ALIASES.items():
        if alias != name:
            add(alias, Entry(DISTRICT, name, True, district=name, note=f"{alias} is now {name}"))
    for name, d in g.sub_district.items():
        short = g.sub_short[name]
        e = Entry(SUBDISTRICT, name, True, district=d, subdistrict=name)
        add(name, e)
        for suffix in ("街道办事处", "街道办", "办事处"):
            add(short + suffix, e)
        if d in _TOWN_DISTRICTS:
            add(short + "镇", Entry(SUBDISTRICT, name, True, district=d, subdistrict=name,
                                   note=f"{short}镇 (a former town) is now {name}"))
        add(short, Entry(SUBDISTRICT, name, False, district=d, subdistrict=name))
    for name, units in g.community_units.items():
        for d, s in units:
            full = Entry(COMMUNITY, name, True, district=d, subdistrict=s, community=name)
            if name.endswith("社区"):
                add(name, full)
            else:  # 新村, 上村, 华侨新村: villages named like ordinary words or estates, read as short names
                add(name, Entry(COMMUNITY, name, False, district=d, subdistrict=s, community=name))
            if name.endswith("社区"):
                short = name[:-2]
                add(short + "社区居委会", full)
                add(short + "居委会", full)
                add(short, Entry(COMMUNITY, name, False, district=d, subdistrict=s, community=name))

    places = dist.named_places()
    for r in places.itertuples(index=False):
        kind = str(r.kind)
        lon, lat = _point(str(r.lon), str(r.lat))
        if not str(r.district_zh):
            continue
        d, sub, c = str(r.district_zh), str(r.subdistrict_zh) or None, str(r.community_zh) or None
        name = str(r.name_zh)
        if kind == "estate":
            core = _DISAMBIGUATOR.sub("", name)
            e = Entry(ESTATE, core, True, district=d, subdistrict=sub)
            add(normalise(core), e)  # 怡景花园-桂花村, 东方·尊峪花园: matched as addresses are normalised
            add(normalise(core).replace(" ", ""), e)  # 莲塘 D 小区 is also typed 莲塘D小区
            base = _PHASE.sub("", core)
            if base != core and len(base) >= MIN_FREE_ESTATE:  # 招商华侨城曦城一期 is written 招商华侨城曦城
                add(normalise(base), Entry(ESTATE, base, True, district=d, subdistrict=sub))
        elif kind == "park":
            add(normalise(name), Entry(PARK, name, True, district=d, subdistrict=sub, community=c, lon=lon, lat=lat))
        elif kind in ("metro_station", "rail_station", "tram_stop", "monorail_station") and lon is not None:
            add(name, Entry(STATION, name, True, district=d, subdistrict=sub, community=c, lon=lon, lat=lat))
    for r in dist.market_areas().itertuples(index=False):
        add(str(r.name_zh), Entry(AREA, str(r.name_zh), True, district=str(r.district_zh),
                                 subdistrict=str(r.subdistrict_zh) or None))
    for r in dist.roads().itertuples(index=False):
        for d in str(r.districts_zh).split(";"):
            if d:
                add(str(r.road_zh), Entry(ROAD, str(r.road_zh), True, district=d))

    for form in ("深圳市", "深圳"):
        add(form, Entry(SHENZHEN, "深圳市", form.endswith("市")))
    for form in ("广东省", "广东"):
        add(form, Entry(GUANGDONG, "广东省", form.endswith("省")))
    for form, place in other_places().items():
        if form in forms and not place.full:
            continue  # a bare short name that is also a Shenzhen name (光明, 龙华...) stays Shenzhen's
        add(form, Entry(OTHER, form, place.full, where=place.where, level=place.level))

    frozen = {k: tuple(v) for k, v in forms.items()}
    first = Lexicon(Matcher((form, (form, entries, _info(entries))) for form, entries in frozen.items()), frozen)
    # Stations named by two units (宝龙同乐, 坪地六联): flag them, so that unless written as a station they
    # are read as the units.
    values = []
    head_of: dict[str, str] = {}  # a reread form -> the longest name it starts with
    for form, entries in frozen.items():
        info = _info(entries)
        # the longest shorter name this one starts with (深圳 in 深圳东, 白石洲 in 白石洲东)
        head = next((form[:i] for i in range(len(form) - 1, 1, -1) if form[:i] in frozen), None)
        if {e.kind for e in entries} == {STATION}:
            inner = first.find_inside(form)
            splits = len(inner) >= 2 and sum(b - a for a, b, *_ in inner) == len(form) and all(
                fi.unit or any(e.kind == COMMUNITY for e in es) for _, _, _, es, fi in inner)
            # 深圳东门 is 深圳 + 东门 unless 站 follows: the station 深圳东 must not take 东门's first character
            rest = frozen.get(form[len(head):], ()) if head else ()
            info = replace(info, station_only=True, splits=splits, reread=head is not None and not splits,
                           reread_unit=any(e.kind in (DISTRICT, SUBDISTRICT) for e in rest))
        elif all(e.kind == COMMUNITY and not e.full for e in entries):
            # 白石洲东方新地苑 is 白石洲 + 东方新地苑, not the community 白石洲东 + 方新地苑
            info = replace(info, reread=head is not None)
        if head is not None and (info.reread or info.reread_unit):
            head_of[form] = head
        values.append((form, (form, entries, info)))
    lex = Lexicon(Matcher(values), frozen)
    split = {form: lex.find_inside(form) for form, (_, _, info) in values if info.splits}
    digit_forms = Matcher((skel, None) for skel in dict.fromkeys(DIGITS.sub("0", f) for f in frozen if DIGITS.search(f)))
    by_form = dict(values)
    return Lexicon(lex.automaton, frozen, digit_forms, split, {form: by_form[h] for form, h in head_of.items()})
