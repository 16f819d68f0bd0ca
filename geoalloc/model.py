"""The domain vocabulary: member statuses, datums, geocoding precision and move reasons.

Everything else in geoalloc speaks these types. They are plain values (enums and frozen
dataclasses) so that they cross process, file and API boundaries unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class MemberStatus(StrEnum):
    """Where a member stands. Only ``active`` members are allocated; nobody is ever dropped."""

    ACTIVE = "active"
    LOST_CONTACT = "lost_contact"  # 失联: tracked, not allocated
    TRANSFER_OUT = "transfer_out"  # 转出: moved out of the city, flagged for transfer


class Datum(StrEnum):
    """Coordinate datums found in Chinese data. Everything is stored in WGS-84."""

    WGS84 = "wgs84"
    GCJ02 = "gcj02"  # "Mars" coordinates: AMap, Tencent, Google China
    BD09 = "bd09"  # Baidu


class GeoPrecision(StrEnum):
    """What a member's point was placed from, from best to worst.

    ``station`` and ``park`` points are that place's own coordinates; ``estate`` (estates have no
    coordinates), ``community``, ``subdistrict``, ``road`` (a name without geometry) and ``district``
    are placed at a zone's representative point, spread inside the zone, and marked approximate.
    """

    EXACT = "exact"  # coordinates given in the roster
    LANDMARK = "landmark"  # a landmark from the user's own table
    STATION = "station"  # a bundled station (OSM point)
    PARK = "park"  # a bundled park with an OSM point
    ESTATE = "estate"  # a housing estate: its subdistrict's point
    COMMUNITY = "community"
    SUBDISTRICT = "subdistrict"
    ROAD = "road"  # a road name: the district (or subdistrict) it lies in
    DISTRICT = "district"
    NONE = "none"


class GeoStatus(StrEnum):
    """The outcome of placing a member's residence."""

    OK = "ok"
    APPROXIMATE = "approximate"
    OUT_OF_CITY = "out_of_city"  # a transfer candidate
    FAILED = "failed"


class MoveReason(StrEnum):
    """Why a rebalance moved a member."""

    OVERSIZED = "oversized"
    UNDERSIZED = "undersized"
    RELOCATED = "relocated"
    CLOSED_BRANCH = "closed_branch"
    IMPROVEMENT = "improvement"
