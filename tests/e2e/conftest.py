"""Real servers for end-to-end tests: `python -m cmsproject.run`, exactly as `make run` starts it.

Each server runs in its own process group with its own state (SQLite file or a fresh PostgreSQL
database, a Redis key prefix, var/ and static folders in a temporary directory). The launcher's
own defaults for SECRET_KEY and ALLOWED_HOSTS are exercised: neither is passed down.

Starting a server costs ~10 s of CPU (migrate, collectstatic, demo data), so every server the
selected tests need is launched at once, the first time any of them is asked for, and shared by
the whole session. Which mode is launched follows the pass: services mode when DATABASE_URL and
REDIS_URL are set (tests/conftest.py skips the other mode's tests).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0
GENEROUS_RATE = "100000/min"
THROTTLE_ENV = (
    "CMS_THROTTLE_ANON",
    "CMS_THROTTLE_USER",
    "CMS_THROTTLE_API_KEY",
    "CMS_THROTTLE_EVENTS",
    "CMS_THROTTLE_LOGIN",
)
# Set by the test environment (pytest-env) or a developer's shell; a real `make run` has none.
STRIPPED_ENV = (
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "DJANGO_SETTINGS_MODULE",
    "DEBUG",
    "HOST",
    "PORT",
    "WS_PORT",
    "CSRF_TRUSTED_ORIGINS",
    "LOG_LEVEL",
)
ADMIN_USER = "e2eadmin"
LOGIN_LINE = re.compile(r"login: (?P<user>\S+) / (?P<password>\S+)")

SERVICES_PASS = bool(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))
PASS_MODE = "services" if SERVICES_PASS else "embedded"


@dataclass(frozen=True)
class ServerSpec:
    """What differs between the servers the tests need."""

    env: dict[str, str] = field(default_factory=dict)
    admin_password: bool = True  # False: let the launcher generate (and print) one
    redis_db: int = 5
    # False: the caller's PATH without the venv's bin/, as `make run` from a plain shell.
    venv_on_path: bool = False


SPECS: dict[str, ServerSpec] = {
    # The server most tests talk to: generous throttles, a known admin password.
    "cms_server": ServerSpec(redis_db=5),
    # Throttling: a tiny anonymous budget.
    "throttled_cms_server": ServerSpec(
        env={"CMS_THROTTLE_ANON": "5/min", "WEB_CONCURRENCY": "1", "WORKER_CONCURRENCY": "1"},
        redis_db=6,
    ),
    # The newcomer's path: no admin password given, the banner prints the generated one.
    "newcomer_server": ServerSpec(admin_password=False, redis_db=7),
    # Exactly `make run`: `.venv/bin/python -m cmsproject.run` with the caller's PATH untouched.
    "make_run_server": ServerSpec(
        env={"WEB_CONCURRENCY": "1", "WORKER_CONCURRENCY": "1"}, redis_db=8, venv_on_path=False
    ),
}


def _free_port(pair: bool) -> int:
    """A free port P (and P+1 when `pair`: services mode serves the WebSocket there)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            if not pair:
                return port
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port pair found")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _admin_connection() -> Any:
    import psycopg

    url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def _database_create(name: str) -> None:
    from psycopg import sql

    with _admin_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _database_drop(name: str) -> None:
    from psycopg import sql

    with _admin_connection() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _redis_forget(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


@contextlib.contextmanager
def _cleanup_on_error(cleanups: list[Any]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        for cleanup in reversed(cleanups):
            cleanup()
        raise


@dataclass
class Server:
    name: str
    mode: str
    port: int
    workdir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    admin_user: str
    admin_password: str | None  # None: generated by the launcher, read it from the banner
    cleanups: list[Any] = field(default_factory=list)
    ready: bool = False
    stopped: bool = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_port(self) -> int:
        return self.port + 1 if self.mode == "services" else self.port

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/ws/v1/live"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def banner_login(self) -> tuple[str, str]:
        found = LOGIN_LINE.search(self.log())
        assert found, f"no `login: <user> / <password>` in the banner:\n{self.log()}"
        return found["user"], found["password"]

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, **kwargs)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        if self.ready:
            return
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"{self.name} ({self.mode}) exited with {self.proc.returncode} before it was "
                    f"ready; log {self.log_path}:\n{self.log()}"
                )
            try:
                response = httpx.get(f"{self.base_url}/api/v1/health/", timeout=5)
                last = f"{response.status_code} {response.text[:300]}"
                if response.status_code == 200 and _port_open(self.ws_port):
                    self.ready = True
                    return
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.25)
        pytest.fail(
            f"{self.name} ({self.mode}) not healthy within {timeout:.0f}s (last: {last}); "
            f"log {self.log_path}:\n{self.log()}"
        )

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT)
        # honcho's children may outlive it for a moment; make sure nothing of the group remains.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for cleanup in reversed(self.cleanups):
            cleanup()
        self.cleanups.clear()


def launch(name: str, spec: ServerSpec, mode: str, workdir: Path) -> Server:
    """Start `python -m cmsproject.run` for `mode`; returns at once (see Server.wait_ready)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port(pair=mode == "services")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in STRIPPED_ENV and not key.startswith("CMS_")
    }
    env.update(
        {
            "CMS_VAR_DIR": str(workdir / "var"),
            "CMS_SQLITE_PATH": str(workdir / "cms.sqlite3"),
            "CMS_STATIC_ROOT": str(workdir / "static"),
            "CMS_MEDIA_ROOT": str(workdir / "media"),
            "CMS_ADMIN_USER": ADMIN_USER,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(dict.fromkeys(THROTTLE_ENV, GENEROUS_RATE))
    venv_bin = str(Path(sys.executable).parent)
    path = [entry for entry in env.get("PATH", "").split(os.pathsep) if entry != venv_bin]
    if spec.venv_on_path:
        path.insert(0, venv_bin)
    else:  # a shell that has not activated the venv, as `make run` is meant to be used
        env.pop("VIRTUAL_ENV", None)
    env["PATH"] = os.pathsep.join(path)
    admin_password = secrets.token_urlsafe(16) if spec.admin_password else None
    if admin_password is not None:
        env["CMS_ADMIN_PASSWORD"] = admin_password
    cleanups: list[Any] = []
    if mode == "services":
        database = f"cms_e2e_{secrets.token_hex(6)}"
        _database_create(database)
        cleanups.append(lambda: _database_drop(database))
        redis_url = _with_database(os.environ["REDIS_URL"], str(spec.redis_db))
        prefix = f"cms-e2e-{secrets.token_hex(6)}"
        cleanups.append(lambda: _redis_forget(redis_url, prefix))
        env.update(
            {
                "DATABASE_URL": _with_database(os.environ["DATABASE_URL"], database),
                "REDIS_URL": redis_url,
                "CMS_CACHE_PREFIX": prefix,
            }
        )
    env.update(spec.env)
    log_path = workdir / "server.log"
    with log_path.open("wb") as log, _cleanup_on_error(cleanups):
        proc = subprocess.Popen(
            [sys.executable, "-m", "cmsproject.run", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(
        name=name,
        mode=mode,
        port=port,
        workdir=workdir,
        log_path=log_path,
        proc=proc,
        env=env,
        admin_user=ADMIN_USER,
        admin_password=admin_password,
        cleanups=cleanups,
    )


class ServerPool:
    """Launches every server the selected tests need together, on first use; stops them all."""

    def __init__(self, session: pytest.Session, tmp_factory: pytest.TempPathFactory) -> None:
        self.session = session
        self.tmp_factory = tmp_factory
        self.servers: dict[str, Server] = {}

    def _wanted(self) -> list[str]:
        wanted = []
        for item in self.session.items:
            if item.get_closest_marker("skip") is not None:
                continue
            for name in SPECS:
                if name in getattr(item, "fixturenames", ()) and name not in wanted:
                    wanted.append(name)
        return wanted

    def _start(self, name: str) -> None:
        if name not in self.servers:
            workdir = self.tmp_factory.mktemp(f"{name}-{PASS_MODE}")
            self.servers[name] = launch(name, SPECS[name], PASS_MODE, workdir)

    def get(self, name: str, mode: str, *, wait: bool = True) -> Server:
        if mode != PASS_MODE:  # tests/conftest.py skips these; never serve the wrong mode
            pytest.skip(f"{mode}-mode server in the {PASS_MODE} pass")
        if not self.servers:
            for other in self._wanted():
                self._start(other)
        self._start(name)
        server = self.servers[name]
        if wait:
            server.wait_ready()
        return server

    def close(self) -> None:
        errors = []
        for server in self.servers.values():
            try:
                server.stop()
            except Exception as exc:
                errors.append(f"{server.name}: {exc!r}")
        self.servers.clear()
        assert not errors, f"teardown failed: {errors}"


@pytest.fixture(scope="session")
def server_pool(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerPool]:
    pool = ServerPool(request.session, tmp_path_factory)
    try:
        yield pool
    finally:
        pool.close()


MODES = [
    pytest.param("embedded", marks=pytest.mark.embedded, id="embedded"),
    pytest.param("services", marks=pytest.mark.services, id="services"),
]


@pytest.fixture(scope="session", params=MODES)
def cms_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> Server:
    """The main server: generous throttles, admin `e2eadmin` with a known password."""
    return server_pool.get("cms_server", request.param)


@pytest.fixture(scope="session", params=MODES)
def throttled_cms_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> Server:
    """A server with CMS_THROTTLE_ANON=5/min."""
    return server_pool.get("throttled_cms_server", request.param)


@pytest.fixture(scope="session")
def newcomer_server(server_pool: ServerPool) -> Server:
    """Embedded server started without CMS_ADMIN_PASSWORD: the launcher generates one."""
    return server_pool.get("newcomer_server", "embedded")


@pytest.fixture(scope="session")
def make_run_server(server_pool: ServerPool) -> Server:
    """Services mode launched exactly as `make run` does (venv not on PATH); not waited for."""
    return server_pool.get("make_run_server", "services", wait=False)


# --- A real browser: Debian's Chromium driven by Playwright (never `playwright install`) --------
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ON_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")  # module: Playwright's loop must not outlive one file's tests
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: `apt-get install -y chromium`"
        if ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def outside_requests() -> list[str]:
    return []


@pytest.fixture
def page_errors() -> list[str]:
    """Uncaught JavaScript errors of the page: the editors must not throw."""
    return []


@pytest.fixture
def page(
    browser: Any, cms_server: Server, outside_requests: list[str], page_errors: list[str]
) -> Iterator[Any]:
    """A fresh browser context on `cms_server` that may reach nothing else (no CDN, no
    network); uncaught page errors are collected in `page_errors`."""
    context = browser.new_context(base_url=cms_server.base_url)
    context.set_default_timeout(20_000)

    def only_local(route: Any) -> None:
        if route.request.url.startswith(f"{cms_server.base_url}/"):
            route.continue_()
        else:
            outside_requests.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
