"""Shared fixtures, and the rules for services-mode tests.

`make test` runs twice in CI: embedded (SQLite, in-memory layers) and services (PostgreSQL,
Redis; DATABASE_URL and REDIS_URL set). Tests marked `services` need the real services and run
in the second pass; under CI=true an unreachable service fails the run instead of skipping.
Tests marked `embedded` exercise the embedded runtime and run in the first pass.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from analytics import buffer as buffer_module
from analytics.buffer import RedisStreamBuffer, event_buffer, event_buffer_reset
from tests.factories import UserFactory

SERVICES_MODE = bool(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))
ON_CI = os.environ.get("CI", "").lower() == "true"


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2
        ):
            return True
    except OSError:
        return False


def pytest_sessionstart(session: pytest.Session) -> None:
    if not SERVICES_MODE:
        return
    down = [
        name
        for name, url, port in (
            ("PostgreSQL", os.environ["DATABASE_URL"], 5432),
            ("Redis", os.environ["REDIS_URL"], 6379),
        )
        if not _reachable(url, port)
    ]
    if down:
        pytest.exit(f"Services mode, but unreachable: {', '.join(down)}", returncode=1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "services" in item.keywords and not SERVICES_MODE:
            item.add_marker(
                pytest.mark.skip(
                    reason="services-mode test: runs when DATABASE_URL and REDIS_URL are set "
                    "(the second pass of .ci/run)"
                )
            )
        if "embedded" in item.keywords and SERVICES_MODE:
            item.add_marker(pytest.mark.skip(reason="embedded-mode test: runs in the first pass"))


@pytest.fixture(autouse=True)
def _fresh_channel_layer() -> None:
    """Each test gets its own channel layer: tests run sockets in a fresh event loop each, and
    the Redis layer's receive lock belongs to the loop that first used it (a socket a test left
    mid-receive would otherwise poison every later socket test with "bound to a different event
    loop"). A server process has one loop and one layer for its life."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Throttle counters and cached values must not leak from one test into the next."""
    from analytics import selectors

    selectors._local_catalog = None  # the per-process copy of the event type catalog
    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("*")  # scoped to our key prefix; never FLUSHDB on a shared Redis
    else:
        cache.clear()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def password() -> str:
    return "correct horse battery staple"


@pytest.fixture
def staff_user(db, password):
    return UserFactory(is_staff=True, password=password)


@pytest.fixture
def superuser(db, password):
    return UserFactory(is_staff=True, is_superuser=True, password=password)


@pytest.fixture
def staff_client(superuser) -> APIClient:
    client = APIClient()
    client.force_authenticate(superuser)
    return client


# --- The event pipeline, for any app's tests that need events stored the real way -------------
@pytest.fixture
def events_buffer(settings, tmp_path):
    """The mode's real buffer, emptied: a file in a temp dir, or the test-prefixed Redis stream."""
    settings.VAR_DIR = tmp_path
    event_buffer_reset()
    buffer = event_buffer()
    if isinstance(buffer, RedisStreamBuffer):
        buffer.redis.delete(buffer.stream)
        buffer._group_ready = False
    yield buffer
    if isinstance(buffer, RedisStreamBuffer):
        buffer.redis.delete(buffer.stream)
    event_buffer_reset()


@pytest.fixture
def drain(events_buffer):
    from analytics.drain import drain_until_empty

    def run() -> object:
        return drain_until_empty(buffer=buffer_module.event_buffer(), max_seconds=30)

    return run
