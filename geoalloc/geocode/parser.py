"""Parsing one normalised Shenzhen address into units and a base point.

The parse reads administrative units from the front of the address (district, then
subdistrict, then community: the order people write them), accepting short forms and old
names. Each reading must be consistent with what came before; a full name that is not
(粤海街道 under 福田区) is recorded as a conflict and dropped rather than guessed, while a short
form that does not fit is taken to be street text. A landmark written as a station overrides
the units when it lies in the same district.

The result (:class:`Parsed`) depends only on the text, so it is memoised per normalised
address; the member-specific jitter is added later (see :mod:`geoalloc.geocode.offline`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from geoalloc.geocode.gazetteer import (
    COMMUNITY,
    DISTRICT,
    SUBDISTRICT,
    SUCCESSORS,
    Cand,
    Gazetteer,
)
from geoalloc.geocode.landmarks import Landmark, LandmarkIndex
from geoalloc.geocode.outside import leading_other_place, leading_short_other_place
from geoalloc.model import GeoPrecision, GeoStatus

__all__ = ["DISTRICT_JITTER_M", "SUBDISTRICT_JITTER_M", "AddressParser", "Parsed"]

# Jitter radii: small against a subdistrict (3-10 km across) or a district, large enough that
# members do not sit on one pixel.
SUBDISTRICT_JITTER_M = 400.0
_MEMO_MAX = 200_000
DISTRICT_JITTER_M = 1000.0

_COUNTRY = ("中华人民共和国", "中国")
_PROVINCE = ("广东省", "广东")


@dataclass(frozen=True)
class Parsed:
    """What an address says, before member-specific jitter. ``lon``/``lat`` is the base point."""

    status: GeoStatus
    precision: GeoPrecision
    lon: float | None
    lat: float | None
    jitter_m: float
    district_zh: str | None
    subdistrict_zh: str | None
    community_zh: str | None
    reason: str


@dataclass
class _Units:
    """Mutable state while reading units from the front of an address."""

    district: str | None = None
    stated_district: str | None = None
    sub: str | None = None
    comm: str | None = None
    comm_pairs: tuple[tuple[str, str], ...] = ()
    last: int = 0
    bare_short_ok: bool = False  # may a short community name stand without its district?
    notes: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def found(self) -> bool:
        return bool(self.district or self.sub or self.comm or self.conflicts)


_STREET = re.compile(r"[东西南北中]?[一二三四五六七八九十]?(?:路|街|巷|大道|道|桥)")
_END = ""  # the trie key under which a node keeps the readings of the name ending there


def _build_trie(tokens: dict[str, tuple[Cand, ...]]) -> dict[str, object]:
    """A character trie over the names: reading a position costs a few dict steps, not one per length."""
    root: dict[str, object] = {}
    for name, cands in tokens.items():
        node = root
        for ch in name:
            node = node.setdefault(ch, {})  # type: ignore[assignment]
        node[_END] = cands
    return root


def _failed(reason: str) -> Parsed:
    return Parsed(GeoStatus.FAILED, GeoPrecision.NONE, None, None, 0.0, None, None, None, reason)


def _out_of_city(place: str) -> Parsed:
    return Parsed(
        GeoStatus.OUT_OF_CITY, GeoPrecision.NONE, None, None, 0.0, None, None, None,
        f"address is in {place}, outside Shenzhen (transfer candidate)",
    )


class AddressParser:
    """Parses normalised addresses against a :class:`Gazetteer` and an optional landmark index."""

    def __init__(self, gaz: Gazetteer, landmarks: LandmarkIndex) -> None:
        self.g = gaz
        self.landmarks = landmarks
        self._step_memo: dict[tuple[object, ...], tuple[object, ...]] = {}
        self._finish_memo: dict[tuple[object, ...], Parsed] = {}
        self._full = {k: v for k, v in gaz.tokens.items() if any(not c.short for c in v)}
        self._trie = _build_trie(gaz.tokens)
        self._full_trie = _build_trie(self._full)
        # Longest full name starting with each character: most positions start no name at all.
        self._first_max: dict[str, int] = {}
        for k in self._full:
            self._first_max[k[0]] = max(self._first_max.get(k[0], 0), len(k))

    # ---- reading units -------------------------------------------------------------------
    def _consistent(self, c: Cand, u: _Units) -> bool:
        g = self.g
        if c.level == DISTRICT:
            return u.district is None or c.name in SUCCESSORS.get(u.district, frozenset())
        if c.level == SUBDISTRICT:
            return u.district is None or g.compatible(u.district, g.sub_district[c.name])
        if c.short and u.district is None and u.sub is None and not u.bare_short_ok:
            return False  # 中心…, 水库… at the very start are more likely words than communities
        return bool(self._fitting_pairs(c.name, u))

    def _historical(self, c: Cand, u: _Units) -> bool:
        """Whether reading ``c`` here moves the address out of its stated district."""
        if u.district is None:
            return False
        if c.level == DISTRICT:
            return c.name != u.district
        if c.level == SUBDISTRICT:
            return self.g.sub_district[c.name] != u.district
        return all(d != u.district for d, _ in self._fitting_pairs(c.name, u))

    def _fitting_pairs(self, community: str, u: _Units) -> tuple[tuple[str, str], ...]:
        g = self.g
        return tuple(
            dict.fromkeys(
                (d, s)
                for d, s in g.community_units[community]
                if (u.sub is None or s == u.sub) and (u.district is None or g.compatible(u.district, d))
            )
        )

    def _apply(self, text: str, cands: tuple[Cand, ...], u: _Units, full_only: bool = False,
               street: bool = False) -> bool:
        """Take the best reading of ``text`` at this point; False when it is not a unit here."""
        options = [
            c for c in cands
            if not (full_only and c.short)
            and c.level > u.last or (c.level == DISTRICT and u.district is not None
                                    and c.name in SUCCESSORS.get(u.district, frozenset()))
        ]
        if not options:
            return False
        # After a district, read a subdistrict before an old parent's successor district (龙岗区坪山).
        # A reading that needs no historical move wins (宝安区大浪站: 大浪社区 of 宝安区, not 大浪街道).
        good = [c for c in options if self._consistent(c, u)]
        if len(good) > 1:
            good.sort(key=lambda c: (self._historical(c, u), 2.5 if (c.level == DISTRICT and u.district) else c.level,
                                     c.short))
        if good:
            self._take(text, good[0], u)
            return True
        # Nothing fits. A full name (粤海街道) or a short subdistrict name is a real conflict;
        # a short community name (中心, 水库) is most likely street text.
        # Before 路/街/大道 even a short subdistrict name is a street name (福田区笋岗西路), not a conflict.
        strong = sorted((c for c in options if not c.short or (c.level == SUBDISTRICT and not street)),
                        key=lambda c: (c.level, c.short))
        if not strong:
            return False
        c = strong[0]
        where = u.sub or u.district
        if c.level == SUBDISTRICT:
            label = c.name if text == c.name else f"{text} ({c.name})"
            u.conflicts.append(f"{label} is in {self.g.sub_district[c.name]}, not {where}")
        elif c.level == COMMUNITY:
            homes = sorted({s for _, s in self.g.community_units[c.name]})
            u.conflicts.append(f"{text} is in {'/'.join(homes)}, not {where}")
        else:
            u.conflicts.append(f"{text} contradicts {where}")
        u.last = max(u.last, c.level)
        return True

    def _take(self, text: str, c: Cand, u: _Units) -> None:
        g = self.g
        if c.note:
            u.notes.append(c.note)
        if c.level == DISTRICT:
            if u.district is not None and u.district != c.name:
                u.notes.append(f"{u.district} -> {c.name} (historical parent)")
            u.district = c.name
            u.stated_district = u.stated_district or c.name
        elif c.level == SUBDISTRICT:
            home = g.sub_district[c.name]
            if u.district is not None and u.district != home:
                u.notes.append(f"historical name: {u.district}{c.name} is now in {home}")
            u.sub = c.name
            u.district = home
        else:
            u.comm = c.name
            u.comm_pairs = self._fitting_pairs(c.name, u)
        u.last = c.level

    def _apply_memo(self, text: str, cands: tuple[Cand, ...], u: _Units, full_only: bool, street: bool) -> bool:
        """:meth:`_apply`, memoised on (token, state): rosters repeat the same unit runs endlessly."""
        key = (text, full_only, street, u.district, u.stated_district, u.sub, u.comm, u.last, u.bare_short_ok)
        hit = self._step_memo.get(key)
        if hit is None:
            n_notes, n_conflicts = len(u.notes), len(u.conflicts)
            ok = self._apply(text, cands, u, full_only, street)
            hit = (ok, u.district, u.stated_district, u.sub, u.comm, u.comm_pairs, u.last,
                   tuple(u.notes[n_notes:]), tuple(u.conflicts[n_conflicts:]))
            if len(self._step_memo) > _MEMO_MAX:
                self._step_memo.clear()
            self._step_memo[key] = hit
            return ok
        ok, u.district, u.stated_district, u.sub, u.comm, u.comm_pairs, u.last, notes, conflicts = hit
        u.notes.extend(notes)
        u.conflicts.extend(conflicts)
        return ok

    def _read(self, s: str, pos: int, u: _Units, full_only: bool = False) -> int:
        """Read units from ``pos`` while they follow one another; return where reading stopped."""
        trie, n = (self._full_trie if full_only else self._trie), len(s)
        while pos < n and u.last < COMMUNITY:
            # Walk the name trie from pos: every name that starts here, then try the longest first.
            node, j, ends = trie, pos, []
            while j < n:
                node = node.get(s[j])  # type: ignore[assignment]
                if node is None:
                    break
                j += 1
                cands = node.get(_END)
                if cands is not None:
                    ends.append((j, cands))
            for end, cands in reversed(ends):
                street = _STREET.match(s, end) is not None
                if self._apply_memo(s[pos:end], cands, u, full_only, street):  # type: ignore[arg-type]
                    pos = end
                    break
            else:
                break
            while pos < n and s[pos] == "-":
                pos += 1
        return pos

    def _name_at(self, s: str, pos: int) -> bool:
        """Whether a full unit name starts at ``pos``."""
        top = self._first_max.get(s[pos : pos + 1], 0) if pos < len(s) else 0
        return any(s[pos : pos + k] in self._full for k in range(min(top, len(s) - pos), 1, -1))

    def _first_full_name(self, s: str, start: int) -> int:
        """Position of the first full unit name (…区, …街道, …社区) at or after ``start``, or -1."""
        full, first_max = self._full, self._first_max
        for pos in range(start, len(s) - 1):
            for length in range(min(first_max.get(s[pos], 0), len(s) - pos), 1, -1):
                cands = full.get(s[pos : pos + length])
                if cands and any(not c.short for c in cands):
                    return pos
        return -1

    def _scan_rest(self, s: str, pos: int, u: _Units) -> None:
        """After the front run: pick up a full subdistrict/community name written further on."""
        while pos < len(s) and u.last < COMMUNITY:
            nxt = self._first_full_name(s, pos)
            if nxt < 0:
                return
            before = u.last
            end = self._read(s, nxt, u, full_only=True)
            if end == nxt and u.last == before:
                pos = nxt + 1
            else:
                pos = end

    # ---- the parse -------------------------------------------------------------------------
    def parse(self, norm: str) -> Parsed:
        """Parse a normalised address (see :func:`geoalloc.geocode.normalise.normalise`)."""
        if not norm:
            return _failed("empty address")
        s = norm
        for prefix in _COUNTRY:
            if s.startswith(prefix):
                s = s[len(prefix):]
                break
        for prefix in _PROVINCE:
            if s.startswith(prefix):
                s = s[len(prefix):]
                break
        other = leading_other_place(s, self.g.is_token)
        if other is not None:
            return _out_of_city(other)
        said_shenzhen = False
        if s.startswith("深圳市"):
            s, said_shenzhen = s[3:], True
        elif s.startswith("深圳"):
            said_shenzhen = True
            if not self._name_at(s, 0):  # keep 深圳湾社区, 深圳大学社区 whole
                s = s[2:]

        u = _Units(bare_short_ok=said_shenzhen)
        end = self._read(s, 0, u)
        if not u.found():
            if not said_shenzhen and "深圳" not in norm:
                short = leading_short_other_place(s)
                if short is not None:
                    return _out_of_city(short)
            start = self._first_full_name(s, 0)
            if start >= 0:
                end = self._read(s, start, u)
        if u.sub is None and u.found():
            self._scan_rest(s, end, u)
        landmark = self.landmarks.find(norm)
        town = s.endswith("镇") or "镇" in s[:5]
        key = (u.district, u.stated_district, u.sub, u.comm, u.comm_pairs, tuple(u.notes), tuple(u.conflicts),
               landmark, town)
        done = self._finish_memo.get(key)
        if done is None:
            done = self._finish(u, landmark, town)
            if len(self._finish_memo) > _MEMO_MAX:
                self._finish_memo.clear()
            self._finish_memo[key] = done
        return done

    def _finish(self, u: _Units, landmark: Landmark | None, town: bool) -> Parsed:
        """Settle the units and place the address (depends only on the units and landmark)."""
        self._settle_community(u)
        if landmark is not None:
            if u.district is None or self.g.compatible(u.district, landmark.district_zh) or (
                u.stated_district is not None and self.g.compatible(u.stated_district, landmark.district_zh)
            ):
                return self._at_landmark(landmark, u)
            u.notes.append(f"landmark {landmark.name}站 is in {landmark.district_zh}, not {u.district}; not used")

        if u.sub is not None:
            return self._at_subdistrict(u)
        if u.district is not None:
            return self._at_district(u)
        if u.conflicts or u.notes:
            return _failed("; ".join(u.conflicts + u.notes))
        if town:
            return _failed("names a town that is not in Shenzhen (Shenzhen has had no towns since 2004); check the city")
        return _failed("no Shenzhen district, subdistrict, community or landmark recognised")

    def _settle_community(self, u: _Units) -> None:
        """Use a community to fill in its subdistrict and district when it is unambiguous."""
        if u.comm is None:
            return
        pairs = u.comm_pairs
        if len(pairs) == 1:
            d, s = pairs[0]
            if u.sub is None:
                u.sub = s
            if u.district != d:
                if u.district is not None:
                    u.notes.append(f"historical name: {u.district}{u.comm} is now in {d}")
                u.district = d
            return
        direct = [pair for pair in pairs if pair[0] == u.district]
        if u.district is not None and len(direct) == 1:
            # 宝安区共和…: 宝安区's own 共和社区 rather than the one now in 龙华区.
            others = sorted({s for _, s in pairs} - {direct[0][1]})
            u.notes.append(f"{u.comm} read as the one in {u.district} (also in {', '.join(others)})")
            u.comm_pairs = (direct[0],)
            self._settle_community(u)
            return
        districts = sorted({d for d, _ in pairs})
        subs = sorted({s for _, s in pairs})
        if u.district is None and len(districts) == 1:
            u.district = districts[0]
        u.notes.append(f"community {u.comm} is ambiguous ({', '.join(subs)}); the address must name its district or subdistrict")
        u.comm = None

    # ---- placement -------------------------------------------------------------------------
    def _tail(self, u: _Units, landmark: bool = False) -> str:
        notes = [n for n in u.notes if not (landmark and "ambiguous" in n)]
        extra = [f"conflict: {c}" for c in u.conflicts] + notes
        return ("; " + "; ".join(extra)) if extra else ""

    def _at_landmark(self, lm: Landmark, u: _Units) -> Parsed:
        sub = u.sub if (u.sub is not None and self.g.sub_district[u.sub] == lm.district_zh) else lm.subdistrict_zh
        comm = u.comm if sub is not None and sub == u.sub else None
        src = f"; subdistrict {sub} as the landmark table gives it" if sub is not None and sub != u.sub else ""
        return Parsed(
            GeoStatus.OK, GeoPrecision.LANDMARK, lm.lon, lm.lat, 0.0, lm.district_zh, sub, comm,
            f"landmark {lm.name}站 ({lm.district_zh}): its coordinates{src}" + self._tail(u, landmark=True),
        )

    def _at_subdistrict(self, u: _Units) -> Parsed:
        assert u.sub is not None
        lon, lat = self.g.sub_seed[u.sub]
        what = f"{u.sub}, community {u.comm}" if u.comm else u.sub
        why = " (communities have no coordinates)" if u.comm else ""
        return Parsed(
            GeoStatus.APPROXIMATE, GeoPrecision.SUBDISTRICT, lon, lat, SUBDISTRICT_JITTER_M,
            self.g.sub_district[u.sub], u.sub, u.comm,
            f"{what}: subdistrict seed point with jitter{why}" + self._tail(u),
        )

    def _at_district(self, u: _Units) -> Parsed:
        assert u.district is not None
        lon, lat = self.g.district_label[u.district]
        return Parsed(
            GeoStatus.APPROXIMATE, GeoPrecision.DISTRICT, lon, lat, DISTRICT_JITTER_M,
            u.district, None, None,
            f"{u.district} only: district label point with jitter" + self._tail(u),
        )
