"""Reading one normalised Shenzhen address: every mention, scored, then the best consistent reading.

People write "estate, market area, road" (富达花园 民治 民治大道), or a bare estate, or the
administrative chain (南山区粤海街道大冲社区), in any order. So the parser finds every name it
knows anywhere in the string (:mod:`geoalloc.geocode.lexicon`), keeps the longest ones (a name
inside a longer name, 招商 in 招商果岭花园, is part of that name), and ranks what each says:

====  ==========================================================================================
tier  mention
====  ==========================================================================================
6     a full district name (南山区): what people are surest of
5     a full subdistrict or community name (粤海街道, 大冲社区)
4     a short administrative name standing alone (``西乡`` between spaces) or in a chain of units
      (深圳南山粤海), a market area (板块) standing alone
3     an estate, park or market area that opens a segment, a market area right after a unit
      (南山科技园, 福田区车公庙), a station written as one (民治站)
2     the same further inside a segment; a short unit name opening a segment (西乡中粮…)
1     a short unit name inside other text; a road name; a station's name inside other text
====  ==========================================================================================

The district is the one the highest tiers support (a unit written under its old parent,
宝安区民治, moves to today's district when something else supports that district). Stronger
mentions that disagree are reported as conflicts, never silently dropped. Then the finest
mention consistent with that district places the address (station or park point; estate,
community, subdistrict or district zone). Other provinces, cities and counties are recognised
by their whole names, so an address elsewhere is ``out_of_city`` and a district name without a
city that is not Shenzhen's (昌平区, 南湖区) is flagged, not guessed.

The result (:class:`Parsed`) depends only on the text, so it is memoised per normalised
address; the member-specific spread is added later (see :mod:`geoalloc.geocode.offline`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from geoalloc.geocode.gazetteer import SUCCESSORS, Gazetteer
from geoalloc.geocode.landmarks import Landmark, LandmarkIndex
from geoalloc.geocode.lexicon import (
    AREA,
    COMMUNITY,
    DIGITS,
    DISTRICT,
    ESTATE,
    MIN_FREE_ESTATE,
    OTHER,
    PARK,
    ROAD,
    SHENZHEN,
    STATION,
    SUBDISTRICT,
    Entry,
    FormInfo,
    Lexicon,
)
from geoalloc.geocode.nameless import Template, fill, template
from geoalloc.geocode.romanised import from_latin, is_latin
from geoalloc.model import GeoPrecision, GeoStatus

__all__ = ["COMMUNITY_JITTER_M", "DISTRICT_JITTER_M", "SUBDISTRICT_JITTER_M", "AddressParser", "Parsed"]

# Spread radii for zone points: small against the zone, large enough that members do not sit on one pixel.
SUBDISTRICT_JITTER_M = 400.0
COMMUNITY_JITTER_M = 150.0
DISTRICT_JITTER_M = 1000.0
_MEMO_MAX = 200_000
# An address re-read from inside a name more often than this is noise or an attack (each re-read scans the rest
# again): what follows is read as first found. A real one has one or two.
_REREADS_MAX = 8
_UNSEEN = object()  # a memo's "no entry" (None is an entry there: a parse that cannot be shared)

_ROAD_AFTER = ("路", "街", "道", "巷", "大道", "公路", "桥", "隧道")
_NOT_A_CITY_AFTER = ("场", "民", "政", "委", "辖", "内", "级", "中心", "花园")  # 东门市场, 市民中心, 市政…
_TOWN = ("镇", "乡")
_ADMIN = (DISTRICT, SUBDISTRICT, COMMUNITY)
_PLACE_KINDS = (STATION, PARK, ESTATE, AREA)


@dataclass(frozen=True)
class Parsed:
    """What an address says, before member-specific spread. ``lon``/``lat`` is the base point.

    ``zone`` names the polygon the spread must stay inside: ``("community", "subdistrict/community")``,
    ``("subdistrict", name)``, ``("district", name)``, or None for a point that is not spread.
    """

    status: GeoStatus
    precision: GeoPrecision
    lon: float | None
    lat: float | None
    jitter_m: float
    district_zh: str | None
    subdistrict_zh: str | None
    community_zh: str | None
    reason: str
    zone: tuple[str, str] | None = None


@dataclass(slots=True)
class _Mention:
    start: int
    end: int
    text: str
    entries: tuple[Entry, ...]
    info: FormInfo
    whole: bool = False  # the whole segment between separators
    opens: bool = False  # opens its segment
    as_station: bool = False  # written as a station (X站, 地铁X站)


# A mention's fields as a plain tuple (start, end, text, entries, info, whole, opens, as_station): most parses
# are shared (see _parse_text), so the mention objects are made only for the parses actually worked out.
_Span = tuple[int, int, str, tuple[Entry, ...], FormInfo, bool, bool, bool]


def _placed(s: str, a: int, b: int, form: str, entries: tuple[Entry, ...], info: FormInfo, spaced: bool,
            n: int) -> _Span:
    """The mention of ``form`` at ``s[a:b]`` with its position flags (``spaced``: ``s`` has separators)."""
    if spaced:
        opens = a == 0 or s[a - 1] == " "
        whole = opens and (b == n or s[b] == " ")
    else:
        opens = a == 0
        whole = opens and b == n
    # Only a name with a station reading asks whether 站 follows it.
    as_station = info.station and (s.startswith("站", b) or s.startswith("地铁站", b) or (
        s.startswith("地铁", a - 2) and s.startswith("站", b)))
    return (a, b, form, entries, info, whole, opens, as_station)


def _is_place_word(m: _Mention, s: str) -> bool:
    """False for 东门市场, 市民中心: a name ending in 市 that is followed by a word it starts."""
    return _is_place_word_at(m.text, m.end, s)


def _is_place_word_at(text: str, end: int, s: str) -> bool:
    return not (text.endswith("市") and s.startswith(_NOT_A_CITY_AFTER, end))


def _failed(reason: str) -> Parsed:
    return Parsed(GeoStatus.FAILED, GeoPrecision.NONE, None, None, 0.0, None, None, None, reason)


def _out_of_city(what: str) -> Parsed:
    return Parsed(GeoStatus.OUT_OF_CITY, GeoPrecision.NONE, None, None, 0.0, None, None, None,
                  f"address is in {what}, outside Shenzhen (transfer candidate)")


class AddressParser:
    """Parses normalised addresses against the lexicon, the gazetteer's zones and an optional landmark table.

    ``shortcuts`` (on by default) skips the rules that cannot apply to an address: the out-of-city rules
    when no mention reads as a place elsewhere, the district scoring when every reading lies in one
    district; and it shares one parse among addresses naming different estates of one zone in the same
    way (:mod:`geoalloc.geocode.nameless`). Off, every rule runs for every address (the reference the
    tests compare with).
    """

    shortcuts = True

    def __init__(self, gaz: Gazetteer, lex: Lexicon, landmarks: LandmarkIndex) -> None:
        self.g = gaz
        self.lex = lex
        self.landmarks = landmarks
        self._memo: dict[tuple[object, ...], Parsed] = {}
        self._resolved: dict[tuple[object, ...], tuple[Parsed, bool]] = {}
        self._by_skeleton: dict[str, Parsed] = {}
        self._by_zone: dict[tuple[object, ...], Template | None] = {}
        self._nameless_of: dict[str, int] = {}
        self._readings: dict[tuple[object, ...], int] = {}
        # read_names: set while parsing when a place's name (not only where it is) decided. Per thread: the API
        # shares one geocoder between its request threads.
        self._state = threading.local()
        self._digit_free_landmarks = not any(DIGITS.search(name) for name in landmarks.names())
        self._longest = max(map(len, lex.forms), default=1)  # the longest name: a match from a point lies within it

    # ---- mentions ----------------------------------------------------------------------------
    def mentions(self, s: str) -> list[_Mention]:
        """The maximal known names in ``s`` (none inside a longer one), in order, with their position flags.

        A station's name that is not written as a station and spans unit names (宝龙同乐, 坪地六联) is read
        as those names instead.
        """
        return [_Mention(*x) for x in self._spans(s)]

    def _spans(self, s: str) -> list[_Span]:
        """:meth:`mentions` as tuples."""
        out: list[_Span] = []
        spaced = " " in s
        n = len(s)
        values = self.lex.automaton.values
        matches = self.lex.automaton.find(s)
        k = 0
        rereads = 0
        while k < len(matches):
            i, a, b = matches[k]
            k += 1
            form, entries, info = values[i]
            written = (info.station or info.reread) and s.startswith(("站", "地铁站"), b)  # as a station
            if ((info.reread and b < n and not written) or info.reread_unit) and rereads < _REREADS_MAX:
                # 深圳东门, 深圳西乡, 红树湾南头, 白石洲东方新地苑: the name this one starts with, then the rest read
                # afresh, when a name there runs past this one (梅林关 in 梅林关花园 stays; 深圳北 alone is the
                # station) or the rest is a unit (深圳坪山 is 深圳 + 坪山, unless written as a station)
                head = self.lex.heads[form]
                c = len(head[0])
                # the name starting where the head ends, if any (no name is longer than the window)
                probe = self.lex.automaton.find(s[a + c:a + c + self._longest])
                if (info.reread_unit and not written) or (probe and probe[0][1] == 0 and a + c + probe[0][2] > b):
                    out.append(_placed(s, a, a + c, *head, spaced, n))
                    matches = [(j, a + c + x, a + c + y) for j, x, y in self.lex.automaton.find(s[a + c:])]
                    k = 0
                    rereads += 1
                    continue
            if info.station:  # only a station's name may split (info.splits) or ask whether 站 follows it
                if info.splits and not written:
                    inner = self.lex.splits[form]
                    out.extend(_placed(s, a + x, a + y, f, es, fi, spaced, n) for x, y, f, es, fi in inner)
                    continue
                out.append(_placed(s, a, b, form, entries, info, spaced, n))
                continue
            if spaced:  # _placed for every other name, inline (this runs for every mention)
                opens = a == 0 or s[a - 1] == " "
                whole = opens and (b == n or s[b] == " ")
            else:
                opens = a == 0
                whole = opens and b == n
            out.append((a, b, form, entries, info, whole, opens, False))
        return out

    def _tier(self, m: _Mention, e: Entry, s: str, chained: bool, road_after: bool) -> int:
        """How strongly mention ``m`` read as ``e`` speaks for its district (0: not at all)."""
        if e.kind in (DISTRICT, SUBDISTRICT, COMMUNITY):
            if e.full:
                if e.note and "former town" in e.note:
                    return 4  # 观澜镇: Shenzhen's old town, but 新桥镇 may be any other county's
                return 6 if e.kind == DISTRICT else 5
            if e.kind == COMMUNITY:
                if m.whole or chained:
                    return 4
                if e.name == m.text and len(m.text) >= 3:  # 莲花三村, 南岭村: an official name without 社区
                    return 3 if m.opens else 1
                return 2 if (e.name == m.text and m.opens) else 0
            if road_after:
                return 1  # 新湖路, 布心路: a road named after the place, usually (not always) in it
            if m.whole or chained:
                return 4
            return 2 if m.opens else 1
        if e.kind == AREA:
            return 4 if m.whole else (3 if m.opens or chained else 1)  # 布心公寓 inside other text is not the 板块
        if e.kind == STATION:
            if any(x.kind == SHENZHEN for x in m.entries) or m.info.unit:
                return 3 if m.as_station else 0  # 深圳站 is a station; 深圳 is the city; 光明 alone is the district
            # inside other text (梅林关某某花园) a station's name speaks weakly for its district, as a road's does
            return 3 if (m.as_station or m.whole) else (1 if len(m.text) >= MIN_FREE_ESTATE else 0)
        if e.kind in (ESTATE, PARK):
            if len(m.text) < MIN_FREE_ESTATE and not m.whole:
                return 0
            return 3 if m.opens else 2
        if e.kind == ROAD:
            return 1
        return 0

    # ---- the parse -------------------------------------------------------------------------
    def parse(self, norm: str) -> Parsed:
        """Parse a normalised address (see :func:`geoalloc.geocode.normalise.normalise`)."""
        if not norm.strip():
            return _failed("empty address")
        # House and flat numbers never change a reading (unless a name has digits in it, 书院街5号大院):
        # addresses that differ only in them share one parse.
        skeleton = DIGITS.sub("0", norm)
        hit = self._by_skeleton.get(skeleton)
        if hit is not None:
            return hit
        hit = self._parse_latin(norm) if is_latin(norm) else self._parse_text(norm)
        if self._digit_free_landmarks and not self.lex.numbers_matter(skeleton):
            if len(self._by_skeleton) >= _MEMO_MAX:
                self._by_skeleton.clear()
            self._by_skeleton[skeleton] = hit
        return hit

    def _parse_latin(self, norm: str) -> Parsed:
        """An address in Latin letters, through the Chinese names it romanises (:mod:`geoalloc.geocode.romanised`)."""
        read = from_latin(norm)
        if read is None:
            return _failed("written in Latin letters, and no Shenzhen district, subdistrict or community, nor a "
                           "province or city, recognised (estate and road names are read in Chinese only)")
        text, shown = read
        parsed = self.parse(text)
        return replace(parsed, reason=f"read from Latin letters ({'; '.join(shown)}): {parsed.reason}")

    def _parse_text(self, norm: str) -> Parsed:
        s = norm
        spans = self._spans(s)
        landmark = self.landmarks.find(norm)
        # What follows depends only on the mentions, their positions relative to one another and to the
        # separators, and the character after each: addresses that differ only in other text (house
        # numbers, unknown estate names) share one parse.
        # A road name matters only when nothing firmer is written: beside a sure mention it is left out.
        sure = False
        roads: list[int] = []
        estates: list[int] = []
        parts: list[tuple[object, ...]] = []
        prev_end = 0
        for k, (a, b, text, _, info, whole, opens, as_station) in enumerate(spans):
            if info.sure:
                sure = True
            if info.road_only:
                roads.append(k)
            elif info.one_estate:
                estates.append(k)
            parts.append((text, whole, opens, as_station, min(a - prev_end, 2), s.startswith(_ROAD_AFTER, b),
                          info.city_word and _is_place_word_at(text, b, s)))
            prev_end = b
        if sure:
            for k in roads:
                parts[k] = ("~road",) + parts[k][1:]
        town = "镇" in s or "乡" in s
        # One estate among the mentions (most addresses), its name read by no other: share the parse with
        # every address naming another estate of that zone in the same way (:mod:`geoalloc.geocode.nameless`).
        if len(estates) == 1 and self.shortcuts:
            k = estates[0]
            text = spans[k][2]
            name = spans[k][3][0].name
            if len(spans) == 1 or not any(name in x[4].names for j, x in enumerate(spans) if j != k):
                parts[k] = (self._nameless(spans[k]),) + parts[k][1:]
                shared = (tuple(parts), landmark, town)
                tpl = self._by_zone.get(shared, _UNSEEN)
                if tpl is _UNSEEN:
                    parsed = self._parse(s, [_Mention(*x) for x in spans], landmark)
                    if len(self._by_zone) >= _MEMO_MAX:
                        self._by_zone.clear()
                    self._by_zone[shared] = template(parsed, name, text, self._state.read_names)
                    return parsed
                if tpl is not None:
                    return fill(tpl, name)  # type: ignore[arg-type]  # a template here, not the sentinel
                parts[k] = (text,) + parts[k][1:]
        key = (tuple(parts), landmark, town)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._parse(s, [_Mention(*x) for x in spans], landmark)
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[key] = hit
        return hit

    def _nameless(self, span: _Span) -> int:
        """A number for what the parser reads from a mention of one estate besides its name (once per form)."""
        text = span[2]
        hit = self._nameless_of.get(text)
        if hit is None:
            reading = (replace(span[3][0], name=""), replace(span[4], names=frozenset()), len(text) >= MIN_FREE_ESTATE)
            hit = self._nameless_of[text] = self._readings.setdefault(reading, len(self._readings))
        return hit

    def _parse(self, s: str, ms: list[_Mention], landmark: Landmark | None) -> Parsed:
        self._state.read_names = False
        said_sz = [m.start for m in ms if m.info.shenzhen]

        # Evidence: (tier, entry, mention index) for every Shenzhen reading.
        evidence: list[tuple[int, Entry, int]] = []
        reads_district = [any(e.kind == DISTRICT for e in m.entries) for m in ms]
        one_district = sum(reads_district) == 1
        for i, m in enumerate(ms):
            alone_district = one_district and reads_district[i]
            # A chain of units (深圳南山粤海大冲): a district or subdistrict name, or a full community name,
            # right before or after. Two community short names side by side (东方明珠城) are not a chain.
            prev = ms[i - 1].info if i else None
            prev_unit = prev is not None and ms[i - 1].end == m.start and (prev.unit or prev.shenzhen)
            # A community short name continues a chain only inside the unit before it (石井新村 is not 罗湖's 新村).
            prev_units = prev.units if (prev_unit and prev is not None) else frozenset()
            next_unit = i + 1 < len(ms) and ms[i + 1].start == m.end and ms[i + 1].info.chain_next
            # 新湖路 is a road; 沙头角桥东社区 is 沙头角 + 桥东社区 (a name starting right after is not a suffix)
            road_after = s.startswith(_ROAD_AFTER, m.end) and not (i + 1 < len(ms) and ms[i + 1].start == m.end)
            # A name that is a market area or a unit is not read as some community's short name too.
            coarse = m.whole and m.info.coarse
            # 南山, 福田, 龙华: a district's short name that is also its own subdistrict's. With no other district
            # written, it is the district (深圳南山, 福田南园路); 南山区南山 and 宝安区龙华 (an old parent) keep
            # the subdistrict.
            own = alone_district and any(x.kind == DISTRICT and not x.full for x in m.entries)
            for e in m.entries:
                if e.kind in (OTHER, SHENZHEN) or e.district is None or (coarse and e.kind == COMMUNITY and not e.full):
                    continue
                if own and e.kind == SUBDISTRICT and not e.full and any(
                        x.kind == DISTRICT and x.name == e.district for x in m.entries):
                    continue
                if e.kind == COMMUNITY:
                    chained = e.subdistrict in prev_units or (e.district in prev_units and not (
                        prev is not None and prev.subdistrict))
                else:  # a market area right after a unit opens its own name (南山科技园, 福田区车公庙)
                    chained = prev_unit if e.kind == AREA else (prev_unit or next_unit)
                t = self._tier(m, e, s, chained, road_after)
                if t:
                    evidence.append((t, e, i))
        top_admin = max((t for t, e, _ in evidence if e.kind in _ADMIN), default=0)

        # Only a name of a place elsewhere can make the address out of the city.
        elsewhere = not self.shortcuts or any(m.info.other for m in ms)
        out = self._other_place(s, ms, said_sz, top_admin) if elsewhere else None
        if out is not None:
            return out
        if not evidence:
            if landmark is not None:
                return self._at_landmark(landmark, None, [])
            if any(s.startswith(_TOWN, m.end) for m in ms) or any(ch in s for ch in _TOWN):
                return _failed("names a town (镇/乡) that is not in Shenzhen (Shenzhen has had no towns since 2004); "
                               "check the city")
            return _failed("no Shenzhen district, subdistrict, community, estate, park, station or road recognised")
        return self._resolve(ms, evidence, landmark)

    def _other_place(self, s: str, ms: list[_Mention], said_sz: list[int], top_admin: int) -> Parsed | None:
        """``out_of_city`` when the address names a place elsewhere more firmly than anything in Shenzhen."""
        strong: list[tuple[int, Entry]] = []
        county: list[tuple[int, Entry]] = []
        leading: list[tuple[int, Entry]] = []
        lead_pos = 0
        for m in ms:
            if m.start > lead_pos:
                break
            if any(e.kind in (SHENZHEN, "guangdong") for e in m.entries):
                lead_pos = m.end + (1 if s.startswith(" ", m.end) else 0)
        for i, m in enumerate(ms):
            # 温州龙岗区, 宁海县桃源街道: a Shenzhen-like unit right after another place is that place's.
            owns_next = i + 1 < len(ms) and ms[i + 1].start == m.end and any(
                e.kind in _ADMIN for e in ms[i + 1].entries)
            for e in m.entries:
                if e.kind != OTHER:
                    continue
                if owns_next and (e.full or m.start <= lead_pos):
                    strong.append((m.start, e))
                elif e.full and _is_place_word(m, s):
                    if e.level == "county":
                        county.append((m.start, e))
                    else:
                        strong.append((m.start, e))
                elif not e.full and m.start <= lead_pos and not s.startswith(_ROAD_AFTER, m.end):
                    leading.append((m.start, e))  # 东莞长安镇; but 北京路 is a road (most cities have one)
        first_sz = min(said_sz) if said_sz else None
        if strong:
            pos, e = strong[0]
            if first_sz is None or pos < first_sz:
                return _out_of_city(e.where[0] if len(e.where) == 1 else e.name)
        if county and first_sz is None and top_admin < 6:
            pos, e = county[0]
            if len(e.where) == 1:
                return _out_of_city(f"{e.where[0]} (no city given; {e.name} is not a Shenzhen district)")
            return _out_of_city(f"{e.name}, which is not a Shenzhen district (ambiguous without a city: "
                                f"{', '.join(e.where)})")
        if leading and first_sz is None and top_admin < 4:
            return _out_of_city(leading[0][1].where[0])
        return None

    # ---- resolving the Shenzhen reading --------------------------------------------------------
    def _resolve(self, ms: list[_Mention], evidence: list[tuple[int, Entry, int]],
                 landmark: Landmark | None) -> Parsed:
        roads = [e.name for t, e, _ in evidence if e.kind == ROAD]
        if any(t >= 2 for t, _, _ in evidence):
            # A short name inside other text or a road name (tier 1) decides only when nothing better is written.
            evidence = [x for x in evidence if x[0] >= 2]
            roads = []
        # Only the mentions that speak for a district matter from here on: keep those, and share the result
        # between addresses that have the same ones (a listing's road and house number do not change it).
        used = sorted({x[2] for x in evidence})
        if len(used) < len(ms):
            remap = {i: k for k, i in enumerate(used)}
            ms = [ms[i] for i in used]
            evidence = [(t, e, remap[i]) for t, e, i in evidence]
        key = (tuple([(t, id(e), i) for t, e, i in evidence]), tuple([(m.text, m.whole, m.as_station) for m in ms]),
               landmark, tuple(roads))
        got = self._resolved.get(key)
        if got is None:
            got = self._resolve_units(ms, evidence, landmark, roads), self._state.read_names
            if len(self._resolved) >= _MEMO_MAX:
                self._resolved.clear()
            self._resolved[key] = got
        self._state.read_names = got[1]
        return got[0]

    def _resolve_units(self, ms: list[_Mention], evidence: list[tuple[int, Entry, int]],
                       landmark: Landmark | None, roads: list[str]) -> Parsed:
        only = evidence[0][1].district
        if self.shortcuts and only is not None and all(x[1].district == only for x in evidence):
            # Every reading in one district (most addresses): no score, tie or conflict to work out.
            return self._in_district(only, True, ms, evidence, landmark, roads)
        direct: dict[str, list[int]] = {}
        hist: dict[str, list[int]] = {}
        best_tier: dict[tuple[int, str], int] = {}
        for t, e, i in evidence:
            key = (i, e.district or "")
            if t > best_tier.get(key, 0):
                best_tier[key] = t
        by_mention: dict[int, dict[str, int]] = {}
        for (i, d), t in best_tier.items():
            by_mention.setdefault(i, {})[d] = t
        # One pass over the evidence for what each district's score needs (not one pass per district).
        district_readings: dict[int, list[tuple[int, Entry]]] = {}
        support: dict[str | None, set[tuple[int, str]]] = {}
        first_at: dict[str | None, int] = {}
        for t, e, j in evidence:
            if e.kind == DISTRICT:
                district_readings.setdefault(j, []).append((t, e))
            support.setdefault(e.district, set()).add((j, e.kind))
            at = ms[j].start
            if at < first_at.get(e.district, 10**6):
                first_at[e.district] = at
        for i, ds in by_mention.items():
            for d, t in ds.items():
                direct.setdefault(d, [0] * 7)[t] += 1
            for t, e in district_readings.get(i, ()):
                for succ in SUCCESSORS.get(e.name, ()):
                    if succ not in ds:
                        hist.setdefault(succ, [0] * 7)[t] += 1
        scores: dict[str, tuple[int, ...]] = {}
        for d in set(direct) | set(hist):
            v = list(direct.get(d, [0] * 7))
            if d in hist and any(v[t] for t in range(2, 7)):
                v = [a + b for a, b in zip(v, hist[d])]
            if any(v):
                # last: how many readings support it (华侨新村 is 龙岗区's community and estate, 南山区's estate only)
                scores[d] = tuple(v[6:0:-1]) + (len(support.get(d, ())),)
        if not scores:
            return _failed("no Shenzhen district recognised")
        first_pos = {d: first_at[d] if d in direct else 10**6 for d in scores}
        named_district = {e.district for t, e, _ in evidence if e.kind == DISTRICT and t >= 4}
        ranked = sorted(scores, key=lambda d: (scores[d], d in named_district, d in direct, -first_pos[d]),
                        reverse=True)
        best = ranked[0]
        if len(ranked) > 1 and scores[ranked[1]] == scores[best] and (best in named_district) == (
                ranked[1] in named_district):
            tied = sorted(d for d in ranked if scores[d] == scores[best])
            what = ", ".join(dict.fromkeys(ms[i].text for t, e, i in evidence if e.district in tied))
            return _failed(f"ambiguous: {what} may be in {' or '.join(tied)}; the address must name its district "
                           "or subdistrict")
        # A community name found in several districts (凤凰社区) is settled by a place name only when the place
        # lies in one of that community's own subdistricts (凤凰社区凤凰雅居: 凤凰雅居 is in 西乡, no 凤凰社区 there).
        # A place named after the community itself (红星社区红星花园) says nothing about which one it is.
        upper = [d for d in ranked if scores[d][:3] == scores[best][:3]]
        if len(upper) > 1 and scores[best][:3] != (0, 0, 0):
            self._state.read_names = True  # a place's name decides here: this parse is not shared by zone
            comms = [e for t, e, _ in evidence if e.kind == COMMUNITY and t >= 4]
            stems = {e.name.removesuffix("社区") for e in comms}
            comm_subs = {e.subdistrict for e in comms if e.district == best}
            places = [e for t, e, _ in evidence if e.kind in _PLACE_KINDS and e.district == best]
            place_subs = {e.subdistrict for e in places if not any(e.name.startswith(x) for x in stems)}
            spans = len({e.district for e in comms} & set(upper)) >= 2
            if spans and comm_subs and places and not comm_subs & place_subs:
                what = ", ".join(dict.fromkeys(ms[i].text for t, e, i in evidence if e.kind == COMMUNITY))
                return _failed(f"ambiguous: {what} may be in {' or '.join(sorted(upper))}; the address must name its "
                               "district or subdistrict")
        return self._in_district(best, best in direct, ms, evidence, landmark, roads)

    def _in_district(self, best: str, direct: bool, ms: list[_Mention], evidence: list[tuple[int, Entry, int]],
                     landmark: Landmark | None, roads: list[str]) -> Parsed:
        """The notes and conflicts of reading the address in ``best``, then its placement there.

        ``direct``: some mention reads as ``best`` itself (not only as an old name's successor).
        """
        notes: list[str] = []
        moved = not direct or any(
            e.kind == DISTRICT and e.name != best and best in SUCCESSORS.get(e.name, ())
            for t, e, _ in evidence if t >= 4)
        if moved:
            olds = sorted({e.name for t, e, _ in evidence if e.kind == DISTRICT and best in SUCCESSORS.get(e.name, ())})
            notes.append(f"historical name: {'/'.join(olds)} -> {best}")
        for t, e, _ in evidence:
            if e.note and e.district == best:
                notes.append(e.note)
        # Conflicts: strong unit names that cannot be in the chosen district.
        conflicts: list[str] = []
        strong_at: dict[int, list[Entry]] = {}
        for t, e, j in evidence:
            if t >= 4 and e.kind in _ADMIN:
                strong_at.setdefault(j, []).append(e)
        for i in sorted(strong_at):
            strong = strong_at[i]
            if not any(self._fits(e, best) for e in strong):
                homes = "/".join(sorted({f"{e.district}{e.subdistrict or ''}" for e in strong}))
                conflicts.append(f"{ms[i].text} is in {homes}, not {best}")
        return self._finest(best, ms, evidence, landmark, notes, conflicts, roads)

    @staticmethod
    def _place_rank(e: Entry, m: _Mention) -> int:
        """Station written as one, park with a point, estate, park without a point, market area."""
        if e.kind == STATION:
            return 0 if m.as_station else 4
        if e.kind == PARK:
            return 1 if e.lon is not None else 3
        return 2 if e.kind == ESTATE else 4

    def _fits(self, e: Entry, d: str) -> bool:
        return e.district == d or (e.kind == DISTRICT and d in SUCCESSORS.get(e.name, ()))

    def _finest(self, d: str, ms: list[_Mention], evidence: list[tuple[int, Entry, int]],
                landmark: Landmark | None, notes: list[str], conflicts: list[str], roads: list[str]) -> Parsed:
        """Place the address by its finest mention that lies in district ``d``."""
        # One pass sorts this district's evidence by kind (the rules below read small lists).
        ev: list[tuple[int, Entry, int]] = []
        sub_ev: list[tuple[int, Entry, int]] = []
        comm_ev: list[tuple[int, Entry, int]] = []
        place_ev: list[tuple[int, Entry, int]] = []
        district_mentions: set[int] = set()
        for x in evidence:
            e = x[1]
            if e.district != d:
                continue
            ev.append(x)
            kind = e.kind
            if kind == SUBDISTRICT:
                sub_ev.append(x)
            elif kind == DISTRICT:
                district_mentions.add(x[2])
            elif kind == COMMUNITY:
                comm_ev.append(x)
            elif kind in _PLACE_KINDS:
                place_ev.append(x)
        # Subdistricts by how they are written: full name (tier 5), short name standing alone or in a chain
        # (4), weaker (below 4).
        full_set: set[str] = set()
        short_ev: list[tuple[str, int]] = []
        weak_set: set[str] = set()
        unit_mentions = set(district_mentions)
        for t, e, i in sub_ev:
            unit_mentions.add(i)
            sd = e.subdistrict
            if not sd:
                continue
            if t == 5:
                full_set.add(sd)
            elif t == 4:
                short_ev.append((sd, i))
            elif t < 4:
                weak_set.add(sd)
        subs_full = sorted(full_set)
        # 龙岗 in 深圳龙岗坪地 is the district, not 龙岗街道, when another subdistrict is named.
        subs_short = sorted({x[0] for x in short_ev if x[1] not in district_mentions}) if short_ev else []
        subs_of_district_names = sorted({x[0] for x in short_ev if x[1] in district_mentions}) if short_ev else []
        subs_weak = sorted(weak_set)
        stated_sub = subs_full[0] if len(subs_full) == 1 else (subs_short[0] if len(subs_short) == 1 and not subs_full
                                                                else None)
        # Communities (full names, or short ones standing alone / in a chain).
        # A mention that also reads as this district's subdistrict or the district itself (梅林, 福田) is that
        # unit when another mention names a community.
        pairs = sorted({(e.subdistrict or "", e.name) for t, e, i in comm_ev if i not in unit_mentions}) \
            if comm_ev else []
        if stated_sub is not None:
            narrowed = [p for p in pairs if p[0] == stated_sub]
            pairs = narrowed or ([] if subs_full else pairs)
        comm: tuple[str, str] | None = None
        if len(pairs) == 1:
            comm = pairs[0]
        elif pairs:
            names = sorted({c for _, c in pairs})
            notes.append(f"community {'/'.join(names)} is ambiguous ({', '.join(sorted({s for s, _ in pairs}))}); "
                         "the address must name its subdistrict")
        # Places: the best kind first, then the higher tier, then the earlier mention.
        places = [(t, e, i) for t, e, i in place_ev
                  if not (e.kind == STATION and not ms[i].as_station and not ms[i].whole)] if place_ev else []
        # A stated subdistrict, or a community that is certain, outranks a place name that lies elsewhere
        # (吉祥花园, 桃花园: estate names repeat across the city).
        # A listing's market-area board (``西乡`` standing alone) is looser than the estate list: it only
        # picks among the estate's homonyms.
        board = stated_sub is not None and not subs_full and all(
            ms[i].whole for t, e, i in sub_ev if e.subdistrict == stated_sub and t == 4)
        anchor = stated_sub or (comm[0] if comm is not None else None)
        if board:
            places = [p for p in places if p[1].subdistrict == stated_sub] or places
        elif anchor is not None:
            keep = [p for p in places if p[1].subdistrict in (None, anchor) or p[1].kind == AREA]
            if len(keep) < len(places):
                dropped = sorted({p[1].name for p in places if p not in keep})
                notes.append(f"{'/'.join(dropped)} not used: in another subdistrict than {anchor}")
            places = keep
        place: Entry | None = None
        place_sub: str | None = None
        if places:
            if len(places) > 1:
                places.sort(key=lambda p: (self._place_rank(p[1], ms[p[2]]), -p[0], ms[p[2]].start))
            first = places[0]
            place = first[1]
            same_name = {p[1].subdistrict for p in places if p[2] == first[2] and p[1].kind == place.kind}
            place_sub = next(iter(same_name)) if len(same_name) == 1 else None
            if len(same_name) > 1:
                notes.append(f"{place.name} exists in {', '.join(sorted(str(x) for x in same_name))}; subdistrict "
                             "not guessed")

        # The subdistrict the address itself states (a unit or a certain community), before any place's.
        said_sub = (subs_full[0] if len(subs_full) == 1 else None) or (comm[0] if comm else None) or stated_sub \
            or (subs_of_district_names[0] if len(subs_of_district_names) == 1 else None)
        if landmark is not None and self.g.compatible(d, landmark.district_zh):
            return self._at_landmark(landmark, d, conflicts + notes, said_sub)
        if landmark is not None:
            notes.append(f"landmark {landmark.name}站 is in {landmark.district_zh}, not {d}; not used")

        sub = (subs_full[0] if len(subs_full) == 1 else None) or place_sub or (comm[0] if comm else None) \
            or stated_sub or (subs_weak[0] if len(subs_weak) == 1 else None) \
            or (subs_of_district_names[0] if len(subs_of_district_names) == 1 else None)
        if place is not None and place.kind == AREA and sub is None:
            sub = place.subdistrict
        if place_sub and stated_sub and place_sub != stated_sub and not subs_full:
            notes.append(f"{place.name if place else ''} is in {place_sub} (the address also names {stated_sub})")
        if comm is not None and sub is not None and comm[0] != sub:
            comm = None
        tail = "; " + "; ".join([f"conflict: {c}" for c in conflicts] + notes) if conflicts or notes else ""

        if place is not None and place.kind in (STATION, PARK) and place.lon is not None and place.lat is not None \
                and (place.kind == PARK or ms[next(i for t, e, i in places if e is place)].as_station):
            grade = GeoPrecision.STATION if place.kind == STATION else GeoPrecision.PARK
            label = f"{place.name}站" if place.kind == STATION else place.name
            return Parsed(GeoStatus.OK, grade, place.lon, place.lat, 0.0, d, said_sub or place.subdistrict or sub,
                          place.community, f"{grade.value} {label} ({d}): its OpenStreetMap point" + tail)
        if place is not None and place.kind in (ESTATE, PARK):
            grade = GeoPrecision.ESTATE if place.kind == ESTATE else GeoPrecision.PARK
            return self._zone(grade, d, sub, None,
                              f"{grade.value} {place.name} (no coordinates)", tail)
        if comm is not None:
            return self._zone(GeoPrecision.COMMUNITY, d, comm[0], comm[1], f"community {comm[1]}", tail)
        if sub is not None:
            why = f"market area {place.name}" if place is not None and place.kind == AREA else sub
            return self._zone(GeoPrecision.SUBDISTRICT, d, sub, None, why, tail)
        if roads and not any(t >= 2 for t, e, _ in ev):
            return self._zone(GeoPrecision.ROAD, d, None, None, f"road {roads[0]} (a name, no geometry)", tail)
        if ev and all(t == 1 and e.kind == STATION for t, e, _ in ev):
            return self._zone(GeoPrecision.DISTRICT, d, None, None,
                              f"{d} only, from the station name {ms[ev[0][2]].text} inside other text", tail)
        return self._zone(GeoPrecision.DISTRICT, d, None, None, f"{d} only", tail)

    # ---- placement -------------------------------------------------------------------------
    def _zone(self, grade: GeoPrecision, d: str, sub: str | None, comm: str | None, what: str, tail: str) -> Parsed:
        """A zone's representative point (community polygon, subdistrict polygon or district), spread later."""
        g = self.g
        if comm is not None and sub is not None and (sub, comm) in g.comm_point:
            lon, lat = g.comm_point[(sub, comm)]
            where = f"community {comm}'s point (OpenStreetMap polygon), spread up to {COMMUNITY_JITTER_M:.0f} m"
            return Parsed(GeoStatus.APPROXIMATE, grade, lon, lat, COMMUNITY_JITTER_M, d, sub, comm,
                          f"{what}: {where}" + tail, ("community", f"{sub}/{comm}"))
        if sub is not None and sub in g.sub_point:
            lon, lat = g.sub_point[sub]
            extra = " (the community has no polygon)" if comm is not None else ""
            where = f"subdistrict {sub}'s point, spread up to {SUBDISTRICT_JITTER_M:.0f} m{extra}"
            return Parsed(GeoStatus.APPROXIMATE, grade, lon, lat, SUBDISTRICT_JITTER_M, d, sub, comm,
                          f"{what}: {where}" + tail, ("subdistrict", sub))
        lon, lat = g.district_label[d]
        return Parsed(GeoStatus.APPROXIMATE, grade, lon, lat, DISTRICT_JITTER_M, d, None, None,
                      f"{what}: district label point, spread up to {DISTRICT_JITTER_M:.0f} m" + tail, ("district", d))

    def _at_landmark(self, lm: Landmark, d: str | None, notes: list[str], sub: str | None = None) -> Parsed:
        tail = ("; " + "; ".join(notes)) if notes else ""
        if sub is None or self.g.sub_district.get(sub) != lm.district_zh:
            sub = lm.subdistrict_zh  # the address states none in the landmark's district: the table's
        return Parsed(GeoStatus.OK, GeoPrecision.LANDMARK, lm.lon, lm.lat, 0.0, lm.district_zh, sub,
                      None, f"landmark {lm.name}站 ({lm.district_zh}): its coordinates from the landmark table" + tail)
