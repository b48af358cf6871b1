"""Rate limits per API.md. Rates come from settings at call time (env-driven, test-overridable).

Each caller falls into exactly one general bucket: anonymous callers per IP, users per user id,
API keys per key. Endpoints add their own scoped throttles (events ingestion, login).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from cmsproject.auth import request_api_key


class CmsRateThrottle(SimpleRateThrottle):
    def get_rate(self) -> str:
        return settings.CMS_THROTTLE_RATES[self.scope]


class AnonThrottle(CmsRateThrottle):
    scope = "anon"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


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
        ident = f"{self.get_ident(request)}:{username}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
