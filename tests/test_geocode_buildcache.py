"""The built lexicon kept in the user's cache: same parses as a fresh build; a bad or stale file is rebuilt."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import pytest

from geoalloc.geocode.buildcache import cache_dir, cached_build, input_key


def test_a_stored_build_is_reused_only_for_the_same_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOALLOC_CACHE_DIR", str(tmp_path))
    calls: list[int] = []

    def build() -> dict[str, int]:
        calls.append(1)
        return {"n": len(calls)}

    assert cached_build("thing", "k1", build, dict) == {"n": 1}
    assert cached_build("thing", "k1", build, dict) == {"n": 1} and len(calls) == 1  # loaded, not built
    assert cached_build("thing", "k2", build, dict) == {"n": 2}  # other data or code: rebuilt
    (tmp_path / "thing-k2.pickle").write_bytes(b"not a pickle")
    assert cached_build("thing", "k2", build, dict) == {"n": 3}  # unreadable: rebuilt and replaced
    assert pickle.loads((tmp_path / "thing-k2.pickle").read_bytes()) == {"n": 3}
    (tmp_path / "thing-k2.pickle").write_bytes(pickle.dumps([1, 2]))
    assert cached_build("thing", "k2", build, dict) == {"n": 4}  # the wrong kind of object: rebuilt
    assert not list(tmp_path.glob(".thing-*"))  # no temporary files left


def test_caching_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOALLOC_CACHE_DIR", "off")
    assert cache_dir() is None
    calls: list[int] = []

    def build() -> dict[str, int]:
        calls.append(1)
        return {}

    for _ in range(2):
        cached_build("thing", "k", build, dict)
    assert len(calls) == 2


def test_the_key_follows_file_contents(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("x\n1\n")
    k1 = input_key([a])
    a.write_text("x\n2\n")
    assert input_key([a]) != k1 and input_key([a]) == input_key([a])


def test_a_cached_lexicon_parses_exactly_like_a_fresh_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from geoalloc.geocode.gazetteer import gazetteer
    from geoalloc.geocode.landmarks import LandmarkIndex
    from geoalloc.geocode.lexicon import Lexicon, build_lexicon, lexicon
    from geoalloc.geocode.normalise import normalise
    from geoalloc.geocode.parser import AddressParser
    from geoalloc.samples import generate_roster

    monkeypatch.setenv("GEOALLOC_CACHE_DIR", str(tmp_path))
    lexicon.cache_clear()
    try:
        lexicon()  # builds and stores
        assert len(list(tmp_path.glob("lexicon-*.pickle"))) == 1
        lexicon.cache_clear()
        loaded = lexicon()  # loads
    finally:
        lexicon.cache_clear()
    assert isinstance(loaded, Lexicon)
    texts = [normalise(a) for a in generate_roster(1200, seed=41)["address"] if a]
    texts += ["北京市朝阳区", "宝安区新湖路", "光明大街站", "书院街5号大院", "中粮万福阁 西乡", "昌平区沙河镇"]
    fresh = AddressParser(gazetteer(), build_lexicon(), LandmarkIndex(None))
    cached = AddressParser(gazetteer(), loaded, LandmarkIndex(None))
    assert [cached.parse(t) for t in texts] == [fresh.parse(t) for t in texts]


def test_matchers_and_frozen_records_come_back_equal_and_shared_only_when_identical(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from geoalloc.geocode.lexicon import FormInfo
    from geoalloc.geocode.matcher import Matcher

    monkeypatch.setenv("GEOALLOC_CACHE_DIR", str(tmp_path))
    info = FormInfo(True, False, False, True, False, frozenset({"南山区"}), True, False)
    twin = FormInfo(True, False, False, True, False, frozenset({"南山区"}), True, False)
    zero, minus_zero = _Point(0.0), _Point(-0.0)
    made = Matcher((word, (word, info)) for word in ("南山", "南山区", "山南", "粤海街道"))
    value = {"made": made, "empty": Matcher([]), "infos": [info, twin], "points": [zero, minus_zero]}
    cached_build("thing", "k", lambda: value, dict)
    back = cached_build("thing", "k", lambda: {}, dict)  # loaded from the file
    assert back["made"] is not made and back["made"].words == made.words
    assert back["made"].values == made.values and back["made"].values[0][1] is back["infos"][0]
    text = "深圳市南山区粤海街道山南"
    assert back["made"].find(text) == made.find(text) == [(1, 3, 6), (3, 6, 10), (2, 10, 12)]
    assert back["empty"].find(text) == [] and not back["empty"].any_in(text)
    assert back["infos"] == [info, twin] and back["infos"][0] is back["infos"][1]  # equal values shared
    assert [str(p.x) for p in back["points"]] == ["0.0", "-0.0"]  # equal but not the same value: kept apart


@dataclass(frozen=True, slots=True)
class _Point:
    x: float


def test_a_cached_gazetteer_is_the_fresh_build_and_the_command_path_then_needs_no_geopandas(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    code = ("import sys, pickle, shapely; from geoalloc.geocode.gazetteer import gazetteer, build_gazetteer; "
            "from geoalloc.geocode import OfflineGeocoder; from geoalloc.roster import validate_roster; "
            "import pandas as pd; OfflineGeocoder(); g = gazetteer(); "
            "r = validate_roster(pd.DataFrame({'member_id': ['a'], 'lon': ['114.05'], 'lat': ['22.55']})); "
            "loaded = 'geopandas' in sys.modules; f = build_gazetteer(); "
            "same = all(getattr(g, k) == getattr(f, k) for k in ('tokens', 'district_label', 'sub_district', "
            "'community_units', 'sub_point', 'comm_point')) and all(shapely.equals_exact(g.sub_geom[k], f.sub_geom[k], 0) "
            "for k in f.sub_geom) and all(shapely.is_prepared(v) for v in g.comm_geom.values()); "
            "print(loaded, same, r.members['district_zh'][0])")
    env = {**os.environ, "GEOALLOC_CACHE_DIR": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout.split()
            for _ in range(2)]
    assert runs[0] == ["True", "True", "福田区"]  # first run: built from the GeoJSON files
    assert runs[1] == ["False", "True", "福田区"]  # later runs: from the cache, geopandas never imported
