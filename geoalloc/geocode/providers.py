"""Optional online geocoders behind one interface, off by default, with a shared cache.

* :class:`AMapProvider`: AMap (高德) web service v3 ``geocode/geo``. Results are GCJ-02 and are
  converted to WGS-84 exactly. QPS-limit replies are retried with exponential backoff.
* :class:`NominatimProvider`: a self-hosted Nominatim through geopy (results are WGS-84).

Both return None when they have nothing useful (no match, or a match coarser than a district),
so the caller falls back to the offline geocoder; they raise :class:`ProviderError` on service
errors, with ``fatal=True`` when further requests cannot succeed (bad key, quota exhausted).
The only network traffic geoalloc ever makes is here, and only when a provider is configured.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


from geoalloc.geocode.datum import gcj02_to_wgs84
from geoalloc.geocode.offline import GeocodeResult
from geoalloc.model import GeoPrecision, GeoStatus

__all__ = ["AMapProvider", "NominatimProvider", "Provider", "ProviderCache", "ProviderError"]


class ProviderError(RuntimeError):
    """A provider could not answer. ``fatal``: no later request can succeed either."""

    def __init__(self, message: str, *, fatal: bool = False, code: str | None = None) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.code = code


@runtime_checkable
class Provider(Protocol):
    """Anything that turns an address into a WGS-84 :class:`GeocodeResult` (or None)."""

    name: str

    def geocode(self, address: str) -> GeocodeResult | None: ...


class ProviderCache:
    """Remembers provider answers (including "no result") in memory and, optionally, in SQLite.

    Errors are never cached. Safe to share between providers: entries are keyed by provider name.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._mem: dict[tuple[str, str], GeocodeResult | None] = {}
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = sqlite3.connect(str(path), check_same_thread=False)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS geocode_cache (provider TEXT, address TEXT, payload TEXT, "
                "PRIMARY KEY (provider, address))"
            )
            self._db.commit()

    def get(self, provider: str, address: str) -> tuple[bool, GeocodeResult | None]:
        """(hit, result). A hit with result None means the provider had nothing for it."""
        key = (provider, address)
        with self._lock:
            if key in self._mem:
                return True, self._mem[key]
            if self._db is None:
                return False, None
            row = self._db.execute(
                "SELECT payload FROM geocode_cache WHERE provider=? AND address=?", key
            ).fetchone()
        if row is None:
            return False, None
        result = _decode(row[0])
        with self._lock:
            self._mem[key] = result
        return True, result

    def put(self, provider: str, address: str, result: GeocodeResult | None) -> None:
        with self._lock:
            self._mem[(provider, address)] = result
            if self._db is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO geocode_cache VALUES (?, ?, ?)", (provider, address, _encode(result))
                )
                self._db.commit()

    def __len__(self) -> int:
        return len(self._mem)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _encode(r: GeocodeResult | None) -> str:
    if r is None:
        return "null"
    d = asdict(r)
    d["precision"], d["status"] = r.precision.value, r.status.value
    return json.dumps(d, ensure_ascii=False)


def _decode(payload: str) -> GeocodeResult | None:
    d = json.loads(payload)
    if d is None:
        return None
    d["precision"], d["status"] = GeoPrecision(d["precision"]), GeoStatus(d["status"])
    return GeocodeResult(**d)


def _district_of(lon: float, lat: float) -> str | None:
    from geoalloc.districts import district_at

    return district_at(lon, lat)


class _CachedProvider:
    """Cache handling shared by the providers: ``_lookup`` does the real request."""

    name = "provider"

    def __init__(self, cache: ProviderCache | None) -> None:
        self.cache = cache if cache is not None else ProviderCache()
        self.requests = 0  # HTTP requests actually sent (tests check cache hits with it)

    def geocode(self, address: str) -> GeocodeResult | None:
        """Look up ``address`` (cached). Points outside Shenzhen are not returned as placements."""
        text = address.strip()
        if not text:
            return None
        hit, cached = self.cache.get(self.name, text)
        if hit:
            return cached
        result = self._lookup(text)
        self.cache.put(self.name, text, result)
        return result

    def _lookup(self, address: str) -> GeocodeResult | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _result(self, lon: float, lat: float, precision: GeoPrecision, status: GeoStatus,
                subdistrict: str | None, what: str) -> GeocodeResult | None:
        district = _district_of(lon, lat)
        if district is None:
            return None  # outside the city: let the offline parse decide (it may be out_of_city)
        return GeocodeResult(lon, lat, precision, status, district, subdistrict, None, f"{self.name}: {what}")


# AMap infocodes (see the web service "info" table): which are worth retrying and which end the run.
_AMAP_RETRY = {"10004", "10014", "10015", "10016", "10019", "10020", "10021", "10022", "10029"}
_AMAP_FATAL = {"10001", "10002", "10003", "10005", "10006", "10007", "10008", "10009", "10010",
               "10011", "10012", "10013", "10044", "10045"}
_AMAP_POINT = {"门牌号", "门址", "单元号", "楼层", "房间", "兴趣点", "住宅区", "道路交叉路口", "公交地铁站点", "公交站台、地铁站"}
_AMAP_AREA = {"热点商圈", "村庄", "道路", "小巷", "开发区", "乡镇"}


def _amap_text(value: Any) -> str | None:
    """AMap writes empty fields as ``[]``; return a non-empty string or None."""
    return value if isinstance(value, str) and value else None


class AMapProvider(_CachedProvider):
    """AMap geocoding web service v3 (``/v3/geocode/geo``), restricted to 深圳.

    The key comes from ``key`` or ``GEOALLOC_AMAP_KEY``; ``base_url`` (or ``GEOALLOC_AMAP_URL``)
    lets tests and proxies point it elsewhere.
    """

    name = "amap"

    def __init__(
        self,
        key: str | None = None,
        *,
        base_url: str | None = None,
        city: str = "深圳",
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        cache: ProviderCache | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(cache)
        self.key = key or os.environ.get("GEOALLOC_AMAP_KEY", "")
        if not self.key:
            raise ProviderError("AMap needs a web-service key: pass key= or set GEOALLOC_AMAP_KEY", fatal=True)
        self.base_url = (base_url or os.environ.get("GEOALLOC_AMAP_URL") or "https://restapi.amap.com").rstrip("/")
        self.city = city
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._sleep = sleep

    def _get(self, address: str) -> dict[str, Any]:
        query = urllib.parse.urlencode({"key": self.key, "address": address, "city": self.city, "output": "JSON"})
        url = f"{self.base_url}/v3/geocode/geo?{query}"
        self.requests += 1
        with urllib.request.urlopen(url, timeout=self.timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))

    def _lookup(self, address: str) -> GeocodeResult | None:
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1))
            try:
                data = self._get(address)
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code in (429,) or exc.code >= 500:
                    continue
                raise ProviderError(f"AMap answered HTTP {exc.code}", fatal=exc.code in (401, 403)) from exc
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                last = f"cannot reach {self.base_url}: {exc}"
                continue
            except json.JSONDecodeError as exc:
                raise ProviderError(f"AMap answered with something that is not JSON: {exc}") from exc
            if str(data.get("status")) == "1":
                return self._parse(data)
            code, info = str(data.get("infocode", "")), str(data.get("info", ""))
            if code in _AMAP_RETRY or "QPS" in info or "TOO_FREQUENT" in info:
                last = f"rate limit (infocode {code} {info})"
                continue
            raise ProviderError(f"AMap error infocode {code} {info}", fatal=code in _AMAP_FATAL, code=code)
        raise ProviderError(
            f"AMap: {last} persisted after {self.max_retries} retries; lower the request rate or raise the key's quota",
            fatal=True,
        )

    def _parse(self, data: dict[str, Any]) -> GeocodeResult | None:
        items = data.get("geocodes") or []
        if not items:
            return None
        g = items[0]
        level = _amap_text(g.get("level")) or "未知"
        if level in _AMAP_POINT:
            precision, status = GeoPrecision.LANDMARK, GeoStatus.OK
        elif level in _AMAP_AREA:
            precision, status = GeoPrecision.SUBDISTRICT, GeoStatus.APPROXIMATE
        elif level == "区县":
            precision, status = GeoPrecision.DISTRICT, GeoStatus.APPROXIMATE
        else:
            return None  # city, province, country or unknown: no better than offline
        loc = _amap_text(g.get("location"))
        if loc is None or "," not in loc:
            return None
        glon, glat = (float(v) for v in loc.split(",", 1))
        lon, lat = gcj02_to_wgs84(glon, glat)
        return self._result(lon, lat, precision, status, _amap_text(g.get("township")),
                            f"level {level}, GCJ-02 converted to WGS-84")


# Rough place ranks for results without one (Nominatim's own scale: 30 = a house, 12 = a county).
_NOMINATIM_TYPE_RANK = {
    "country": 4, "state": 8, "province": 8, "region": 8, "city": 8, "county": 12,
    "city_district": 14, "district": 14, "borough": 14, "town": 18, "suburb": 20, "village": 19,
    "quarter": 22, "neighbourhood": 22, "hamlet": 20, "road": 26, "residential": 26,
}


_NOMINATIM_TOO_COARSE = {"country", "state", "province", "region", "city", "municipality"}


class NominatimProvider(_CachedProvider):
    """A self-hosted Nominatim through geopy (``domain`` like ``nominatim.internal:8080``)."""

    name = "nominatim"

    def __init__(
        self,
        domain: str | None = None,
        *,
        scheme: str = "https",
        user_agent: str = "geoalloc",
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        cache: ProviderCache | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from geopy.geocoders import Nominatim

        super().__init__(cache)
        domain = domain or os.environ.get("GEOALLOC_NOMINATIM_DOMAIN", "")
        if not domain:
            raise ProviderError("Nominatim needs the domain of your own server (GEOALLOC_NOMINATIM_DOMAIN)", fatal=True)
        self._geo = Nominatim(domain=domain, scheme=scheme, user_agent=user_agent, timeout=timeout)
        self.max_retries = max_retries
        self.backoff = backoff
        self._sleep = sleep

    def _lookup(self, address: str) -> GeocodeResult | None:
        from geopy import exc as gexc

        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1))
            self.requests += 1
            try:
                loc = self._geo.geocode(address, exactly_one=True, addressdetails=True, country_codes="cn")
            except gexc.GeocoderRateLimited as e:
                last = "rate limit (HTTP 429)"
                if e.retry_after:
                    self._sleep(min(float(e.retry_after), 60.0))
                continue
            except (gexc.GeocoderUnavailable, gexc.GeocoderTimedOut) as e:
                last = f"unavailable: {e}"
                continue
            except (gexc.GeocoderAuthenticationFailure, gexc.GeocoderInsufficientPrivileges,
                    gexc.GeocoderQuotaExceeded) as e:
                raise ProviderError(f"Nominatim refused: {e}", fatal=True) from e
            except gexc.GeocoderServiceError as e:
                raise ProviderError(f"Nominatim error: {e}") from e
            if loc is None:
                return None
            return self._parse(loc.raw)
        raise ProviderError(f"Nominatim: {last} persisted after {self.max_retries} retries", fatal=True)

    def _parse(self, raw: dict[str, Any]) -> GeocodeResult | None:
        lon, lat = float(raw["lon"]), float(raw["lat"])
        # format=json carries place_rank only in newer Nominatim releases; else judge by the OSM tag.
        kind = str(raw.get("addresstype") or raw.get("type") or "")
        if kind in _NOMINATIM_TOO_COARSE:
            return None  # the whole city (rank 16 in Nominatim) is no better than offline
        rank = int(raw.get("place_rank") or _NOMINATIM_TYPE_RANK.get(kind, 30))
        if rank >= 26:
            precision, status = GeoPrecision.LANDMARK, GeoStatus.OK
        elif rank >= 17:
            precision, status = GeoPrecision.SUBDISTRICT, GeoStatus.APPROXIMATE
        elif rank >= 12:
            precision, status = GeoPrecision.DISTRICT, GeoStatus.APPROXIMATE
        else:
            return None
        addr = raw.get("address") or {}
        sub = addr.get("suburb") or addr.get("town") or None
        return self._result(lon, lat, precision, status, sub if isinstance(sub, str) else None,
                            f"place_rank {rank} ({raw.get('addresstype') or raw.get('type', '?')})")
