"""The whole-column fast paths of the geocode command give exactly what the cell-by-cell rules give.

The CSV writer scans each text column once and rewrites only flagged ones; the roster reader strips
each column in one pass; the spread is checked per zone group; ``geoalloc geocode`` imports neither
the solver nor the map and workbook stacks.
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pandas as pd
import shapely

from geoalloc.geocode import OfflineGeocoder
from geoalloc.geocode.offline import jitter_key, jitter_uniforms
from geoalloc.outputs import neutralise, write_csv
from geoalloc.outputs.cells import _safe_cells
from geoalloc.outputs.csvtext import csv_text
from geoalloc.roster import _numbers, _per_distinct, _stripped_text, validate_roster


def _reference_csv(frame: pd.DataFrame, path: Path) -> None:
    """The rule cell by cell: every text cell through neutralise; all quoted when a text cell holds a CR."""
    out = frame.copy()
    for j in range(out.shape[1]):
        col = out.iloc[:, j]
        if col.dtype == object or isinstance(col.dtype, pd.StringDtype):
            out.isetitem(j, col.map(neutralise).astype(object))
    out.columns = [neutralise(str(c)) for c in out.columns]
    has_cr = any(isinstance(v, str) and "\r" in v for j in range(out.shape[1]) for v in out.iloc[:, j].tolist())
    out.to_csv(path, index=False, encoding="utf-8", quoting=csv.QUOTE_NONNUMERIC if has_cr else csv.QUOTE_MINIMAL)


def _frames() -> list[pd.DataFrame]:
    n = 40
    rng = np.random.default_rng(3)
    base = pd.DataFrame({
        "member_id": [f"M{i:03d}" for i in range(n)],
        "clean": pd.Series([f"南山区-{i}" for i in range(n)], dtype="str"),
        "lon": np.where(rng.random(n) < 0.2, np.nan, rng.random(n) + 113.9),
        "n": np.arange(n),
    })
    hostile = base.copy()
    mixed: list[object] = ["=SUM(A1)", "+1", "-x", "@a", "\tt", "'quoted", None, math.nan, 7, "ok", "a\x00=b", ""]
    hostile["name"] = [mixed[i % len(mixed)] for i in range(n)]
    hostile["=head"] = pd.Series(["x"] * n, dtype="str")
    hostile["quote_only"] = ["'lead" if i == 2 else "plain" for i in range(n)]  # the only flag is the quote
    hostile["tab_only"] = pd.Series(["\tlead" if i == 9 else "plain" for i in range(n)], dtype="str")
    with_cr = hostile.copy()
    with_cr["note"] = pd.Categorical(["a\rb" if i == 5 else "c" for i in range(n)])
    dup = base.copy()
    dup.columns = ["member_id", "clean", "lon", "member_id"]
    dup["member_id"] = dup["member_id"].astype(str)
    dup.iloc[3, 0] = "-3 dup"
    return [base, hostile, with_cr, dup, base.iloc[0:0]]


def test_csv_writer_writes_what_the_cell_by_cell_rule_writes(tmp_path: Path) -> None:
    for k, frame in enumerate(_frames()):
        fast, slow = tmp_path / f"fast{k}.csv", tmp_path / f"slow{k}.csv"
        write_csv(frame, fast)
        _reference_csv(frame, slow)
        assert fast.read_bytes() == slow.read_bytes(), k
    hostile = _frames()[1]
    write_csv(hostile, tmp_path / "h.csv")
    back = pd.read_csv(tmp_path / "h.csv", dtype=str, keep_default_na=False)
    assert "'=head" in back.columns and back.loc[0, "name"] == "'=SUM(A1)" and back.loc[5, "name"] == "''quoted"


def _text_frame() -> pd.DataFrame:
    """Every kind of cell the column-wise CSV text handles, hostile texts included."""
    texts = ["plain", "a,b", 'say "hi"', "two\nlines", "cr\rin", "crlf\r\n", " lead", "trail ", "", "'q", "=1+2",
             "-3", "@x", "\tt", "\x0b\x0c\x1c\x85\u2028", "全角，逗号", '"', ",", "a\x00=b", "南山区-001"]
    n = 3 * len(texts)
    floats = [0.0, -0.0, 0.1, 1 / 3, 1e16, 1e-5, 5e-324, 1.7976931348623157e308, math.inf, -math.inf, math.nan,
              113.9234567, 22.5, 100.0, -1e22, 123456789012345678.0]
    return pd.DataFrame({
        "text": pd.Series([texts[i % len(texts)] for i in range(n)], dtype="str"),
        "with_nan": pd.Series([texts[i % len(texts)] if i % 4 else None for i in range(n)], dtype="str"),
        "obj": pd.Series([texts[(i * 7) % len(texts)] if i % 5 else (None if i % 2 else math.nan) for i in range(n)],
                         dtype=object),
        "x": [floats[i % len(floats)] for i in range(n)],
        "small": np.arange(n) % 3 - 1,
        "wide": np.arange(n, dtype=np.int64) * 10**12 - 7,
        "big": np.full(n, 2**63 + 5, dtype=np.uint64),
        "flag": np.arange(n) % 2 == 0,
        'lab,"el': pd.Series(["same"] * n, dtype="str"),
        "text ": pd.Series([texts[(i * 3) % len(texts)] for i in range(n)], dtype=object),
    })


def test_column_wise_csv_text_is_pandas_to_csv() -> None:
    frame = _text_frame()
    for f in (frame, frame.iloc[0:0], frame.iloc[[4, 5, 2]], frame.set_axis(["d"] * frame.shape[1], axis=1)):
        text = csv_text(f)
        assert text is not None
        assert text == f.to_csv(index=False)
    # what it leaves to pandas
    assert csv_text(frame[["text"]]) is None
    assert csv_text(frame.assign(obj=pd.Series(["a", 1] * (len(frame) // 2), dtype=object))) is None
    assert csv_text(frame.assign(cat=pd.Categorical(["a"] * len(frame)))) is None
    assert csv_text(frame.set_axis(list(range(frame.shape[1])), axis=1)) is None


def test_csv_writer_fast_path_neutralises_as_the_cell_by_cell_rule(tmp_path: Path) -> None:
    frame = _text_frame().map(lambda v: v.replace("\r", "") if isinstance(v, str) else v)
    frame["=lead"] = pd.Series(["x"] * len(frame), dtype="str")
    labels = [neutralise(str(c)) for c in frame.columns]
    assert csv_text(frame, labels=labels, texts=_safe_cells) is not None  # the fast path is the one tested
    write_csv(frame, tmp_path / "fast.csv")
    _reference_csv(frame, tmp_path / "slow.csv")
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "slow.csv").read_bytes()
    assert csv_text(_text_frame(), labels=labels[:-1], texts=_safe_cells) is None  # a CR: every text field quoted
    write_csv(_text_frame(), tmp_path / "cr.csv")
    _reference_csv(_text_frame(), tmp_path / "cr_slow.csv")
    assert (tmp_path / "cr.csv").read_bytes() == (tmp_path / "cr_slow.csv").read_bytes()


def test_roster_strip_matches_fillna_astype_strip() -> None:
    cells: list[object] = [" a ", "b", None, math.nan, pd.NA, 3, 4.5, np.float64(2.0), "\u3000全角\u3000", "", " "]
    spaces = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
    for col in (pd.Series(cells, dtype=object), pd.Series([" x ", None, "y"], dtype="str"),
                pd.Series(["a", "b c", ""], dtype="str"), pd.Series(["a", "b"], dtype=object),
                pd.Series([spaces + "x" + spaces, "y", spaces], dtype="str")):
        expected = col.fillna("").astype(str).str.strip()
        got = _stripped_text(col)
        assert got.tolist() == expected.tolist() and got.dtype == expected.dtype


def test_roster_rules_per_distinct_value_are_the_rules_per_cell() -> None:
    texts = np.array(["1", "1.0", " 2", "1e3", "abc", "", "nan", "-nan", "inf", "-1", "0x10", "1_000", "١٢", "3", "1"]
                     * 3, dtype=object)
    per_cell = pd.to_numeric(pd.Series(texts, dtype="str"), errors="coerce").to_numpy(dtype=float)
    np.testing.assert_array_equal(_numbers(texts), per_cell)
    assert _per_distinct(texts, str.lower).tolist() == [t.lower() for t in texts]
    # duplicates: every later copy of a member id names the row of its first copy
    ids = ["a", "b", "a", "", "", "c", "b", "a"]
    frame = pd.DataFrame({"member_id": ids, "address": ["南山区"] * len(ids)})
    got = [(e.row, e.reason) for e in validate_roster(frame).errors if e.field == "member_id"]
    first = {v: ids.index(v) + 2 for v in ids}
    want = [(i + 2, "empty: every row needs a unique member_id" if v == "" else f"duplicate of row {first[v]}")
            for i, v in enumerate(ids) if v == "" or ids.index(v) != i]
    assert got == want


def test_grouped_spread_is_the_point_by_point_rule() -> None:
    geo = OfflineGeocoder()
    texts = ["粤海街道", "大冲社区", "南山区", "福田区", "沙头角", "富达花园", "深圳北站", "", "华强北"] * 30
    parsed = [geo.parse(t) for t in texts]
    keys = [jitter_key(f"m{i}", t) for i, t in enumerate(texts)]
    lon, lat = geo.place(parsed, keys)
    u1, u2 = jitter_uniforms(keys)
    for i, p in enumerate(parsed):
        if p.lon is None or p.lat is None:
            assert np.isnan(lon[i]) and np.isnan(lat[i])
            continue
        want = (p.lon, p.lat)
        if p.jitter_m > 0:
            r, theta = p.jitter_m * math.sqrt(u1[i]), 2 * math.pi * u2[i]
            dx = r * math.cos(theta) / (111_320.0 * math.cos(math.radians(p.lat)))
            dy = r * math.sin(theta) / 110_574.0
            zone = f"{p.zone[0]}:{p.zone[1]}" if p.zone is not None else f"district:{p.district_zh}"
            geom = geo._zone_geom(zone)
            for scale in (1.0, -1.0, 0.5, -0.5, 0.25, -0.25):
                x, y = p.lon + scale * dx, p.lat + scale * dy
                if geom is not None and shapely.contains_xy(geom, x, y):
                    want = (x, y)
                    break
        assert (lon[i], lat[i]) == want, texts[i]


def test_geocode_command_imports_neither_solver_nor_map_stacks() -> None:
    # nor the online providers' HTTP, TLS and SQLite stack (off by default), nor the old matcher library
    code = ("import sys, geoalloc.cli; from geoalloc.outputs import write_csv; "
            "from geoalloc.geocode import summarise, OfflineGeocoder; "
            "from geoalloc.geocode.frame import place_members; from geoalloc.roster import read_roster; "
            "print(sorted(m for m in ('folium', 'openpyxl', 'ortools', 'geoalloc.solver', 'geoalloc.maps', "
            "'geoalloc.geocode.providers', 'urllib.request', 'http.client', 'ssl', 'sqlite3', 'ahocorasick') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
    import geoalloc.geocode as geocode
    from geoalloc.geocode import providers

    assert all(getattr(geocode, name) is not None for name in geocode.__all__)
    assert geocode.ProviderCache is providers.ProviderCache
    with pytest.raises(AttributeError):
        geocode.NoSuchThing  # noqa: B018
    import geoalloc.outputs as outputs
    import geoalloc.pipeline as pipeline

    assert all(getattr(outputs, name) is not None for name in outputs.__all__)
    assert pipeline.place_members is __import__("geoalloc.geocode.frame", fromlist=["x"]).place_members


def test_frame_parses_each_distinct_address_once_and_gives_every_row_its_own_parse() -> None:
    from geoalloc.geocode import geocode_frame

    texts: list[object] = ["翠湖社区翠湖苑2栋2705", "深圳市南山区粤海街道", "乱码", "", None, math.nan, 1, 1.0, True, "1", "True"]
    n = 4 * len(texts)
    df = pd.DataFrame({
        "member_id": [f"m{i}" if i % 7 else "" for i in range(n)],
        "address": pd.Series([texts[i % len(texts)] for i in range(n)], dtype=object),
        "district_zh": [["罗湖区", "", "南山区", None][i % 4] for i in range(n)],
        "group_id": [["", "g1", ""][i % 3] for i in range(n)],
    })
    geo = OfflineGeocoder()
    calls: list[object] = []
    parse = geo.parse
    geo.parse = lambda a: calls.append(a) or parse(a)  # type: ignore[method-assign]
    out = geocode_frame(df, geocoder=geo)
    plain = [a for a in calls if not (isinstance(a, str) and a.startswith(("罗湖区", "南山区")))]
    assert len(plain) == len({(type(a), repr(a)) for a in plain}) == len(texts)  # each distinct cell once
    for i, row in df.iterrows():  # the rule row by row
        a, hint = row["address"], row["district_zh"]
        p = parse(a)
        if p.district_zh is None and isinstance(hint, str) and hint and isinstance(a, str) and a.strip():
            hinted = parse(hint + a)
            p = hinted if hinted.district_zh is not None else p
        key = jitter_key(f"group:{row['group_id']}" if row["group_id"] else row["member_id"], a)
        x, y = geo.place([p], [key])
        got = out.loc[i]
        district = got["geo_district_zh"] if isinstance(got["geo_district_zh"], str) else None
        assert (got["geo_precision"], got["geo_reason"], district) == (p.precision.value, p.reason, p.district_zh), i
        assert (np.isnan(x[0]) and np.isnan(got["lon"])) or (got["lon"], got["lat"]) == (x[0], y[0]), (i, a)


def test_batch_gc_is_undone_after_the_command() -> None:
    import gc

    from geoalloc.cli import BATCH_GC_THRESHOLD, batch_gc

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with batch_gc() as settle:
        assert gc.get_threshold() == BATCH_GC_THRESHOLD
        settle()
        assert gc.get_freeze_count() > frozen
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
