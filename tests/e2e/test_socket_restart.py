"""The WebSocket server restarts while sockets are open (issue "Operate it"): clients reconnect, and
content topics replay what was missed since the last id they saw (API.md, WebSocket).

Services mode, as the Procfile serves it: gunicorn answers HTTP, a separate uvicorn the socket,
joined by Redis. The uvicorn process is stopped (SIGTERM: it closes sockets with 1012; SIGKILL:
they just drop) while a client is subscribed; an editor publishes through gunicorn, which keeps
answering; uvicorn is started again and the client, resuming from its last id, gets exactly what it
missed, then live messages.

Embedded mode serves HTTP and the socket from one uvicorn process and keeps the history in that
process: a restart loses it, so a client resuming with an id of the old process is told to
refetch (`reset`) and must not get a silent gap. Within one process's life, resuming replays.

The demo storefront (Chromium) goes through the same restart in either mode and shows the change
published meanwhile, having resumed its content topic with the last id it saw.

Each case starts its own processes on its own state (a PostgreSQL database and a Redis db/prefix,
or a SQLite file), with tests/support's process helpers. Costs about 45 s a pass.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.e2e.conftest import (
    _database_create,
    _database_drop,
    _redis_forget,
    _with_database,
)
from tests.support.cms import gunicorn_start, manage
from tests.support.processes import free_port, log_tail, process_start, process_stop, wait_for

pytestmark = pytest.mark.e2e

SERVICES = bool(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))

BIN = Path(sys.executable).parent
THROTTLE_SCOPES = ("ANON", "USER", "API_KEY", "EVENTS", "LOGIN")
REDIS_DB = 10
API_ID = "replay_page"
STAFF_USER = "replay-editor"
STAFF_PASSWORD = secrets.token_urlsafe(16)
SIGNALS = [pytest.param(signal.SIGTERM, id="sigterm"), pytest.param(signal.SIGKILL, id="sigkill")]
SETUP = f"""
from django.contrib.auth import get_user_model
from cmsproject.demo import demo_load_all
from content.services import entry_type_create
get_user_model().objects.create_superuser({STAFF_USER!r}, "replay@example.com", {STAFF_PASSWORD!r})
entry_type_create(
    api_id={API_ID!r}, name="Replay page", fields=[{{"name": "title", "type": "string"}}],
    zones=[{{"name": "body", "components": ["hero"]}}],
)
demo_load_all(staff_password={STAFF_PASSWORD!r})  # the storefront's page:home and products
"""


# --- processes ------------------------------------------------------------------------------------


def _environment(workdir: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CMS_") and key not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        {
            "CMS_VAR_DIR": str(workdir / "var"),
            "CMS_SQLITE_PATH": str(workdir / "cms.sqlite3"),
            "CMS_STATIC_ROOT": str(workdir / "static"),
            "CMS_STATIC_MANIFEST": "0",  # collectstatic copies: the storefront's script, quickly
            "DEBUG": "0",
            "SECRET_KEY": "socket-restart-tests-only-0123456789abcdef0123456789",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SETTINGS_MODULE": "cmsproject.settings",
            "PYTHONUNBUFFERED": "1",
            **{f"CMS_THROTTLE_{scope}": "100000/min" for scope in THROTTLE_SCOPES},
            **extra,
        }
    )
    return env


@dataclass
class SocketServer:
    """uvicorn as the Procfile's `ws` line (and run.py's embedded mode) starts it, on a fixed port
    so a restart serves the same address."""

    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/v1/live"

    def start(self) -> float:
        """Starts it; returns when it accepts sockets, with the seconds that took."""
        started = time.monotonic()
        argv = [
            str(BIN / "uvicorn"), "cmsproject.asgi:application", "--host", "127.0.0.1",
            "--port", str(self.port), "--ws", "websockets-sansio", "--lifespan", "off",
            "--no-access-log",
        ]  # fmt: skip
        self.proc = process_start(argv, self.env, self.log)

        def accepting() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"uvicorn exited with {self.proc.returncode}:\n{log_tail(self.log)}")
            try:
                with connect(self.ws_url, open_timeout=1) as ws:
                    ws.send(json.dumps({"action": "ping"}))
                    return json.loads(ws.recv(timeout=2)) == {"type": "pong"}
            except (OSError, TimeoutError, ConnectionClosed):
                return False

        wait_for(accepting, 60, f"uvicorn on {self.port} to accept sockets", poll=0.1)
        return time.monotonic() - started

    def kill(self, signum: int) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signum)
        self.proc.wait(timeout=15)

    def stop(self) -> None:
        if self.proc is not None:
            process_stop(self.proc)


@dataclass
class Stack:
    http_url: str
    socket_server: SocketServer
    _access: tuple[float, str] | None = None  # (when, token): a login costs a password hash

    def staff(self) -> httpx.Client:
        if self._access is None or time.monotonic() - self._access[0] > 240:
            with httpx.Client(base_url=self.http_url, timeout=15) as client:
                response = client.post(
                    "/api/v1/auth/token/",
                    json={"username": STAFF_USER, "password": STAFF_PASSWORD},
                )
            assert response.status_code == 200, response.text[:300]
            self._access = (time.monotonic(), response.json()["access"])
        headers = {"Authorization": f"Bearer {self._access[1]}"}
        return httpx.Client(base_url=self.http_url, headers=headers, timeout=15)


def _prepare(env: dict[str, str]) -> None:
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "shell", "-c", SETUP)
    manage(env, "collectstatic", "--noinput", "-v", "0")


@pytest.fixture(scope="module")
def services_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("socket-restart-services")
    token = secrets.token_hex(5)
    database = f"cms_replay_{token}"
    redis_url = _with_database(os.environ["REDIS_URL"], str(REDIS_DB))
    prefix = f"cms-replay-{token}"
    env = _environment(
        workdir,
        DATABASE_URL=_with_database(os.environ["DATABASE_URL"], database),
        REDIS_URL=redis_url,
        CMS_CACHE_PREFIX=prefix,
    )
    cleanups: list[Callable[[], None]] = []
    _database_create(database)
    cleanups.append(lambda: _database_drop(database))
    cleanups.append(lambda: _redis_forget(redis_url, prefix))
    try:
        _prepare(env)
        socket_server = SocketServer(env, workdir / "ws.log")
        # The storefront page tells the browser where the socket server listens (WS_PORT).
        web_env = {**env, "WS_PORT": str(socket_server.port)}
        http_url, web = gunicorn_start(web_env, workdir / "web.log", workers=2)
        cleanups.append(lambda: process_stop(web))
        cleanups.append(socket_server.stop)
        socket_server.start()
        yield Stack(http_url, socket_server)
    finally:
        for cleanup in reversed(cleanups):
            with contextlib.suppress(Exception):
                cleanup()


@pytest.fixture(scope="module")
def embedded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("socket-restart-embedded")
    env = _environment(workdir)
    _prepare(env)
    server = SocketServer(env, workdir / "server.log")
    try:
        server.start()
        yield Stack(f"http://127.0.0.1:{server.port}", server)
    finally:
        server.stop()


# --- a client and an editor ----------------------------------------------------------------------


def publish(stack: Stack, slug: str, title: str, *, create: bool = False) -> None:
    """An editor's change, live: create or patch the working copy, then publish it over HTTP."""
    with stack.staff() as staff:
        if create:
            body = {"slug": slug, "fields": {"title": title}, "zones": {"body": []}}
            written = staff.post(f"/api/v1/content/{API_ID}/", json=body)
        else:
            written = staff.patch(
                f"/api/v1/content/{API_ID}/{slug}/", json={"fields": {"title": title}}
            )
        assert written.status_code in (200, 201), written.text[:300]
        published = staff.post(f"/api/v1/content/{API_ID}/{slug}/publish/")
        assert published.status_code == 200, published.text[:300]


def subscribe(ws: ClientConnection, topic: str, last_id: str | None = None) -> None:
    request = {"action": "subscribe", "topic": topic}
    if last_id is not None:
        request["last_id"] = last_id
    ws.send(json.dumps(request))
    assert receive(ws) == {"type": "subscribed", "topic": topic}


def receive(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def assert_quiet(ws: ClientConnection, seconds: float = 1.0) -> None:
    with pytest.raises(TimeoutError):
        ws.recv(timeout=seconds)


def title(message: dict[str, Any]) -> str:
    return message["data"]["fields"]["title"]


def reconnect(url: str, timeout: float = 30) -> ClientConnection:
    """What a client does after its socket dropped: try again, backing off, until it is back."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            return connect(url, open_timeout=2)
        except (OSError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def report(case: str, boot_s: float, replay_s: float) -> None:
    """Shown with `pytest -s`: how long the restart took, and the resume once connected."""
    print(
        f"\n[{case}] restart to accepting {boot_s:.1f} s, resume to replay {replay_s * 1e3:.0f} ms"
    )


class HealthProbe:
    """Asks /api/v1/health/ every 50 ms on a thread; remembers every answer that was not a 200."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.answers = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=5) as client:
            while not self._stop.wait(0.05):
                try:
                    response = client.get("/api/v1/health/")
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code} {response.text[:200]}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.answers += 1

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# --- services mode: the socket server alone restarts --------------------------------------------


@pytest.mark.services
@pytest.mark.parametrize("signum", SIGNALS)
def test_after_a_socket_server_restart_the_client_resumes_with_exactly_what_it_missed(
    services_stack: Stack, signum: int
) -> None:
    stack, server = services_stack, services_stack.socket_server
    slug = f"restart-{signum.name.lower()}-{secrets.token_hex(3)}"
    topic = f"content:{API_ID}:{slug}"

    with HealthProbe(stack.http_url) as health:
        # Given a client subscribed to an entry that it saw published
        with connect(server.ws_url, open_timeout=10) as ws:
            subscribe(ws, topic)
            publish(stack, slug, "v1", create=True)
            seen = receive(ws)
            assert (seen["type"], title(seen)) == ("content.published", "v1")

            # When the socket server stops under it (SIGTERM: a 1012 close; SIGKILL: a drop)
            server.kill(signum)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        if signum == signal.SIGTERM:
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012

        # And the entry changes twice meanwhile, through the HTTP server, which stays up
        publish(stack, slug, "v2")
        publish(stack, slug, "v3")

        # And the socket server comes back, and the client reconnects with the last id it saw
        boot_s = server.start()
        with reconnect(server.ws_url) as ws:
            resumed = time.monotonic()
            subscribe(ws, topic, last_id=seen["id"])
            missed = [receive(ws), receive(ws)]
            replay_s = time.monotonic() - resumed

            # Then it gets both changes, in order, once, and then what is published live
            assert [(m["type"], title(m), m.get("replayed")) for m in missed] == [
                ("content.updated", "v2", True),
                ("content.updated", "v3", True),
            ]
            assert_quiet(ws)
            publish(stack, slug, "v4")
            live = receive(ws)
            assert (live["type"], title(live), live.get("replayed")) == (
                "content.updated",
                "v4",
                None,
            )
            assert_quiet(ws, 0.5)

    # And HTTP answered throughout
    assert health.failures == []
    assert health.answers > 20
    report(signum.name, boot_s, replay_s)
    assert replay_s < 2.0


@pytest.mark.services
def test_a_client_whose_id_outlived_the_history_is_told_to_refetch(services_stack: Stack):
    stack, server = services_stack, services_stack.socket_server
    slug = f"expired-{secrets.token_hex(3)}"
    topic = f"content:{API_ID}:{slug}"
    with connect(server.ws_url, open_timeout=10) as ws:
        subscribe(ws, topic)
        publish(stack, slug, "v1", create=True)
        seen = receive(ws)

    # The history expired (or Redis lost it): the id is no longer known
    client = redis.Redis.from_url(server.env["REDIS_URL"])
    try:
        assert client.delete(f"{server.env['CMS_CACHE_PREFIX']}:live:{topic}") == 1
    finally:
        client.close()

    with connect(server.ws_url, open_timeout=10) as ws:
        subscribe(ws, topic, last_id=seen["id"])
        assert receive(ws)["type"] == "reset"
        assert_quiet(ws, 0.5)


# --- embedded mode: one process, restarted as a whole --------------------------------------------


@pytest.mark.embedded
@pytest.mark.parametrize("signum", SIGNALS)
def test_after_an_embedded_restart_the_lost_history_gets_a_reset_not_a_gap(
    embedded_stack: Stack, signum: int
) -> None:
    stack, server = embedded_stack, embedded_stack.socket_server
    slug = f"restart-{signum.name.lower()}-{secrets.token_hex(3)}"
    topic = f"content:{API_ID}:{slug}"

    # Given a client subscribed to an entry that it saw published
    with connect(server.ws_url, open_timeout=10) as ws:
        subscribe(ws, topic)
        publish(stack, slug, "v1", create=True)
        seen = receive(ws)

        # When the one process stops (HTTP with it) and starts again
        server.kill(signum)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{stack.http_url}/api/v1/health/", timeout=2)
    boot_s = server.start()

    # And the entry changes before the client is back
    publish(stack, slug, "v2")

    # Then the client resuming with its old id is told to refetch: the history died with the
    # process, and a replay of only what the new process kept would hide a gap
    with reconnect(server.ws_url) as ws:
        subscribe(ws, topic, last_id=seen["id"])
        reset = receive(ws)
        assert (reset["type"], reset["topic"]) == ("reset", topic)
        assert_quiet(ws, 0.5)
        refetched = httpx.get(f"{stack.http_url}/api/v1/deliver/{API_ID}/{slug}/", timeout=5)
        assert refetched.json()["data"]["fields"]["title"] == "v2"

        # And from there it is live again, with ids this process keeps
        publish(stack, slug, "v3")
        latest = receive(ws)
        assert (title(latest), latest.get("replayed")) == ("v3", None)

    # While the process lives, a dropped client resumes with a replay
    publish(stack, slug, "v4")
    with reconnect(server.ws_url) as ws:
        resumed = time.monotonic()
        subscribe(ws, topic, last_id=latest["id"])
        missed = receive(ws)
        replay_s = time.monotonic() - resumed
        assert (missed["type"], title(missed), missed["replayed"]) == (
            "content.updated",
            "v4",
            True,
        )
        assert_quiet(ws, 0.5)
    report(f"embedded {signum.name}", boot_s, replay_s)


# --- the demo storefront in a browser -----------------------------------------------------------


@pytest.fixture
def pass_stack(request: pytest.FixtureRequest) -> Stack:
    """This pass's stack."""
    return request.getfixturevalue("services_stack" if SERVICES else "embedded_stack")


@pytest.fixture
def storefront(browser: Any, pass_stack: Stack) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """The storefront open on this pass's stack in a fresh browser context, and every socket frame
    in both directions as {"sent"|"heard": message}; uncaught page errors fail the test."""
    from playwright.sync_api import expect

    context = browser.new_context(base_url=pass_stack.http_url)
    context.set_default_timeout(20_000)
    page = context.new_page()
    frames: list[dict[str, Any]] = []
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def watch(ws: Any) -> None:
        ws.on("framesent", lambda payload: frames.append({"sent": json.loads(payload)}))
        ws.on("framereceived", lambda payload: frames.append({"heard": json.loads(payload)}))

    page.on("websocket", watch)
    try:
        page.goto("/")
        expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        page.evaluate("window.__sameDocument = true")
        yield page, frames
        assert page.evaluate("window.__sameDocument") is True  # never reloaded
        assert errors == []
    finally:
        context.close()


def publish_heading(stack: Stack, text: str) -> None:
    with stack.staff() as staff:
        home = staff.get("/api/v1/content/page/home/").json()
        hero, *rest = home["zones"]["body"]
        blocks = [{**hero, "data": {**hero["data"], "heading": text}}, *rest]
        patched = staff.patch("/api/v1/content/page/home/", json={"zones": {"body": blocks}})
        assert patched.status_code == 200, patched.text[:300]
        assert staff.post("/api/v1/content/page/home/publish/").status_code == 200


@pytest.mark.browser
def test_the_storefront_shows_a_change_published_while_the_socket_server_was_down(
    storefront: tuple[Any, list[dict[str, Any]]], pass_stack: Stack
) -> None:
    from playwright.sync_api import expect

    page, frames = storefront
    stack = pass_stack
    topic = "content:page:home"
    heading = page.get_by_test_id("hero-heading")

    # Given the open storefront, which heard a publish of its page
    before = f"Before the restart {secrets.token_hex(3)}"
    publish_heading(stack, before)
    expect(heading).to_have_text(before)
    seen = [f["heard"] for f in frames if f.get("heard", {}).get("topic") == topic]
    assert seen[-1]["type"] == "content.updated"

    # When the socket server stops (in embedded mode: the whole process), a change is published
    # (embedded: once it is back, before the page reconnects), and the server starts again
    stack.socket_server.kill(signal.SIGTERM)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "offline")
    missed = f"Published while the socket was down {secrets.token_hex(3)}"
    if SERVICES:
        publish_heading(stack, missed)
    stack.socket_server.start()
    back = time.monotonic()
    if not SERVICES:
        publish_heading(stack, missed)

    # Then the page reconnects, resumes its topic from the last id it saw, and shows the change:
    # replayed (services), or refetched on the server's `reset` (embedded: the history is gone)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=20_000)
    expect(heading).to_have_text(missed, timeout=5000)
    print(f"\n[storefront] server back to change shown: {time.monotonic() - back:.2f} s (backoff)")
    resumed = [f["sent"] for f in frames if f.get("sent", {}).get("topic") == topic]
    assert resumed[-1] == {"action": "subscribe", "topic": topic, "last_id": seen[-1]["id"]}

    def answers_after_resume() -> list[dict[str, Any]]:
        heard = [f["heard"] for f in frames if f.get("heard", {}).get("topic") == topic]
        return heard[len(seen) :]

    # The heading may change first by the page's refetch (`customer:me` answers `reset`): the
    # replayed frame can land a moment later, so wait for it rather than read too early.
    deadline = time.monotonic() + 5
    while SERVICES and len(answers_after_resume()) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    answers = answers_after_resume()
    assert answers[0] == {"type": "subscribed", "topic": topic}
    if SERVICES:
        assert [(m["type"], m.get("replayed")) for m in answers[1:]] == [("content.updated", True)]
        assert answers[1]["data"]["zones"]["body"][0]["data"]["heading"] == missed
    else:  # the change may also arrive live, if the page was back before it was published
        assert answers[1]["type"] == "reset"
        assert not any(m.get("replayed") for m in answers)
