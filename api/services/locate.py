"""Where a member now lives: an address geocoded offline, or a point converted to WGS-84.

An address the geocoder cannot place is the caller's problem to fix (422 naming why), never a
member left active without a point.
"""

from __future__ import annotations

from dataclasses import dataclass

from api import library
from api.problems import ProblemError
from geoalloc.model import GeoPrecision, GeoStatus


@dataclass(frozen=True)
class Location:
    """A new location as the geocoder (or the caller's point) says."""

    address: str | None
    lon: float | None
    lat: float | None
    datum: str
    district_zh: str
    subdistrict_zh: str
    precision: str
    geo_status: str
    reason: str


def locate_address(address: str, member_id: str) -> Location:
    """Geocode offline; 422 when the address cannot be placed (no point, or nowhere known)."""
    r = library.geocode_address(address, member_id)
    if r.lon is None or r.lat is None or str(r.status) == GeoStatus.FAILED.value:
        why = r.reason or "no street, estate or district in it could be found"
        raise ProblemError(422, f"the address could not be placed: {why}. Send a fuller address "
                                "(district, street, number) or the point as lon/lat",
                           title="Address not found")
    return Location(address, float(r.lon), float(r.lat), "wgs84", r.district_zh or "", r.subdistrict_zh or "",
                    str(r.precision), str(r.status), r.reason or "")


def locate_point(lon: float, lat: float, datum: str) -> Location:
    """Convert to WGS-84 and find the district (microseconds: no thread hop needed)."""
    wlon, wlat = library.to_wgs84(lon, lat, datum)
    district = library.district_of(wlon, wlat)
    if district is None:
        return Location(None, wlon, wlat, datum, "", "", GeoPrecision.EXACT.value, GeoStatus.OUT_OF_CITY.value,
                        "the point lies outside Shenzhen")
    return Location(None, wlon, wlat, datum, district, "", GeoPrecision.EXACT.value, GeoStatus.OK.value, "")
