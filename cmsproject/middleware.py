"""Request body limits, enforced before a byte of an oversized body is parsed.

- `BodySizeLimitMiddleware` (Django, under both servers) rejects a declared `Content-Length`
  over the limit.
- Bodies streamed without a `Content-Length` (chunked) are handled by a wrapper around each
  server's app, `BodySizeLimitASGI` and `ChunkedBodyWSGI`: each reads such a body up to the
  limit (413 past it) and hands Django an ordinary sized body. Without them Django and DRF read
  a chunked body as empty, and the ASGI handler would spool an unbounded one to disk.
"""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import is_valid_path

from cmsproject.errors import PROBLEM_CONTENT_TYPE, problem_body, problem_response

TOO_LARGE_DETAIL = "The request body is larger than the limit of {limit} bytes."


# Paths as Django resolves them (without SCRIPT_NAME / root_path), with or without the slash.
MEDIA_UPLOAD_PATHS = frozenset({"/api/v1/media/", "/api/v1/media"})
# The multipart boundary lines, part headers and the `alt` field around the file.
MULTIPART_ALLOWANCE = 64 * 1024


def max_body_bytes(method: str | None = None, path: str | None = None) -> int:
    """The body limit of a request. Without a method and path: the general limit."""
    if method == "POST" and path in MEDIA_UPLOAD_PATHS:
        return settings.CMS_MEDIA_MAX_BYTES + MULTIPART_ALLOWANCE
    return settings.CMS_MAX_BODY_BYTES


class DualModeMiddleware:
    """Runs natively under both WSGI and ASGI. Django would otherwise hop between the event loop
    and a thread around every sync-only middleware (bench/README.md has the cost). Subclasses
    give `before` (answer early), `after` (change the response, an early one too), or both."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self._acall(request)
        return self.after(request, self.before(request) or self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        return self.after(request, self.before(request) or await self.get_response(request))

    def before(self, request: HttpRequest) -> HttpResponse | None:
        """Answer early with a response, or None to go on. Must not block."""
        return None

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """The response to send. Must not block."""
        return response


class BodySizeLimitMiddleware(DualModeMiddleware):
    def before(self, request: HttpRequest) -> HttpResponse | None:
        limit = max_body_bytes(request.method, request.path_info)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return problem_response(400, "Content-Length is not a number.", code="bad-request")
        if length > limit:
            return problem_response(413, TOO_LARGE_DETAIL.format(limit=limit), code="too-large")
        return None


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _asgi_path(scope: Scope) -> str:
    path = scope.get("path", "")
    root_path = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    return path


class BodySizeLimitASGI:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = max_body_bytes(scope.get("method"), _asgi_path(scope))
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit)
            return
        if declared is None and scope.get("method") not in ("GET", "HEAD", "OPTIONS"):
            await self._call_with_buffered_body(scope, receive, send, limit)
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

    async def _call_with_buffered_body(
        self, scope: Scope, receive: Receive, send: Send, limit: int
    ) -> None:
        """A body without Content-Length: read it whole (bounded by the limit), then present it
        to Django with its length, as if the client had declared it."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await self._reject(send, limit)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        headers = [(k, v) for k, v in scope.get("headers", []) if k != b"transfer-encoding"]
        headers.append((b"content-length", str(size).encode()))
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)

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


class ApiTrailingSlashMiddleware(DualModeMiddleware):
    """`POST /api/v1/auth/token` works like `/api/v1/auth/token/` (API.md).

    Django's APPEND_SLASH answers with a redirect, which clients follow with a GET and lose the
    body; for the API we resolve the slashed path directly instead.
    """

    PREFIXES = ("/api/", "/graphql")

    def before(self, request: HttpRequest) -> None:
        path = request.path_info
        if (
            path.startswith(self.PREFIXES)
            and not path.endswith("/")
            and not is_valid_path(path)
            and is_valid_path(f"{path}/")
        ):
            request.path_info = f"{path}/"
            request.path = f"{request.path}/"


class ChunkedBodyWSGI:
    """The WSGI side of the same rule (gunicorn): Django reads nothing from a body that has no
    CONTENT_LENGTH, so read it here, bounded, and give Django a sized body."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not environ.get("CONTENT_LENGTH"):
            limit = max_body_bytes(environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            body = environ["wsgi.input"].read(limit + 1)
            if len(body) > limit:
                payload = json.dumps(
                    problem_body(413, TOO_LARGE_DETAIL.format(limit=limit), code="too-large")
                ).encode()
                start_response(
                    "413 Request Entity Too Large",
                    [
                        ("Content-Type", PROBLEM_CONTENT_TYPE),
                        ("Content-Length", str(len(payload))),
                        ("Connection", "close"),
                    ],
                )
                return [payload]
            environ = {**environ, "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
        return self.app(environ, start_response)
