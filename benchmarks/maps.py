"""How big and how fast is the 7,000-member map? (one self-contained HTML file <= 2 MB, opens < 3 s)

Run from the repo root:  .venv/bin/python -m benchmarks.maps [--members 7000] [--runs 3]
                         [--plan-dir DIR]  (a real plan directory instead of the synthetic plan)

What it measures, per variant (the default file with everything inlined, --cdn, and the
before/after compare page):
- build_s:  plan_map/compare_map + render in Python
- size_MB:  the single HTML file
- load_s:   headless Chromium (/usr/bin/chromium, fresh profile), from navigation start to
            the first frame painted after every default layer is drawn (load event + 2
            animation frames); median of --runs cold page loads. Network is blocked except
            file://, so tiles fail (the overlays must draw without them); the --cdn variant
            cannot draw without its CDN scripts and is reported as size only.
- toggle_s: switching on the three lazy layers (lines, heat map, clusters) at once.
Timings on a shared 2-core machine are noisy; compare runs made side by side.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from geoalloc.maps import compare_map, plan_map, save_map
from geoalloc.maps.synthetic import synthetic_plan

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

READY_JS = """() => new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(() =>
    resolve({ms: performance.now(), errors: geoalloc.errors.length,
             drawn: Object.values(geoalloc.maps).map(d => d.drawn)}))))"""
TOGGLE_JS = """() => { const t0 = performance.now(); const d = Object.values(geoalloc.maps)[0];
    let n = 0;
    document.querySelectorAll('.leaflet-control-layers-overlays input').forEach(inp => {
        if (!inp.checked && n < 4) { inp.click(); n++; } });
    return new Promise(r => requestAnimationFrame(() => r(performance.now() - t0))); }"""


def _load_times(path: Path, runs: int, toggle: bool) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    loads, toggles, drawn, errors = [], [], None, []
    profile = tempfile.mkdtemp(prefix="geoalloc-bench-")
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=FLAGS, headless=True,
                                                       viewport={"width": 1400, "height": 900})
            try:
                for _ in range(runs):
                    page = ctx.new_page()
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
                    page.goto(path.resolve().as_uri(), wait_until="load", timeout=60_000)
                    ready = page.evaluate(READY_JS)
                    loads.append(ready["ms"] / 1000.0)
                    drawn = ready["drawn"]
                    if toggle:
                        toggles.append(page.evaluate(TOGGLE_JS) / 1000.0)
                    page.close()
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return {
        "load_s": statistics.median(loads),
        "load_max_s": max(loads),
        "toggle_s": statistics.median(toggles) if toggles else None,
        "drawn": drawn,
        "js_errors": len(errors),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=7000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--plan-dir", type=Path, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="also copy the HTML files here")
    args = ap.parse_args(argv)

    if args.plan_dir:
        from geoalloc.pipeline import read_plan_dir

        a, b, r, _ = read_plan_dir(args.plan_dir)
        source = str(args.plan_dir)
    else:
        a, b, r = synthetic_plan(args.members, seed=2026)
        source = "synthetic plan, seed 2026"
    # a "rebalanced" copy for the compare page: 2% of members moved to a neighbouring branch
    a2 = a.copy()
    assigned = a2.index[a2["branch_id"].astype(str).str.len() > 0]
    movers = assigned[:: max(1, len(assigned) // max(1, len(assigned) // 50))]
    ids = list(b["branch_id"])
    a2.loc[movers, "branch_id"] = [ids[(ids.index(x) + 1) % len(ids)] for x in a2.loc[movers, "branch_id"]]
    b2 = b[["branch_id", "lon", "lat", "district_zh"]]

    print(f"geoalloc map benchmark: {len(a)} members, {len(b)} branches ({source}); "
          f"Chromium {CHROMIUM}, {args.runs} cold loads each, median")
    out_dir = Path(tempfile.mkdtemp(prefix="geoalloc-maps-"))
    variants = [
        ("plan (default)", lambda: plan_map(a, b, r), True),
        ("plan --cdn", lambda: plan_map(a, b, r, cdn=True), False),
        ("compare (default)", lambda: compare_map((a, b, r), (a2, b2, r)), True),
    ]
    print(f"{'variant':<20} {'build_s':>8} {'size_MB':>8} {'load_s':>7} {'max_s':>6} {'toggle_s':>8} "
          f"{'branches':>8} {'members':>8} {'js_err':>6}")
    try:
        for name, build, measure in variants:
            t0 = time.perf_counter()
            m = build()
            path = save_map(m, out_dir / (name.split()[0] + ("-cdn" if "cdn" in name else "") + ".html"))
            build_s = time.perf_counter() - t0
            size_mb = path.stat().st_size / 1e6
            if measure:
                res = _load_times(path, args.runs, toggle=name.startswith("plan"))
                drawn = res["drawn"][0]
                toggle = f"{res['toggle_s']:.2f}" if res["toggle_s"] is not None else "–"
                print(f"{name:<20} {build_s:8.2f} {size_mb:8.2f} {res['load_s']:7.2f} {res['load_max_s']:6.2f} "
                      f"{toggle:>8} {drawn['branches']:8d} {drawn['members'] + drawn['unassigned']:8d} "
                      f"{res['js_errors']:6d}")
            else:
                print(f"{name:<20} {build_s:8.2f} {size_mb:8.2f} {'–':>7} {'–':>6} {'–':>8} {'–':>8} {'–':>8} {'–':>6}")
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, args.keep / path.name)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    print("targets: size_MB <= 2 (default file, 7,000 members), load_s < 3")


if __name__ == "__main__":
    main()
