"""Refresh the bundled gazetteer in data/districts/ from the team's shared data and jionlp.

    .venv/bin/python scripts/update_gazetteer.py [--shared DIR] [--out data/districts]

What it writes (every file is UTF-8, WGS-84; see data/districts/README.md for sources and licences):

* ``subdistricts_osm_wgs84.geojson``, ``communities_osm_wgs84.geojson``, ``gazetteer.csv``: copied unchanged
  from ``shared/data/shenzhen/gazetteer/`` (OpenStreetMap-derived: ODbL 1.0, with government lists);
* ``roads.csv``: ``roads_from_park_addresses.csv`` from the same folder, unchanged (a name lexicon, no geometry);
* ``china_divisions.csv``: every province, prefecture-level city and county-level unit of China, from the
  ``china_location.txt`` that ships in the installed ``jionlp`` package (Apache-2.0), so the geocoder can
  tell an address in another city from a Shenzhen one without a network or a runtime dependency.

``market_areas.csv`` (the 板块 names of Shenzhen listings) is written by hand and not touched here.
The script is deterministic: two runs on the same inputs give byte-identical files.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COPIED = {
    "subdistricts_osm_wgs84.geojson": "subdistricts_osm_wgs84.geojson",
    "communities_osm_wgs84.geojson": "communities_osm_wgs84.geojson",
    "gazetteer.csv": "gazetteer.csv",
    "roads_from_park_addresses.csv": "roads.csv",
}


def _jionlp_locations() -> Path:
    """The location table inside the installed jionlp (imported by path: importing jionlp prints a banner)."""
    import importlib.util

    spec = importlib.util.find_spec("jionlp")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("jionlp is not installed: .venv/bin/pip install jionlp (needed only to rebuild china_divisions.csv)")
    path = Path(next(iter(spec.submodule_search_locations))) / "dictionary" / "china_location.txt"
    if not path.exists():
        sys.exit(f"{path} not found in the installed jionlp")
    return path


def china_divisions(path: Path) -> list[dict[str, str]]:
    """Province / city / county rows from jionlp's tab-indented tree (towns and villages are left out)."""
    rows: list[dict[str, str]] = []
    province = city = ("", "", "")
    for line in path.read_text(encoding="utf-8").splitlines():
        depth = len(line) - len(line.lstrip("\t"))
        parts = line.strip().split("\t")
        if depth > 2 or len(parts) < 2:
            continue
        name, code = parts[0], parts[1]
        short = parts[2] if len(parts) > 2 else name
        if depth == 0:
            province = (name, code, short)
            level = "province"
        elif depth == 1:
            city = (name, code, short)
            level = "city"
        else:
            level = "county"
        rows.append({
            "level": level, "name_zh": name, "short_zh": short, "adcode": code,
            "province_zh": province[0], "city_zh": city[0] if depth >= 1 else "",
        })
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared",
                    help="the team's shared folder (default ../shared beside the checkout)")
    ap.add_argument("--out", type=Path, default=REPO / "data" / "districts")
    args = ap.parse_args(argv)
    src = args.shared / "data" / "shenzhen" / "gazetteer"
    for name, target in COPIED.items():
        if not (src / name).exists():
            sys.exit(f"{src / name} not found (pass --shared)")
        shutil.copyfile(src / name, args.out / target)
        print(f"copied {src / name} -> {args.out / target}")
    rows = china_divisions(_jionlp_locations())
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["level", "name_zh", "short_zh", "adcode", "province_zh", "city_zh"],
                       lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    (args.out / "china_divisions.csv").write_text(buf.getvalue(), encoding="utf-8")
    print(f"wrote {args.out / 'china_divisions.csv'} ({len(rows)} divisions from jionlp)")


if __name__ == "__main__":
    main()
