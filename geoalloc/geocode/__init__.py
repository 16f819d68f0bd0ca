"""Offline geocoding of Shenzhen addresses, datum conversion and optional online providers.

Typical use::

    from geoalloc.geocode import OfflineGeocoder, geocode_frame, load_landmarks, summarise
    out = geocode_frame(roster_df)                  # offline, deterministic
    print(summarise(out))

Precision says what was matched: ``landmark`` (the user's table), ``station`` and ``park`` (their
OpenStreetMap points), ``estate``, ``community``, ``subdistrict``, ``road`` and ``district`` (a zone's
representative point, spread by a member-keyed offset inside the zone and marked approximate).
Out-of-city addresses (any other province, city or county of China) are never placed in Shenzhen.
See ``geoalloc/geocode/README.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from geoalloc.geocode.frame import GEO_COLUMNS, geocode_frame, summarise
from geoalloc.geocode.landmarks import load_landmarks, validate_landmarks
from geoalloc.geocode.normalise import normalise
from geoalloc.geocode.offline import GeocodeResult, OfflineGeocoder

if TYPE_CHECKING:
    from geoalloc.geocode.providers import AMapProvider, NominatimProvider, Provider, ProviderCache, ProviderError

#: Imported on first use: the online providers' HTTP, TLS and SQLite modules are not needed offline.
_PROVIDERS = frozenset({"AMapProvider", "NominatimProvider", "Provider", "ProviderCache", "ProviderError"})


def __getattr__(name: str) -> Any:
    if name in _PROVIDERS:
        from geoalloc.geocode import providers

        return getattr(providers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "GEO_COLUMNS",
    "AMapProvider",
    "GeocodeResult",
    "NominatimProvider",
    "OfflineGeocoder",
    "Provider",
    "ProviderCache",
    "ProviderError",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "from_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "geocode_frame",
    "load_landmarks",
    "normalise",
    "summarise",
    "to_wgs84",
    "validate_landmarks",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]
