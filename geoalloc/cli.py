"""The ``geoalloc`` command line (typer + rich).

The commands and their outputs are a contract that outside scripts rely on (see
ARCHITECTURE.md): ``geocode``, ``allocate``, ``rebalance``, ``map``, ``demo``, ``serve``.
Exit codes: 0 success, 1 the rules cannot be met or the job failed, 2 bad usage or an
unreadable input file.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from geoalloc.rules import Policy

app = typer.Typer(
    name="geoalloc",
    help="Form member branches (支部) near where members live: geocode rosters, allocate, rebalance, map, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# soft_wrap: messages are never broken at the terminal's width, so a path or a member id in an
# error stays whole (and greppable) in an 80-column terminal; tables still fit the width
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

EXIT_FAILED = 1
EXIT_USAGE = 2
UNITS_DIR = ".units"  # finished districts of an allocation, beside its plan (see geoalloc.engines)


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print an error in red and return the Exit to raise."""
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields a callback that advances it by n."""
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance


#: Allocations between young collections during a batch command (CPython's default is 700).
BATCH_GC_THRESHOLD = (50_000, 20, 100)


@contextmanager
def batch_gc() -> Iterator[Callable[[], None]]:
    """Fewer cyclic collections while a command builds a hundred thousand rows' objects; yields
    ``settle()``, which moves what exists so far (modules, the lexicon) out of the collector's sight.

    Why: a geocoded roster's rows are live until the file is written, so collecting them finds
    nothing, and at the default thresholds the collector walked them again and again (see
    benchmarks/README.md). Restored afterwards, so a caller in the same process is unaffected.
    """
    before = gc.get_threshold()
    gc.set_threshold(*BATCH_GC_THRESHOLD)
    try:
        yield gc.freeze
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def _load_roster(path: Path, rejects_path: Path | None) -> Any:
    from geoalloc.roster import RosterError, read_roster

    try:
        result = read_roster(path)
    except RosterError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc
    summary = result.summary
    console.print(f"roster {path}: {summary['valid']} valid rows, {summary['rejected']} rejected")
    if len(result.rejects):
        for err in result.errors[:10]:
            console.print(f"  [yellow]rejected[/] {err}")
        if len(result.errors) > 10:
            console.print(f"  ... and {len(result.errors) - 10} more problems")
        if rejects_path is not None:
            result.write_rejects(rejects_path)
            console.print(f"  rejected rows with reasons written to {rejects_path}")
    return result


def _provider(name: str | None, cache: Path | None) -> Any:
    """An online geocoding provider (off unless asked for); keys and hosts come from the environment."""
    if name is None:
        return None
    from geoalloc.geocode import AMapProvider, NominatimProvider, ProviderCache, ProviderError

    kinds: dict[str, Any] = {"amap": AMapProvider, "nominatim": NominatimProvider}
    if name not in kinds:
        raise fail(f"--provider must be amap or nominatim, not {name!r}", EXIT_USAGE)
    try:
        return kinds[name](cache=ProviderCache(cache))
    except ProviderError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc


def _place(members: Any, landmarks: Path | None, provider: Any = None, settle: Callable[[], None] | None = None,
           workers: int = 1) -> Any:
    """The roster placed (``workers`` processes: forked, so only where no engine has started threads that a
    fork would copy mid-call, e.g. Ray's: the geocode command)."""
    from geoalloc.geocode import OfflineGeocoder, load_landmarks
    from geoalloc.geocode.frame import place_members  # not via pipeline: the solver is not needed here

    try:
        geocoder = OfflineGeocoder(load_landmarks(landmarks) if landmarks else None)
    except (OSError, ValueError) as exc:
        raise fail(f"landmark table {landmarks}: {exc}", EXIT_USAGE) from exc
    if settle is not None:
        settle()
    with progress_bar("geocoding", len(members)) as advance:
        return place_members(members, geocoder=geocoder, progress=advance, provider=provider, workers=workers)


def _processes(workers: int | None) -> int:
    """Processes a batch step may fork (``--workers``; default every CPU)."""
    return workers or os.cpu_count() or 1


def _summary_table(title: str, counts: dict[str, Any]) -> Table:
    table = Table(title=title)
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in counts.items():
        table.add_row(str(key), str(value))
    return table


@app.command()
def geocode(
    roster: Annotated[Path, typer.Argument(help="Roster CSV or .xlsx (member_id, address and/or lon/lat, ...).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV to write: the roster plus lon, lat (WGS-84), geo_precision, geo_district_zh, geo_subdistrict_zh, geo_status, geo_reason.")],
    landmarks: Annotated[Path | None, typer.Option(help="Optional landmark table (name, lon, lat, district), e.g. metro stations.")] = None,
    rejects: Annotated[Path | None, typer.Option(help="Where to write rejected rows (default: OUTPUT with .rejects.csv).")] = None,
    provider: Annotated[str | None, typer.Option(help="Online provider to try before the offline gazetteer: amap (key in GEOALLOC_AMAP_KEY) or nominatim (your server in GEOALLOC_NOMINATIM_DOMAIN). Off by default.")] = None,
    cache: Annotated[Path | None, typer.Option(help="SQLite file caching online answers, so an address is never looked up twice.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", envvar="GEOALLOC_WORKERS", min=1, help="Processes geocoding at once (default: every CPU; a small roster uses one). The result does not depend on it.")] = None,
) -> None:
    """Place every member's residence (offline by default); rows that cannot be placed are kept and flagged."""
    from geoalloc.geocode import summarise

    online = _provider(provider, cache)
    with batch_gc() as settle:
        result = _load_roster(roster, rejects or output.with_suffix(".rejects.csv"))
        placed = _place(result.members, landmarks, online, settle, _processes(workers))
        from geoalloc.outputs import write_csv

        output.parent.mkdir(parents=True, exist_ok=True)
        write_csv(placed, output)
    counts = summarise(placed)
    for title, values in counts.items():
        if isinstance(values, dict):
            console.print(_summary_table(title, values))
    out.print(f"geocoded {len(placed)} rows -> {output}")


EngineOption = Annotated[str, typer.Option("--engine", envvar="GEOALLOC_ENGINE", help="Where the districts are solved: local (a process pool on this machine) or ray (one task per district on the Ray cluster at RAY_ADDRESS, else a local Ray instance; pip install 'geoalloc[cluster]'). The plan is the same with either.")]
WorkersOption = Annotated[int | None, typer.Option("--workers", envvar="GEOALLOC_WORKERS", min=1, help="Districts solved at once (default: every CPU; for ray, the cluster's CPUs). The plan does not depend on it.")]

MapCityOption = Annotated[list[str] | None, typer.Option("--map-city", help="For a roster of several cities (city_zh): draw map-CITY.html for this city (repeat for more).")]


def _engine(name: str, workers: int | None) -> Any:
    """The engine for --engine/--workers (None: the library's default, the local pool sized to
    the roster), or a usage error naming what is wrong."""
    from geoalloc.engines import EngineError, get_engine

    if name.strip().lower() == "local" and workers is None:
        return None
    try:
        return get_engine(name, workers)
    except EngineError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc


def _sites(path: Path | None) -> list[dict[str, Any]] | None:
    """The service centres of ``--sites`` (every bad row reported by row and field)."""
    if path is None:
        return None
    from geoalloc.sites import SiteError, read_sites

    try:
        sites = read_sites(path)
    except SiteError as exc:
        raise fail(f"site table {path}: {exc}", EXIT_USAGE) from exc
    console.print(f"sites {path}: {len(sites)} service centres; branches meet only there")
    return sites


def _policy(min_size: int, max_size: int, min_full: int, branches: str | None, target_size: float | None,
            cross_district: bool, time_limit: float, seed: int, themes: str | None = None,
            sites: list[dict[str, Any]] | None = None, **rules: Any) -> Policy:
    count: int | str | None = branches
    if branches is not None and branches.strip().isdigit():
        count = int(branches)
    try:
        return Policy(min_size=min_size, max_size=max_size, min_full=min_full, n_branches=count,  # type: ignore[arg-type]
                      target_size=target_size, cross_district=cross_district, time_limit=time_limit, seed=seed,
                      themes=themes or None, sites=sites or None, **rules)
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc


# The options allocate and rebalance share; their defaults are the policy's own (geoalloc.rules).
_D = Policy()
MinSize = Annotated[int, typer.Option(help="Fewest members in a branch (weights counted).")]
MaxSize = Annotated[int, typer.Option(help="Most members in a branch (weights counted).")]
MinFull = Annotated[int, typer.Option(help="Fewest full (not probationary) members in a branch.")]
CrossDistrict = Annotated[bool, typer.Option(help="Let branches cross district lines (off: each district committee owns its branches).")]
TimeLimit = Annotated[float, typer.Option(help="Seconds the optimiser may use on a district of 3,500 members (and at most on any district; smaller ones get less, in proportion); the best plan found is returned. A roster's run takes about the sum over its districts divided by the workers: about this limit for the Shenzhen sample on two cores.")]
Seed = Annotated[int, typer.Option(help="Random seed; the same seed gives the same plan.")]
Themes = Annotated[str | None, typer.Option(help="Themed branches: comma-separated themes (e.g. IT,entrepreneur) or 'all'; members who opted in (theme column) form themed branches near home.")]
Landmarks = Annotated[Path | None, typer.Option(help="Optional landmark table (name, lon, lat, district) for geocoding.")]
MapFlag = Annotated[bool, typer.Option("--map/--no-map", help="Also write map.html.")]
Lang = Annotated[str, typer.Option("--lang", help="Language of plan.xlsx (sheet names, headers, the report in words) and of the map's labels: zh (Chinese) or en.")]
SitesOption = Annotated[Path | None, typer.Option("--sites", help="Service centres (党群服务中心), CSV or .xlsx: site_id, name, lon, lat[, datum, district_zh, capacity]. Branches meet only at these sites (several may share one, up to its capacity); each branch's site_id and name are in the outputs and on the map.")]
ExactPoints = Annotated[bool, typer.Option("--exact-points", help="Members' exact points in plan.xlsx, plan.gpkg and the map (personal data: opt-in). Default: snapped to a 200 m grid.")]
ShowNames = Annotated[bool, typer.Option("--show-names", help="Members' names (the roster's name column) in plan.xlsx's members sheet and the map's popups (personal data: opt-in).")]
TargetSize = Annotated[float | None, typer.Option(help="Aim for this mean branch size in each district (default 80% of --max-size).")]


def _lang(lang: str) -> str:
    if lang not in ("zh", "en"):
        raise fail(f"--lang must be zh or en, not {lang!r}", EXIT_USAGE)
    return lang


def _private(members: Any, exact_points: bool, show_names: bool) -> dict[str, Any]:
    """The planner's opt-ins for personal data in the files and the map: ``snap_m`` and ``names``."""
    from geoalloc.maps.privacy import DEFAULT_SNAP_M

    out: dict[str, Any] = {"snap_m": 0.0 if exact_points else DEFAULT_SNAP_M}
    if show_names:
        if "name" not in members.columns:
            console.print("[yellow]--show-names:[/] the roster has no name column")
        else:
            out["names"] = members.assign(member_id=members["member_id"].astype(str)).set_index("member_id")["name"]
    return out


def _write_map(plan_dir: Path, result: Any, policy: Policy, cities: list[str] | None = None,
               lang: str = "zh", private: dict[str, Any] | None = None) -> dict[str, Path]:
    """map.html for a plan of one city; for a roster of several cities (city_zh), one
    map-<city>.html per city asked for with --map-city (a national map would not open)."""
    try:
        from geoalloc.maps import plan_map, save_map
    except ImportError:  # maps not installed in this build
        return {}
    a, b = result.assignments, result.branches
    private = private or {}
    extra = {"snap_m": private.get("snap_m", 200.0), "names": private.get("names"),
             "show_names": private.get("names") is not None}
    several = "city_zh" in a.columns and a["city_zh"].nunique() > 1
    if not several:
        path = plan_dir / "map.html"
        save_map(plan_map(a, b, result.report, min_size=policy.min_size, max_size=policy.max_size, lang=lang,
                          **extra), path)
        return {"map": path}
    if not cities:
        console.print(f"[yellow]no map:[/] the roster has {a['city_zh'].nunique()} cities; "
                      "draw one with --map-city CITY (repeat the option for more)")
        return {}
    paths = {}
    for city in cities:
        if not (a["city_zh"] == city).any():
            raise fail(f"--map-city {city}: no member of the roster is in that city", EXIT_USAGE)
        path = plan_dir / f"map-{city}.html"
        save_map(plan_map(a[a["city_zh"] == city], b[b["city_zh"] == city], result.report,
                          min_size=policy.min_size, max_size=policy.max_size, lang=lang, **extra), path)
        paths[f"map {city}"] = path
    return paths


def _print_plan(report: dict[str, Any], paths: dict[str, Path]) -> None:
    table = Table(title="plan")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("members in roster", report["n_members"]),
        ("assigned", report["n_assigned"]),
        ("not assigned (lost contact, transfer out, not located)", report["n_unassigned"]),
        ("branches", report["n_branches"]),
        ("branch size min / mean / max",
         f"{report['branch_size']['min']} / {report['branch_size']['mean']} / {report['branch_size']['max']}"),
        ("mean distance to branch (m)", report["distance_m"]["mean"]),
        ("90th percentile distance (m)", report["distance_m"]["p90"]),
        ("total distance (m)", f"{report['objective_m']:,.0f}"),
        ("lower bound (m)", f"{report['lower_bound_m']:,.0f}"),
        ("gap to bound", f"{report['gap']:.2%}"),
        ("seconds", report["seconds"]),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    out.print(table)
    for note in report.get("notes", []):
        out.print(f"[yellow]note:[/] {note}")
    for name, path in paths.items():
        out.print(f"{name}: {path}")


def _formats(spec: str | None) -> tuple[str, ...]:
    from geoalloc.outputs import parse_formats

    try:
        return parse_formats(spec)
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc


FORMAT_HELP = ("Files to write, comma-separated from csv,xlsx,gpkg,geojson (default csv,xlsx,gpkg). "
               "assignments.csv, branches.csv and report.json are always written: the plan is read back from them.")


def run_allocate(roster: Path, output: Path, policy: Policy, landmarks: Path | None, write_map: bool,
                 formats: tuple[str, ...] | None = None, engine: Any = None,
                 map_cities: list[str] | None = None, lang: str = "zh", exact_points: bool = False,
                 show_names: bool = False) -> dict[str, Any]:
    """Roster file to plan directory; shared by ``allocate`` and ``demo``. Finished districts
    are checkpointed in OUTPUT/.units, so the same command rerun after a crash skips them."""
    from geoalloc.pipeline import allocate as allocate_plan
    from geoalloc.pipeline import write_plan_dir
    from geoalloc.solver.problem import InfeasibleError

    output.mkdir(parents=True, exist_ok=True)
    result = _load_roster(roster, output / "rejects.csv")
    placed = _place(result.members, landmarks)
    with console.status("forming branches"):
        try:
            plan = allocate_plan(placed, policy, engine=engine, checkpoints=output / UNITS_DIR)
        except InfeasibleError as exc:
            raise fail(str(exc)) from exc
    plan.report["roster"] = {"path": str(roster), **result.summary}
    private = _private(result.members, exact_points, show_names)
    paths = write_plan_dir(plan, output, formats=formats or _formats(None), lang=lang, **private)
    if write_map:
        with console.status("drawing the map"):
            paths.update(_write_map(output, plan, policy, map_cities, lang, private))
    if len(result.rejects):
        paths["rejects"] = output / "rejects.csv"
    _print_plan(plan.report, paths)
    return plan.report


@app.command()
def allocate(
    roster: Annotated[Path, typer.Argument(help="Roster CSV or .xlsx. Rows with lon/lat are used as they are; rows without are geocoded first.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for assignments.csv, branches.csv, report.json, map.html, plan.xlsx and plan.gpkg.")],
    min_size: MinSize = _D.min_size,
    max_size: MaxSize = _D.max_size,
    min_full: MinFull = _D.min_full,
    branches: Annotated[str | None, typer.Option(help="Number of branches, or 'fewest' (the fewest the limits allow). Default: each district aims at a mean size of 80% of --max-size, leaving room for newcomers.")] = None,
    target_size: TargetSize = None,
    cross_district: CrossDistrict = _D.cross_district,
    time_limit: TimeLimit = _D.time_limit,
    seed: Seed = _D.seed,
    themes: Themes = None,
    landmarks: Landmarks = None,
    map: MapFlag = True,
    format: Annotated[str | None, typer.Option("--format", help=FORMAT_HELP)] = None,
    engine: EngineOption = "local",
    workers: WorkersOption = None,
    map_city: MapCityOption = None,
    sites: SitesOption = None,
    lang: Lang = "zh",
    exact_points: ExactPoints = False,
    show_names: ShowNames = False,
) -> None:
    """Form branches: every active member in exactly one branch, sizes within limits, short distances."""
    formats = _formats(format)
    lang = _lang(lang)
    policy = _policy(min_size, max_size, min_full, branches, target_size, cross_district, time_limit, seed, themes,
                     _sites(sites))
    run_allocate(roster, output, policy, landmarks, map, formats, _engine(engine, workers), map_city, lang,
                 exact_points, show_names)


def _read_current(current: Path) -> tuple[Any, Any, str | None]:
    """The current plan: assignments, branches (None when unknown) and its plan id.

    ``current`` is a plan directory, or an assignments.csv (whose sibling branches.csv and
    report.json are used when present, so meeting points and lineage are kept).
    """
    import pandas as pd

    from geoalloc.pipeline import read_plan_dir

    if current.is_dir():
        try:
            assignments, branches, report, _moves = read_plan_dir(current)
        except FileNotFoundError as exc:
            raise fail(str(exc), EXIT_USAGE) from exc
        return assignments, branches, report.get("plan_id")
    if not current.exists():
        raise fail(f"{current}: no such file", EXIT_USAGE)
    from geoalloc.outputs import restore_frame

    assignments = restore_frame(pd.read_csv(current, dtype={"member_id": str, "branch_id": str}, keep_default_na=False,
                                            na_values={"lon": [""], "lat": [""], "distance_m": [""]}))
    missing = {"member_id", "branch_id"} - set(assignments.columns)
    if missing:
        raise fail(f"{current}: the current assignments need columns {', '.join(sorted(missing))}", EXIT_USAGE)
    siblings = current.parent
    branches = (restore_frame(pd.read_csv(siblings / "branches.csv", dtype={"branch_id": str}))
                if (siblings / "branches.csv").exists() else None)
    report_path = siblings / "report.json"
    parent_id = json.loads(report_path.read_text(encoding="utf-8")).get("plan_id") if report_path.exists() else None
    return assignments, branches, parent_id


@app.command()
def rebalance(
    roster: Annotated[Path, typer.Argument(help="Today's roster (CSV or .xlsx); rows without lon/lat are geocoded.")],
    current: Annotated[Path, typer.Option("--current", help="The current plan: its assignments.csv (member_id, branch_id) or its directory.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the new plan (never the current one: plans are not overwritten).")],
    max_moves: Annotated[int | None, typer.Option(help="Hard budget: at most this many current members change branch.")] = None,
    move_penalty: Annotated[float | None, typer.Option(help=f"Metres a move must save to be worth it (default {_D.move_penalty_m:.0f}).")] = None,
    frozen_branches: Annotated[list[str] | None, typer.Option("--frozen-branches", help="A branch id that must not change (repeat the option).")] = None,
    curve: Annotated[bool, typer.Option("--curve", help="Also sweep move budgets: print total distance against members moved, write curve.csv and curve.png.")] = False,
    min_size: MinSize = _D.min_size,
    max_size: MaxSize = _D.max_size,
    min_full: MinFull = _D.min_full,
    branches: Annotated[str | None, typer.Option(help="Branches to have after the rebalance: a number (spread over the districts in proportion to members, as for allocate) or 'fewest'; the rebalance opens or merges branches to reach it where the moves are worth it (under --max-moves it may stop short). Default: open branches only where a district has fewer than a fresh plan would, never merge healthy ones.")] = None,
    target_size: Annotated[float | None, typer.Option(help="Aim for this mean branch size in each district: ceil(members / S) branches, reached by opening or merging as --branches does.")] = None,
    cross_district: CrossDistrict = _D.cross_district,
    time_limit: Annotated[float, typer.Option(help="Seconds for the plan's certificate (half of it) and the search; the plan is deterministic.")] = _D.time_limit,
    seed: Annotated[int, typer.Option(help="Recorded in the report's policy, as for allocate (a rebalance itself is deterministic).")] = _D.seed,
    themes: Themes = None,
    landmarks: Landmarks = None,
    map: MapFlag = True,
    format: Annotated[str | None, typer.Option("--format", help=FORMAT_HELP)] = None,
    engine: EngineOption = "local",
    workers: WorkersOption = None,
    map_city: MapCityOption = None,
    sites: Annotated[Path | None, typer.Option("--sites", help="Service centres (党群服务中心), CSV or .xlsx: site_id, name, lon, lat[, datum, district_zh, capacity]. Branches meet only at these sites: a current branch meeting elsewhere moves to the best centre of its district with a place (keeping its members; the report lists them), new branches open at centres, never at a member's home.")] = None,
    lang: Lang = "zh",
    exact_points: ExactPoints = False,
    show_names: ShowNames = False,
) -> None:
    """Fix the current plan for today's roster (oversized, undersized, moved, new and departed members), moving as few members as possible."""
    from geoalloc.pipeline import AllocationResult, write_plan_dir
    from geoalloc.solver.rebalance import rebalance as rebalance_plan

    formats = _formats(format)
    lang = _lang(lang)
    if max_moves is not None and move_penalty is not None:
        raise fail("give --max-moves or --move-penalty, not both", EXIT_USAGE)
    current_dir = current if current.is_dir() else current.parent
    if output.resolve() == current_dir.resolve():
        raise fail("the new plan must go to a new directory: plans are never overwritten", EXIT_USAGE)
    rules: dict[str, Any] = {} if move_penalty is None else {"move_penalty_m": move_penalty}
    policy = _policy(min_size, max_size, min_full, branches, target_size, cross_district, time_limit, seed, themes,
                     _sites(sites), **rules)
    runner = _engine(engine, workers)
    assignments, branches, parent_id = _read_current(current)
    output.mkdir(parents=True, exist_ok=True)
    loaded = _load_roster(roster, output / "rejects.csv")
    placed = _place(loaded.members, landmarks)
    with console.status("rebalancing"):
        try:
            result = rebalance_plan(placed, assignments, policy, max_moves=max_moves, move_penalty_m=move_penalty,
                                    frozen_branches=set(frozen_branches or []), current_branches=branches,
                                    parent_plan_id=parent_id, engine=runner)
        except ValueError as exc:
            raise fail(str(exc)) from exc
    result.report["roster"] = {"path": str(roster), **loaded.summary}
    plan = AllocationResult(result.assignments, result.branches, result.report)
    private = _private(loaded.members, exact_points, show_names)
    paths = write_plan_dir(plan, output, formats=formats, moves=result.moves, lang=lang, **private)
    if map:
        with console.status("drawing the map"):
            paths.update(_write_map(output, plan, policy, map_city, lang, private))
    _print_plan(result.report, paths)
    r = result.report
    out.print(f"moved {r['moved']} members {r['moves_by_reason']}; joined {r['joined']}, removed {r['removed']}; "
              f"limit violations {r['violations_before']['total']} -> {r['violations']['total']}")
    if curve:
        from geoalloc.curve import format_curve, trade_off_curve, write_curve

        with console.status("sweeping move budgets"):
            table = trade_off_curve(placed, assignments, policy, current_branches=branches)
        out.print(format_curve(table))
        for name, path in write_curve(table, output).items():
            out.print(f"curve {name}: {path}")


@app.command("map")
def map_command(
    plan_dir: Annotated[Path | None, typer.Argument(help="A plan directory written by allocate or rebalance.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")] = Path("map.html"),
    compare: Annotated[tuple[Path, Path] | None, typer.Option(help="OLD_DIR NEW_DIR: a before/after map of two plans.")] = None,
    roster: Annotated[Path | None, typer.Option(help="Roster to take names from (only with --show-names).")] = None,
    show_names: Annotated[bool, typer.Option(help="Show member names in popups (personal data: opt-in).")] = False,
    lang: Annotated[str, typer.Option(help="Label language: zh or en.")] = "zh",
    tiles: Annotated[str | None, typer.Option(help="Base map: osm, carto, amap (GCJ-02; overlays are converted) or a tile URL. Default: amap for --lang zh (loads in mainland China), osm for --lang en.")] = None,
    cdn: Annotated[bool, typer.Option(help="Load Leaflet and its plugins from public CDNs (a smaller file) instead of inlining them; the default file opens without any host but the tiles.")] = False,
    offline: Annotated[bool, typer.Option(hidden=True, help="The default now (every asset inlined); kept so older scripts still run.")] = False,
) -> None:
    """Draw a plan (or a before/after comparison of two plans) as an interactive map."""
    from geoalloc.maps import compare_map, plan_map, save_map
    from geoalloc.maps.assets import MissingAssetError
    from geoalloc.pipeline import read_plan_dir

    if lang not in ("zh", "en"):
        raise fail(f"--lang must be zh or en, not {lang!r}", EXIT_USAGE)
    m: Any
    try:
        if compare:
            old = read_plan_dir(compare[0])
            new = read_plan_dir(compare[1])
            m = compare_map(old[:3], new[:3], moves=new[3], lang=lang, tiles=tiles, cdn=cdn and not offline)
        else:
            if plan_dir is None:
                raise fail("give a plan directory, or --compare OLD_DIR NEW_DIR", EXIT_USAGE)
            assignments, branches, report, _moves = read_plan_dir(plan_dir)
            names = None
            if show_names and roster is not None:
                from geoalloc.roster import read_roster

                members = read_roster(roster).members
                names = members.set_index("member_id")["name"]
            m = plan_map(assignments, branches, report, min_size=int(report.get("min_size", 3)),
                         max_size=int(report.get("max_size", 50)), names=names, show_names=show_names,
                         lang=lang, tiles=tiles, cdn=cdn and not offline)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc), EXIT_USAGE) from exc
    try:
        save_map(m, output)
    except MissingAssetError as exc:
        raise fail(str(exc)) from exc
    out.print(f"map: {output}")


@app.command()
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the demo plan.")] = Path("demo-output"),
    time_limit: Annotated[float, typer.Option(help="Seconds the optimiser may use.")] = 5.0,
) -> None:
    """Run the whole job on the bundled 7,000-member sample roster and say where the map and report are."""
    from geoalloc.paths import sample_roster_path

    report = run_allocate(sample_roster_path(), output, Policy(time_limit=time_limit), None, True)
    out.print(f"\n[bold green]done.[/] Open {output / 'map.html'} in a browser; the report is {output / 'report.json'}; "
              f"for Excel {output / 'plan.xlsx'}, for QGIS {output / 'plan.gpkg'}.")
    if report["violations"]["over_max"] or report["violations"]["under_min"]:
        raise fail("the demo plan has branches outside the limits: " + json.dumps(report["violations"]))


samples_app = typer.Typer(help="Synthetic rosters for tests and benchmarks (no real person).", no_args_is_help=True)
app.add_typer(samples_app, name="samples")


@samples_app.command("national")
def samples_national(
    members: Annotated[int, typer.Option("--members", min=12, help="Rows to write.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Roster CSV to write.")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed and size give the same roster.")] = 0,
) -> None:
    """A national roster: members over China's cities and districts (a few very large cities, many
    small), with member_id, lon, lat, city_zh, district_zh, full_member, status, weight, group_id, theme."""
    from geoalloc.national import generate_national

    roster = generate_national(members, seed=seed)
    output.parent.mkdir(parents=True, exist_ok=True)
    roster.to_csv(output, index=False, encoding="utf-8")
    out.print(f"{len(roster)} members in {roster['city_zh'].nunique()} cities and "
              f"{roster.groupby(['city_zh', 'district_zh']).ngroups} districts -> {output}")


keys_app = typer.Typer(help="API keys for the service: stored hashed; a new key is printed once.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
DbOption = Annotated[str | None, typer.Option("--db", envvar="GEOALLOC_DATABASE_URL",
                                              help="Database URL (default: sqlite:///geoalloc.db in this folder).")]


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="viewer, planner or admin.")],
    district: Annotated[str | None, typer.Option(help="Limit the key to one district, e.g. 南山区 (a district committee).")] = None,
    label: Annotated[str, typer.Option(help="A note shown by `keys list`.")] = "",
    db: DbOption = None,
) -> None:
    """Create an API key and print it (once: only its hash is stored)."""
    from geoalloc.store.keys import KeyError_, create_key

    try:
        key_id, plaintext = create_key(db, role, district, label)
    except KeyError_ as exc:
        raise fail(str(exc)) from exc
    typer.echo(plaintext)
    console.print(f"key {key_id} ({role}{', ' + district if district else ''}) created: keep it now, it is not shown again")


@keys_app.command("list")
def keys_list(db: DbOption = None) -> None:
    """List API keys (ids, roles, districts; never secrets)."""
    from geoalloc.store.keys import format_time, list_keys

    table = Table("key id", "role", "district", "label", "created", "revoked")
    for k in list_keys(db):
        table.add_row(k["key_id"], k["role"], k["district_zh"] or "(all)", k["label"],
                      format_time(k["created_at"]), format_time(k["revoked_at"]))
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id from `keys list`.")],
    db: DbOption = None,
) -> None:
    """Revoke an API key (running services stop accepting it within 2 seconds)."""
    from geoalloc.store.keys import KeyError_, revoke_key

    try:
        row = revoke_key(db, key_id)
    except KeyError_ as exc:
        raise fail(str(exc)) from exc
    out.print(f"key {row['key_id']} revoked")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    db: DbOption = None,
    access_log: Annotated[bool, typer.Option(help="Log every request (off by default; /metrics counts them).")] = False,
) -> None:
    """Run the API (uvicorn); the database is created or upgraded on first start."""
    from api.cli_support import serve as run_server

    run_server(host=host, port=port, db_url=db, access_log=access_log)


def main() -> None:  # pragma: no cover - console script shim
    """The commands, then an exit that skips a last collection walking every object of the finished
    command (a geocoded roster's million cells: a third of a second)."""
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
