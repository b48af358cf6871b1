"""`GET /metrics`: the Prometheus text format, for staff or the scraper.

A scraper sends `Authorization: Bearer <CMS_METRICS_TOKEN>` (compared in constant time); without
that setting only staff may read it (an admin session, or a staff JWT). Anyone else gets a
problem+json 401 (no credentials) or 403 (credentials that are not good enough).
"""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.views import APIView

from cmsproject.auth import BearerJWTAuthentication, CookieJWTAuthentication, IsStaffUser
from cmsproject.observability.metrics import exposition


def _bearer(request: HttpRequest) -> str | None:
    scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def _is_metrics_token(presented: str | None) -> bool:
    expected = settings.CMS_METRICS_TOKEN
    return bool(expected and presented) and hmac.compare_digest(
        presented.encode(), expected.encode()
    )


def metrics_response() -> HttpResponse:
    body, content_type = exposition()
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response


class MetricsApi(APIView):
    """Staff only. API keys are never staff, so they are not offered here."""

    authentication_classes = (
        BearerJWTAuthentication,
        CookieJWTAuthentication,
        SessionAuthentication,
    )
    permission_classes = (IsStaffUser,)

    def get(self, request: Request) -> HttpResponse:
        return metrics_response()

    def handle_exception(self, exc: Exception) -> Any:
        # A bearer token that is not even shaped like a JWT is a wrong metrics token, which
        # another try will not fix (403). An expired JWT stays 401: its owner can refresh it.
        presented = _bearer(self.request)
        if (
            isinstance(exc, exceptions.AuthenticationFailed)
            and presented
            and presented.count(".") != 2
        ):
            exc = exceptions.PermissionDenied(
                "The token is not the metrics token or a staff token."
            )
        return super().handle_exception(exc)


_staff_view = MetricsApi.as_view()


def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method in ("GET", "HEAD") and _is_metrics_token(_bearer(request)):
        return metrics_response()
    return _staff_view(request)
