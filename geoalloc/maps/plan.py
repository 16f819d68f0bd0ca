"""``plan_map``: one allocation plan as an interactive map.

Layer order and defaults follow what a planner looks at first: districts, branches coloured
by size state, members and branch areas on; lines, heat, clusters and the approximate
subdistrict zones off until asked for.
"""

from __future__ import annotations

import html
from functools import lru_cache
from typing import Any

import folium
import pandas as pd
from branca.element import Element
from folium.plugins import Fullscreen, MeasureControl

from geoalloc.districts import districts, subdistrict_zones
from geoalloc.maps.elements import ClusterLayer, HeatLayer, PlanControls, PlanData, PlanLayer, add_runtime, slim_map
from geoalloc.maps.frames import check_links, clean_assignments, clean_branches
from geoalloc.maps.panel import panel_html, summary_figures
from geoalloc.maps.payload import PRECISIONS, STATUSES, PlanView, Projector, build_view, outline_payload
from geoalloc.maps.privacy import DEFAULT_SNAP_M
from geoalloc.maps.styles import MOVED_COLOUR, labels
from geoalloc.maps.tiles import TileChoice, choose_tiles
from geoalloc.rules import Policy

__all__ = ["PlanMap", "plan_map", "decorate", "plan_view", "bounds_of"]


class PlanMap(folium.Map):
    """A folium map that remembers how it must be written (self-contained or CDN) and what it drew."""

    cdn: bool = False
    views: list[PlanView]

    def save(self, outfile: Any, close_file: bool = True, **kwargs: Any) -> None:  # noqa: ARG002
        """Write through :func:`geoalloc.maps.save_map` so ``cdn`` is honoured."""
        from geoalloc.maps.output import save_map

        save_map(self, outfile)

    @property
    def counts(self) -> dict[str, int]:
        """What the (first) plan layer set draws: branches, members, hulls, moved."""
        return self.views[0].counts

    @property
    def summary(self) -> dict[str, Any]:
        """The panel's figures."""
        return self.views[0].summary


@lru_cache(maxsize=8)
def _outlines(datum: str, lang: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    proj = Projector(datum)
    L = labels(lang)
    d = districts()
    name_col = "name_zh" if lang == "zh" else "name_en"
    dist = outline_payload(
        d, proj, names=[str(v) for v in d[name_col]],
        label_points=list(zip(d["label_lon"], d["label_lat"])), dashed=False,
    )
    z = subdistrict_zones()
    zones = outline_payload(z, proj, names=[f"{n}{L['zone_suffix']}" for n in z["name_zh"]], label_points=None,
                            dashed=True)
    return dist, zones


def bounds_of(view: PlanView) -> list[list[float]] | None:
    p = view.payload
    xs = p["branches"]["x"] + p["members"]["x"]
    ys = p["branches"]["y"] + p["members"]["y"]
    if not xs:
        return None
    ox, oy = p["origin"]
    s = p["scale"]
    return [[oy + min(ys) / s, ox + min(xs) / s], [oy + max(ys) / s, ox + max(xs) / s]]


def add_tiles(m: folium.Map, choice: TileChoice, lang: str) -> None:
    """The base layer (AMap needs its own subdomains, so it is added explicitly)."""
    folium.TileLayer(tiles=choice.tiles, attr=choice.attr, subdomains=choice.subdomains,
                     name=labels(lang)["basemap"], control=False).add_to(m)


def new_map(choice: TileChoice, lang: str) -> PlanMap:
    """A slim, canvas-preferring map on the chosen tiles."""
    m = PlanMap(location=[22.60, 114.05], zoom_start=11, tiles=None, prefer_canvas=True, control_scale=False)
    add_tiles(m, choice, lang)
    slim_map(m)
    return m


def prepare(
    assignments: pd.DataFrame, branches: pd.DataFrame, report: dict[str, Any], *,
    min_size: int | None, max_size: int | None, min_full: int | None,
) -> tuple[pd.DataFrame, pd.DataFrame, int, int, int]:
    """Cleaned frames and the limits (explicit argument, else report.json, else the policy default)."""
    policy = Policy()
    lo = int(min_size if min_size is not None else report.get("min_size", policy.min_size))
    hi = int(max_size if max_size is not None else report.get("max_size", policy.max_size))
    full = int(min_full if min_full is not None else report.get("min_full", policy.min_full))
    a = clean_assignments(assignments)
    b = clean_branches(branches, a)
    check_links(a, b)
    return a, b, lo, hi, full


def plan_view(
    a: pd.DataFrame, b: pd.DataFrame, report: dict[str, Any], *, min_size: int, max_size: int, min_full: int,
    lang: str, datum: str, snap_m: float, names: pd.Series | None = None, show_names: bool = False,
    moved: set[str] | None = None,
) -> PlanView:
    """One plan's payload (what ``runtime.js`` draws), counts and panel figures; frames already cleaned."""
    view = build_view(a, b, min_size=min_size, max_size=max_size, min_full=min_full, datum=datum,
                      snap_m=snap_m, names=names, show_names=show_names, moved=moved)
    dist, zones = _outlines(datum, lang)
    view.payload.update(districts=dist, zones=zones, precisions=PRECISIONS, statuses=STATUSES,
                        movedColour=MOVED_COLOUR)
    view.counts["districts"] = len(dist)
    view.summary = summary_figures(a, b, report, min_size=min_size, max_size=max_size, min_full=min_full)
    view.summary["n_without_point"] = view.counts["members_without_point"]
    return view


def decorate(
    m: folium.Map, a: pd.DataFrame, b: pd.DataFrame, report: dict[str, Any], *,
    min_size: int, max_size: int, min_full: int, lang: str, datum: str, snap_m: float,
    names: pd.Series | None, show_names: bool, title: str | None,
    moved: set[str] | None = None, moves_by_reason: dict[str, int] | None = None,
    heading: str | None = None, collapsed_layers: bool = False, fit: bool = True, pad_left: int = 300,
    panel_open: bool = True,
) -> PlanView:
    """Add the payload, every layer and the controls of one plan to ``m``."""
    L = labels(lang)
    view = plan_view(a, b, report, min_size=min_size, max_size=max_size, min_full=min_full, lang=lang,
                     datum=datum, snap_m=snap_m, names=names, show_names=show_names, moved=moved)

    add_runtime(m.get_root())  # type: ignore[arg-type]  # a Figure (branca types it as Element)
    data = PlanData(view.payload, L)
    m.add_child(data)
    bounds = bounds_of(view)
    if fit and bounds is not None:
        # before the layers, so 7,000 markers are projected once; clear of the summary panel
        # (bottom left) and the layer list (bottom right)
        m.fit_bounds(bounds, padding_top_left=(pad_left, 20), padding_bottom_right=(40, 20))
    m.add_child(PlanLayer("districts", data, L["districts"], show=True))
    m.add_child(PlanLayer("zones", data, L["zones"], show=False))
    m.add_child(PlanLayer("hulls", data, L["hulls"], show=True))
    m.add_child(PlanLayer("lines", data, L["lines"], show=False))
    m.add_child(HeatLayer("heat", data, L["heat"], show=False))
    m.add_child(PlanLayer("members", data, L["members"], show=True))
    m.add_child(ClusterLayer("cluster", data, L["cluster"], show=False))
    m.add_child(PlanLayer("unassigned", data, L["unassigned"], show=True))
    if moved is not None:
        m.add_child(PlanLayer("moved", data, L["moved"], show=True))
    m.add_child(PlanLayer("branches", data, L["branches"], show=True))
    panel = panel_html(view.summary, L, snap_m=snap_m, datum=datum, moves=moves_by_reason, heading=heading,
                       show_moved=moved is not None, open_=panel_open)
    m.add_child(PlanControls(data, panel, title))
    m.add_child(Fullscreen(position="topleft", title=L["fullscreen"], title_cancel=L["exit_fullscreen"]))
    m.add_child(MeasureControl(position="topleft", primary_length_unit="meters", secondary_length_unit="kilometers",
                               primary_area_unit="sqmeters", secondary_area_unit="hectares",
                               localization="cn" if lang == "zh" else "en"))
    # bottom right: over the sea south-east of Shenzhen, where it hides the least
    m.add_child(folium.LayerControl(position="bottomright", collapsed=collapsed_layers))
    return view


def plan_map(
    assignments: pd.DataFrame,
    branches: pd.DataFrame,
    report: dict[str, Any],
    *,
    min_size: int | None = None,
    max_size: int | None = None,
    names: pd.Series | None = None,
    show_names: bool = False,
    lang: str = "zh",
    tiles: str | None = None,
    offline: bool | None = None,
    cdn: bool = False,
    title: str | None = None,
    min_full: int | None = None,
    snap_m: float = DEFAULT_SNAP_M,
) -> PlanMap:
    """The interactive map of one plan directory's frames.

    ``min_size``/``max_size``/``min_full`` default to report.json's values, then the policy
    defaults (3/50/3). ``names`` (member_id -> name) is drawn only with ``show_names``;
    ``snap_m`` is the privacy grid for exact/landmark points (0 = exact, an explicit opt-in).
    ``tiles`` defaults to AMap for ``lang="zh"`` (every overlay is then converted to GCJ-02)
    and OSM for ``"en"``. The file is self-contained unless ``cdn`` (``offline`` is the older
    spelling of the default: ``offline=False`` means ``cdn=True``).
    """
    L = labels(lang)
    choice = choose_tiles(tiles, lang)
    a, b, lo, hi, full = prepare(assignments, branches, report, min_size=min_size, max_size=max_size,
                                 min_full=min_full)
    m = new_map(choice, lang)
    m.cdn = cdn if offline is None else not offline
    page_title = title or f"{L['branches']} · {L['summary']}"
    m.get_root().header.add_child(Element(f"<title>{html.escape(page_title)}</title>"),  # type: ignore[attr-defined]
                                  name="geoalloc_title")
    view = decorate(m, a, b, report, min_size=lo, max_size=hi, min_full=full, lang=lang, datum=choice.datum,
                    snap_m=snap_m, names=names, show_names=show_names, title=title)
    m.views = [view]
    return m
