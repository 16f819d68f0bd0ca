"""Datum conversions: known offsets, exact inverses (< 0.01 m) and the datum-name API."""

from __future__ import annotations

import numpy as np
import pytest

from geoalloc.geocode import datum as dt
from geoalloc.model import Datum
from geoalloc.projection import to_metres

RNG = np.random.default_rng(42)
LON = RNG.uniform(113.75, 114.65, 2000)
LAT = RNG.uniform(22.40, 22.87, 2000)


def _metres_apart(lon1, lat1, lon2, lat2) -> np.ndarray:
    a = to_metres(np.atleast_1d(lon1), np.atleast_1d(lat1))
    b = to_metres(np.atleast_1d(lon2), np.atleast_1d(lat2))
    return np.hypot(*(a - b).T)


def test_gcj_offset_in_shenzhen_is_about_600_m_east_and_south() -> None:
    glon, glat = dt.wgs84_to_gcj02(LON, LAT)
    d = _metres_apart(LON, LAT, glon, glat)
    assert 550 < d.min() and d.max() < 650
    assert np.all(glon > LON) and np.all(glat < LAT)


@pytest.mark.parametrize(
    ("forward", "inverse"),
    [
        (dt.wgs84_to_gcj02, dt.gcj02_to_wgs84),
        (dt.wgs84_to_bd09, dt.bd09_to_wgs84),
        (dt.gcj02_to_bd09, dt.bd09_to_gcj02),
    ],
)
def test_round_trips_are_exact_to_a_centimetre(forward, inverse) -> None:
    back_lon, back_lat = inverse(*forward(LON, LAT))
    assert _metres_apart(LON, LAT, back_lon, back_lat).max() < 0.01
    # and the other way round: inverse then forward lands on the input
    fwd_lon, fwd_lat = forward(*inverse(LON, LAT))
    assert _metres_apart(LON, LAT, fwd_lon, fwd_lat).max() < 0.01


def test_iterative_inverse_beats_the_one_step_approximation() -> None:
    glon, glat = dt.wgs84_to_gcj02(LON, LAT)
    flon, flat = dt.wgs84_to_gcj02(glon, glat)
    one_step = _metres_apart(LON, LAT, 2 * glon - flon, 2 * glat - flat)
    exact = _metres_apart(LON, LAT, *dt.gcj02_to_wgs84(glon, glat))
    assert one_step.mean() > 0.5  # the common shortcut is metres off in Shenzhen
    assert exact.max() < 0.01


def test_scalars_give_floats_and_arrays_keep_shape() -> None:
    lon, lat = dt.gcj02_to_wgs84(114.1, 22.55)
    assert isinstance(lon, float) and isinstance(lat, float)
    x, y = dt.wgs84_to_bd09(np.array([[114.0, 114.1]]), np.array([[22.5, 22.6]]))
    assert x.shape == (1, 2) and y.shape == (1, 2)
    x, y = dt.to_wgs84([114.0, np.nan], [22.5, 22.6], "gcj02")
    assert np.isfinite(x[0]) and np.isnan(x[1])


def test_outside_china_gcj_is_identity() -> None:
    assert dt.wgs84_to_gcj02(2.35, 48.85) == (2.35, 48.85)
    assert dt.gcj02_to_wgs84(-74.0, 40.7) == (-74.0, 40.7)


@pytest.mark.parametrize("name", ["gcj02", "GCJ-02", Datum.GCJ02, " gcj_02 "])
def test_to_and_from_wgs84_accept_datum_spellings(name) -> None:
    g = dt.from_wgs84(114.05, 22.54, name)
    assert g == dt.wgs84_to_gcj02(114.05, 22.54)
    back = dt.to_wgs84(*g, name)
    assert _metres_apart(114.05, 22.54, *back)[0] < 0.01


def test_wgs84_and_empty_datum_pass_through() -> None:
    assert dt.to_wgs84(114.05, 22.54, "wgs84") == (114.05, 22.54)
    assert dt.to_wgs84(114.05, 22.54, "") == (114.05, 22.54)
    assert dt.to_wgs84(114.05, 22.54, Datum.BD09) == dt.bd09_to_wgs84(114.05, 22.54)


def test_unknown_datum_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown datum 'utm'"):
        dt.to_wgs84(114.0, 22.5, "utm")
