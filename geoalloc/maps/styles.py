"""Colours and words of the maps, in one place so both languages and all layers agree.

Chinese is the default: the planners are Chinese readers. Every visible string of the maps
comes from :data:`LABELS`; none is written inline in the layers.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree


class BranchState(StrEnum):
    """A branch's size against the policy limits."""

    UNDER = "under"
    WITHIN = "within"
    OVER = "over"


STATE_COLOURS: dict[BranchState, str] = {
    BranchState.UNDER: "#f59e0b",  # amber: too small
    BranchState.WITHIN: "#15803d",  # green: fine
    BranchState.OVER: "#dc2626",  # red: too big
}

# 12 well-separated colours for members; neighbouring branches get different ones.
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#637939",
)
UNASSIGNED_COLOUR = "#6b7280"
MOVED_COLOUR = "#111827"  # near-black ring: unlike any fill colour
HULL_BUFFER_M = 150.0  # a branch area is its members' hull grown by this much (map and GeoPackage alike)

LANGS = ("zh", "en")

LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "basemap": "底图",
        "colon": "：",
        "comma": "，",
        "list_sep": "、",
        "lparen": "（",
        "rparen": "）",
        "districts": "区界（官方）",
        "branches": "支部",
        "hulls": "支部范围",
        "members": "成员",
        "cluster": "成员（聚合）",
        "unassigned": "未分配成员",
        "lines": "成员—支部连线",
        "heat": "居住热力图",
        "zones": "街道边界（OpenStreetMap）",
        "zone_suffix": "",
        "moved": "调整的成员",
        "branch": "支部",
        "district": "所在区",
        "size": "人数",
        "n_full": "正式成员",
        "mean_distance": "平均距离",
        "max_distance": "最远距离",
        "secretary": "书记",
        "site": "服务中心",
        "joint": "联合支部",
        "state": "状态",
        "under": "人数不足",
        "within": "符合规定",
        "over": "超出上限",
        "few_full": "正式成员不足",
        "member": "成员",
        "member_id": "编号",
        "name": "姓名",
        "distance": "到支部距离",
        "precision": "位置精度",
        "status": "状态",
        "summary": "概况",
        "legend": "图例",
        "totals": "总计",
        "n_members": "成员总数",
        "n_assigned": "已分配",
        "n_unassigned": "未分配",
        "n_branches": "支部数",
        "limits": "规模限制",
        "size_distribution": "支部规模分布",
        "distance_stats": "成员到支部距离",
        "mean": "平均",
        "median": "中位数",
        "p90": "90%分位",
        "max": "最大",
        "objective": "总距离",
        "gap": "与下界差距",
        "violations": "违规",
        "none": "无",
        "search": "查找支部编号",
        "search_go": "定位",
        "not_found": "未找到支部",
        "fullscreen": "全屏",
        "exit_fullscreen": "退出全屏",
        "privacy": "成员位置已按精度模糊处理（约{grid}米网格），不显示姓名与地址。",
        "privacy_exact": "成员位置按原始坐标显示。",
        "approx_note": "按小区、社区、街道或区定位的成员画在该范围的代表点附近，是近似位置，不是住址。",
        "data_note": "街道与社区边界、车站、公园：",
        "member_dot": "成员（颜色区分支部）",
        "moves": "调整人数（按原因）",
        "moves_total": "调整总数",
        "before": "调整前",
        "after": "调整后",
        "km": "公里",
        "m": "米",
        "persons": "人",
        "datum_note": "坐标系：{datum}",
        "precision_exact": "精确坐标",
        "precision_landmark": "地标",
        "precision_station": "车站",
        "precision_park": "公园",
        "precision_estate": "小区",
        "precision_road": "道路",
        "precision_community": "社区",
        "precision_subdistrict": "街道",
        "precision_district": "区",
        "precision_none": "无",
        "reason_oversized": "支部超编",
        "reason_undersized": "支部人数不足",
        "reason_relocated": "成员迁居",
        "reason_closed_branch": "支部撤销",
        "reason_improvement": "缩短距离",
        "reason_changed": "支部变更（未注明原因）",
        "status_active": "正常",
        "why_not_located": "无法定位",
        "why_out_of_city": "不在深圳",
        "why_lost_contact": "失联",
        "why_transfer_out": "转出",
        "without_point": "无位置（未绘制）",
        "status_lost_contact": "失联",
        "status_transfer_out": "转出",
    },
    "en": {
        "basemap": "Base map",
        "colon": ": ",
        "comma": ", ",
        "list_sep": ", ",
        "lparen": " (",
        "rparen": ")",
        "districts": "Districts (official)",
        "branches": "Branches",
        "hulls": "Branch areas",
        "members": "Members",
        "cluster": "Members (clustered)",
        "unassigned": "Unassigned members",
        "lines": "Member–branch lines",
        "heat": "Residence heat map",
        "zones": "Subdistricts (OpenStreetMap)",
        "zone_suffix": "",
        "moved": "Moved members",
        "branch": "Branch",
        "district": "District",
        "size": "Members",
        "n_full": "Full members",
        "mean_distance": "Mean distance",
        "max_distance": "Max distance",
        "secretary": "Secretary",
        "site": "Service centre",
        "joint": "Joint branch",
        "state": "State",
        "under": "Below minimum",
        "within": "Within limits",
        "over": "Above maximum",
        "few_full": "Too few full members",
        "member": "Member",
        "member_id": "ID",
        "name": "Name",
        "distance": "Distance to branch",
        "precision": "Location precision",
        "status": "Status",
        "summary": "Summary",
        "legend": "Legend",
        "totals": "Totals",
        "n_members": "Members",
        "n_assigned": "Assigned",
        "n_unassigned": "Unassigned",
        "n_branches": "Branches",
        "limits": "Size limits",
        "size_distribution": "Branch sizes",
        "distance_stats": "Member–branch distance",
        "mean": "mean",
        "median": "median",
        "p90": "90th pct",
        "max": "max",
        "objective": "Total distance",
        "gap": "Gap to bound",
        "violations": "Violations",
        "none": "none",
        "search": "Find branch id",
        "search_go": "Go",
        "not_found": "No such branch",
        "fullscreen": "Full screen",
        "exit_fullscreen": "Exit full screen",
        "privacy": "Member points are blurred to their precision (about a {grid} m grid); no names or addresses.",
        "privacy_exact": "Member points are drawn at their recorded coordinates.",
        "approx_note": "Members placed by estate, community, subdistrict or district are drawn near that zone's point: approximate, not homes.",
        "data_note": "Subdistrict and community boundaries, stations, parks:",
        "member_dot": "Member (colour = branch)",
        "moves": "Moves by reason",
        "moves_total": "Moves",
        "before": "Before",
        "after": "After",
        "km": "km",
        "m": "m",
        "persons": "",
        "datum_note": "Datum: {datum}",
        "precision_exact": "exact",
        "precision_landmark": "landmark",
        "precision_station": "station",
        "precision_park": "park",
        "precision_estate": "estate",
        "precision_road": "road",
        "precision_community": "community",
        "precision_subdistrict": "subdistrict",
        "precision_district": "district",
        "precision_none": "none",
        "reason_oversized": "branch too big",
        "reason_undersized": "branch too small",
        "reason_relocated": "member moved home",
        "reason_closed_branch": "branch closed",
        "reason_improvement": "shorter distance",
        "reason_changed": "branch changed (no reason given)",
        "status_active": "active",
        "why_not_located": "not located",
        "why_out_of_city": "outside Shenzhen",
        "why_lost_contact": "lost contact",
        "why_transfer_out": "transfer out",
        "without_point": "No location (not drawn)",
        "status_lost_contact": "lost contact",
        "status_transfer_out": "transfer out",
    },
}


def labels(lang: str) -> dict[str, str]:
    """The words for ``lang`` (``zh`` or ``en``)."""
    if lang not in LABELS:
        raise ValueError(f"unknown map language {lang!r}: expected one of {', '.join(LANGS)}")
    return LABELS[lang]


def branch_state(size: int, min_size: int, max_size: int) -> BranchState:
    """Whether a branch of ``size`` members is under, within or over the limits."""
    if size < min_size:
        return BranchState.UNDER
    if size > max_size:
        return BranchState.OVER
    return BranchState.WITHIN


def branch_radius(size: float) -> float:
    """Circle radius in pixels: area grows with membership, so radius with its square root."""
    return round(3.0 + 1.1 * float(np.sqrt(max(size, 0.0))), 1)


def neighbour_colours(xy: NDArray[np.float64], k: int = 6) -> list[int]:
    """A palette index per branch so that each branch differs from its ``k`` nearest branches.

    Greedy colouring of the symmetric k-nearest-neighbour graph in order of position, so
    members of nearby branches are told apart by colour.
    """
    n = len(xy)
    if n == 0:
        return []
    kk = min(k + 1, n)
    _, idx = cKDTree(xy).query(xy, k=kk)
    idx = np.atleast_2d(idx).reshape(n, kk)
    adjacent: list[set[int]] = [set() for _ in range(n)]
    for i in range(n):
        for j in idx[i][1:]:
            if j != i:
                adjacent[i].add(int(j))
                adjacent[int(j)].add(i)
    colour = [-1] * n
    for i in np.lexsort((xy[:, 1], xy[:, 0])):
        taken = [colour[j] for j in adjacent[i] if colour[j] >= 0]
        # the colour least used among the neighbours (a free one whenever there is one)
        colour[i] = min(range(len(PALETTE)), key=lambda c: (taken.count(c), c))
    return colour
