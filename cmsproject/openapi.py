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


# --- Errors every operation can answer ------------------------------------------------------------
PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_COMPONENT = {
    "type": "object",
    "description": "RFC 9457 problem details; `errors` names each bad field of a 400.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "attr": {"type": "string"},
                    "code": {"type": "string"},
                    "detail": {"type": "string"},
                },
                "required": ["attr", "code", "detail"],
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
}
ERROR_DESCRIPTIONS = {
    "400": "Bad input (query, body or headers); `errors` names each bad field.",
    "401": "No or bad credentials.",
    "403": "Not allowed for this caller.",
    "404": "Absent (or not shown to this caller), or a page past the end.",
    "413": "The body is larger than the limit.",
    "415": "The body is not in a media type this operation takes.",
    "409": "Conflicts with the current state (a version, a key in use, a breaking change).",
    "429": "Throttled; `Retry-After` says when to try again.",
    "503": "A dependency (database, event buffer) is unavailable; try again shortly.",
}


def _errors_of(path: str, operation: dict[str, Any]) -> list[str]:
    """The statuses API.md's conventions give this operation: bad input and throttling
    everywhere; credentials and permissions where an authentication scheme applies (a bad token
    is a 401 even where anonymous callers are welcome); 404 where a path names an object or a
    list is paged; body limits where there is a body."""
    codes = ["400", "429"]
    if operation.get("security"):
        codes += ["401", "403"]
    names = {parameter.get("name") for parameter in operation.get("parameters", [])}
    if "{" in path or names & {"page", "cursor"}:
        codes.append("404")
    if "requestBody" in operation:
        codes += ["413", "415"]
    return codes


GENERIC_PROBLEM_DESCRIPTION = "application/problem+json"  # views' `PROBLEM` placeholder


def postprocess_problem_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every operation documents the errors it can give,
    each with the problem+json body, so clients (and schemathesis) can rely on both. The
    generic ones are shared components (`#/components/responses/Problem404`); an error a view
    describes itself keeps its description and gets the body."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_COMPONENT
    problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    shared = components.setdefault("responses", {})
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for code in _errors_of(path, operation):
                responses.setdefault(code, {"description": GENERIC_PROBLEM_DESCRIPTION})
            for code, response in responses.items():
                if code[0] not in "45" or "$ref" in response or "content" in response:
                    continue
                if response.get("description") == GENERIC_PROBLEM_DESCRIPTION and (
                    code in ERROR_DESCRIPTIONS
                ):
                    name = f"Problem{code}"
                    shared[name] = {"description": ERROR_DESCRIPTIONS[code], "content": problem}
                    responses[code] = {"$ref": f"#/components/responses/{name}"}
                else:
                    response["content"] = problem
    components["responses"] = dict(sorted(shared.items()))
    return result
