"""The report in words: what was done, how good it is, and what to look at.

For the console and the 汇总 sheet. A planner reads sentences, not ``gap: 0.18``: the
certificate (the lower bound no plan can beat) is said in plain language, and weak
certificates are told apart from weak plans. Every figure comes from report.json and the
branch table; nothing here computes a rule of its own (limits are the report's).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from geoalloc.outputs.tables import reason_text

__all__ = ["NEAR_LIMIT", "WEAK_GAP", "key_figures", "report_words"]

WEAK_GAP = 0.05  # a district whose plan may be this much above the bound is pointed out
# a district whose every branch must hold at least this share of max_size is tight: there the
# linear relaxation (and so the bound) is weak; elsewhere a large gap means the time ran out
TIGHT_SHARE = 0.5
NEAR_LIMIT = 2   # branches within this many members of a size limit are listed
MAX_LISTED = 12  # names listed per heading; the rest are counted

_T = {
    "zh": {
        "done": "做了什么", "quality": "方案质量", "look": "需要关注",
        "allocated": "花名册共 {n} 人，其中 {a} 人分入 {b} 个支部（每个支部 {lo}–{hi} 人，至少 {full} 名正式党员，不跨区），用时 {s} 秒。",
        "rebalanced": "本次为调整方案：{moved} 人调整了支部（{reasons}），新增 {joined} 人，移出 {removed} 人；超出人数限制的支部由 {vb} 个变为 {va} 个。",
        "unplaced": "未分入支部 {u} 人：{why}。他们的记录保留在成员表中。",
        "sites": "支部只在给定的服务中心活动：共 {m} 个服务中心，用到 {k} 个。",
        "resited": "{n} 个支部原来不在服务中心活动，现改到服务中心（支部成员不因此调整）：{items}。",
        "all_placed": "所有在册成员均已分入支部。",
        "sizes": "支部人数最少 {smin}、平均 {smean}、最多 {smax} 人；成员到支部平均 {dmean}，九成成员在 {dp90} 以内。",
        "cert": "总距离 {obj}，可证明的下界为 {lb}：任何方案的总距离都不可能低于下界，所以本方案最多比最优方案长 {gap}。",
        "cert_good": "这一差距很小，方案已接近最优。",
        "cert_good_overall": "总体差距很小，但有 {n} 个区的差距超过 {t}（见“需要关注”）：总体数字掩盖了这些区。",
        "cert_weak": "差距较大的区多半是下界偏弱（这些区的支部几乎都要满员），不一定说明方案差；延长计算时间可以收紧下界。",
        "cert_time": "在支部不必满员的区差距仍较大，是计算时间不够（搜索和下界都在时限内停下）；用更长的 --time-limit（例如 30 秒）重新计算，可以得到更好的方案和更紧的下界。",
        "cert_weak_done": "差距较大的区多半是下界偏弱（这些区的支部几乎都要满员），不一定说明方案差；搜索和下界都已算完，延长计算时间不会改变结果。",
        "cert_done": "在支部不必满员的区差距仍较大，但原因不在时限：搜索和下界都在时限内算完，用更长的 --time-limit 会得到同样的方案和下界。这里的差距是下界按成员的分布所能证明的程度，方案离最优可能比差距显示的更近。",
        "violations_none": "所有支部都符合人数和正式党员要求。",
        "violations": "有 {n} 个支部不符合要求（超编 {over}，人数不足 {under}，正式党员不足 {full}）。",
        "weak": "证明偏弱的区（方案可能比最优长 {t} 以上）：{items}。",
        "weak_item": "{unit} {gap}（每个支部至少 {forced} 人，下界偏弱）",
        "weak_item_time": "{unit} {gap}（计算时间不够）",
        "weak_item_done": "{unit} {gap}（延长时间不会改变）",
        "weak_none": "各区的方案与下界都很接近。",
        "near_max": "接近人数上限（≥ {t} 人）的支部 {n} 个：{items}。",
        "near_min": "接近人数下限（≤ {t} 人）的支部 {n} 个：{items}。",
        "near_full": "正式党员刚好达到要求（≤ {t} 人）的支部 {n} 个：{items}。",
        "no_secretary": "尚无书记的支部 {n} 个（建议书记 {s} 个）。",
        "unplaced_look": "未分入支部：{why}；失联和转出的成员请核实后处理，无法定位的请补充地址。",
        "more": "等 {n} 个", "sep": "、", "none": "无",
        "km": "{v} 公里", "m": "{v} 米", "persons": "{v} 人",
        "f_members": "花名册人数", "f_assigned": "已分入支部", "f_unassigned": "未分入支部", "f_branches": "支部数",
        "f_size": "支部人数（最少/平均/最多）", "f_mean": "平均距离（米）", "f_p90": "九成成员距离以内（米）",
        "f_obj": "总距离（米）", "f_lb": "下界（米）", "f_gap": "最多比最优长", "f_viol": "不符合要求的支部",
        "f_moved": "调整人数", "f_seconds": "计算用时（秒）",
    },
    "en": {
        "done": "What was done", "quality": "How good it is", "look": "What to look at",
        "allocated": "The roster has {n} members; {a} of them are in {b} branches ({lo}–{hi} members each, at least {full} full members, never across a district line), made in {s} s.",
        "rebalanced": "This is a rebalance: {moved} members changed branch ({reasons}), {joined} joined and {removed} left; branches outside the size limits went from {vb} to {va}.",
        "unplaced": "{u} members are not in a branch: {why}. Their records are kept in the member table.",
        "sites": "Branches meet only at the given service centres: {k} of the {m} are used.",
        "resited": "{n} branches did not meet at a service centre and now meet at one (their members were not moved for it): {items}.",
        "all_placed": "Every member on the roster is in a branch.",
        "sizes": "Branches hold {smin} to {smax} members ({smean} on average); members live {dmean} from their branch on average, nine in ten within {dp90}.",
        "cert": "Total distance {obj}; the proven lower bound is {lb}: no plan can have a smaller total, so this plan is at most {gap} longer than the best possible one.",
        "cert_good": "That gap is small: the plan is close to optimal.",
        "cert_good_overall": "That gap is small overall, but {n} district(s) are above {t} (see what to look at below): the total hides them.",
        "cert_weak": "Where the gap is large, the bound is usually what is weak (nearly every branch there must be full), not necessarily the plan; a longer time limit tightens the bound.",
        "cert_time": "Where branches need not be full and the gap is still large, the time ran out (the search and the bound stopped at the limit): run again with a longer --time-limit (30 s, say) for a better plan and a tighter bound.",
        "cert_weak_done": "Where the gap is large, the bound is usually what is weak (nearly every branch there must be full), not necessarily the plan; the search and the bound had finished, so a longer time limit would not change either.",
        "cert_done": "Where branches need not be full and the gap is still large, time was not short: the search and the bound finished their work within the limit, so a longer --time-limit gives the same plan and bound. There the gap is what the bound can prove for how the members are spread, and the plan may be closer to the best than the gap says.",
        "violations_none": "Every branch meets the size and full-member rules.",
        "violations": "{n} branches break a rule ({over} too big, {under} too small, {full} with too few full members).",
        "weak": "Districts with a weak certificate (the plan may be more than {t} above the best): {items}.",
        "weak_item": "{unit} {gap} (every branch needs at least {forced}: a weak bound)",
        "weak_item_time": "{unit} {gap} (out of time)",
        "weak_item_done": "{unit} {gap} (more time would not change it)",
        "weak_none": "Every district's plan is close to its bound.",
        "near_max": "{n} branches near the maximum (≥ {t} members): {items}.",
        "near_min": "{n} branches near the minimum (≤ {t} members): {items}.",
        "near_full": "{n} branches with just enough full members (≤ {t}): {items}.",
        "no_secretary": "{n} branches have no secretary yet ({s} suggested).",
        "unplaced_look": "Not in a branch: {why}; check lost-contact and transferred members, add addresses for those who could not be located.",
        "more": "and {n} more", "sep": ", ", "none": "none",
        "km": "{v} km", "m": "{v} m", "persons": "{v}",
        "f_members": "members on the roster", "f_assigned": "in a branch", "f_unassigned": "not in a branch",
        "f_branches": "branches", "f_size": "branch size (min/mean/max)", "f_mean": "mean distance (m)",
        "f_p90": "90% of members within (m)", "f_obj": "total distance (m)", "f_lb": "lower bound (m)",
        "f_gap": "at most above the best", "f_viol": "branches breaking a rule", "f_moved": "members moved",
        "f_seconds": "seconds",
    },
}


def _dist(v: Any, t: dict[str, str]) -> str:
    v = float(v or 0)
    return t["km"].format(v=f"{v / 1000:,.1f}") if v >= 1000 else t["m"].format(v=f"{v:,.0f}")


def _pct(v: Any) -> str:
    return f"{float(v or 0):.1%}"


def _listing(items: list[str], t: dict[str, str]) -> str:
    if not items:
        return t["none"]
    shown = t["sep"].join(items[:MAX_LISTED])
    return shown + (t["sep"] + t["more"].format(n=len(items) - MAX_LISTED) if len(items) > MAX_LISTED else "")


def _why(report: dict[str, Any], lang: str, t: dict[str, str]) -> str:
    by = report.get("unassigned_by_reason")
    if not by:  # a rebalance's report lists the members only
        by = pd.Series([str(u.get("reason", "")) for u in report.get("unassigned") or [] if isinstance(u, dict)],
                       dtype=object).value_counts().to_dict()
    parts = [f"{reason_text(str(k), lang)} {t['persons'].format(v=int(v))}" for k, v in by.items() if int(v)]
    return t["sep"].join(parts) if parts else t["none"]


def _violations(report: dict[str, Any]) -> dict[str, int]:
    v = report.get("violations_after") or report.get("violations") or {}
    return {k: int(v.get(k, 0)) for k in ("over_max", "under_min", "under_full")}


def report_words(report: dict[str, Any], branches: pd.DataFrame | None = None, *, lang: str = "zh",
                 moves: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """Three sections ``{"title", "lines"}``: what was done, how good it is, what to look at."""
    t = _T[lang]
    lo, hi, full = int(report.get("min_size", 3)), int(report.get("max_size", 50)), int(report.get("min_full", 3))
    n_unassigned = int(report.get("n_unassigned", 0))
    done = [t["allocated"].format(n=report.get("n_members", 0), a=report.get("n_assigned", 0),
                                  b=report.get("n_branches", 0), lo=lo, hi=hi, full=full,
                                  s=report.get("seconds", 0))]
    if "moved" in report:
        by_reason = report.get("moves_by_reason") or {}
        from geoalloc.maps.styles import labels

        L = labels(lang)
        reasons = t["sep"].join(f"{L.get('reason_' + str(k), str(k))} {int(v)}" for k, v in by_reason.items()
                                if int(v)) or t["none"]
        vb = int((report.get("violations_before") or {}).get("total", 0))
        va = int((report.get("violations_after") or {}).get("total", 0))
        done.append(t["rebalanced"].format(moved=report.get("moved", 0), reasons=reasons,
                                           joined=report.get("joined", 0), removed=report.get("removed", 0),
                                           vb=vb, va=va))
    sites = (report.get("policy") or {}).get("sites")
    if sites and branches is not None and "site_id" in branches:
        used = branches["site_id"].astype("string").fillna("").str.strip()
        done.append(t["sites"].format(m=len(sites), k=int(used[used != ""].nunique())))
    resited = list(report.get("resited_branches") or [])
    if resited:
        done.append(t["resited"].format(n=len(resited), items=_listing(resited, t)))
    done.append(t["unplaced"].format(u=n_unassigned, why=_why(report, lang, t)) if n_unassigned else t["all_placed"])

    size, dist = report.get("branch_size") or {}, report.get("distance_m") or {}
    quality = [t["sizes"].format(smin=size.get("min", 0), smean=size.get("mean", 0), smax=size.get("max", 0),
                                 dmean=_dist(dist.get("mean"), t), dp90=_dist(dist.get("p90"), t))]
    gap = float(report.get("gap") or 0)
    quality.append(t["cert"].format(obj=_dist(report.get("objective_m"), t), lb=_dist(report.get("lower_bound_m"), t),
                                    gap=_pct(gap)))
    weak = [u for u in report.get("quality_by_unit") or [] if float(u.get("gap", 0)) > WEAK_GAP]
    weak.sort(key=lambda u: -float(u.get("gap", 0)))

    def is_tight(u: dict[str, Any]) -> bool:
        return float(u.get("forced_min_branch_size", 0)) >= TIGHT_SHARE * hi

    def helps(u: dict[str, Any]) -> bool:  # the solver's word on whether more time could change it
        return bool(u.get("more_time_helps", True))

    def item(u: dict[str, Any]) -> str:
        return "weak_item" if is_tight(u) else "weak_item_time" if helps(u) else "weak_item_done"

    if gap <= WEAK_GAP:
        quality.append(t["cert_good_overall"].format(n=len(weak), t=_pct(WEAK_GAP)) if weak else t["cert_good"])
    if gap > WEAK_GAP or weak:  # say why: a tight district's bound, or a search cut short (no units: the bound's kind)
        tight_weak = [u for u in weak if is_tight(u)]
        if not weak or (tight_weak and any(helps(u) for u in tight_weak)):
            quality.append(t["cert_weak"])
        elif tight_weak:
            quality.append(t["cert_weak_done"])
        loose = [u for u in weak if not is_tight(u)]
        if any(helps(u) for u in loose):
            quality.append(t["cert_time"])
        if any(not helps(u) for u in loose):
            quality.append(t["cert_done"])
    v = _violations(report)
    nv = sum(v.values())
    quality.append(t["violations_none"] if nv == 0 else
                   t["violations"].format(n=nv, over=v["over_max"], under=v["under_min"], full=v["under_full"]))

    look: list[str] = []
    look.append(t["weak"].format(t=_pct(WEAK_GAP), items=_listing(
        [t[item(u)].format(unit=u["unit"], gap=_pct(u["gap"]),
                                                                 forced=u.get("forced_min_branch_size", 0))
         for u in weak], t)) if weak else t["weak_none"])
    if branches is not None and len(branches):
        b = branches.copy()
        b["size"] = pd.to_numeric(b["size"], errors="coerce").fillna(0).astype(int)
        near_max = b[b["size"] >= hi - NEAR_LIMIT].sort_values("size", ascending=False)
        near_min = b[b["size"] <= lo + NEAR_LIMIT].sort_values("size")
        if len(near_max):
            look.append(t["near_max"].format(t=hi - NEAR_LIMIT, n=len(near_max), items=_listing(
                [f"{r.branch_id}（{r.size}）" if lang == "zh" else f"{r.branch_id} ({r.size})"
                 for r in near_max.itertuples()], t)))
        if len(near_min):
            look.append(t["near_min"].format(t=lo + NEAR_LIMIT, n=len(near_min), items=_listing(
                [f"{r.branch_id}（{r.size}）" if lang == "zh" else f"{r.branch_id} ({r.size})"
                 for r in near_min.itertuples()], t)))
        if "n_full" in b:
            nf = pd.to_numeric(b["n_full"], errors="coerce").fillna(0).astype(int)
            tight = b[nf <= full]
            if len(tight):
                look.append(t["near_full"].format(t=full, n=len(tight), items=_listing(list(tight["branch_id"]), t)))
    roles = report.get("roles") or {}
    if roles.get("branches_without_secretary"):
        look.append(t["no_secretary"].format(n=roles["branches_without_secretary"], s=roles.get("secretary_suggestions", 0)))
    if n_unassigned:
        look.append(t["unplaced_look"].format(why=_why(report, lang, t)))
    return [{"title": t["done"], "lines": done}, {"title": t["quality"], "lines": quality},
            {"title": t["look"], "lines": look}]


def key_figures(report: dict[str, Any], *, lang: str = "zh") -> list[tuple[str, Any]]:
    """The report's key numbers as (label, value) rows."""
    t = _T[lang]
    size, dist = report.get("branch_size") or {}, report.get("distance_m") or {}
    rows: list[tuple[str, Any]] = [
        (t["f_members"], report.get("n_members")), (t["f_assigned"], report.get("n_assigned")),
        (t["f_unassigned"], report.get("n_unassigned")), (t["f_branches"], report.get("n_branches")),
        (t["f_size"], f"{size.get('min', '')} / {size.get('mean', '')} / {size.get('max', '')}"),
        (t["f_mean"], dist.get("mean")), (t["f_p90"], dist.get("p90")),
        (t["f_obj"], report.get("objective_m")), (t["f_lb"], report.get("lower_bound_m")),
        (t["f_gap"], _pct(report.get("gap"))), (t["f_viol"], sum(_violations(report).values())),
    ]
    if "moved" in report:
        rows.append((t["f_moved"], report.get("moved")))
    rows.append((t["f_seconds"], report.get("seconds")))
    return rows
