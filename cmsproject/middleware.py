"""Request body limits, enforced before a byte of an oversized body is parsed.

Two layers because two servers: `BodySizeLimitMiddleware` (Django, both WSGI and ASGI) rejects by
`Content-Length`; `BodySizeLimitASGI` wraps the ASGI app so a chunked or lying client cannot
stream an unbounded body into Django's ASGI request buffer. Django's DATA_UPLOAD_MAX_MEMORY_SIZE
catches the remaining WSGI chunked case and `cmsproject.errors` maps it to 413.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import is_valid_path

from cmsproject.errors import PROBLEM_CONTENT_TYPE, problem_body, problem_response

TOO_LARGE_DETAIL = "The request body is larger than the limit of {limit} bytes."


def max_body_bytes() -> int:
    return settings.CMS_MAX_BODY_BYTES


class BodySizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = max_body_bytes()
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return problem_response(400, "Content-Length is not a number.", code="bad-request")
        if length > limit:
            return problem_response(413, TOO_LARGE_DETAIL.format(limit=limit), code="too-large")
        return self.get_response(request)


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class BodySizeLimitASGI:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = max_body_bytes()
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit)
            return

        received = 0
        response_started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await self._reject(send, limit)

    @staticmethod
    async def _reject(send: Send, limit: int) -> None:
        body = json.dumps(
            problem_body(413, TOO_LARGE_DETAIL.format(limit=limit), code="too-large")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


class ApiTrailingSlashMiddleware:
    """`POST /api/v1/auth/token` works like `/api/v1/auth/token/` (API.md).

    Django's APPEND_SLASH answers with a redirect, which clients follow with a GET and lose the
    body; for the API we resolve the slashed path directly instead.
    """

    PREFIXES = ("/api/", "/graphql")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if (
            path.startswith(self.PREFIXES)
            and not path.endswith("/")
            and not is_valid_path(path)
            and is_valid_path(f"{path}/")
        ):
            request.path_info = f"{path}/"
            request.path = f"{request.path}/"
        return self.get_response(request)
