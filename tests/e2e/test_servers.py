"""The product as `make run` serves it, spoken to by real clients (HTTP and WebSocket).

Every test runs against both modes: the embedded pass talks to one uvicorn, the services pass to
gunicorn (HTTP, port P) and uvicorn (WebSocket, port P+1) started by honcho from the Procfile.
"""

from __future__ import annotations

import json
import re
import socket
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
TOKEN = "/api/v1/auth/token/"
REFRESH = "/api/v1/auth/token/refresh/"
LIMIT = 1024 * 1024


def assert_clean(text: str) -> None:
    assert "Traceback" not in text
    assert "<html" not in text.lower()


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    assert_clean(response.text)
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    return body


def tokens_for(server: Server) -> dict[str, str]:
    with server.client() as client:
        response = client.post(
            TOKEN, json={"username": server.admin_user, "password": server.admin_password}
        )
    assert response.status_code == 200, response.text[:500]
    return response.json()


def raw_post(
    port: int, path: str, *, headers: dict[str, str], body_chunks: list[bytes]
) -> tuple[int, dict[str, str], bytes]:
    """POST over a bare socket, then read the answer even if the server stops reading early.

    An HTTP client sends the whole body before it reads; a server that refuses an oversized body
    answers and closes first, and the client then sees a broken pipe instead of the answer.
    """
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode("latin-1"))
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking everything: read the answer
        received = b""
        try:
            while part := sock.recv(65536):
                received += part
        except ConnectionResetError:
            pass
    assert received, "the server closed the connection without an answer"
    head_bytes, _, payload = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
    answer_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        answer_headers[name.strip().lower()] = value.strip()
    if answer_headers.get("transfer-encoding", "").lower() == "chunked":
        payload = dechunk(payload)
    return int(status_line.split()[1]), answer_headers, payload


def dechunk(raw: bytes) -> bytes:
    body = b""
    while raw:
        size_line, _, raw = raw.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        body, raw = body + raw[:size], raw[size + 2 :]
    return body


def ws_json(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=10))


def ws_send(ws: ClientConnection, message: dict[str, Any]) -> None:
    ws.send(json.dumps(message))


def ws_close_code(url: str, **kwargs: Any) -> int:
    """Open a socket the server is expected to close; the close code it sent."""
    with connect(url, open_timeout=10, **kwargs) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None, "the server sent no close frame"
    return closed.value.rcvd.code


# --- Startup -------------------------------------------------------------------------------------
def test_health_is_ok_with_every_check(cms_server: Server) -> None:
    response = httpx.get(f"{cms_server.base_url}/api/v1/health/", timeout=30)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"], body
    assert set(body["checks"].values()) == {"ok"}, body
    assert {"database", "cache"} <= set(body["checks"])


def test_banner_prints_login_and_addresses(cms_server: Server) -> None:
    log = cms_server.log()
    port = cms_server.port

    assert cms_server.banner_login() == (cms_server.admin_user, cms_server.admin_password)
    if cms_server.mode == "services":
        assert re.search(rf"gunicorn\s+http://127\.0\.0\.1:{port}/", log), log
        assert f"ws://127.0.0.1:{port + 1}/ws/v1/live" in log, log
    else:
        assert f"http://127.0.0.1:{port}/admin/" in log, log
        assert f"ws://127.0.0.1:{port}/ws/v1/live" in log, log
    assert "Traceback" not in log, log


# --- HTTP ----------------------------------------------------------------------------------------
def test_graphql_answers_typename(cms_server: Server) -> None:
    with cms_server.client() as client:
        response = client.post("/graphql/", json={"query": "{__typename}"})

    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"__typename": "Query"}}


def test_wrong_password_is_401_problem(cms_server: Server) -> None:
    with cms_server.client() as client:
        response = client.post(
            TOKEN, json={"username": cms_server.admin_user, "password": "not the password"}
        )

    assert_problem(response, 401)


def test_refresh_rotates_and_the_old_refresh_token_is_revoked(cms_server: Server) -> None:
    tokens = tokens_for(cms_server)
    assert tokens["access"] and tokens["refresh"]

    with cms_server.client() as client:
        rotated = client.post(REFRESH, json={"refresh": tokens["refresh"]})
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["access"]
        assert rotated.json()["refresh"] != tokens["refresh"]

        reused = client.post(REFRESH, json={"refresh": tokens["refresh"]})

    assert_problem(reused, 401)


def test_two_megabyte_body_is_413_problem(cms_server: Server) -> None:
    body = b'{"username": "' + b"x" * (2 * LIMIT) + b'"}'
    chunks = [body[start : start + 65536] for start in range(0, len(body), 65536)]

    status, headers, payload = raw_post(
        cms_server.port,
        TOKEN,
        headers={"Content-Type": "application/json", "Content-Length": str(len(body))},
        body_chunks=chunks,
    )

    assert status == 413, payload[:500]
    assert headers["content-type"].startswith(PROBLEM), headers
    assert_clean(payload.decode(errors="replace"))
    assert json.loads(payload)["status"] == 413


def test_chunked_body_over_one_megabyte_is_413_problem(cms_server: Server) -> None:
    chunk = b"x" * 65536
    over_limit = LIMIT // len(chunk) + 2  # ~1.1 MB, and no terminating chunk: no Content-Length

    status, headers, payload = raw_post(
        cms_server.port,
        TOKEN,
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        body_chunks=[b"%x\r\n%s\r\n" % (len(chunk), chunk)] * over_limit,
    )

    assert status == 413, payload[:500]
    assert headers["content-type"].startswith(PROBLEM), headers
    assert_clean(payload.decode(errors="replace"))


def test_small_chunked_json_body_is_read(cms_server: Server) -> None:
    """A client that streams its body (no Content-Length) is understood like any other."""
    body = json.dumps(
        {"username": cms_server.admin_user, "password": cms_server.admin_password}
    ).encode()

    with cms_server.client() as client:
        response = client.post(
            TOKEN, content=iter([body]), headers={"Content-Type": "application/json"}
        )

    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 200, response.text[:500]
    assert response.json()["access"]


def test_non_json_body_is_415_problem(cms_server: Server) -> None:
    with cms_server.client() as client:
        response = client.post(
            TOKEN,
            content=b"username=e2eadmin&password=x",
            headers={"Content-Type": "text/plain"},
        )

    assert_problem(response, 415)


@pytest.mark.parametrize(
    "path", ["/api/v1/no-such-thing/", "/no-such-page/", "/api/v2/", "/static/no-such-file.css"]
)
def test_unknown_path_is_404_problem(cms_server: Server, path: str) -> None:
    with cms_server.client() as client:
        response = client.get(path)

    assert_problem(response, 404)


# --- WebSocket -----------------------------------------------------------------------------------
def test_websocket_anonymous_ping_subscribe_and_forbidden(cms_server: Server) -> None:
    with connect(f"{cms_server.ws_url}?anonymous_id=x", open_timeout=10) as ws:
        ws_send(ws, {"action": "ping"})
        assert ws_json(ws) == {"type": "pong"}

        ws_send(ws, {"action": "subscribe", "topic": "customer:me"})
        assert ws_json(ws) == {"type": "subscribed", "topic": "customer:me"}

        ws_send(ws, {"action": "subscribe", "topic": "analytics:live"})
        error = ws_json(ws)
        assert error["type"] == "error"
        assert error["code"] == "forbidden"

        ws_send(ws, {"action": "ping"})  # the socket stays open after a refusal
        assert ws_json(ws) == {"type": "pong"}


def test_websocket_garbage_token_is_closed_4401(cms_server: Server) -> None:
    assert ws_close_code(f"{cms_server.ws_url}?token=garbage") == 4401


def test_websocket_staff_token_may_subscribe_to_analytics(cms_server: Server) -> None:
    access = tokens_for(cms_server)["access"]

    with connect(f"{cms_server.ws_url}?token={access}", open_timeout=10) as ws:
        ws_send(ws, {"action": "subscribe", "topic": "analytics:live"})
        assert ws_json(ws) == {"type": "subscribed", "topic": "analytics:live"}


def test_websocket_foreign_origin_is_closed_4403(cms_server: Server) -> None:
    url = f"{cms_server.ws_url}?anonymous_id=x"

    assert ws_close_code(url, origin="http://evil.example") == 4403


def test_websocket_accepts_the_sites_own_origin(cms_server: Server) -> None:
    """A page served by the product itself (admin, docs) may open the socket."""
    origin = cms_server.base_url  # http://127.0.0.1:P, the origin of the HTTP server

    with connect(f"{cms_server.ws_url}?anonymous_id=x", origin=origin, open_timeout=10) as ws:
        ws_send(ws, {"action": "ping"})
        assert ws_json(ws) == {"type": "pong"}


# --- Throttling ----------------------------------------------------------------------------------
def test_anonymous_throttle_answers_429_with_retry_after(throttled_cms_server: Server) -> None:
    statuses = []
    with throttled_cms_server.client() as client:
        for _ in range(20):
            response = client.post(TOKEN, json={"username": "nobody", "password": "wrong"})
            statuses.append(response.status_code)
            if response.status_code == 429:
                break

    assert statuses[-1] == 429, statuses
    assert set(statuses[:-1]) == {401}, statuses
    assert len(statuses) <= 6, statuses  # CMS_THROTTLE_ANON=5/min
    assert_problem(response, 429)
    assert int(response.headers["Retry-After"]) > 0

    health = httpx.get(f"{throttled_cms_server.base_url}/api/v1/health/", timeout=30)
    assert health.status_code == 200  # health is never throttled


# --- `make run` itself ---------------------------------------------------------------------------
@pytest.mark.services
def test_services_mode_starts_as_make_run_does(make_run_server: Server) -> None:
    """`.venv/bin/python -m cmsproject.run` from a shell that has not activated the venv."""
    try:
        make_run_server.wait_ready()
        response = httpx.get(f"{make_run_server.base_url}/api/v1/health/", timeout=30)
        assert response.status_code == 200
    finally:
        make_run_server.stop()  # free the CPU for the other servers
