"""A real HTTP server that receives webhooks, for tests: no mock of httpx or of our code.

`WebhookReceiver` listens on 127.0.0.1 on a free port (a `ThreadingHTTPServer` in a thread),
records every request (headers and the exact body bytes), and answers from a script: a list of
statuses, or `Reply`s with a delay to make the sender time out; after the script, `default`.

Use the `webhook_receiver` fixture (import it into a test module or a conftest):

    def test_x(webhook_receiver):
        webhook_receiver.script(500, 200)
        ... endpoint url = webhook_receiver.url ...
        first, second = webhook_receiver.wait_for(2)
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class Reply:
    status: int = 200
    delay: float = 0.0  # seconds to wait before answering (longer than the timeout: a timeout)
    body: bytes = b""


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    received_at: float  # time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)

    def signature_is_valid(self, secret: str) -> bool:
        """As a receiver should check it: HMAC-SHA256 of the raw body, compared in constant time."""
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers.get("x-signature", ""))


@dataclass
class WebhookReceiver:
    default: Reply = field(default_factory=Reply)
    requests: list[ReceivedRequest] = field(default_factory=list)
    _script: list[Reply] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _closing: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "the receiver is not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/cms"

    def script(self, *replies: int | Reply) -> None:
        """Answer the next requests with these, in order (an int is a status, answered at once)."""
        with self._changed:
            self._script = [
                reply if isinstance(reply, Reply) else Reply(reply) for reply in replies
            ]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """The first `count` requests, waiting up to `timeout` seconds for them to arrive."""
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self.requests) >= count, timeout)
            assert arrived, f"{len(self.requests)} request(s) received, {count} expected"
            return list(self.requests[:count])

    # --- the server side ---------------------------------------------------------------------
    def _receive(self, request: ReceivedRequest) -> Reply:
        with self._changed:
            self.requests.append(request)
            reply = self._script.pop(0) if self._script else self.default
            self._changed.notify_all()
        return reply

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                reply = receiver._receive(
                    ReceivedRequest(
                        method=self.command,
                        path=self.path,
                        headers={name.lower(): value for name, value in self.headers.items()},
                        body=body,
                        received_at=time.monotonic(),
                    )
                )
                if reply.delay and receiver._closing.wait(reply.delay):
                    return  # shutting down: do not answer
                # The sender may have given up (timed out) and closed the connection.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)

            do_POST = do_PUT = do_GET = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A started receiver answering 200 unless scripted otherwise; stopped after the test."""
    receiver = WebhookReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()
