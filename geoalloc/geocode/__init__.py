"""Offline geocoding of Shenzhen addresses, datum conversion and optional online providers."""

from __future__ import annotations

from geoalloc.geocode.datum import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

__all__ = [
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "from_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "to_wgs84",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]
