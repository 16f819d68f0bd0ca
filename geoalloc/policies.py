"""Secretaries and advisers on a plan's branches (themed regions are a rule: :mod:`geoalloc.rules`).

Secretaries and advisers are people, not slots: this module labels, it never moves
anyone. A branch without a secretary gets a *suggestion* (the nearest secretary from a
branch that has two or more); acting on it is a move the planner makes through a
rebalance (``frozen`` then keeps the secretary in place). Advisers are spread with a
small min-cost flow so that each serves at most ``max_branches_per_adviser`` branches,
the nearest ones first.

The limits are :attr:`~geoalloc.rules.Policy.max_branches_per_adviser` and
:attr:`~geoalloc.rules.Policy.advisers_per_branch`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from ortools.graph.python import min_cost_flow
from scipy.spatial import cKDTree

from geoalloc.rules import Policy
from geoalloc.projection import to_sphere


def _roles(members: pd.DataFrame) -> pd.Series:
    if "role" not in members.columns:
        return pd.Series([""] * len(members), index=members.index)
    return members["role"].astype(object).where(members["role"].notna(), "").astype(str).str.strip().str.lower()


def attach_roles(
    assignments: pd.DataFrame, branches: pd.DataFrame, members: pd.DataFrame, policy: Policy
) -> pd.DataFrame:
    """Branches with ``secretary``, ``n_secretaries``, ``secretary_suggestion`` and ``advisers`` columns.

    Labels only (no member changes branch): the secretary of a branch is its secretary
    nearest the site; a branch with none gets the nearest surplus secretary as a
    suggestion. Advisers (who need not belong to a branch) each serve at most
    ``max_branches_per_adviser`` branches, chosen by a min-cost flow on distance.
    """
    out = branches.copy()
    roles = _roles(members)
    ids = members["member_id"].astype(str)
    role_of = dict(zip(ids, roles))
    a = assignments.copy()
    a["member_id"] = a["member_id"].astype(str)
    a = a[a["branch_id"].notna() & (a["branch_id"].astype(str) != "")]
    a["role"] = a["member_id"].map(role_of).fillna("")
    bxy = to_sphere(out["lon"].to_numpy(float), out["lat"].to_numpy(float)) if len(out) else np.zeros((0, 3))
    bpos = {str(b): i for i, b in enumerate(out["branch_id"].astype(str))}

    # Secretaries: label the one nearest the site.
    secs = a[a["role"] == "secretary"]
    secretary = [""] * len(out)
    n_secs = np.zeros(len(out), dtype=int)
    surplus: list[tuple[str, str, NDArray[np.float64]]] = []  # (member, branch, xy)
    if len(secs):
        sxy = to_sphere(secs["lon"].to_numpy(float), secs["lat"].to_numpy(float))
        for (bid, grp) in secs.assign(_i=np.arange(len(secs))).groupby("branch_id"):
            j = bpos.get(str(bid))
            if j is None:
                continue
            pts = sxy[grp["_i"].to_numpy()]
            order = np.argsort(np.linalg.norm(pts - bxy[j], axis=1))
            mids = grp["member_id"].to_numpy()[order]
            secretary[j] = str(mids[0])
            n_secs[j] = len(mids)
            for k in order[1:]:
                surplus.append((str(grp["member_id"].to_numpy()[k]), str(bid), pts[k]))
    suggestion = [""] * len(out)
    if surplus:
        taken: set[str] = set()
        pxy = np.array([s[2] for s in surplus])
        for j in np.flatnonzero(n_secs == 0).tolist():
            d = np.linalg.norm(pxy - bxy[j], axis=1)
            for k in np.argsort(d):
                if surplus[k][0] not in taken:
                    taken.add(surplus[k][0])
                    suggestion[j] = f"{surplus[k][0]} (from {surplus[k][1]}, {d[k]:.0f} m)"
                    break
    out["secretary"] = secretary
    out["n_secretaries"] = n_secs
    out["secretary_suggestion"] = suggestion
    out["advisers"] = _spread_advisers(members[roles == "adviser"], bxy, policy) if len(out) else []
    return out


def _spread_advisers(advisers: pd.DataFrame, bxy: NDArray[np.float64], policy: Policy) -> list[str]:
    """Semicolon-joined adviser ids per branch: capacity-limited nearest assignment by min-cost flow."""
    nb = len(bxy)
    if len(advisers) == 0 or nb == 0:
        return [""] * nb
    advisers = advisers[advisers["lon"].notna() & advisers["lat"].notna()]
    if len(advisers) == 0:
        return [""] * nb
    cap = policy.max_branches_per_adviser
    per_branch = policy.advisers_per_branch
    axy = to_sphere(advisers["lon"].to_numpy(float), advisers["lat"].to_numpy(float))
    aid = advisers["member_id"].astype(str).to_numpy()
    na = len(axy)
    k = min(na, max(3 * per_branch, 8))
    dist, idx = cKDTree(axy).query(bxy, k=k)
    dist = np.asarray(dist).reshape(nb, k)
    idx = np.asarray(idx).reshape(nb, k)
    # nodes: branches 0..nb-1, advisers nb..nb+na-1, sink nb+na
    sink = nb + na
    unserved = int(dist.max() * 10 + 1_000_000)
    f = min_cost_flow.SimpleMinCostFlow()
    tails = np.repeat(np.arange(nb), k)
    heads = nb + idx.ravel()
    arcs = f.add_arcs_with_capacity_and_unit_cost(
        tails, heads, np.ones(nb * k, dtype=np.int64), np.round(dist.ravel()).astype(np.int64)
    )
    f.add_arcs_with_capacity_and_unit_cost(
        nb + np.arange(na), np.full(na, sink), np.full(na, cap, dtype=np.int64), np.zeros(na, dtype=np.int64)
    )
    # unserved slots go straight to the sink at a high cost
    f.add_arcs_with_capacity_and_unit_cost(
        np.arange(nb), np.full(nb, sink), np.full(nb, per_branch, dtype=np.int64), np.full(nb, unserved, dtype=np.int64)
    )
    f.set_nodes_supplies(np.arange(nb + 1 + na), np.concatenate([np.full(nb, per_branch), np.zeros(na), [-nb * per_branch]]).astype(np.int64))
    if f.solve() != f.OPTIMAL:
        return [""] * nb
    flows = f.flows(arcs).reshape(nb, k)
    out = []
    for j in range(nb):
        chosen = idx[j][flows[j] > 0]
        out.append(";".join(aid[c] for c in sorted(chosen, key=lambda c: c)))
    return out


def role_summary(branches: pd.DataFrame) -> dict[str, Any]:
    """Counts for the report: branches with/without a secretary, with an adviser."""
    if "secretary" not in branches.columns:
        return {}
    return {
        "branches_with_secretary": int((branches["secretary"] != "").sum()),
        "branches_without_secretary": int((branches["secretary"] == "").sum()),
        "secretary_suggestions": int((branches["secretary_suggestion"] != "").sum()),
        "branches_with_adviser": int((branches["advisers"] != "").sum()),
    }
