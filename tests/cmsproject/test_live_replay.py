"""Resuming live topics with `last_id` (API.md, WebSocket): through the real ASGI application and
the mode's channel layer and history (in-process in the embedded pass; the Redis channel layer
and a Redis Stream per topic in the services pass)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing.websocket import WebsocketCommunicator

from cmsproject.asgi import application
from cmsproject.realtime import (
    HISTORY_LENGTH,
    HISTORY_MAX_STREAMS,
    LocalHistory,
    RedisHistory,
    TopicRegistry,
    group_name,
    live_history,
    message_order,
    publish,
)
from content.models import Entry
from content.services import entry_create, entry_publish, entry_type_create, entry_update
from customers.topics import customer_stream_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def forget() -> Iterator[list[str]]:
    """Topics whose Redis history the test leaves behind: removed afterwards."""
    names: list[str] = []
    yield names
    history = live_history()
    if isinstance(history, RedisHistory) and names:
        history.redis.delete(*(history.key(name) for name in names))


@pytest.fixture
def topic(forget: list[str]) -> str:
    """A content topic of its own."""
    forget.append(f"content:page:replay-{secrets.token_hex(4)}")
    return forget[-1]


async def connect(path: str = "/ws/v1/live") -> WebsocketCommunicator:
    socket = WebsocketCommunicator(application, path)
    connected, _ = await socket.connect(timeout=5)
    assert connected
    return socket


async def subscribe(socket: WebsocketCommunicator, topic: str, last_id: str | None = None) -> None:
    request: dict[str, Any] = {"action": "subscribe", "topic": topic}
    if last_id is not None:
        request["last_id"] = last_id
    await socket.send_json_to(request)
    assert await socket.receive_json_from(timeout=5) == {"type": "subscribed", "topic": topic}


async def publish_now(stream: str, event: str, data: dict[str, Any]) -> None:
    """From another thread, as a web request, a worker or the scheduler publishes."""
    await asyncio.to_thread(publish, stream, event, data)


# --- resuming with the last id seen -------------------------------------------------------------


def _publish_revision(entry_id: int, heading: str) -> None:
    entry = Entry.objects.select_related("type").get(pk=entry_id)
    updated = entry_update(entry=entry, body={"zones": {"body": [_hero(heading)]}})
    entry_publish(entry=updated)


def _hero(heading: str) -> dict[str, Any]:
    return {"component": "hero", "data": {"heading": heading}}


def _create_entry(api_id: str) -> int:
    entry_type = entry_type_create(
        api_id=api_id,
        name="Replayed page",
        fields=[{"name": "title", "type": "string"}],
        zones=[{"name": "body", "components": ["hero"]}],
    )
    body = {"slug": "home", "fields": {"title": "T"}, "zones": {"body": [_hero("v0")]}}
    return entry_create(entry_type=entry_type, body=body).pk


async def test_a_client_that_saw_the_first_update_gets_exactly_the_next_two_then_live_ones(
    forget: list[str],
):
    # Given an entry whose topic a first client follows while it is published once
    api_id = f"replay_{secrets.token_hex(3)}"
    entry_id = await database_sync_to_async(_create_entry)(api_id)
    topic = f"content:{api_id}:home"
    forget.append(topic)
    first = await connect()
    await subscribe(first, topic)
    await database_sync_to_async(_publish_revision)(entry_id, "v1")
    seen = await first.receive_json_from(timeout=5)
    assert (seen["type"], seen["data"]["zones"]["body"][0]["data"]["heading"]) == (
        "content.published",
        "v1",
    )
    await first.disconnect()

    # When two more updates are published while it is away, and it comes back with its id
    for heading in ("v2", "v3"):
        await database_sync_to_async(_publish_revision)(entry_id, heading)
    back = await connect()
    await subscribe(back, topic, last_id=seen["id"])

    # Then it gets those two, in order and marked as replayed, and nothing else
    replayed = [await back.receive_json_from(timeout=5) for _ in range(2)]
    assert [(m["type"], m["data"]["zones"]["body"][0]["data"]["heading"]) for m in replayed] == [
        ("content.updated", "v2"),
        ("content.updated", "v3"),
    ]
    assert all(m["replayed"] is True and m["topic"] == topic for m in replayed)
    assert message_order(seen["id"]) < message_order(replayed[0]["id"])
    assert message_order(replayed[0]["id"]) < message_order(replayed[1]["id"])
    assert await back.receive_nothing(timeout=0.3)

    # And what is published next arrives live, once
    await database_sync_to_async(_publish_revision)(entry_id, "v4")
    live = await back.receive_json_from(timeout=5)
    assert live["data"]["zones"]["body"][0]["data"]["heading"] == "v4"
    assert "replayed" not in live
    assert message_order(live["id"]) > message_order(replayed[1]["id"])
    assert await back.receive_nothing(timeout=0.3)
    await back.disconnect()


async def test_resuming_from_the_newest_id_replays_nothing_and_stays_live(topic: str):
    await publish_now(topic, "content.updated", {"n": 1})
    watcher = await connect()
    await subscribe(watcher, topic)
    await publish_now(topic, "content.updated", {"n": 2})
    newest = (await watcher.receive_json_from(timeout=5))["id"]
    await watcher.disconnect()

    back = await connect()
    await subscribe(back, topic, last_id=newest)
    assert await back.receive_nothing(timeout=0.3)
    await publish_now(topic, "content.updated", {"n": 3})

    assert (await back.receive_json_from(timeout=5))["data"] == {"n": 3}
    await back.disconnect()


async def test_a_publish_racing_the_resume_is_delivered_exactly_once(topic, monkeypatch):
    # Given a client that saw the first message of a topic
    watcher = await connect()
    await subscribe(watcher, topic)
    await publish_now(topic, "content.updated", {"n": 1})
    seen = (await watcher.receive_json_from(timeout=5))["id"]
    await watcher.disconnect()
    await publish_now(topic, "content.updated", {"n": 2})

    # When a message is published right after the socket joins the group, before the history is
    # read: it is both in the history and on its way live
    layer = get_channel_layer()
    join = layer.group_add

    async def join_then_publish(group: str, channel: str) -> None:
        await join(group, channel)
        if group == group_name(topic):
            await publish_now(topic, "content.updated", {"n": "race"})

    monkeypatch.setattr(layer, "group_add", join_then_publish)
    back = await connect()
    await subscribe(back, topic, last_id=seen)
    monkeypatch.undo()
    await publish_now(topic, "content.updated", {"n": 4})

    # Then the client gets each message once, in order: the raced one in the replay, not again live
    received = [await back.receive_json_from(timeout=5) for _ in range(3)]
    assert [(m["data"]["n"], m.get("replayed", False)) for m in received] == [
        (2, True),
        ("race", True),
        (4, False),
    ]
    assert len({m["id"] for m in received}) == 3
    assert await back.receive_nothing(timeout=0.5)
    await back.disconnect()


# --- what cannot be replayed --------------------------------------------------------------------


async def test_the_history_is_bounded_and_an_evicted_id_gets_a_reset(topic: str):
    # Given three times as many messages as a topic keeps
    watcher = await connect()
    await subscribe(watcher, topic)
    total = HISTORY_LENGTH * 3
    ids = []
    for n in range(total):  # one at a time: a channel holds only so many undelivered messages
        await publish_now(topic, "content.updated", {"n": n})
        ids.append((await watcher.receive_json_from(timeout=5))["id"])
    await watcher.disconnect()

    # Then the history holds the newest ones only
    history = live_history()
    if isinstance(history, RedisHistory):  # MAXLEN ~: whole nodes are trimmed, never below it
        assert HISTORY_LENGTH <= history.redis.xlen(history.key(topic)) < 2 * HISTORY_LENGTH
    keep_from = total - HISTORY_LENGTH
    assert len(history.after(topic, ids[keep_from]) or []) == HISTORY_LENGTH - 1
    assert history.after(topic, ids[0]) is None

    # And a client resuming from an evicted id is told to refetch, then hears live messages
    back = await connect()
    await subscribe(back, topic, last_id=ids[0])
    reset = await back.receive_json_from(timeout=5)
    assert reset == {"type": "reset", "topic": topic, "detail": reset["detail"]}
    assert await back.receive_nothing(timeout=0.3)
    await publish_now(topic, "content.updated", {"n": "after"})
    assert (await back.receive_json_from(timeout=5))["data"] == {"n": "after"}

    # While one resuming from a kept id gets the rest, in order
    await subscribe(back, topic, last_id=ids[-10])
    replayed = [await back.receive_json_from(timeout=5) for _ in range(10)]
    assert [m["data"]["n"] for m in replayed] == [*range(total - 9, total), "after"]
    await back.disconnect()


def test_the_in_process_history_keeps_a_bounded_number_of_streams():
    history = LocalHistory()
    first = history.append("content:page:s0", "content.updated", {"n": 0})
    kept = history.append("content:page:s1", "content.updated", {"n": 1})

    for n in range(2, HISTORY_MAX_STREAMS + 1):  # one stream more than it keeps
        history.append(f"content:page:s{n}", "content.updated", {"n": n})

    assert history.after("content:page:s0", first) is None  # the least recently written went
    assert history.after("content:page:s1", kept) == []


def test_a_replayed_topic_must_be_its_own_stream():
    registry = TopicRegistry()

    with pytest.raises(ValueError, match="own stream"):
        registry.register(
            r"mine", authorize=lambda p, params: True, resolve=lambda p, params: "x", replay=True
        )


@pytest.mark.parametrize("last_id", ["1-0", "99999999999999-0", "0123abcd" * 4, "not an id"])
async def test_an_unknown_last_id_gets_a_reset_and_the_subscription_stays(topic, last_id):
    await publish_now(topic, "content.updated", {"n": 1})
    socket = await connect()

    await subscribe(socket, topic, last_id=last_id)

    assert (await socket.receive_json_from(timeout=5))["type"] == "reset"
    await publish_now(topic, "content.updated", {"n": 2})
    assert (await socket.receive_json_from(timeout=5))["data"] == {"n": 2}
    await socket.disconnect()


@pytest.mark.parametrize("last_id", [42, "", "1" * 65, ["1-0"]])
async def test_a_last_id_that_is_not_an_id_string_is_a_bad_request(topic, last_id):
    socket = await connect()

    await socket.send_json_to({"action": "subscribe", "topic": topic, "last_id": last_id})

    answer = await socket.receive_json_from(timeout=5)
    assert (answer["type"], answer["code"]) == ("error", "bad-request")
    await socket.disconnect()


async def test_customer_topics_keep_no_history_and_answer_a_resume_with_a_reset():
    # Given a visitor who heard one message on customer:me
    socket = await connect("/ws/v1/live?anonymous_id=replay-visitor")
    await subscribe(socket, "customer:me")
    stream = customer_stream_for(anonymous_id="replay-visitor")
    await publish_now(stream, "notification", {"text": "one"})
    heard = await socket.receive_json_from(timeout=5)
    await socket.disconnect()
    await publish_now(stream, "notification", {"text": "two"})

    # When it comes back with that message's id
    back = await connect("/ws/v1/live?anonymous_id=replay-visitor")
    await subscribe(back, "customer:me", last_id=heard["id"])

    # Then nothing is replayed: it is told to fetch its state, and nothing was kept
    reset = await back.receive_json_from(timeout=5)
    assert (reset["type"], reset["topic"]) == ("reset", "customer:me")
    assert await back.receive_nothing(timeout=0.3)
    assert message_order(heard["id"]) is None  # an opaque id, not a position in a history
    history = live_history()
    assert history.after(stream, heard["id"]) is None
    if isinstance(history, RedisHistory):
        assert not history.redis.exists(history.key(stream))
    await back.disconnect()


async def test_session_topics_keep_no_history():
    token = secrets.token_urlsafe(32)
    socket = await connect("/ws/v1/live?anonymous_id=replay-device")
    await subscribe(socket, f"session:{token}")
    await publish_now(f"session:{token}", "session.state", {"version": 1, "state": {}})
    heard = await socket.receive_json_from(timeout=5)

    await subscribe(socket, f"session:{token}", last_id=heard["id"])

    assert (await socket.receive_json_from(timeout=5))["type"] == "reset"
    assert live_history().after(f"session:{token}", heard["id"]) is None
    await socket.disconnect()


@pytest.mark.services
async def test_without_the_history_messages_still_go_out_live_and_a_resume_gets_a_reset(
    topic, settings
):
    # Given a client that heard a message, and then a history store that cannot be reached (the
    # channel layer still can)
    watcher = await connect()
    await subscribe(watcher, topic)
    await publish_now(topic, "content.updated", {"n": 1})
    before = await watcher.receive_json_from(timeout=5)
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # the discard port: connection refused

    # When a message is published, then the client resumes from the id it had
    await publish_now(topic, "content.updated", {"n": 2})
    during = await watcher.receive_json_from(timeout=5)
    await subscribe(watcher, topic, last_id=before["id"])

    # Then subscribers heard it all the same (with an id no history knows), and the resume is
    # told to refetch instead of failing
    assert during["data"] == {"n": 2}
    assert message_order(during["id"]) is None
    assert (await watcher.receive_json_from(timeout=5))["type"] == "reset"
    await watcher.disconnect()
