"""Cross-device session state: `GET|PUT /api/v1/sessions/<token>/state/` with compare-and-set
versions, and `session.state` on the live topic `session:<token>`. Runs in both passes: the
local-memory store with a lock (embedded), the Redis hash and Lua script (services)."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from channels.testing.websocket import WebsocketCommunicator
from django.conf import settings
from rest_framework.test import APIClient

from cmsproject.asgi import application
from customers.sessions import (
    SESSION_STATE_MAX_BYTES,
    RedisSessionStateStore,
    session_state_store,
)

# The store is not the database, but announcing after commit asks the connection whether a
# transaction is open. The writes the socket tests listen for run in threads, outside the test's
# transaction, so they are announced at once, as in a request.
pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 43 characters of [A-Za-z0-9_-]


def url(token: str) -> str:
    return f"/api/v1/sessions/{token}/state/"


def put(client: APIClient, token: str, state: Any, version: Any = None) -> Any:
    headers = {} if version is None else {"HTTP_IF_MATCH": str(version)}
    return client.put(url(token), {"state": state}, format="json", **headers)


def error_attrs(response: Any) -> list[str]:
    return [error["attr"] for error in response.json().get("errors", [])]


@pytest.fixture
def token() -> str:
    return new_token()


# --- Reading and writing ------------------------------------------------------------------------
def test_an_unknown_token_reads_as_version_0_with_an_empty_state(api_client, token):
    response = api_client.get(url(token))

    assert response.status_code == 200
    assert response.json() == {"version": 0, "state": {}, "updated_at": None}
    assert response["ETag"] == '"0"'
    assert response["Cache-Control"] == "no-store"


def test_if_match_0_creates_the_session_at_version_1(api_client, token):
    response = put(api_client, token, {"cart": [{"product": "linen-shirt", "quantity": 1}]}, 0)

    assert response.status_code == 200, response.content
    assert response.json()["version"] == 1
    assert response["ETag"] == '"1"'
    read = api_client.get(url(token)).json()
    assert read["version"] == 1
    assert read["state"] == {"cart": [{"product": "linen-shirt", "quantity": 1}]}
    assert read["updated_at"]


def test_a_write_from_the_current_version_moves_it_on(api_client, token):
    put(api_client, token, {"step": 1}, 0)

    response = put(api_client, token, {"step": 2}, '"1"')  # the quoted ETag form works too

    assert response.status_code == 200
    assert response.json()["version"] == 2
    assert api_client.get(url(token)).json()["state"] == {"step": 2}


def test_a_stale_version_is_refused_with_the_current_state_and_changes_nothing(api_client, token):
    put(api_client, token, {"step": 1}, 0)
    put(api_client, token, {"step": 2}, 1)

    response = put(api_client, token, {"step": "from an old copy"}, 1)

    assert response.status_code == 409
    assert response["Content-Type"] == PROBLEM
    assert response["ETag"] == '"2"'
    body = response.json()
    assert (body["status"], body["version"], body["state"]) == (409, 2, {"step": 2})
    assert api_client.get(url(token)).json()["state"] == {"step": 2}


def test_creating_a_session_that_exists_is_a_conflict(api_client, token):
    put(api_client, token, {"mine": True}, 0)

    response = put(api_client, token, {"theirs": True}, 0)

    assert response.status_code == 409
    assert response.json()["state"] == {"mine": True}


def test_a_version_ahead_of_the_session_is_a_conflict(api_client, token):
    response = put(api_client, token, {"x": 1}, 5)

    assert response.status_code == 409
    assert (response.json()["version"], response.json()["state"]) == (0, {})


def test_a_write_without_if_match_is_428(api_client, token):
    put(api_client, token, {"step": 1}, 0)

    response = put(api_client, token, {"step": 2})

    assert response.status_code == 428
    assert response["Content-Type"] == PROBLEM
    assert error_attrs(response) == ["If-Match"]
    assert api_client.get(url(token)).json()["state"] == {"step": 1}


@pytest.mark.parametrize("header", ["*", 'W/"1"', "one", "-1", '"1", "2"'])
def test_an_if_match_that_is_not_a_version_is_400(api_client, token, header):
    response = put(api_client, token, {}, header)

    assert response.status_code == 400
    assert error_attrs(response) == ["If-Match"]


@pytest.mark.parametrize(
    "bad_token",
    ["short", "x" * 31, "x" * 129, "a" * 31 + "!", "a" * 31 + ".", "a" * 31 + "%20"],
)
def test_a_malformed_token_is_400_naming_token(api_client, bad_token):
    read = api_client.get(url(bad_token))
    write = put(api_client, bad_token, {}, 0)

    for response in (read, write):
        assert response.status_code == 400
        assert response["Content-Type"] == PROBLEM
        assert error_attrs(response) == ["token"]


@pytest.mark.parametrize("state", [[1, 2], "cart", None, 3])
def test_a_state_that_is_not_an_object_is_400(api_client, token, state):
    response = put(api_client, token, state, 0)

    assert response.status_code == 400
    assert error_attrs(response) == ["state"]


def test_a_body_without_state_is_400(api_client, token):
    response = api_client.put(url(token), {"cart": []}, format="json", HTTP_IF_MATCH="0")

    assert response.status_code == 400
    assert error_attrs(response) == ["state"]


def test_a_state_nested_deeper_than_32_levels_is_400(api_client, token):
    deep: Any = {}
    for _ in range(40):
        deep = {"a": [deep]}

    response = put(api_client, token, {"x": deep}, 0)

    assert response.status_code == 400
    assert [error["code"] for error in response.json()["errors"]] == ["too-deep"]


def test_a_state_over_64_kb_is_413_and_not_stored(api_client, token):
    just_fits = {"blob": "x" * (SESSION_STATE_MAX_BYTES - len('{"blob":""}'))}
    too_big = {"blob": "x" * (SESSION_STATE_MAX_BYTES - len('{"blob":""}') + 1)}

    refused = put(api_client, token, too_big, 0)
    accepted = put(api_client, token, just_fits, 0)

    assert refused.status_code == 413
    assert refused["Content-Type"] == PROBLEM
    assert error_attrs(refused) == ["state"]
    assert accepted.status_code == 200
    assert accepted.json()["version"] == 1


def test_sessions_do_not_see_each_other(api_client):
    first, second = new_token(), new_token()
    put(api_client, first, {"who": "first"}, 0)

    assert api_client.get(url(second)).json() == {"version": 0, "state": {}, "updated_at": None}


def test_an_ambient_auth_cookie_is_ignored(api_client, token):
    # The token is the credential: a stale cookie neither fails the request nor demands CSRF.
    api_client.cookies[settings.JWT_ACCESS_COOKIE] = "not-a-jwt"

    assert put(api_client, token, {"a": 1}, 0).status_code == 200
    assert api_client.get(url(token)).status_code == 200


def test_the_default_throttles_apply(api_client, token, settings):
    settings.CMS_THROTTLE_RATES = {**settings.CMS_THROTTLE_RATES, "anon": "3/min"}

    statuses = [api_client.get(url(token)).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]


def test_a_session_expires_its_ttl_after_the_last_write(api_client, token, settings):
    settings.CMS_SESSION_STATE_TTL_SECONDS = 1
    put(api_client, token, {"a": 1}, 0)

    time.sleep(1.3)

    assert api_client.get(url(token)).json()["version"] == 0
    assert put(api_client, token, {"again": True}, 0).json()["version"] == 1


@pytest.mark.services
def test_redis_keeps_the_session_under_the_cache_prefix_with_the_ttl_renewed_by_each_write(
    api_client, token
):
    from django_redis import get_redis_connection

    assert isinstance(session_state_store(), RedisSessionStateStore)
    redis = get_redis_connection("default")
    put(api_client, token, {"a": 1}, 0)
    [key] = redis.keys(f"*session:{token}")
    assert key.decode().startswith(f"{settings.CACHE_KEY_PREFIX}:")
    ttl = settings.CMS_SESSION_STATE_TTL_SECONDS
    assert ttl - 5 <= redis.ttl(key) <= ttl

    redis.expire(key, 30)  # as if days had passed since that write
    put(api_client, token, {"a": 2}, 1)

    assert ttl - 5 <= redis.ttl(key) <= ttl
    assert redis.hget(key, "version") == b"2"


# --- Concurrency ----------------------------------------------------------------------------------
RACERS = 12


def test_racing_writes_from_the_same_version_exactly_one_wins(token):
    put(APIClient(), token, {"n": 0}, 0)
    start = threading.Barrier(RACERS)

    def race(index: int) -> tuple[int, dict]:
        client = APIClient()
        start.wait(timeout=10)
        response = put(client, token, {"n": index}, 1)
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        results = list(pool.map(race, range(RACERS)))

    winners = [body for status, body in results if status == 200]
    losers = [body for status, body in results if status == 409]
    assert len(winners) == 1 and len(losers) == RACERS - 1
    assert winners[0]["version"] == 2
    final = APIClient().get(url(token)).json()
    assert final["version"] == 2 and final["state"] == winners[0]["state"]
    assert all(loser["version"] == 2 for loser in losers)


def test_writers_that_reapply_on_conflict_lose_no_update(token):
    """Each writer adds one to a counter and, refused, re-applies on the state it was sent: the
    offline-replay rule the storefront follows. Every increment lands; versions never repeat."""
    start = threading.Barrier(RACERS)

    def increment(_: int) -> list[int]:
        client = APIClient()
        current = client.get(url(token)).json()
        start.wait(timeout=10)
        for _attempt in range(200):
            state = {"count": current["state"].get("count", 0) + 1}
            response = put(client, token, state, current["version"])
            if response.status_code == 200:
                return [response.json()["version"]]
            assert response.status_code == 409, response.content
            current = response.json()
        raise AssertionError("never won a write")

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        won = sorted(
            version for versions in pool.map(increment, range(RACERS)) for version in versions
        )

    assert won == list(range(1, RACERS + 1))  # each version granted once, none skipped
    final = APIClient().get(url(token)).json()
    assert final == {**final, "version": RACERS, "state": {"count": RACERS}}


# --- Live: session.state on session:<token> -------------------------------------------------------
async def _subscribed(path: str, topic: str) -> tuple[WebsocketCommunicator, dict]:
    socket = WebsocketCommunicator(application, path)
    connected, _ = await socket.connect(timeout=5)
    assert connected
    await socket.send_json_to({"action": "subscribe", "topic": topic})
    return socket, await socket.receive_json_from(timeout=5)


def test_a_subscribed_socket_hears_session_state_after_a_write(token):
    other = new_token()

    async def scenario() -> tuple[dict, bool, float]:
        phone, reply = await _subscribed("/ws/v1/live?anonymous_id=phone-1", f"session:{token}")
        assert reply == {"type": "subscribed", "topic": f"session:{token}"}
        stranger, _ = await _subscribed("/ws/v1/live?anonymous_id=other-2", f"session:{other}")
        written = time.monotonic()
        response = await asyncio.to_thread(put, APIClient(), token, {"cart": ["scarf"]}, 0)
        assert response.status_code == 200
        heard = await phone.receive_json_from(timeout=5)
        latency = time.monotonic() - written
        quiet = await stranger.receive_nothing(timeout=0.3)
        await phone.disconnect()
        await stranger.disconnect()
        return heard, quiet, latency

    heard, stranger_heard_nothing, latency = asyncio.run(scenario())

    assert heard["type"] == "session.state"
    assert heard["topic"] == f"session:{token}"
    assert heard["data"]["version"] == 1
    assert heard["data"]["state"] == {"cart": ["scarf"]}
    assert stranger_heard_nothing
    print(f"\nsession.state heard {latency * 1000:.0f} ms after the PUT was sent")


def test_a_refused_write_announces_nothing(token):
    put(APIClient(), token, {"v": 1}, 0)

    async def scenario() -> bool:
        socket, _ = await _subscribed("/ws/v1/live?anonymous_id=phone-3", f"session:{token}")
        response = await asyncio.to_thread(put, APIClient(), token, {"v": "stale"}, 0)
        assert response.status_code == 409
        quiet = await socket.receive_nothing(timeout=0.3)
        await socket.disconnect()
        return quiet

    assert asyncio.run(scenario())


def test_a_socket_without_any_principal_may_not_subscribe(token):
    async def scenario() -> dict:
        socket, reply = await _subscribed("/ws/v1/live", f"session:{token}")
        await socket.disconnect()
        return reply

    reply = asyncio.run(scenario())

    assert (reply["type"], reply["code"]) == ("error", "forbidden")


def test_a_malformed_session_topic_is_unknown():
    async def scenario() -> dict:
        socket, reply = await _subscribed("/ws/v1/live?anonymous_id=phone-4", "session:short")
        await socket.disconnect()
        return reply

    reply = asyncio.run(scenario())

    assert (reply["type"], reply["code"]) == ("error", "unknown-topic")
