"""REST views of the platform: health, JWT auth (header and cookie mode), API keys."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError
from django.middleware.csrf import get_token
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken

from cmsproject.auth import (
    ApiKeyAuthentication,
    CookieJWTAuthentication,
    HasApiKeyScope,
    StaffModelPermission,
)
from cmsproject.health import health_report
from cmsproject.models import ApiKey
from cmsproject.serializers import (
    AccessTokenSerializer,
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    CustomerTokenRequestSerializer,
    HealthSerializer,
    RefreshSerializer,
    TokenPairSerializer,
)
from cmsproject.services import api_key_create, api_key_revoke
from cmsproject.throttling import AnonThrottle, LoginThrottle

PROBLEM = OpenApiResponse(description="application/problem+json")


class HealthApi(APIView):
    """Liveness and dependencies. Load balancers poll it, so it is never throttled."""

    permission_classes = (AllowAny,)
    throttle_classes = ()

    def perform_authentication(self, request: Request) -> None:
        """A token's user is read from the database. When that is what is down, answer as to
        anyone (which failed, without the error texts) instead of failing before the checks."""
        try:
            request.user  # noqa: B018 (authenticates)
        except DatabaseError:
            request.user, request.auth = AnonymousUser(), None

    @extend_schema(responses={200: HealthSerializer, 503: PROBLEM})
    def get(self, request: Request) -> Response:
        report = health_report()
        failing = sorted(name for name, result in report.items() if result != "ok")
        if not request.user.is_staff:
            # Error texts can name hosts and ports: only staff see them.
            report = {name: "ok" if result == "ok" else "error" for name, result in report.items()}
        if not failing:
            return Response({"status": "ok", "checks": report})
        return Response(
            {
                "type": "urn:cms:problem:unhealthy",
                "title": "Service Unavailable",
                "status": 503,
                "detail": f"Failing: {', '.join(failing)}.",
                "status_text": "error",
                "checks": report,
            },
            status=503,
            content_type="application/problem+json",
        )


# --- JWT -----------------------------------------------------------------------------------------
def _set_auth_cookies(response: Response, *, access: str, refresh: str) -> None:
    jwt = settings.SIMPLE_JWT
    common = {"secure": settings.COOKIES_SECURE, "httponly": True, "samesite": "Lax"}
    response.set_cookie(
        settings.JWT_ACCESS_COOKIE,
        access,
        max_age=int(jwt["ACCESS_TOKEN_LIFETIME"].total_seconds()),
        path="/",
        **common,
    )
    response.set_cookie(
        settings.JWT_REFRESH_COOKIE,
        refresh,
        max_age=int(jwt["REFRESH_TOKEN_LIFETIME"].total_seconds()),
        path=settings.JWT_REFRESH_COOKIE_PATH,
        **common,
    )


def _clear_auth_cookies(response: Response) -> None:
    response.delete_cookie(settings.JWT_ACCESS_COOKIE, path="/")
    response.delete_cookie(settings.JWT_REFRESH_COOKIE, path=settings.JWT_REFRESH_COOKIE_PATH)


def _cookie_mode_response(request: Request, tokens: dict[str, str]) -> Response:
    response = Response({"cookie": True, "csrf_token": get_token(request._request)})
    _set_auth_cookies(response, access=tokens["access"], refresh=tokens["refresh"])
    return response


def _refresh_from(request: Request) -> tuple[str, bool]:
    """The refresh token from the body, else from the cookie (which then needs CSRF)."""
    body = RefreshSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    raw = body.validated_data.get("refresh")
    if raw:
        return raw, False
    raw = request.COOKIES.get(settings.JWT_REFRESH_COOKIE)
    if not raw:
        raise AuthenticationFailed("Send `refresh` in the body, or use cookie mode.")
    CookieJWTAuthentication().enforce_csrf(request)
    return raw, True


class CredentialExchangeApi(APIView):
    """Base of the endpoints that take credentials in the body rather than a header: a stale
    Authorization header must not get in the way, and failures are 401 (not DRF's 403)."""

    permission_classes = (AllowAny,)
    authentication_classes = ()
    audit_writes = False

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class TokenObtainApi(CredentialExchangeApi):
    """`{"username", "password"}` → `{"access", "refresh"}`.

    With `"cookie": true` the tokens go into HTTP-only cookies instead (web clients).
    """

    throttle_classes = (AnonThrottle, LoginThrottle)

    @extend_schema(
        request=inline_serializer(
            "TokenObtainRequest",
            {
                "username": serializers.CharField(),
                "password": serializers.CharField(),
                "cookie": serializers.BooleanField(required=False),
            },
        ),
        responses={200: TokenPairSerializer, 401: PROBLEM, 429: PROBLEM},
    )
    def post(self, request: Request) -> Response:
        serializer = TokenObtainPairSerializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except TokenError as exc:
            raise AuthenticationFailed(str(exc)) from exc
        tokens = serializer.validated_data
        if request.data.get("cookie") is True:
            return _cookie_mode_response(request, tokens)
        return Response({"access": tokens["access"], "refresh": tokens["refresh"]})


class TokenRefreshApi(CredentialExchangeApi):
    """Rotates: the refresh token sent is blacklisted, a new pair comes back."""

    @extend_schema(request=RefreshSerializer, responses={200: TokenPairSerializer, 401: PROBLEM})
    def post(self, request: Request) -> Response:
        raw, from_cookie = _refresh_from(request)
        serializer = TokenRefreshSerializer(data={"refresh": raw})
        try:
            serializer.is_valid(raise_exception=True)
        except TokenError as exc:
            raise AuthenticationFailed(str(exc), code="token_not_valid") from exc
        tokens = serializer.validated_data
        if from_cookie:
            return _cookie_mode_response(request, tokens)
        return Response({"access": tokens["access"], "refresh": tokens["refresh"]})


class LogoutApi(CredentialExchangeApi):
    @extend_schema(request=RefreshSerializer, responses={204: None, 401: PROBLEM})
    def post(self, request: Request) -> Response:
        raw, _ = _refresh_from(request)
        try:
            RefreshToken(raw).blacklist()
        except TokenError as exc:
            raise AuthenticationFailed(str(exc), code="token_not_valid") from exc
        response = Response(status=status.HTTP_204_NO_CONTENT)
        _clear_auth_cookies(response)
        return response


class CustomerTokenApi(APIView):
    """A site's backend trades an API key (scope `customers:impersonate`) for a customer JWT."""

    authentication_classes = (ApiKeyAuthentication,)
    permission_classes = (HasApiKeyScope,)
    required_scope = ApiKey.Scope.CUSTOMERS_IMPERSONATE

    def permission_denied(self, request: Request, message: Any = None, code: Any = None) -> None:
        if request.auth is None:
            raise AuthenticationFailed("This endpoint needs an API key (`Authorization: Api-Key`).")
        raise PermissionDenied(message or HasApiKeyScope.message)

    @extend_schema(
        request=CustomerTokenRequestSerializer,
        responses={
            200: AccessTokenSerializer,
            400: PROBLEM,
            401: PROBLEM,
            403: PROBLEM,
            409: PROBLEM,
        },
    )
    def post(self, request: Request) -> Response:
        # Imported here: customers' modules import cmsproject's, not the other way round.
        from customers.services import customer_token_issue

        body = CustomerTokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        access = customer_token_issue(external_id=body.validated_data["external_id"])
        return Response({"access": access})


# --- API keys ------------------------------------------------------------------------------------
class ApiKeyListApi(generics.ListAPIView):
    permission_classes = (StaffModelPermission,)
    permission_model = ApiKey
    queryset = ApiKey.objects.select_related("created_by")
    serializer_class = ApiKeySerializer

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def post(self, request: Request) -> Response:
        body = ApiKeyCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key, full_key = api_key_create(created_by=request.user, **body.validated_data)
        key.key = full_key
        return Response(ApiKeyCreatedSerializer(key).data, status=status.HTTP_201_CREATED)


class ApiKeyDetailApi(APIView):
    permission_classes = (StaffModelPermission,)
    permission_model = ApiKey

    @extend_schema(responses={204: None, 404: PROBLEM})
    def delete(self, request: Request, prefix: str) -> Response:
        api_key_revoke(prefix=prefix)
        return Response(status=status.HTTP_204_NO_CONTENT)
