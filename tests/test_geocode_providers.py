"""Online providers against small fake servers on 127.0.0.1 that answer in each service's format.

AMap v3 ``/v3/geocode/geo``: ``{"status": "1", "info": "OK", "infocode": "10000", "count": "1",
"geocodes": [{..., "location": "lon,lat" (GCJ-02), "level": "门牌号"}]}``; errors come as
``status "0"`` with an ``infocode`` (10001 INVALID_USER_KEY, 10021 CUQPS_HAS_EXCEEDED_THE_LIMIT...).
Nominatim ``/search?format=json``: a JSON array of places (``lat``/``lon`` strings, ``class``,
``type``, ``place_rank``, ``address``); HTTP 429 when rate limited.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from geoalloc.geocode import (
    AMapProvider,
    NominatimProvider,
    OfflineGeocoder,
    Provider,
    ProviderCache,
    ProviderError,
    geocode_frame,
    wgs84_to_gcj02,
)
from geoalloc.model import GeoPrecision, GeoStatus

TRUE_POINT = (113.9436, 22.5407)  # WGS-84, 南山区


class FakeServer:
    """An http.server in a thread; ``respond(path, query, hits) -> (status, headers, body)``."""

    def __init__(self, respond: Callable[[str, dict[str, str], int], tuple[int, dict[str, str], Any]]) -> None:
        self.hits: Counter[str] = Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                key = query.get("address") or query.get("q") or ""
                outer.hits[key] += 1
                code, headers, body = respond(url.path, query, outer.hits[key])
                data = json.dumps(body, ensure_ascii=False).encode("utf-8")
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- AMap --------------------------------------------------------------------------------------

def _amap_ok(lon: float, lat: float, level: str = "门牌号") -> dict[str, Any]:
    glon, glat = wgs84_to_gcj02(lon, lat)
    return {
        "status": "1", "info": "OK", "infocode": "10000", "count": "1",
        "geocodes": [{
            "formatted_address": "广东省深圳市南山区科苑路15号", "country": "中国", "province": "广东省",
            "citycode": "0755", "city": "深圳市", "district": "南山区", "township": [],
            "neighborhood": {"name": [], "type": []}, "building": {"name": [], "type": []},
            "adcode": "440305", "street": "科苑路", "number": "15号",
            "location": f"{glon:.6f},{glat:.6f}", "level": level,
        }],
    }


def _amap_error(code: str, info: str) -> dict[str, Any]:
    return {"status": "0", "info": info, "infocode": code}


def amap_respond(path: str, q: dict[str, str], hits: int) -> tuple[int, dict[str, str], Any]:
    assert path == "/v3/geocode/geo" and q.get("city") == "深圳" and q.get("output") == "JSON"
    if q.get("key") == "bad":
        return 200, {}, _amap_error("10001", "INVALID_USER_KEY")
    address = q["address"]
    if address == "南山区科苑路15号":
        return 200, {}, _amap_ok(*TRUE_POINT)
    if address == "南山区":
        return 200, {}, _amap_ok(113.93, 22.53, level="区县")
    if address == "限流两次":
        return (200, {}, _amap_error("10021", "CUQPS_HAS_EXCEEDED_THE_LIMIT")) if hits <= 2 else (200, {}, _amap_ok(*TRUE_POINT))
    if address == "一直限流":
        return 200, {}, _amap_error("10021", "CUQPS_HAS_EXCEEDED_THE_LIMIT")
    if address == "参数错误":
        return 200, {}, _amap_error("20000", "INVALID_PARAMS")
    if address == "服务器错误":
        return 500, {}, {"message": "internal"}
    return 200, {}, {"status": "1", "info": "OK", "infocode": "10000", "count": "0", "geocodes": []}


@pytest.fixture()
def amap_server() -> Iterator[FakeServer]:
    server = FakeServer(amap_respond)
    yield server
    server.close()


def _amap(server: FakeServer, key: str = "test-key", **kw: Any) -> AMapProvider:
    sleeps: list[float] = []
    p = AMapProvider(key, base_url=f"http://127.0.0.1:{server.port}", backoff=0.01, sleep=sleeps.append, **kw)
    p.sleeps = sleeps  # type: ignore[attr-defined]
    return p


def test_amap_success_is_converted_from_gcj02_to_wgs84(amap_server: FakeServer) -> None:
    p = _amap(amap_server)
    assert isinstance(p, Provider)
    r = p.geocode("南山区科苑路15号")
    assert r is not None and r.precision == GeoPrecision.LANDMARK and r.status == GeoStatus.OK
    # the fake answered in GCJ-02 rounded to 1e-6 degrees (~0.1 m): WGS-84 comes back within that
    assert abs(r.lon - TRUE_POINT[0]) < 2e-6 and abs(r.lat - TRUE_POINT[1]) < 2e-6
    assert r.district_zh == "南山区" and "门牌号" in r.reason


def test_amap_district_level_and_no_result(amap_server: FakeServer) -> None:
    p = _amap(amap_server)
    coarse = p.geocode("南山区")
    assert coarse is not None and coarse.precision == GeoPrecision.DISTRICT
    assert p.geocode("查无此地") is None


def test_amap_cache_avoids_a_second_lookup(amap_server: FakeServer, tmp_path: Path) -> None:
    cache = ProviderCache(tmp_path / "cache.sqlite")
    p = _amap(amap_server, cache=cache)
    first = p.geocode("南山区科苑路15号")
    assert p.geocode("南山区科苑路15号") == first
    assert p.geocode("查无此地") is None and p.geocode("查无此地") is None
    assert amap_server.hits["南山区科苑路15号"] == 1 and amap_server.hits["查无此地"] == 1
    cache.close()
    # a new process with the same SQLite file does not ask again either
    again = _amap(amap_server, cache=ProviderCache(tmp_path / "cache.sqlite"))
    assert again.geocode("南山区科苑路15号") == first and again.requests == 0


def test_amap_rate_limit_is_retried_with_backoff(amap_server: FakeServer) -> None:
    p = _amap(amap_server)
    r = p.geocode("限流两次")
    assert r is not None and amap_server.hits["限流两次"] == 3
    assert p.sleeps == [0.01, 0.02]  # type: ignore[attr-defined]


def test_amap_persistent_rate_limit_is_a_clear_fatal_error(amap_server: FakeServer) -> None:
    p = _amap(amap_server, max_retries=2)
    with pytest.raises(ProviderError, match="10021.*persisted after 2 retries") as err:
        p.geocode("一直限流")
    assert err.value.fatal and amap_server.hits["一直限流"] == 3


def test_amap_bad_key_is_fatal_and_bad_params_is_not(amap_server: FakeServer) -> None:
    with pytest.raises(ProviderError, match="10001 INVALID_USER_KEY") as err:
        _amap(amap_server, key="bad").geocode("南山区科苑路15号")
    assert err.value.fatal and err.value.code == "10001"
    with pytest.raises(ProviderError, match="20000") as err2:
        _amap(amap_server).geocode("参数错误")
    assert not err2.value.fatal


def test_amap_server_errors_are_retried_then_reported(amap_server: FakeServer) -> None:
    with pytest.raises(ProviderError, match="HTTP 500"):
        _amap(amap_server, max_retries=1).geocode("服务器错误")
    assert amap_server.hits["服务器错误"] == 2


def test_amap_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEOALLOC_AMAP_KEY", raising=False)
    with pytest.raises(ProviderError, match="GEOALLOC_AMAP_KEY"):
        AMapProvider()
    monkeypatch.setenv("GEOALLOC_AMAP_KEY", "from-env")
    assert AMapProvider().key == "from-env"


def test_frame_uses_the_provider_and_falls_back_offline(amap_server: FakeServer) -> None:
    df = pd.DataFrame({
        "member_id": ["a", "b", "c", "d"],
        "address": ["南山区科苑路15号", "深圳市罗湖区东门街道", "北京市朝阳区1号", "南山区科苑路15号"],
    })
    p = _amap(amap_server)
    out = geocode_frame(df, geocoder=OfflineGeocoder(), provider=p).set_index("member_id")
    assert out.loc["a", "geo_precision"] == "landmark" and out.loc["a", "geo_reason"].startswith("amap")
    assert out.loc["b", "geo_subdistrict_zh"] == "东门街道" and out.loc["b", "geo_precision"] == "subdistrict"
    assert out.loc["c", "geo_status"] == "out_of_city"  # never sent to the provider
    assert amap_server.hits["南山区科苑路15号"] == 1 and amap_server.hits["北京市朝阳区1号"] == 0


def test_frame_disables_a_provider_after_a_fatal_error(amap_server: FakeServer) -> None:
    df = pd.DataFrame({"member_id": ["a", "b"], "address": ["南山区科苑路15号", "深圳市罗湖区东门街道"]})
    out = geocode_frame(df, provider=_amap(amap_server, key="bad"))
    assert out["geo_precision"].tolist() == ["district", "subdistrict"]
    assert all("disabled after" in r for r in out["geo_reason"])
    assert sum(amap_server.hits.values()) == 1


# ---- Nominatim ---------------------------------------------------------------------------------

def _place(lon: float, lat: float, rank: int | None, kind: str = "building") -> dict[str, Any]:
    place: dict[str, Any] = {
        "place_id": 1234, "licence": "Data © OpenStreetMap contributors, ODbL 1.0. https://osm.org/copyright",
        "osm_type": "way", "osm_id": 5678, "boundingbox": [str(lat - 1e-4), str(lat + 1e-4), str(lon - 1e-4), str(lon + 1e-4)],
        "lat": f"{lat:.7f}", "lon": f"{lon:.7f}", "display_name": "科苑路, 粤海街道, 南山区, 深圳市, 广东省, 518000, 中国",
        "class": "building", "type": kind, "importance": 0.0001,
        "address": {"road": "科苑路", "suburb": "粤海街道", "city_district": "南山区", "city": "深圳市",
                    "state": "广东省", "ISO3166-2-lvl4": "CN-GD", "postcode": "518000", "country": "中国",
                    "country_code": "cn"},
    }
    if rank is not None:
        place["place_rank"] = rank
        place["addresstype"] = kind
    return place


def nominatim_respond(path: str, q: dict[str, str], hits: int) -> tuple[int, dict[str, str], Any]:
    assert path == "/search" and q.get("format") == "json" and q.get("countrycodes") == "cn"
    text = q["q"]
    if text == "科苑路15号":
        return 200, {}, [_place(*TRUE_POINT, rank=30)]
    if text == "粤海街道":
        return 200, {}, [_place(113.94, 22.53, rank=None, kind="suburb")]  # older format: no place_rank
    if text == "深圳":
        return 200, {}, [_place(114.06, 22.54, rank=16, kind="city")]
    if text == "限流一次":
        return (429, {"Retry-After": "0"}, {"error": "Too Many Requests"}) if hits == 1 else (200, {}, [_place(*TRUE_POINT, 30)])
    if text == "一直限流":
        return 429, {}, {"error": "Too Many Requests"}
    if text == "禁止":
        return 403, {}, {"error": {"code": 403, "message": "Forbidden"}}
    return 200, {}, []


@pytest.fixture()
def nominatim_server() -> Iterator[FakeServer]:
    server = FakeServer(nominatim_respond)
    yield server
    server.close()


def _nominatim(server: FakeServer, **kw: Any) -> NominatimProvider:
    return NominatimProvider(f"127.0.0.1:{server.port}", scheme="http", backoff=0.01, sleep=lambda s: None, **kw)


def test_nominatim_success_and_precision(nominatim_server: FakeServer) -> None:
    p = _nominatim(nominatim_server)
    assert isinstance(p, Provider)
    r = p.geocode("科苑路15号")
    assert r is not None and r.precision == GeoPrecision.LANDMARK
    assert (round(r.lon, 6), round(r.lat, 6)) == TRUE_POINT  # WGS-84 already: not converted
    assert r.district_zh == "南山区" and r.subdistrict_zh == "粤海街道"
    suburb = p.geocode("粤海街道")
    assert suburb is not None and suburb.precision == GeoPrecision.SUBDISTRICT
    assert p.geocode("深圳") is None  # a whole city is no better than offline
    assert p.geocode("查无此地") is None


def test_nominatim_cache_hit(nominatim_server: FakeServer) -> None:
    p = _nominatim(nominatim_server)
    p.geocode("科苑路15号")
    p.geocode("科苑路15号")
    assert nominatim_server.hits["科苑路15号"] == 1 and p.requests == 1


def test_nominatim_rate_limit_retry_then_fatal(nominatim_server: FakeServer) -> None:
    p = _nominatim(nominatim_server, max_retries=2)
    assert p.geocode("限流一次") is not None and nominatim_server.hits["限流一次"] == 2
    with pytest.raises(ProviderError, match="rate limit.*persisted after 2 retries") as err:
        p.geocode("一直限流")
    assert err.value.fatal and nominatim_server.hits["一直限流"] == 3


def test_nominatim_forbidden_is_fatal(nominatim_server: FakeServer) -> None:
    with pytest.raises(ProviderError, match="refused") as err:
        _nominatim(nominatim_server).geocode("禁止")
    assert err.value.fatal
