"""``compare_map``: two plans side by side, synchronised, with the moved members ringed.

A rebalance's value is in what it changed, so the page shows the old plan (left) and the
new one (right) panned and zoomed together (folium's DualMap with Leaflet.Sync), moved
members highlighted on both, and the new panel counts the moves by reason: from the new
plan's moves.csv when there is one, otherwise derived by comparing branch_id per member.
"""

from __future__ import annotations

import html
from typing import Any, Sequence

import pandas as pd
from branca.element import Element
from folium.plugins import DualMap

from geoalloc.maps.elements import slim_map
from geoalloc.maps.plan import add_tiles, decorate, prepare
from geoalloc.maps.payload import PlanView
from geoalloc.maps.privacy import DEFAULT_SNAP_M
from geoalloc.maps.styles import labels
from geoalloc.maps.tiles import choose_tiles
from geoalloc.tables import MOVE_COLUMNS

__all__ = ["CompareMap", "compare_map", "derive_moves"]



class CompareMap(DualMap):
    """A DualMap that remembers how it must be written and what each side drew."""

    cdn: bool = False
    views: list[PlanView]
    moves: pd.DataFrame

    def save(self, outfile: Any, close_file: bool = True, **kwargs: Any) -> None:  # noqa: ARG002
        """Write through :func:`geoalloc.maps.save_map` so ``cdn`` is honoured."""
        from geoalloc.maps.output import save_map

        save_map(self, outfile)

    @property
    def moves_by_reason(self) -> dict[str, int]:
        """Move counts per reason, as shown in the right-hand panel."""
        return {str(k): int(v) for k, v in self.moves["reason"].value_counts().items()}


def _ids(series: pd.Series) -> list[str | None]:
    """Branch ids as text, with empty cells (unassigned members) as None."""
    out: list[str | None] = []
    for v in series:
        text = "" if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA else str(v).strip()
        out.append(None if text in ("", "nan", "None") else text)
    return out


def derive_moves(old_assignments: pd.DataFrame, new_assignments: pd.DataFrame,
                 new_branch_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Members whose branch_id differs between the plans (``member_id, from_branch, to_branch, reason``).

    The reason is ``closed_branch`` when the old branch no longer exists, else ``changed``
    (the plans alone do not say why); a member newly placed has an empty ``from_branch``.
    """
    old = pd.Series(_ids(old_assignments["branch_id"]), dtype=object, index=old_assignments["member_id"].astype(str))
    new = pd.Series(_ids(new_assignments["branch_id"]), dtype=object, index=new_assignments["member_id"].astype(str))
    both = old.index.intersection(new.index)
    rows = []
    live = set(new_branch_ids) if new_branch_ids is not None else {v for v in new if v is not None}
    for mid in both:
        before, after = old[mid], new[mid]
        if before == after or after is None:
            continue
        reason = "closed_branch" if before is not None and before not in live else "changed"
        rows.append((mid, before or "", after, reason))
    return pd.DataFrame(rows, columns=MOVE_COLUMNS)


def _clean_moves(moves: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("member_id", "to_branch") if c not in moves.columns]
    if missing:
        raise ValueError(f"moves.csv is missing column(s): {', '.join(missing)}")
    out = moves.copy()
    out["member_id"] = out["member_id"].astype(str).str.strip()
    if "reason" not in out.columns:
        out["reason"] = "changed"
    out["reason"] = out["reason"].astype("string").str.strip().str.lower().fillna("changed").replace("", "changed")
    return out


def _unpack(plan: Sequence[Any]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], pd.DataFrame | None]:
    if len(plan) == 3:
        a, b, r = plan
        return a, b, r, None
    if len(plan) == 4:
        a, b, r, mv = plan
        return a, b, r, mv
    raise ValueError("a plan is (assignments, branches, report) or (assignments, branches, report, moves)")


def compare_map(
    old: Sequence[Any],
    new: Sequence[Any],
    *,
    lang: str = "zh",
    tiles: str | None = None,
    offline: bool | None = None,
    cdn: bool = False,
    min_size: int | None = None,
    max_size: int | None = None,
    min_full: int | None = None,
    names: pd.Series | None = None,
    show_names: bool = False,
    title: str | None = None,
    moves: pd.DataFrame | None = None,
    snap_m: float = DEFAULT_SNAP_M,
) -> CompareMap:
    """Old plan left, new plan right, synchronised; moved members ringed on both sides."""
    L = labels(lang)
    choice = choose_tiles(tiles, lang)
    oa, ob, orep, _ = _unpack(old)
    na, nb, nrep, nmoves = _unpack(new)
    moves = moves if moves is not None else nmoves
    a1, b1, lo1, hi1, full1 = prepare(oa, ob, orep, min_size=min_size, max_size=max_size, min_full=min_full)
    a2, b2, lo2, hi2, full2 = prepare(na, nb, nrep, min_size=min_size, max_size=max_size, min_full=min_full)
    moves_df = _clean_moves(moves) if moves is not None else derive_moves(a1, a2, list(b2["branch_id"]))
    moved = set(moves_df["member_id"])
    by_reason = {str(k): int(v) for k, v in moves_df["reason"].value_counts().items()}

    dm = CompareMap(location=[22.60, 114.05], zoom_start=11, tiles=None, prefer_canvas=True, control_scale=False)
    dm.cdn = cdn if offline is None else not offline
    page_title = title or f"{L['before']} / {L['after']}"
    dm.get_root().header.add_child(Element(f"<title>{html.escape(page_title)}</title>"),  # type: ignore[attr-defined]
                                   name="geoalloc_title")
    # half-width maps: panels start folded to a heading that carries the key figure
    common: dict[str, Any] = dict(lang=lang, datum=choice.datum, snap_m=snap_m, names=names, show_names=show_names,
                  moved=moved, collapsed_layers=True, pad_left=30, panel_open=False)
    views = []
    for m, a, b, rep, lo, hi, full, heading, reasons in (
        (dm.m1, a1, b1, orep, lo1, hi1, full1, L["before"], None),
        (dm.m2, a2, b2, nrep, lo2, hi2, full2, f"{L['after']} · {L['moves_total']} {len(moves_df)}", by_reason),
    ):
        slim_map(m)
        add_tiles(m, choice, lang)
        label = f"{title} · {heading.split(' · ')[0]}" if title else heading.split(" · ")[0]
        views.append(decorate(m, a, b, rep, min_size=lo, max_size=hi, min_full=full, title=label,
                              heading=heading, moves_by_reason=reasons, **common))
    dm.views = views
    dm.moves = moves_df
    return dm
