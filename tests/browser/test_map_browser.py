"""Real-browser tests of the maps: headless Chromium opens the default (self-contained) HTML from a file.

Checks what only a browser can: the features are really drawn, no JavaScript error occurs
(also when the off-by-default layers are switched on), a hostile name stays text, the
branch search works, and the page needs no network: every request but file:// is aborted, so
the basemap tiles fail (as on a network that blocks them) and the overlays must draw all the same.
Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from geoalloc.maps import compare_map, plan_map, save_map
from geoalloc.maps.styles import LABELS
from geoalloc.maps.synthetic import synthetic_plan

EVIL = "<img src=x onerror=alert(1)>"
EVIL2 = '"><svg onload="window.__pwned=1">'
ZH = LABELS["zh"]


@pytest.fixture(scope="module")
def plan() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    return synthetic_plan(800, seed=5)


def _drawn(page: Any, index: int = 0) -> dict[str, int]:
    return page.evaluate(f"Object.values(geoalloc.maps)[{index}].drawn")


def _no_network_assets(blocked: list[str]) -> list[str]:
    return [u for u in blocked if u.split("?")[0].endswith((".js", ".css"))]


def test_plan_map_in_chromium(plan, open_file, artifacts: Path, tmp_path: Path) -> None:
    a, b, r = plan
    names = pd.Series({mid: f"成员{i}" for i, mid in enumerate(a["member_id"])})
    names.iloc[0] = EVIL
    names.iloc[1] = EVIL2
    m = plan_map(a, b, r, names=names, show_names=True, title="深圳市支部分配图（测试）")
    path = save_map(m, tmp_path / "plan.html")
    loaded = open_file(path)
    page = loaded.page

    drawn = _drawn(page)
    assert drawn["branches"] == m.counts["branches"] == len(b)
    assert drawn["members"] == m.counts["members_assigned"]
    assert drawn["unassigned"] == m.counts["members_unassigned"] > 0
    assert drawn["districts"] == 10 and drawn["hulls"] == len(b)
    assert drawn["lines"] == drawn["heat"] == drawn["cluster"] == drawn["zones"] == 0  # off by default
    page.wait_for_timeout(300)
    page.screenshot(path=str(artifacts / "map_plan.png"))

    # the hostile names: open both members' popups the way a click does
    for mid in (a["member_id"].iloc[0], a["member_id"].iloc[1]):
        text = page.evaluate(
            """(mid) => {
                const d = Object.values(geoalloc.maps)[0];
                const i = d.members.id.indexOf(mid);
                let target = null;
                d.map.eachLayer(l => { if (l instanceof L.CircleMarker && l.options.gi === i) target = l; });
                d.map.closePopup();
                target.fire('click', {latlng: target.getLatLng()}, true);
                const open = document.querySelectorAll('.leaflet-popup-content');
                return open[open.length - 1].textContent;
            }""",
            mid,
        )
        assert names[mid] in text  # shown, as text
    page.wait_for_timeout(300)
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"], svg[onload]').length") == 0
    assert page.evaluate("window.__pwned") is None
    assert loaded.dialogs == []
    page.screenshot(path=str(artifacts / "map_popup_escaped.png"))

    # branch search box
    target = b["branch_id"].iloc[5]
    page.fill(".ga-search input", target)
    page.press(".ga-search input", "Enter")
    page.wait_for_function(
        "(t) => [...document.querySelectorAll('.leaflet-popup-content')].some(e => e.textContent.includes(t))",
        arg=target, timeout=5000,
    )

    # switch on every layer that is off by default, through the layer control
    for key in ("lines", "heat", "cluster", "zones"):
        page.locator(".leaflet-control-layers label", has_text=ZH[key]).click()
    page.wait_for_timeout(500)
    drawn = _drawn(page)
    assert drawn["lines"] == m.counts["members_assigned"]
    assert drawn["heat"] == m.counts["members"]
    assert drawn["cluster"] == m.counts["members_assigned"]
    assert drawn["zones"] == 74
    page.screenshot(path=str(artifacts / "map_all_layers.png"))

    assert loaded.js_errors() == []
    assert page.evaluate("geoalloc.errors") == []
    assert _no_network_assets(loaded.blocked) == []
    # the Chinese map's default basemap (AMap) was asked for and failed: the overlays above drew without it
    assert any("autonavi.com" in u for u in loaded.blocked)


def test_compare_map_in_chromium(plan, open_file, artifacts: Path, tmp_path: Path) -> None:
    a, b, r = plan
    a2 = a.copy()
    over = b.loc[b["size"] > r["max_size"], "branch_id"]
    donors = a2.index[a2["branch_id"].isin(over)][:12]
    assert len(donors) == 12
    receivers = list(b.loc[b["size"] < 30, "branch_id"].iloc[:3])
    a2.loc[donors, "branch_id"] = [receivers[i % len(receivers)] for i in range(len(donors))]
    moves = pd.DataFrame({"member_id": a.loc[donors, "member_id"], "from_branch": a.loc[donors, "branch_id"],
                          "to_branch": a2.loc[donors, "branch_id"],
                          "reason": ["oversized"] * (len(donors) - 2) + ["relocated"] * 2})
    b2 = b.drop(columns=["size", "n_full", "mean_distance_m", "max_distance_m"])  # derived from assignments
    cm = compare_map((a, b, r), (a2, b2, r, moves))
    path = save_map(cm, tmp_path / "compare.html")
    loaded = open_file(path)
    page = loaded.page
    assert page.evaluate("Object.keys(geoalloc.maps).length") == 2
    for i in (0, 1):
        drawn = _drawn(page, i)
        assert drawn["branches"] == len(b)
        assert drawn["moved"] == len(donors) > 0
    panels = page.locator(".ga-panel summary")
    assert "12" in panels.nth(1).inner_text()  # the folded heading carries the move count
    panels.nth(1).click()  # unfold the "after" panel: moves by reason
    panel = page.locator(".ga-panel").nth(1).inner_text()
    assert ZH["reason_oversized"] in panel and ZH["reason_relocated"] in panel
    page.wait_for_timeout(300)
    page.screenshot(path=str(artifacts / "map_compare.png"))
    assert loaded.js_errors() == []
    assert _no_network_assets(loaded.blocked) == []


def test_allocate_writes_a_map_that_draws_with_no_network(open_file, tmp_path: Path) -> None:
    """What `geoalloc allocate` (and so `make demo`) writes, opened with every request but the file aborted."""
    import numpy as np
    from typer.testing import CliRunner

    from geoalloc.cli import app

    rng = np.random.default_rng(8)
    pd.DataFrame({"member_id": [f"M{i:03d}" for i in range(120)], "lon": 113.94 + rng.normal(0, 0.01, 120),
                  "lat": 22.54 + rng.normal(0, 0.006, 120)}).to_csv(tmp_path / "roster.csv", index=False)
    res = CliRunner().invoke(app, ["allocate", str(tmp_path / "roster.csv"), "-o", str(tmp_path / "out"),
                                   "--time-limit", "1"])
    assert res.exit_code == 0, res.output
    n_branches = len(pd.read_csv(tmp_path / "out" / "branches.csv"))
    loaded = open_file(tmp_path / "out" / "map.html")
    drawn = _drawn(loaded.page)
    assert drawn["branches"] == n_branches > 0 and drawn["members"] == 120 and drawn["districts"] == 10
    assert loaded.js_errors() == [] and _no_network_assets(loaded.blocked) == []
    assert any("autonavi.com" in u for u in loaded.blocked)  # the tiles failed; the overlays drew
