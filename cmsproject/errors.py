"""One place that turns every failure into `application/problem+json` (RFC 9457).

Services raise the domain errors below; REST maps them here, GraphQL maps them in
`cmsproject.graphql`. Django's own 400/403/404/500 handlers and CSRF failures land here too, so no
client ever sees an HTML page or a traceback.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
# The database is down, restarting or refusing connections: the client may try again (503), it
# did nothing wrong (not a 500). Django's connection health checks reconnect on a later request.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
DATABASE_UNAVAILABLE_DETAIL = "The database is unavailable; try again shortly."


@dataclass(frozen=True)
class FieldError:
    attr: str
    code: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"attr": self.attr, "code": self.code, "detail": self.detail}


# --- Domain errors, raised by services ---------------------------------------------------------
@dataclass
class DomainError(Exception):
    detail: str
    errors: list[FieldError] = field(default_factory=list)
    status = HTTPStatus.BAD_REQUEST
    code = "error"

    def __str__(self) -> str:
        return self.detail


class ValidationError(DomainError):
    status = HTTPStatus.BAD_REQUEST
    code = "validation-error"


class NotFound(DomainError):
    status = HTTPStatus.NOT_FOUND
    code = "not-found"


class Forbidden(DomainError):
    status = HTTPStatus.FORBIDDEN
    code = "forbidden"


class Conflict(DomainError):
    status = HTTPStatus.CONFLICT
    code = "conflict"


class PayloadTooLarge(DomainError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "too-large"


class ServiceUnavailable(DomainError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "service-unavailable"


class NotImplementedYet(DomainError):
    status = HTTPStatus.NOT_IMPLEMENTED
    code = "not-implemented"


# --- Building problem documents ---------------------------------------------------------------
def problem_body(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    errors: list[FieldError] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:cms:problem:{code}" if code else "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = [error.as_dict() for error in errors]
    body.update(extra)
    return body


def problem_response(status: int, detail: str, **kwargs: Any) -> JsonResponse:
    """A plain Django response, for code that runs outside DRF (middleware, Django handlers)."""
    return JsonResponse(
        problem_body(status, detail, **kwargs), status=status, content_type=PROBLEM_CONTENT_TYPE
    )


def flatten_drf_detail(detail: Any, path: str = "") -> list[FieldError]:
    """Turn DRF's nested error detail into a flat list with dotted/indexed paths.

    `{"zones": {"body": [{}, {"data": {"heading": ["Required"]}}]}}` becomes one error at
    `zones.body[1].data.heading`: clients should not have to walk our nesting to find the field.
    """
    if isinstance(detail, dict):
        found: list[FieldError] = []
        for key, value in detail.items():
            if isinstance(key, int):  # DRF keys a ListField's errors by item index
                key_path = f"{path}[{key}]"
            else:
                key_path = str(key) if not path else f"{path}.{key}"
            if key == "non_field_errors":
                key_path = path
            found.extend(flatten_drf_detail(value, key_path))
        return found
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [
                FieldError(path, getattr(item, "code", "invalid") or "invalid", str(item))
                for item in detail
            ]
        found = []
        for index, value in enumerate(detail):
            if value in ({}, []):
                continue
            found.extend(flatten_drf_detail(value, f"{path}[{index}]"))
        return found
    return [FieldError(path, getattr(detail, "code", "invalid") or "invalid", str(detail))]


def _throttle_failed_authentication(
    exc: drf_exceptions.APIException, context: dict[str, Any]
) -> drf_exceptions.APIException:
    """DRF checks throttles only after authentication succeeds, so guessing keys and tokens
    would be free. A failed attempt counts against the caller's anonymous per-IP budget."""
    from cmsproject.throttling import AnonThrottle

    request, view = context.get("request"), context.get("view")
    if request is None or view is None:
        return exc
    throttle = AnonThrottle()
    if throttle.allow_request(request, view):
        return exc
    return drf_exceptions.Throttled(wait=throttle.wait())


def _detail_text(exc: drf_exceptions.APIException) -> str:
    detail = exc.detail
    if isinstance(detail, dict) and "detail" in detail:
        return str(detail["detail"])
    if isinstance(detail, (dict, list)):
        return "The request has invalid fields; see errors."
    return str(detail)


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every API error becomes problem+json."""
    # Imported here: rest_framework.views loads the authentication classes, which need this module.
    from rest_framework.views import exception_handler as drf_exception_handler
    from rest_framework.views import set_rollback

    if isinstance(exc, DomainError):
        set_rollback()
        return Response(
            problem_body(int(exc.status), exc.detail, code=exc.code, errors=exc.errors),
            status=int(exc.status),
            content_type=PROBLEM_CONTENT_TYPE,
        )
    if isinstance(exc, RequestDataTooBig):
        set_rollback()
        return Response(
            problem_body(413, "The request body is larger than the limit.", code="too-large"),
            status=413,
            content_type=PROBLEM_CONTENT_TYPE,
        )
    if isinstance(exc, DATABASE_UNAVAILABLE):
        view = context.get("view").__class__.__name__
        logger.warning("Database unavailable in %s: %s", view, exc)
        set_rollback()
        return Response(
            problem_body(503, DATABASE_UNAVAILABLE_DETAIL, code="service-unavailable"),
            status=503,
            content_type=PROBLEM_CONTENT_TYPE,
        )
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        exc = _throttle_failed_authentication(exc, context)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        # An unexpected exception: log it with the traceback, tell the client nothing internal.
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        set_rollback()
        return Response(
            problem_body(500, "An internal error occurred.", code="internal-error"),
            status=500,
            content_type=PROBLEM_CONTENT_TYPE,
        )

    assert isinstance(exc, drf_exceptions.APIException)
    errors: list[FieldError] = []
    if isinstance(exc, drf_exceptions.ValidationError):
        errors = flatten_drf_detail(exc.detail)
        detail = "The request has invalid fields; see errors."
    else:
        detail = _detail_text(exc)
    code = exc.get_codes()
    code = code if isinstance(code, str) else exc.default_code
    response.data = problem_body(
        response.status_code, detail, code=code.replace("_", "-"), errors=errors or None
    )
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


# --- Django-level handlers (urls.handler400 ... and CSRF_FAILURE_VIEW) -------------------------
def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):
        return problem_response(413, "The request body is larger than the limit.", code="too-large")
    return problem_response(400, "The request could not be understood.", code="bad-request")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return problem_response(403, "You do not have permission for this.", code="forbidden")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/admin/") and "text/html" in request.headers.get("Accept", ""):
        # Marketers browsing the admin get Django's page; every API client gets problem+json.
        return defaults.page_not_found(request, exception)
    return problem_response(404, f"Nothing is found at {request.path}.", code="not-found")


def server_error(request: HttpRequest) -> JsonResponse:
    # Django calls handler500 while it handles the exception, without passing it: a database
    # outage outside DRF (a session read, the admin, a plain view) is a 503 here too.
    if isinstance(sys.exc_info()[1], DATABASE_UNAVAILABLE):
        return problem_response(503, DATABASE_UNAVAILABLE_DETAIL, code="service-unavailable")
    return problem_response(500, "An internal error occurred.", code="internal-error")


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    return problem_response(403, f"CSRF check failed: {reason}", code="csrf-failed")
