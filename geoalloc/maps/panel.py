"""The summary and legend panel: the figures a planner checks first, as escaped HTML.

Built in Python (not in the browser) so the numbers match the report exactly and every
value passes through ``html.escape`` once, in one place.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from geoalloc.districts import OSM_ATTRIBUTION
from geoalloc.maps.payload import escape_text as e
from geoalloc.maps.styles import MOVED_COLOUR, PALETTE, STATE_COLOURS, BranchState

MAX_LISTED = 8


def _km(metres: float | None, L: dict[str, str]) -> str:
    if metres is None or not math.isfinite(metres):
        return "–"
    if metres < 1000:
        return f"{metres:.0f} {L['m']}"
    return f"{metres / 1000:.1f} {L['km']}"


def _finite(value: Any) -> float | None:
    """A report figure as a float, or None when it is missing, text or NaN."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def size_bins(sizes: list[int], min_size: int, max_size: int) -> list[tuple[str, int, bool]]:
    """(label, count, violates) bins: below minimum, up to five bins within limits, above maximum."""
    within_width = max(1, math.ceil((max_size - min_size + 1) / 5))
    bins: list[tuple[str, int, bool]] = [(f"< {min_size}", sum(s < min_size for s in sizes), True)]
    lo = min_size
    while lo <= max_size:
        hi = min(max_size, lo + within_width - 1)
        label = f"{lo}–{hi}" if hi > lo else f"{lo}"
        bins.append((label, sum(lo <= s <= hi for s in sizes), False))
        lo = hi + 1
    bins.append((f"> {max_size}", sum(s > max_size for s in sizes), True))
    return bins


def summary_figures(
    assignments: pd.DataFrame, branches: pd.DataFrame, report: dict[str, Any], *,
    min_size: int, max_size: int, min_full: int,
) -> dict[str, Any]:
    """The numbers shown in the panel (also returned to callers and tests)."""
    assigned = assignments[assignments["branch_id"].notna()]
    dist = assigned["distance_m"].dropna().to_numpy(dtype=float) if "distance_m" in assigned else np.array([])
    sizes = [int(s) for s in branches["size"]]
    ids = list(branches["branch_id"])
    under = [b for b, s in zip(ids, sizes) if s < min_size]
    over = [b for b, s in zip(ids, sizes) if s > max_size]
    few_full = [b for b, f in zip(ids, branches["n_full"]) if pd.notna(f) and int(f) < min_full]
    by_reason = report.get("unassigned_by_reason")
    if not isinstance(by_reason, dict) or not by_reason:
        by_reason = assignments.loc[assignments["branch_id"].isna(), "status"].value_counts().to_dict()
    return {
        "n_members": int(report.get("n_members", len(assignments))),
        "n_assigned": int(report.get("n_assigned", len(assigned))),
        "n_unassigned": int(report.get("n_unassigned", len(assignments) - len(assigned))),
        "n_branches": int(report.get("n_branches", len(branches))),
        "min_size": min_size,
        "max_size": max_size,
        "sizes": size_bins(sizes, min_size, max_size),
        "distance": {
            "mean": float(dist.mean()) if len(dist) else None,
            "median": float(np.median(dist)) if len(dist) else None,
            "p90": float(np.percentile(dist, 90)) if len(dist) else None,
            "max": float(dist.max()) if len(dist) else None,
        },
        "objective_m": report.get("objective_m"),
        "gap": report.get("gap"),
        "under": under,
        "over": over,
        "few_full": few_full,
        "unassigned_status": {str(k): int(v) for k, v in by_reason.items()},
    }


def _ids(ids: list[str], sep: str) -> str:
    shown = e(sep).join(e(i) for i in ids[:MAX_LISTED])
    return shown + (f" …(+{len(ids) - MAX_LISTED})" if len(ids) > MAX_LISTED else "")


def panel_html(
    fig: dict[str, Any], L: dict[str, str], *, snap_m: float, datum: str,
    moves: dict[str, int] | None = None, heading: str | None = None, show_moved: bool = False,
    open_: bool = True,
) -> str:
    """The panel's HTML; every value escaped. ``open_=False`` starts it folded to its heading."""
    h: list[str] = ["<details open><summary>" if open_ else "<details><summary>", e(heading or L["summary"]),
                    "</summary>"]
    h.append(f"<h4>{e(L['totals'])}</h4><table>")
    for key in ("n_members", "n_assigned", "n_unassigned", "n_branches"):
        h.append(f"<tr><td>{e(L[key])}</td><td class='ga-num'>{fig[key]}</td></tr>")
    if fig.get("n_without_point"):
        h.append(f"<tr><td>{e(L['without_point'])}</td><td class='ga-num'>{fig['n_without_point']}</td></tr>")
    h.append(f"<tr><td>{e(L['limits'])}</td><td class='ga-num'>{fig['min_size']}–{fig['max_size']}</td></tr>")
    objective, gap = _finite(fig["objective_m"]), _finite(fig["gap"])
    if objective is not None:
        h.append(f"<tr><td>{e(L['objective'])}</td><td class='ga-num'>{e(_km(objective, L))}</td></tr>")
    if gap is not None:
        h.append(f"<tr><td>{e(L['gap'])}</td><td class='ga-num'>{gap * 100:.1f}%</td></tr>")
    h.append("</table>")

    if moves is not None:
        h.append(f"<h4>{e(L['moves'])}</h4><table>")
        h.append(f"<tr><td>{e(L['moves_total'])}</td><td class='ga-num'>{sum(moves.values())}</td></tr>")
        for reason, n in sorted(moves.items(), key=lambda kv: -kv[1]):
            label = L.get(f"reason_{reason}", reason)
            h.append(f"<tr><td>{e(label)}</td><td class='ga-num'>{n}</td></tr>")
        h.append("</table>")

    h.append(f"<h4>{e(L['size_distribution'])}</h4><table>")
    top = max([c for _, c, _ in fig["sizes"]] + [1])
    for label, count, bad in fig["sizes"]:
        colour = STATE_COLOURS[BranchState.OVER if label.startswith(">") else BranchState.UNDER] if bad else STATE_COLOURS[BranchState.WITHIN]
        width = int(round(110 * count / top))
        h.append(
            f"<tr><td>{e(label)}</td><td><span class='ga-bar' style='width:{width}px;background:{colour}'></span></td>"
            f"<td class='ga-num'>{count}</td></tr>"
        )
    h.append("</table>")

    d = fig["distance"]
    h.append(f"<h4>{e(L['distance_stats'])}</h4><table><tr>")
    h.append("".join(f"<td>{e(L[k])} {e(_km(d[k], L))}</td>" for k in ("mean", "median")))
    h.append("</tr><tr>")
    h.append("".join(f"<td>{e(L[k])} {e(_km(d[k], L))}</td>" for k in ("p90", "max")))
    h.append("</tr></table>")

    h.append(f"<h4>{e(L['violations'])}</h4>")
    if not (fig["under"] or fig["over"] or fig["few_full"]):
        h.append(f"<div>{e(L['none'])}</div>")
    for key, ids in (("under", fig["under"]), ("over", fig["over"]), ("few_full", fig["few_full"])):
        if ids:
            h.append(f"<div class='ga-bad'>{e(L[key])}{e(L['colon'])}{len(ids)} — {_ids(ids, L['list_sep'])}</div>")
    if fig["unassigned_status"]:
        parts = e(L["comma"]).join(f"{e(L.get('why_' + k, L.get('status_' + k, k)))} {v}"
                                   for k, v in fig["unassigned_status"].items())
        h.append(f"<div>{e(L['n_unassigned'])}{e(L['colon'])}{parts}</div>")

    h.append(f"<h4>{e(L['legend'])}</h4>")
    for state in (BranchState.WITHIN, BranchState.UNDER, BranchState.OVER):
        h.append(f"<div><span class='ga-dot' style='background:{STATE_COLOURS[state]}'></span>{e(L['branch'])}{e(L['colon'])}{e(L[state.value])}</div>")
    dots = "".join(f"<span class='ga-dot' style='background:{c};width:7px;height:7px'></span>" for c in PALETTE[:5])
    h.append(f"<div>{dots}{e(L['member_dot'])}</div>")
    h.append(f"<div><span class='ga-dot' style='background:#fff;border-color:#374151'></span>{e(L['unassigned'])}</div>")
    h.append(f"<div><span class='ga-swatch' style='background:rgba(37,99,235,.15);border:1px solid #2563eb'></span>{e(L['hulls'])}</div>")
    if show_moved:
        h.append(f"<div><span class='ga-dot' style='background:#fff;border:2px solid {MOVED_COLOUR}'></span>{e(L['moved'])}</div>")
    note = L["privacy"].format(grid=int(snap_m)) if snap_m > 0 else L["privacy_exact"]
    h.append(f"<div class='ga-note'>{e(note)}</div>")
    h.append(f"<div class='ga-note'>{e(L['datum_note'].format(datum='GCJ-02' if datum == 'gcj02' else 'WGS-84'))}</div>")
    h.append(f"<div class='ga-note'>{e(L['approx_note'])}</div>")
    h.append(f"<div class='ga-note ga-attribution'>{e(L['data_note'])} {e(OSM_ATTRIBUTION)}</div>")
    h.append("</details>")
    return "".join(h)
