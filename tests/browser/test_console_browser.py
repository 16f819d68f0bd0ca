"""The console in headless Chromium against a live server: every flow a planner uses, a hostile
roster value rendered inert, Chinese and English, and no host but the server itself (map tiles
are aborted, as on a network that blocks them). A screenshot of each page goes to tests/artifacts/."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
from _api_support import LiveServer, Service, seeded_service

EVIL = '<img src=x onerror="window.__pwned=1">'
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, LiveServer]]:
    with seeded_service("sqlite", tmp_path_factory.mktemp("console-browser")) as svc, LiveServer(svc.app) as server:
        yield svc, server


@pytest.fixture
def page(browser: Any, live: tuple[Service, LiveServer]) -> Iterator[Any]:
    _svc, server = live
    p = browser.new_page()
    p.errors, p.blocked, p.console_errors = [], [], []  # type: ignore[attr-defined]
    p.on("pageerror", lambda e: p.errors.append(str(e)))
    p.on("console", lambda m: p.console_errors.append(m.text) if m.type == "error" else None)

    def route(r: Any) -> None:
        if r.request.url.startswith(server.base):
            r.continue_()
        else:
            p.blocked.append(r.request.url)
            r.abort()

    p.route("**/*", route)
    yield p
    p.close()


def _wait(page: Any, expression: str, timeout: float = 20.0) -> None:
    """Poll ``expression`` with page.evaluate (which DevTools runs outside the page's CSP; playwright's
    own wait_for_function builds its predicate with eval, which the console's CSP rightly refuses)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"() => {{ try {{ return !!({expression}); }} catch (e) {{ return false; }} }}"):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        page.wait_for_timeout(50)


def _drawn(page: Any) -> dict[str, int]:
    return page.evaluate("geoalloc.maps.console.drawn")


def test_console_flows_in_chromium(page: Any, live: tuple[Service, LiveServer], artifacts: Path) -> None:
    svc, server = live
    page.goto(server.base + "/", wait_until="load")
    assert page.locator("#page-signin").is_visible() and page.locator("h1").inner_text() == "支部分配"
    page.screenshot(path=str(artifacts / "console_signin.png"))

    # a wrong key is refused in words, the right one opens the newest plan: map and report in words
    page.fill("#key", "gak_wrong_key")
    page.click("#signin-form button[type=submit]")
    _wait(page, "document.querySelector('#status').textContent.includes('密钥无效')")
    page.fill("#key", svc.keys["admin"])
    page.click("#signin-form button[type=submit]")
    _wait(page, "window.geoalloc && geoalloc.maps.console && geoalloc.maps.console.drawn.branches > 0")
    page.wait_for_selector("#summary h3")
    drawn = _drawn(page)
    n_branches = len(svc.client.get(f"/plans/{svc.plan_id}/branches", headers=svc.h("admin")).json())
    assert drawn["branches"] == n_branches and drawn["members"] > 0 and drawn["districts"] == 10
    summary = page.locator("#summary").inner_text()
    assert "做了什么" in summary and "方案质量" in summary and "需要关注" in summary and "下界" in summary
    page.wait_for_timeout(200)
    page.screenshot(path=str(artifacts / "console_plan.png"))
    if os.environ.get("GEOALLOC_UPDATE_DOCS"):  # README's picture, refreshed on request only
        page.screenshot(path=str(DOCS / "console.jpg"), type="jpeg", quality=60)

    # download plan.xlsx from the stored plan
    with page.expect_download() as dl:
        page.click("#dl-xlsx")
    wb = openpyxl.load_workbook(io.BytesIO(Path(dl.value.path()).read_bytes()))
    assert wb.sheetnames[:3] == ["汇总", "支部", "成员"] and wb["支部"].max_row == n_branches + 1
    with page.expect_download() as dl:
        page.click("#dl-gpkg")
    assert Path(dl.value.path()).read_bytes()[:15] == b"SQLite format 3"

    # roster upload: the validation report names row, field and reason; hostile text stays text
    roster = pd.DataFrame([{"member_id": EVIL, "address": ""},
                           {"member_id": "NEW001", "address": "深圳市南山区粤海街道科技园社区", "name": EVIL}])
    page.click("nav button[data-page=roster]")
    page.set_input_files("#roster-file", files=[{"name": "roster.csv", "mimeType": "text/csv",
                                                  "buffer": roster.to_csv(index=False).encode("utf-8")}])
    page.click("#roster-form button[type=submit]")
    page.wait_for_selector("#rejects tbody tr")
    cells = page.locator("#rejects tbody tr").first.locator("td").all_inner_texts()
    assert cells[0] == "2" and cells[1] == EVIL and cells[2] and cells[3]
    assert "有效 1" in page.locator("#roster-summary").inner_text()
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert page.evaluate("window.__pwned") is None
    page.screenshot(path=str(artifacts / "console_roster.png"))

    # a new plan with limits, at service centres, followed by its progress bar to the end
    from geoalloc.districts import subdistricts

    sd = subdistricts()
    sites = pd.DataFrame({"site_id": [f"S{i:02d}" for i in range(len(sd))], "name": sd["name_zh"] + "党群服务中心",
                          "lon": sd["seed_lon"], "lat": sd["seed_lat"]})
    page.click("nav button[data-page=run]")
    bad = sites.head(3).assign(lon=["113.9", "abc", "114.0"])
    page.set_input_files("#run-form input[name=sites]", files=[{
        "name": "sites.csv", "mimeType": "text/csv", "buffer": bad.to_csv(index=False).encode("utf-8")}])
    page.click("#run-form button[type=submit]")
    _wait(page, "document.querySelector('#status').className === 'error'")
    assert "row 3" in page.locator("#status").inner_text() and "lon" in page.locator("#status").inner_text()
    page.set_input_files("#run-form input[name=sites]", files=[{
        "name": "sites.csv", "mimeType": "text/csv", "buffer": sites.to_csv(index=False).encode("utf-8")}])
    page.fill("#run-form input[name=max_size]", "25")
    page.fill("#run-form input[name=time_limit]", "1")
    page.click("#run-form button[type=submit]")
    _wait(page, "document.querySelector('#job-progress').value === 1", timeout=60)
    _wait(page, f"geoallocConsole.plan > {svc.plan_id} && geoalloc.maps.console.drawn.branches > 0",
                           timeout=30)
    new_id = page.evaluate("geoallocConsole.plan")
    branches = svc.client.get(f"/plans/{new_id}/branches", headers=svc.h("admin")).json()
    assert branches and {b["site_id"] for b in branches} <= set(sites["site_id"])  # met only at the centres
    page.click("nav button[data-page=run]")
    page.screenshot(path=str(artifacts / "console_run.png"))

    # compare the seeded plan with the new one
    page.click("nav button[data-page=compare]")
    _wait(page, "document.querySelectorAll('#compare-b option').length >= 2")
    page.select_option("#compare-a", str(svc.plan_id))
    page.select_option("#compare-b", str(new_id))
    page.click("#compare-form button[type=submit]")
    page.wait_for_selector("#compare-result p")
    diff = svc.client.get(f"/plans/{svc.plan_id}/diff/{new_id}", headers=svc.h("admin")).json()
    assert f"调整 {diff['moved']} 人" in page.locator("#compare-result").inner_text()
    page.screenshot(path=str(artifacts / "console_compare.png"))

    # relocate a member of the newest plan
    page.click("nav button[data-page=relocate]")
    page.fill("#relocate-form input[name=member_id]", svc.member_ns)
    page.fill("#relocate-form input[name=address]", "深圳市南山区蛇口街道渔一社区")
    page.click("#relocate-form button[type=submit]")
    page.wait_for_selector("#relocate-result dd")
    result = page.locator("#relocate-result").inner_text()
    assert svc.member_ns in result and "新支部" in result
    page.screenshot(path=str(artifacts / "console_relocate.png"))

    # English
    page.click("#lang")
    assert page.locator("nav button[data-page=plan]").inner_text() == "Plan & map"
    page.click("nav button[data-page=plan]")
    _wait(page, "document.querySelector('#summary h3') && "
                           "document.querySelector('#summary h3').textContent === 'What was done'")
    page.screenshot(path=str(artifacts / "console_plan_en.png"))

    assert page.errors == []
    assert [m for m in page.console_errors if "Failed to load resource" not in m] == []
    # nothing but the server was asked for, except the basemap tiles (aborted: the overlays drew anyway)
    assert page.blocked and all("autonavi.com" in u or "openstreetmap.org" in u for u in page.blocked)
