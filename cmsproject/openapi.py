"""How our authentication classes appear in the OpenAPI document (drf-spectacular extensions)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerJWTScheme(OpenApiAuthenticationExtension):
    target_class = "cmsproject.auth.BearerJWTAuthentication"
    name = "BearerJWT"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


class CookieJWTScheme(OpenApiAuthenticationExtension):
    target_class = "cmsproject.auth.CookieJWTAuthentication"
    name = "CookieJWT"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "cms_access",
            "description": "Access JWT in an HTTP-only cookie; unsafe methods need X-CSRFToken.",
        }


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "cmsproject.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`; scoped, revocable.",
        }


class StatelessBearerJWTScheme(BearerJWTScheme):
    """Event ingestion reads the same Bearer JWT without a user lookup."""

    target_class = "analytics.api.views.StatelessBearerAuthentication"
    name = "BearerJWTStateless"
