"""Rate limits per API.md. Rates come from settings at call time (env-driven, test-overridable).

Each caller falls into exactly one general bucket: anonymous callers per IP, users per user id,
API keys per key. Endpoints add their own scoped throttles (events ingestion, login).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from cmsproject.auth import request_api_key


class CmsRateThrottle(SimpleRateThrottle):
    """A fixed-window counter: one atomic increment per request (one Redis round trip).

    DRF's default keeps a list of every request time per caller and reads and rewrites it on
    each request: two round trips and a list as long as the rate (600 entries for ingestion).
    A fixed window may let a caller burst up to twice the rate across a window boundary, which
    is an acceptable price for a limit meant to stop floods, not to meter.
    """

    def get_rate(self) -> str:
        return settings.CMS_THROTTLE_RATES[self.scope]

    def get_ident(self, request: Any) -> str:
        """DRF's, reading the header from META: `request.headers` would copy every header of
        the request for this one (measurable on the anonymous paths served outside DRF)."""
        xff = request.META.get("HTTP_X_FORWARDED_FOR")
        remote_addr = request.META.get("REMOTE_ADDR")
        num_proxies = api_settings.NUM_PROXIES
        if num_proxies is not None:
            if num_proxies == 0 or xff is None:
                return remote_addr
            addrs = xff.split(",")
            return addrs[-min(num_proxies, len(addrs))].strip()
        return "".join(xff.split()) if xff else remote_addr

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        count = _increment(f"{self.key}:{window}", ttl=self.duration)
        if count <= self.num_requests:
            return True
        self._window_end = (window + 1) * self.duration
        self.now = now
        return False

    def wait(self) -> float:
        return max(1.0, self._window_end - self.now)


def _increment(key: str, *, ttl: int) -> int:
    """Atomically add one to a counter that expires with its window."""
    client_of = getattr(getattr(cache, "client", None), "get_client", None)
    if client_of is not None:  # django-redis: INCR and EXPIRE NX in one pipeline
        try:
            pipe = client_of(write=True).pipeline(transaction=False)
            full_key = cache.make_and_validate_key(key)
            pipe.incr(full_key)
            pipe.expire(full_key, ttl + 1, nx=True)
            return int(pipe.execute()[0])
        except Exception:
            return 0
    cache.add(key, 0, timeout=ttl + 1)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=ttl + 1)
        return 1


class AnonThrottle(CmsRateThrottle):
    scope = "anon"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


@dataclass(frozen=True)
class ThrottleWindow:
    """The current window of one caller's fixed-window counter, for hot paths served outside DRF
    that count a request themselves, in the same Redis round trip as their own work.

    The key is the one `CmsRateThrottle.allow_request` increments for the same caller and scope,
    so a caller's budget is one counter whichever path serves the request.
    """

    key: str  # the cache key, before the cache's prefix and version
    limit: int  # requests allowed in the window
    duration: int  # the window's length in seconds
    retry_after: float  # seconds until the window ends: the wait of a request over the limit

    @property
    def redis_key(self) -> str:
        """The key as stored in Redis (django-redis adds the prefix and version). Not validated
        for memcached: it is made of a scope, an address and a number."""
        return cache.make_key(self.key)

    @property
    def expiry(self) -> int:
        """Seconds the counter lives: its window and one more (as `_increment` sets)."""
        return self.duration + 1

    def increment(self) -> int:
        """Count one request (a cache outage counts nothing and allows, as the throttles do)."""
        return _increment(self.key, ttl=self.duration)

    def wait(self, count: int) -> float | None:
        """Seconds to wait if `count` requests are over the limit, else None."""
        return self.retry_after if count > self.limit else None


def anonymous_throttle_window(
    request: Any, throttle_class: type[AnonThrottle] = AnonThrottle
) -> ThrottleWindow | None:
    """The per-IP window an anonymous throttle (`AnonThrottle` or a scoped subclass such as
    `EventsIngestThrottle`) would count this request in; None when the scope has no rate."""
    throttle = throttle_class()
    if throttle.rate is None:
        return None
    now = throttle.timer()
    window = int(now // throttle.duration)
    ident = throttle.cache_format % {"scope": throttle.scope, "ident": throttle.get_ident(request)}
    return ThrottleWindow(
        key=f"{ident}:{window}",
        limit=throttle.num_requests,
        duration=throttle.duration,
        retry_after=max(1.0, (window + 1) * throttle.duration - now),
    )


def anonymous_throttle_then_get(request: Any, key: str) -> tuple[float | None, Any]:
    """For hot anonymous reads served outside DRF: count the request against the same per-IP
    anonymous budget as `AnonThrottle` and read one cache key, in a single Redis round trip.

    Returns (seconds to wait if over the budget, else None; the cached value or None). A cache
    outage allows the request and reads nothing (the caller falls back to the database).
    """
    wait, values = anonymous_throttle_then_get_many(request, [key])
    return wait, values[0]


def anonymous_throttle_then_get_many(
    request: Any, keys: list[str]
) -> tuple[float | None, list[Any]]:
    """`anonymous_throttle_then_get` for several keys, still one round trip."""
    window = anonymous_throttle_window(request)
    if window is None:
        return None, [cache.get(key) for key in keys]
    client_of = getattr(getattr(cache, "client", None), "get_client", None)
    if client_of is not None:
        try:
            pipe = client_of(write=True).pipeline(transaction=False)
            full_counter = window.redis_key
            pipe.incr(full_counter)
            pipe.expire(full_counter, window.expiry, nx=True)
            for key in keys:
                pipe.get(cache.make_and_validate_key(key))
            count, _, *raw = pipe.execute()
            values = [cache.client.decode(item) if item is not None else None for item in raw]
        except Exception:
            count, values = 0, [None] * len(keys)
    else:
        count, values = window.increment(), [cache.get(key) for key in keys]
    wait = window.wait(int(count))
    if wait is not None:
        return wait, [None] * len(keys)
    return None, values


class UserThrottle(CmsRateThrottle):
    scope = "user"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if request_api_key(request) is not None:
            return None
        if not (request.user and request.user.is_authenticated):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class ApiKeyThrottle(CmsRateThrottle):
    scope = "api_key"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        key = request_api_key(request)
        if key is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": key.prefix}


class EventsIngestThrottle(AnonThrottle):
    """Anonymous event ingestion per IP: browsers post many events, so it has its own budget."""

    scope = "events"


class LoginThrottle(CmsRateThrottle):
    """Password attempts per (IP, username): slows guessing one account, and the anonymous
    per-IP budget still caps spraying many accounts from one address."""

    scope = "login"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        username = ""
        if isinstance(request.data, dict):
            username = str(request.data.get("username", ""))[:150].lower()
        # Hashed: the key must not carry whatever bytes a client sends as a username.
        digest = hashlib.sha256(username.encode(errors="replace")).hexdigest()[:32]
        ident = f"{self.get_ident(request)}:{digest}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
