"""Unit tests of geoalloc.maps: layers, states, privacy, escaping, GCJ-02, validation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geoalloc.geocode.datum import from_wgs84
from geoalloc.maps import compare_map, derive_moves, plan_map, render_html, save_map
from geoalloc.maps.elements import ClusterLayer, HeatLayer, PlanLayer
from geoalloc.maps.panel import size_bins
from geoalloc.maps.payload import SCALE
from geoalloc.maps.privacy import blur_points, js_json
from geoalloc.maps.styles import LABELS, STATE_COLOURS, BranchState, branch_state, neighbour_colours
from geoalloc.maps.synthetic import synthetic_plan
from geoalloc.maps.tiles import choose_tiles

EVIL = "<img src=x onerror=alert(1)>"


def tiny_plan() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Three branches (under / within / over with limits 3..5) and one inactive member."""
    rows = []
    spec = {"南山区-001": (113.930, 22.530, 2), "南山区-002": (113.950, 22.540, 4), "福田区-001": (114.050, 22.540, 6)}
    k = 0
    for bid, (lon, lat, n) in spec.items():
        for j in range(n):
            rows.append({"member_id": f"M{k:03d}", "branch_id": bid, "distance_m": 100.0 * (j + 1),
                         "district_zh": bid.split("-")[0], "lon": lon + 0.0013 * j, "lat": lat + 0.0007 * j,
                         "geo_precision": "exact" if j % 2 == 0 else "community", "full_member": 1,
                         "status": "active"})
            k += 1
    rows.append({"member_id": "M999", "branch_id": "", "distance_m": np.nan, "district_zh": "福田区",
                 "lon": 114.06, "lat": 22.55, "geo_precision": "landmark", "full_member": 1,
                 "status": "lost_contact"})
    assignments = pd.DataFrame(rows)
    branches = pd.DataFrame([
        {"branch_id": bid, "lon": lon, "lat": lat, "district_zh": bid.split("-")[0], "size": n, "n_full": n,
         "mean_distance_m": 150.0, "max_distance_m": 100.0 * n, "joint": 0}
        for bid, (lon, lat, n) in spec.items()
    ])
    report = {"objective_m": 1234.0, "gap": 0.01, "n_members": len(assignments), "n_assigned": 12,
              "n_unassigned": 1, "n_branches": 3, "min_size": 3, "max_size": 5}
    return assignments, branches, report


def payload_of(m) -> dict:
    return m.views[0].payload


def decode(p: dict, xs: list[int], ys: list[int]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(xs) / SCALE + p["origin"][0], np.asarray(ys) / SCALE + p["origin"][1]


@pytest.fixture(scope="module")
def small() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    return synthetic_plan(400, seed=3)


def test_counts_match_frames(small) -> None:
    a, b, r = small
    m = plan_map(a, b, r)
    assert m.counts["branches"] == len(b)
    assert m.counts["members"] == len(a)  # every synthetic member has a point
    assert m.counts["members_assigned"] == int((a["branch_id"] != "").sum())
    assert m.counts["members_unassigned"] == int((a["branch_id"] == "").sum()) > 0
    p = payload_of(m)
    assert len(p["members"]["x"]) == len(p["members"]["b"]) == len(a)
    assert m.counts["hulls"] == len(b)
    assert m.counts["districts"] == 10


def test_branch_states_and_colours() -> None:
    a, b, r = tiny_plan()
    m = plan_map(a, b, r)
    p = payload_of(m)
    states = dict(zip(p["branches"]["id"], p["branches"]["state"]))
    colours = p["stateColours"]
    assert colours[states["南山区-001"]] == STATE_COLOURS[BranchState.UNDER]
    assert colours[states["南山区-002"]] == STATE_COLOURS[BranchState.WITHIN]
    assert colours[states["福田区-001"]] == STATE_COLOURS[BranchState.OVER]
    assert m.summary["under"] == ["南山区-001"] and m.summary["over"] == ["福田区-001"]
    # explicit limits override report.json
    m2 = plan_map(a, b, r, min_size=1, max_size=10)
    assert set(payload_of(m2)["branches"]["state"]) == {1}


def test_branch_state_boundaries() -> None:
    assert branch_state(2, 3, 50) is BranchState.UNDER
    assert branch_state(3, 3, 50) is BranchState.WITHIN
    assert branch_state(50, 3, 50) is BranchState.WITHIN
    assert branch_state(51, 3, 50) is BranchState.OVER


def test_neighbouring_branches_get_different_colours() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50_000, size=(120, 2))
    colours = neighbour_colours(xy, k=4)
    from scipy.spatial import cKDTree

    _, idx = cKDTree(xy).query(xy, k=2)
    clashes = sum(colours[i] == colours[j] for i, j in idx)
    assert clashes == 0


def test_default_layers_on_and_off(small) -> None:
    a, b, r = small
    m = plan_map(a, b, r)
    layers = {c.kind: c for c in m._children.values() if isinstance(c, PlanLayer)}
    assert {k for k, c in layers.items() if c.show} == {"districts", "hulls", "members", "unassigned", "branches"}
    assert {k for k, c in layers.items() if not c.show} == {"zones", "lines", "heat", "cluster"}
    assert isinstance(layers["heat"], HeatLayer) and isinstance(layers["cluster"], ClusterLayer)
    html = render_html(m)
    assert LABELS["zh"]["zones"] in html and "OpenStreetMap" in LABELS["zh"]["zones"]  # real (OSM) boundaries now
    assert "L.control.layers" in html and "L.control.fullscreen" in html and "L.Control.Measure" in html


def test_names_hidden_by_default_and_escaped_when_shown() -> None:
    a, b, r = tiny_plan()
    names = pd.Series({"M000": EVIL, "M001": "张三"})
    # the page without the inlined Leaflet sources (their code mentions "onerror" itself)
    html_default = render_html(plan_map(a, b, r, names=names), cdn=True)
    assert "张三" not in html_default and "M000" not in html_default and "onerror" not in html_default

    m = plan_map(a, b, r, names=names, show_names=True, title=EVIL)
    html = render_html(m, cdn=True)
    assert "张三" in html
    assert "<img src=x" not in html  # neither the name nor the title reaches the page as markup
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in html  # the name travels as inert JSON text
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # the <title> is escaped
    assert payload_of(m)["members"]["name"][0] == EVIL


def test_js_json_cannot_close_a_script() -> None:
    text = js_json({"name": "</script><script>alert(1)</script>&\u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text)["name"].startswith("</script>")


def test_panel_escapes_branch_ids() -> None:
    a, b, r = tiny_plan()
    evil_id = "<b>x</b>"
    a.loc[a["branch_id"] == "南山区-001", "branch_id"] = evil_id
    b.loc[b["branch_id"] == "南山区-001", "branch_id"] = evil_id
    html = render_html(plan_map(a, b, r), cdn=True)
    assert "<b>x</b>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in json.loads('"' + re.search(r'geoalloc\.controls\([^,]+, ("(?:[^"\\]|\\.)*")', html).group(1)[1:-1] + '"')


def test_privacy_blurs_fine_points_only() -> None:
    a, b, r = tiny_plan()
    m = plan_map(a, b, r, tiles="osm")  # WGS-84 overlays, to compare with the input
    p = payload_of(m)
    lon, lat = decode(p, p["members"]["x"], p["members"]["y"])
    exact = (a["geo_precision"] == "exact").to_numpy()
    # exact points moved (about the grid's half-cell at most), community centroids kept
    moved_m = np.hypot((lon - a["lon"]) * 103_000, (lat - a["lat"]) * 111_000)
    assert (moved_m[exact] > 1).all() and (moved_m[exact] < 160).all()
    assert (moved_m[~exact & (a["geo_precision"] == "community").to_numpy()] < 1.5).all()
    # branch sites are blurred too (a site is often a member's home)
    blon, _ = decode(p, p["branches"]["x"], p["branches"]["y"])
    assert np.abs(blon - b["lon"].to_numpy()).max() > 1e-4
    # snap_m=0 is the explicit opt-in to exact points
    p0 = payload_of(plan_map(a, b, r, snap_m=0, tiles="osm"))
    lon0, lat0 = decode(p0, p0["members"]["x"], p0["members"]["y"])
    assert np.allclose(lon0, a["lon"], rtol=0, atol=2e-5) and np.allclose(lat0, a["lat"], rtol=0, atol=2e-5)


def test_blur_points_is_a_grid() -> None:
    lon = np.array([114.00001, 114.00002, 114.5])
    lat = np.array([22.50001, 22.50003, 22.6])
    x, y = blur_points(lon, lat, pd.Series(["exact", "landmark", "exact"]), 200)
    assert x[0] == x[1] and y[0] == y[1]  # two nearby homes fall into one cell


def test_a_snapped_point_depends_on_itself_alone_and_cells_are_as_wide_everywhere() -> None:
    """A national file mixes Sanya and Harbin: with one longitude step from the file's median
    latitude the cells were narrower in the north, and a member's cell moved when other rows came
    or went (two such files narrow down a home)."""
    from pyproj import Geod

    home_lon, home_lat = np.array([114.0571]), np.array([22.5431])
    alone = blur_points(home_lon, home_lat, pd.Series(["exact"]), 200)
    crowd_lon = np.concatenate([home_lon, np.full(50, 126.6)])
    crowd_lat = np.concatenate([home_lat, np.full(50, 45.75)])
    crowded = blur_points(crowd_lon, crowd_lat, pd.Series(["exact"] * 51), 200)
    assert crowded[0][0] == alone[0][0] and crowded[1][0] == alone[1][0]
    geod = Geod(ellps="WGS84")
    for lat in (18.25, 22.54, 45.75, 53.0):  # Sanya, Shenzhen, Harbin, Mohe
        lons = 110.0 + np.arange(0, 0.05, 0.00005)
        x, y = blur_points(lons, np.full(len(lons), lat), pd.Series(["exact"] * len(lons)), 200)
        centres = np.unique(x)
        width = geod.inv(centres[1], y[0], centres[2], y[0])[2]
        assert abs(width - 200) < 2, (lat, width)


def test_amap_tiles_convert_every_overlay_to_gcj02() -> None:
    a, b, r = tiny_plan()
    wgs = payload_of(plan_map(a, b, r, tiles="osm"))
    gcj = payload_of(plan_map(a, b, r, tiles="amap"))
    assert wgs["datum"] == "wgs84" and gcj["datum"] == "gcj02"
    for part in ("branches", "members"):
        wlon, wlat = decode(wgs, wgs[part]["x"], wgs[part]["y"])
        glon, glat = decode(gcj, gcj[part]["x"], gcj[part]["y"])
        elon, elat = from_wgs84(wlon, wlat, "gcj02")
        assert np.allclose(glon, elon, atol=2e-5) and np.allclose(glat, elat, rtol=0, atol=2e-5)
        shift_m = np.hypot((glon - wlon) * 103_000, (glat - wlat) * 111_000)
        assert (shift_m > 200).all()  # the GCJ-02 offset in Shenzhen is several hundred metres
    for part in ("districts", "zones"):
        w = wgs[part][0]["rings"][0]
        g = gcj[part][0]["rings"][0]
        assert len(w) == len(g)
        elon, elat = from_wgs84(np.asarray(w[0::2]) / SCALE + wgs["origin"][0],
                                np.asarray(w[1::2]) / SCALE + wgs["origin"][1], "gcj02")
        assert np.allclose(np.asarray(g[0::2]) / SCALE + gcj["origin"][0], elon, rtol=0, atol=2e-5)
        assert np.allclose(np.asarray(g[1::2]) / SCALE + gcj["origin"][1], elat, rtol=0, atol=2e-5)
    wh, gh = wgs["hulls"][0][1], gcj["hulls"][0][1]
    assert abs((gh[0] - wh[0]) / SCALE) > 0.002  # hulls moved with the rest
    assert "autonavi" in render_html(plan_map(a, b, r, tiles="amap"))


def test_tile_choices() -> None:
    assert choose_tiles("osm").datum == "wgs84"
    assert choose_tiles("carto").tiles == "CartoDB positron"
    assert choose_tiles("amap").datum == "gcj02"
    assert choose_tiles("https://webrd01.is.autonavi.com/appmaptile?x={x}&y={y}&z={z}").datum == "gcj02"
    assert choose_tiles("https://tiles.example.org/{z}/{x}/{y}.png").datum == "wgs84"
    with pytest.raises(ValueError, match="unknown tiles"):
        choose_tiles("google")


def test_english_labels() -> None:
    a, b, r = tiny_plan()
    html = render_html(plan_map(a, b, r, lang="en"))
    assert "Districts (official)" in html and "Subdistricts (OpenStreetMap)" in html
    assert "区界（官方）" not in html
    with pytest.raises(ValueError, match="language"):
        plan_map(a, b, r, lang="fr")


def test_bad_input_names_row_and_field() -> None:
    a, b, r = tiny_plan()
    bad = a.copy()
    bad["lon"] = bad["lon"].astype(object)
    bad.loc[4, "lon"] = "east"
    with pytest.raises(ValueError, match=r"assignments.csv row 6: field 'lon'"):
        plan_map(bad, b, r)
    with pytest.raises(ValueError, match="missing column"):
        plan_map(a.drop(columns=["lat"]), b, r)
    orphan = a.copy()
    orphan.loc[0, "branch_id"] = "宝安区-404"
    with pytest.raises(ValueError, match=r"row 2: branch_id '宝安区-404' is not in branches.csv"):
        plan_map(orphan, b, r)
    dup = pd.concat([b, b.iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match="row 5: branch_id .* appears twice"):
        plan_map(a, dup, r)


def test_branch_fields_derived_when_missing() -> None:
    a, b, r = tiny_plan()
    m = plan_map(a, b[["branch_id", "lon", "lat"]], r)
    p = payload_of(m)["branches"]
    assert p["size"] == [2, 4, 6] and p["max"] == [200, 400, 600]


def test_secretary_is_a_name_shown_only_on_request() -> None:
    a, b, r = tiny_plan()
    b["secretary"] = ["李四", "王五", "赵六"]
    assert payload_of(plan_map(a, b, r))["branches"]["secretary"] is None
    assert payload_of(plan_map(a, b, r, show_names=True))["branches"]["secretary"] == ["李四", "王五", "赵六"]


def test_size_bins_cover_every_branch() -> None:
    sizes = [1, 3, 10, 11, 49, 50, 51, 80]
    bins = size_bins(sizes, 3, 50)
    assert sum(c for _, c, _ in bins) == len(sizes)
    assert bins[0] == ("< 3", 1, True) and bins[-1] == ("> 50", 2, True)


def test_save_map_writes_one_file(tmp_path: Path, small) -> None:
    a, b, r = small
    out = save_map(plan_map(a, b, r), tmp_path / "sub" / "map.html")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "geoalloc.plan(" in text
    assert len(list(out.parent.iterdir())) == 1


def test_maps_inline_every_asset_by_default(tmp_path: Path, small) -> None:
    a, b, r = small
    m = plan_map(a, b, r)
    path = tmp_path / "map.html"
    m.save(path)  # folium's save goes through save_map and honours cdn
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=[\"']https?:", text)
    assert not re.search(r"<link[^>]+href=[\"']https?:", text)
    assert "leaflet@1.9.4 dist/leaflet.js" in text and "L.Control.Measure" in text
    assert "url(images/" not in text  # CSS sprites inlined as data URIs
    assert "autonavi" in text  # a Chinese map's default basemap loads in mainland China
    assert "openstreetmap" in render_html(plan_map(a, b, r, lang="en")).lower()


def test_cdn_is_the_opt_in_for_a_smaller_file(small) -> None:
    a, b, r = small
    html = render_html(plan_map(a, b, r, cdn=True))
    srcs = re.findall(r"<script[^>]+src=[\"'](https?:[^\"']+)", html)
    assert srcs and not any("@main" in u for u in srcs)  # pinned releases, not a moving branch
    assert len(html) < len(render_html(plan_map(a, b, r))) - 100_000
    assert re.search(r"<script[^>]+src=", render_html(plan_map(a, b, r, offline=False)))  # old spelling of cdn
    assert not re.search(r"<script[^>]+src=", render_html(plan_map(a, b, r, offline=True)))


def test_missing_assets_are_a_clear_error_not_a_fetch(small, monkeypatch, tmp_path: Path) -> None:
    from geoalloc.maps.assets import MissingAssetError

    a, b, r = small
    monkeypatch.setenv("GEOALLOC_ASSET_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", "")  # npm must not even be looked for
    with pytest.raises(MissingAssetError, match="make install"):
        render_html(plan_map(a, b, r))
    assert not (tmp_path / "none").exists()


def test_derive_moves() -> None:
    old = pd.DataFrame({"member_id": ["a", "b", "c", "d"], "branch_id": ["X-1", "X-1", "X-2", ""]})
    new = pd.DataFrame({"member_id": ["a", "b", "c", "d"], "branch_id": ["X-1", "X-3", "X-3", "X-3"]})
    moves = derive_moves(old, new, ["X-1", "X-3"])
    got = {r.member_id: (r.from_branch, r.to_branch, r.reason) for r in moves.itertuples()}
    assert got == {"b": ("X-1", "X-3", "changed"), "c": ("X-2", "X-3", "closed_branch"),
                   "d": ("", "X-3", "changed")}


def test_compare_map_counts_moves_by_reason(tmp_path: Path) -> None:
    a, b, r = tiny_plan()
    a2 = a.copy()
    a2.loc[a2["member_id"].isin(["M006", "M007"]), "branch_id"] = "南山区-001"  # over -> under branch
    b2 = b.copy()
    b2["size"] = [4, 4, 4]
    moves = pd.DataFrame({"member_id": ["M006", "M007"], "from_branch": ["福田区-001"] * 2,
                          "to_branch": ["南山区-001"] * 2, "reason": ["oversized", "undersized"]})
    cm = compare_map((a, b, r), (a2, b2, r, moves), tiles="amap")
    assert cm.moves_by_reason == {"oversized": 1, "undersized": 1}
    assert [v.counts["moved"] for v in cm.views] == [2, 2]
    assert all(v.payload["datum"] == "gcj02" for v in cm.views)
    html = render_html(cm)
    assert ".sync(" in html and "支部超编" in html and "调整前" in html and "调整后" in html
    # without moves.csv the moves are derived from the plans
    derived = compare_map((a, b, r), (a2, b2, r))
    assert derived.moves_by_reason == {"changed": 2}


def test_report_figures_may_be_missing_or_nan() -> None:
    a, b, r = tiny_plan()
    html = render_html(plan_map(a, b, {"gap": float("nan"), "objective_m": None}), cdn=True)
    assert "nan%" not in html and "NaN" not in html
    m = plan_map(a, b, {})
    assert m.summary["n_members"] == len(a) and m.summary["n_branches"] == 3
    assert payload_of(m)["branches"]["state"] == [0, 1, 1]  # sizes 2, 4, 6 against the policy default 3..50


def test_names_with_duplicate_ids_use_the_first() -> None:
    a, b, r = tiny_plan()
    names = pd.Series(["甲", "乙"], index=["M000", "M000"])
    p = payload_of(plan_map(a, b, r, names=names, show_names=True))
    assert p["members"]["name"][0] == "甲" and p["members"]["name"][1] == ""


def test_empty_plan_still_draws_the_city() -> None:
    empty_a = pd.DataFrame(columns=["member_id", "branch_id", "lon", "lat"])
    empty_b = pd.DataFrame(columns=["branch_id", "lon", "lat"])
    m = plan_map(empty_a, empty_b, {})
    assert m.counts["branches"] == m.counts["members"] == 0 and m.counts["districts"] == 10
    assert "geoalloc.plan(" in render_html(m)


def test_map_command_self_contained_by_default_cdn_on_request(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from geoalloc.cli import app
    from geoalloc.outputs import write_plan_dir
    from geoalloc.pipeline import AllocationResult

    a, b, r = tiny_plan()
    write_plan_dir(AllocationResult(a, b, r), tmp_path / "plan", formats="csv")
    runner = CliRunner()
    res = runner.invoke(app, ["map", str(tmp_path / "plan"), "-o", str(tmp_path / "zh.html")])
    assert res.exit_code == 0, res.output
    zh = (tmp_path / "zh.html").read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", zh) and "autonavi" in zh
    res = runner.invoke(app, ["map", str(tmp_path / "plan"), "-o", str(tmp_path / "en.html"), "--lang", "en", "--cdn"])
    assert res.exit_code == 0, res.output
    en = (tmp_path / "en.html").read_text(encoding="utf-8")
    assert re.search(r"<script[^>]+src=[\"']https://", en) and "openstreetmap" in en.lower() and "autonavi" not in en
    assert runner.invoke(app, ["map", str(tmp_path / "plan"), "-o", str(tmp_path / "x.html"), "--offline"]).exit_code == 0
