"""Hot anonymous paths answered before DRF.

Three requests dominate a site's traffic and carry no credentials: reading published content,
fetching a personalized page, posting one event. DRF's request cycle costs more than the work
itself there, so each of those views offers such requests to a plain function first; anything
else (a token, an API key, the auth cookie, or a request the function declines) goes through DRF
exactly as before. Measured in bench/README.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from django.http import HttpRequest, HttpResponse

from cmsproject.auth import request_has_credentials
from cmsproject.errors import DomainError, problem_response

Answer = Callable[..., HttpResponse | None]


def served_before_drf(drf_view: Any, *, methods: Iterable[str], answer: Answer) -> Any:
    """Wrap DRF's view (`super().as_view()` in an `as_view` override). A request without
    credentials whose method is in `methods` goes to `answer(request, *args, **kwargs)`, which
    returns a response, or None to let DRF serve it; its domain errors become problem+json."""
    methods = frozenset(methods)

    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method in methods and not request_has_credentials(request):
            try:
                response = answer(request, *args, **kwargs)
            except DomainError as error:
                return problem_response(
                    int(error.status), error.detail, code=error.code, errors=error.errors
                )
            if response is not None:
                return response
        return drf_view(request, *args, **kwargs)

    # What DRF's own view carries, so URL introspection (OpenAPI, the audit log) sees the class.
    view.cls = drf_view.cls  # type: ignore[attr-defined]
    view.initkwargs = drf_view.initkwargs  # type: ignore[attr-defined]
    view.csrf_exempt = True  # type: ignore[attr-defined]
    return view


def throttled_response(retry_after: float) -> HttpResponse:
    """The 429 an answer gives when `anonymous_throttle_then_get` says the budget is spent, as
    DRF's throttle would answer it."""
    response = problem_response(429, "Request was throttled.", code="throttled")
    response["Retry-After"] = str(math.ceil(retry_after))
    return response
