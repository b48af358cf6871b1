"""`/ws/v1/live` through the real ASGI application and the configured channel layer
(in-memory in the embedded pass, Redis in the services pass)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.db import transaction
from rest_framework_simplejwt.tokens import AccessToken

from cmsproject.asgi import application
from cmsproject.realtime import publish, topics
from customers.topics import customer_stream_for

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(path: str, headers: list[tuple[bytes, bytes]] | None = None):
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def test_ping_gets_pong():
    socket, connected, _ = await connect("/ws/v1/live?anonymous_id=x")

    await socket.send_json_to({"action": "ping"})

    assert connected
    assert await socket.receive_json_from() == {"type": "pong"}
    await socket.disconnect()


async def test_bad_token_closes_with_4401():
    socket, connected, _ = await connect("/ws/v1/live?token=garbage")

    assert connected  # accepted first, so the close code reaches the client
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}


async def test_foreign_browser_origin_closes_with_4403():
    socket, _, _ = await connect("/ws/v1/live", headers=[(b"origin", b"http://evil.example")])

    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}


async def test_own_origin_is_accepted():
    socket, _, _ = await connect("/ws/v1/live", headers=[(b"origin", b"http://localhost")])

    await socket.send_json_to({"action": "ping"})

    assert await socket.receive_json_from() == {"type": "pong"}
    await socket.disconnect()


async def test_malformed_messages_get_errors_and_the_socket_stays_open():
    socket, _, _ = await connect("/ws/v1/live")

    await socket.send_to(text_data="{not json")
    first = await socket.receive_json_from()
    await socket.send_json_to({"action": "dance"})
    second = await socket.receive_json_from()
    await socket.send_to(text_data="x" * 10_000)
    third = await socket.receive_json_from()
    await socket.send_json_to({"action": "ping"})

    assert (first["code"], second["code"], third["code"]) == (
        "bad-request",
        "bad-request",
        "too-large",
    )
    assert await socket.receive_json_from() == {"type": "pong"}
    await socket.disconnect()


async def test_unknown_topic_is_an_error():
    socket, _, _ = await connect("/ws/v1/live")

    await socket.send_json_to({"action": "subscribe", "topic": "nope:1"})

    assert (await socket.receive_json_from())["code"] == "unknown-topic"
    await socket.disconnect()


async def test_anonymous_may_not_subscribe_to_staff_topics_and_stays_connected():
    socket, _, _ = await connect("/ws/v1/live?anonymous_id=abc")

    await socket.send_json_to({"action": "subscribe", "topic": "analytics:live"})
    refused = await socket.receive_json_from()
    await socket.send_json_to({"action": "ping"})

    assert refused == {
        "type": "error",
        "code": "forbidden",
        "detail": "You may not subscribe to 'analytics:live'.",
        "topic": "analytics:live",
    }
    assert await socket.receive_json_from() == {"type": "pong"}
    await socket.disconnect()


async def test_staff_token_may_subscribe_to_staff_topics(superuser):
    token = str(AccessToken.for_user(superuser))
    socket, _, _ = await connect(f"/ws/v1/live?token={token}")

    await socket.send_json_to({"action": "subscribe", "topic": "experiment:hero-copy"})

    assert await socket.receive_json_from() == {
        "type": "subscribed",
        "topic": "experiment:hero-copy",
    }
    await socket.disconnect()


async def test_every_app_topic_is_registered():
    assert {"customer:me", "analytics:live"} <= set(topics.patterns())


def _publish_in_transaction(stream: str, event: str, *, commit: bool) -> None:
    with transaction.atomic():
        publish(stream, event, {"committed": commit})
        if not commit:
            transaction.set_rollback(True)


async def test_customer_me_hears_its_own_stream_only_after_commit():
    socket, _, _ = await connect("/ws/v1/live?anonymous_id=visitor-1")
    await socket.send_json_to({"action": "subscribe", "topic": "customer:me"})
    assert (await socket.receive_json_from())["type"] == "subscribed"
    stream = customer_stream_for(anonymous_id="visitor-1")

    # From another thread, as the embedded scheduler or a worker would publish.
    await asyncio.to_thread(_publish_in_transaction, stream, "segments.changed", commit=False)
    await asyncio.to_thread(_publish_in_transaction, stream, "segments.changed", commit=True)

    message = await socket.receive_json_from(timeout=5)
    assert message["type"] == "segments.changed"
    assert message["topic"] == "customer:me"
    assert message["data"] == {"committed": True}  # the rolled-back one never arrived
    assert message["id"]
    assert await socket.receive_nothing(timeout=0.3)
    await socket.disconnect()


async def test_another_visitor_does_not_hear_my_stream():
    mine, _, _ = await connect("/ws/v1/live?anonymous_id=me")
    other, _, _ = await connect("/ws/v1/live?anonymous_id=other")
    for socket in (mine, other):
        await socket.send_json_to({"action": "subscribe", "topic": "customer:me"})
        await socket.receive_json_from()

    await database_sync_to_async(publish)(
        customer_stream_for(anonymous_id="me"), "notification", {"text": "hi"}
    )

    assert (await mine.receive_json_from(timeout=5))["data"] == {"text": "hi"}
    assert await other.receive_nothing(timeout=0.3)
    await mine.disconnect()
    await other.disconnect()


async def test_unsubscribe_stops_delivery():
    socket, _, _ = await connect("/ws/v1/live?anonymous_id=quiet")
    await socket.send_json_to({"action": "subscribe", "topic": "customer:me"})
    await socket.receive_json_from()

    await socket.send_json_to({"action": "unsubscribe", "topic": "customer:me"})
    assert (await socket.receive_json_from())["type"] == "unsubscribed"
    await database_sync_to_async(publish)(
        customer_stream_for(anonymous_id="quiet"), "notification", {}
    )

    assert await socket.receive_nothing(timeout=0.3)
    await socket.disconnect()


def test_publish_from_a_plain_thread_reaches_the_socket_loop():
    """The embedded scheduler publishes from its own thread, outside any event loop."""

    async def scenario() -> dict:
        socket, _, _ = await connect("/ws/v1/live?anonymous_id=sched")
        await socket.send_json_to({"action": "subscribe", "topic": "customer:me"})
        await socket.receive_json_from()
        worker = threading.Thread(
            target=publish,
            args=(customer_stream_for(anonymous_id="sched"), "notification", {"from": "thread"}),
        )
        worker.start()
        await asyncio.to_thread(worker.join)
        message = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return message

    assert asyncio.run(scenario())["data"] == {"from": "thread"}
