"""Who is calling: JWT in a header, JWT in an HTTP-only cookie, or an API key.

Each class returns `(user, auth)` the DRF way. An API key authenticates as an `ApiKeyPrincipal`
(not a Django user: it has scopes, not model permissions) with the `ApiKey` as `request.auth`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework_simplejwt.authentication import JWTAuthentication

from cmsproject.models import ApiKey
from cmsproject.services import api_key_authenticate


class ApiKeyPrincipal(AnonymousUser):
    """The caller behind an API key: authenticated, never staff, allowed only by scope."""

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.username = f"api-key:{api_key.prefix}"

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_anonymous(self) -> bool:  # type: ignore[override]
        return False

    def __str__(self) -> str:
        return self.username


class BearerJWTAuthentication(JWTAuthentication):
    """`Authorization: Bearer <access JWT>`. First in the list so 401s carry WWW-Authenticate."""


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request: Any) -> tuple[ApiKeyPrincipal, ApiKey] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].decode(errors="replace").lower() != self.keyword.lower():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Send the header as `Api-Key <key>`.")
        key = api_key_authenticate(raw_key=parts[1].decode(errors="replace"))
        if key is None:
            raise exceptions.AuthenticationFailed("The API key is invalid or revoked.")
        return ApiKeyPrincipal(key), key

    def authenticate_header(self, request: Any) -> str:
        return self.keyword


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> str:  # type: ignore[override]
        return reason


class CookieJWTAuthentication(JWTAuthentication):
    """The access JWT from an HTTP-only cookie, for browsers. Cookies ride along on cross-site
    requests, so unsafe methods must pass Django's CSRF check (header `X-CSRFToken`)."""

    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        raw = request.COOKIES.get(settings.JWT_ACCESS_COOKIE)
        if not raw:
            return None
        validated = self.get_validated_token(raw.encode())
        user = self.get_user(validated)
        self.enforce_csrf(request)
        return user, validated

    def enforce_csrf(self, request: Any) -> None:
        check = _CsrfCheck(lambda req: None)
        check.process_request(request)
        reason = check.process_view(request, None, (), {})
        if reason:
            raise exceptions.PermissionDenied(f"CSRF check failed: {reason}")

    def authenticate_header(self, request: Any) -> str | None:
        return None


def request_has_credentials(request: HttpRequest) -> bool:
    """Whether a request carries any credential (a token, an API key, the auth cookie): hot
    anonymous paths served before DRF hand everything else to DRF's authentication."""
    return "HTTP_AUTHORIZATION" in request.META or settings.JWT_ACCESS_COOKIE in request.COOKIES


def request_api_key(request: Any) -> ApiKey | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiKey) else None


class HasApiKeyScope(BasePermission):
    """Allows API keys that hold the view's `required_scope` (one string, or a method map)."""

    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request: Any, view: Any) -> bool:
        key = request_api_key(request)
        if key is None:
            return False
        scope = view.required_scope
        if isinstance(scope, dict):
            scope = scope.get(request.method)
        return scope is not None and key.has_scope(scope)


class IsStaffUser(BasePermission):
    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class StaffModelPermission(BasePermission):
    """Staff who hold the Django model permission for the method (view for reads)."""

    perms_for_method = {
        "GET": "view",
        "HEAD": "view",
        "OPTIONS": "view",
        "POST": "add",
        "PUT": "change",
        "PATCH": "change",
        "DELETE": "delete",
    }

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff):
            return False
        model = view.permission_model
        action = self.perms_for_method.get(request.method)
        if action is None:
            return False
        return user.has_perm(f"{model._meta.app_label}.{action}_{model._meta.model_name}")
