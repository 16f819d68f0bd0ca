"""The columns of a plan's tables, as written to a plan directory, the store and the API.

``weight`` and ``group_id`` travel with every assignment so that any later path (rebalance,
relocation, a plan loaded back from the store) counts members and keeps families together
without the roster at hand.
"""

ASSIGNMENT_COLUMNS = [
    "member_id", "branch_id", "distance_m", "district_zh", "lon", "lat", "geo_precision",
    "full_member", "status", "weight", "group_id",
]
BRANCH_COLUMNS = [
    "branch_id", "lon", "lat", "district_zh", "size", "n_full", "mean_distance_m", "max_distance_m", "joint",
    "region",
]
MOVE_COLUMNS = ["member_id", "from_branch", "to_branch", "reason"]
