"""Live topics: the registry each app declares its topics in, and publishing after commit.

A topic is what a client subscribes to (`content:page:home`, `customer:me`). Each registered
topic pattern says who may subscribe and which *stream* the subscription listens to: for most
topics the stream is the topic itself, but `customer:me` resolves to the caller's own stream
(`customer:42`, `anonymous:abc`). Publishers write to streams; they never need to know who listens.

`publish` sends only after the surrounding transaction commits (immediately when there is none),
so no client hears of a change that was rolled back. It works from web processes and from Celery
workers alike: both reach the same channel layer.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

MESSAGE_TYPE = "live.event"  # the consumer method `live_event` receives these


@dataclass(frozen=True)
class Principal:
    """Who holds a socket. Any of the three may be absent; all absent is a public socket."""

    user: Any = None
    anonymous_id: str | None = None
    via_cookie: bool = False

    @property
    def is_staff(self) -> bool:
        return bool(self.user is not None and self.user.is_active and self.user.is_staff)

    @property
    def is_authenticated(self) -> bool:
        return self.user is not None


Authorize = Callable[[Principal, dict[str, str]], bool]
Resolve = Callable[[Principal, dict[str, str]], str | None]


@dataclass(frozen=True)
class TopicSpec:
    pattern: re.Pattern[str]
    authorize: Authorize
    resolve: Resolve | None
    description: str

    def stream_for(self, principal: Principal, params: dict[str, str], topic: str) -> str | None:
        return self.resolve(principal, params) if self.resolve else topic


class TopicRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, TopicSpec] = {}

    def register(
        self,
        pattern: str,
        *,
        authorize: Authorize,
        resolve: Resolve | None = None,
        description: str = "",
    ) -> None:
        """`pattern` is a regex matched against the whole topic; named groups become params."""
        if pattern in self._specs:
            raise ValueError(f"Topic pattern {pattern!r} is registered twice.")
        self._specs[pattern] = TopicSpec(re.compile(pattern), authorize, resolve, description)

    def match(self, topic: str) -> tuple[TopicSpec, dict[str, str]] | None:
        for spec in self._specs.values():
            found = spec.pattern.fullmatch(topic)
            if found:
                return spec, found.groupdict()
        return None

    def patterns(self) -> list[str]:
        return list(self._specs)


topics = TopicRegistry()


def group_name(stream: str) -> str:
    # Channel-layer group names allow only [a-zA-Z0-9_.-] and under 100 characters.
    return "live." + hashlib.sha256(stream.encode()).hexdigest()[:40]


def live_message(stream: str, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": MESSAGE_TYPE,
        "stream": stream,
        "event": event_type,
        "data": data,
        "id": uuid.uuid4().hex,
    }


# The event loop that serves the sockets, remembered when the first socket connects. Only the
# in-memory layer (embedded mode) needs it: its queues belong to that loop, so a send from another
# thread (the embedded scheduler, a task) must run there or the waiting consumer never wakes.
_socket_loop: asyncio.AbstractEventLoop | None = None


def remember_socket_loop(loop: asyncio.AbstractEventLoop) -> None:
    global _socket_loop
    _socket_loop = loop


def _send_now(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    loop = _socket_loop
    if isinstance(layer, InMemoryChannelLayer) and loop is not None and loop.is_running():
        asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop).result(timeout=5)
    else:
        async_to_sync(layer.group_send)(group, message)


def publish(stream: str, event_type: str, data: dict[str, Any]) -> None:
    """Send `event_type` with `data` to everyone subscribed to `stream`, after commit.

    Call it from sync code: views, services, tasks, the embedded scheduler.
    """
    message = live_message(stream, event_type, data)
    transaction.on_commit(lambda: _send_now(group_name(stream), message), robust=True)


async def publish_async(stream: str, event_type: str, data: dict[str, Any]) -> None:
    """For async callers outside any transaction (consumers)."""
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(group_name(stream), live_message(stream, event_type, data))
