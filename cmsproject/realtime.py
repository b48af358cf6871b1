"""Live topics: the registry each app declares its topics in, and publishing after commit.

A topic is what a client subscribes to (`content:page:home`, `customer:me`). Each registered
topic pattern says who may subscribe and which *stream* the subscription listens to: for most
topics the stream is the topic itself, but `customer:me` resolves to the caller's own stream
(`customer:42`, `anonymous:abc`). Publishers write to streams; they never need to know who listens.

`publish` sends only after the surrounding transaction commits (immediately when there is none),
so no client hears of a change that was rolled back. It works from web processes and from Celery
workers alike: both reach the same channel layer.

Topics registered with `replay=True` (content: published data only) keep a short history per
stream, so a client whose socket dropped (a restart, a network blip) can resume from the last id
it saw: services mode appends each message to a Redis Stream (`XADD MAXLEN ~ 100`, expiring an
hour after the last message) in the same after-commit step and uses the entry id as the message
id; embedded mode keeps a bounded deque per stream in the process (lost when it restarts). Ids of
replayed streams are `<milliseconds>-<sequence>`, ordered like the messages; other topics keep
opaque ids. Per-customer topics keep no history: their messages are personal data, and the
current state is one REST read away.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "live.event"  # the consumer method `live_event` receives these
HISTORY_LENGTH = 100  # messages kept per replayed stream (Redis: approximately, see RedisHistory)
HISTORY_TTL_SECONDS = 3600  # a stream's history is forgotten this long after its last message
HISTORY_MAX_STREAMS = 1000  # embedded mode: streams kept in memory, least recently written out
MESSAGE_ID = re.compile(r"(\d{1,20})-(\d{1,20})")


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
    replay: bool = False

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
        replay: bool = False,
    ) -> None:
        """`pattern` is a regex matched against the whole topic; named groups become params.

        `replay=True` keeps a history of the topic's messages for clients that resume with
        `last_id`. Only for topics that are their own stream (no `resolve`) and whose messages
        anyone allowed to subscribe may read again later: never personal data.
        """
        if pattern in self._specs:
            raise ValueError(f"Topic pattern {pattern!r} is registered twice.")
        if replay and resolve is not None:
            raise ValueError("A replayed topic must be its own stream (no `resolve`).")
        self._specs[pattern] = TopicSpec(
            re.compile(pattern), authorize, resolve, description, replay
        )

    def match(self, topic: str) -> tuple[TopicSpec, dict[str, str]] | None:
        for spec in self._specs.values():
            found = spec.pattern.fullmatch(topic)
            if found:
                return spec, found.groupdict()
        return None

    def patterns(self) -> list[str]:
        return list(self._specs)

    def replays(self, stream: str) -> bool:
        """Whether messages published to `stream` are kept for replay."""
        matched = self.match(stream)
        return matched is not None and matched[0].replay


topics = TopicRegistry()


def group_name(stream: str) -> str:
    # Channel-layer group names allow only [a-zA-Z0-9_.-] and under 100 characters.
    return "live." + hashlib.sha256(stream.encode()).hexdigest()[:40]


def live_message(
    stream: str, event_type: str, data: dict[str, Any], message_id: str | None = None
) -> dict[str, Any]:
    return {
        "type": MESSAGE_TYPE,
        "stream": stream,
        "event": event_type,
        "data": data,
        "id": message_id or uuid.uuid4().hex,
    }


def message_order(message_id: Any) -> tuple[int, int] | None:
    """The position of a replayed stream's message id (`<ms>-<seq>`); None for opaque ids."""
    found = MESSAGE_ID.fullmatch(message_id) if isinstance(message_id, str) else None
    return (int(found[1]), int(found[2])) if found else None


# --- History of replayed streams ----------------------------------------------------------------
class History(Protocol):
    def append(self, stream: str, event_type: str, data: dict[str, Any]) -> str:
        """Keep the message; returns its id."""

    def after(self, stream: str, last_id: str) -> list[dict[str, Any]] | None:
        """The live messages after `last_id`, oldest first; None when `last_id` is not in the
        history (unknown, too old, expired or lost): the caller cannot know what it missed."""


class RedisHistory:
    """One Redis Stream per live stream. `MAXLEN ~` lets Redis trim whole nodes only (cheap), so a
    stream holds between HISTORY_LENGTH and about twice that; the key expires HISTORY_TTL_SECONDS
    after its last message. An id is replayable while it is still in the stream, so a trimmed,
    expired or evicted history can never be mistaken for "nothing happened"."""

    def __init__(self, url: str, prefix: str) -> None:
        self.redis = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self.prefix = prefix

    def key(self, stream: str) -> str:
        return f"{self.prefix}:live:{stream}"

    def append(self, stream: str, event_type: str, data: dict[str, Any]) -> str:
        key = self.key(stream)
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(
            key,
            {"event": event_type, "data": json.dumps(data, separators=(",", ":"))},
            maxlen=HISTORY_LENGTH,
            approximate=True,
        )
        pipe.expire(key, HISTORY_TTL_SECONDS)
        entry_id, _ = pipe.execute()
        return entry_id.decode()

    def after(self, stream: str, last_id: str) -> list[dict[str, Any]] | None:
        if message_order(last_id) is None:
            return None
        limit = HISTORY_LENGTH * 3  # more than `MAXLEN ~` ever keeps
        entries = self.redis.xrange(self.key(stream), min=last_id, max="+", count=limit + 1)
        if not entries or entries[0][0].decode() != last_id or len(entries) > limit:
            return None
        return [
            live_message(
                stream, fields[b"event"].decode(), json.loads(fields[b"data"]), entry_id.decode()
            )
            for entry_id, fields in entries[1:]
        ]


class LocalHistory:
    """Embedded mode: a bounded deque per stream in this process, which also serves the sockets.
    Ids follow the Redis format (`<ms>-<seq>`, increasing); all of it is lost on restart, and a
    client resuming with an id of the previous process is then told to refetch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # stream -> (monotonic time of its last message, [(id, event, JSON data)])
        self._streams: OrderedDict[str, tuple[float, deque[tuple[str, str, str]]]] = OrderedDict()
        self._last = (0, 0)

    def _next_id(self) -> str:
        now = time.time_ns() // 1_000_000
        last_ms, last_seq = self._last
        self._last = (now, 0) if now > last_ms else (last_ms, last_seq + 1)
        return f"{self._last[0]}-{self._last[1]}"

    def append(self, stream: str, event_type: str, data: dict[str, Any]) -> str:
        encoded = json.dumps(data, separators=(",", ":"))
        now = time.monotonic()
        with self._lock:
            message_id = self._next_id()
            _, entries = self._streams.pop(stream, (now, deque(maxlen=HISTORY_LENGTH)))
            entries.append((message_id, event_type, encoded))
            self._streams[stream] = (now, entries)
            # Least recently written first: drop the expired, then any beyond the cap (a client
            # resuming on those is told to refetch, as after a restart).
            while self._streams and (
                len(self._streams) > HISTORY_MAX_STREAMS
                or now - next(iter(self._streams.values()))[0] > HISTORY_TTL_SECONDS
            ):
                self._streams.popitem(last=False)
        return message_id

    def after(self, stream: str, last_id: str) -> list[dict[str, Any]] | None:
        with self._lock:
            written, entries = self._streams.get(stream, (0.0, deque()))
            if time.monotonic() - written > HISTORY_TTL_SECONDS:
                self._streams.pop(stream, None)
                return None
            ids = [entry[0] for entry in entries]
            if last_id not in ids:
                return None
            missed = list(entries)[ids.index(last_id) + 1 :]
        return [
            live_message(stream, event_type, json.loads(data), message_id)
            for message_id, event_type, data in missed
        ]


_history: tuple[tuple[str, str], History] | None = None
_history_lock = threading.Lock()


def live_history() -> History:
    """Where replayed streams keep their history: Redis when the channel layer is Redis (the
    sockets may be served by another process), else this process."""
    global _history
    config = (settings.REDIS_URL, settings.CACHE_KEY_PREFIX)
    with _history_lock:
        if _history is None or _history[0] != config:
            backend = RedisHistory(*config) if settings.REDIS_URL else LocalHistory()
            _history = (config, backend)
        return _history[1]


def _stamped(stream: str, message: dict[str, Any]) -> dict[str, Any]:
    """`message` with the id its history gave it, when `stream` is replayed."""
    if not topics.replays(stream):
        return message
    try:
        message_id = live_history().append(stream, message["event"], message["data"])
    except redis.RedisError:
        # Live subscribers still hear it; a client resuming from its opaque id is told to
        # refetch, which is what an unrecorded message calls for.
        logger.warning("live history unavailable; %s sent without replay", stream, exc_info=True)
        return message
    return {**message, "id": message_id}


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
    transaction.on_commit(
        lambda: _send_now(group_name(stream), _stamped(stream, message)), robust=True
    )


async def publish_async(stream: str, event_type: str, data: dict[str, Any]) -> None:
    """For async callers outside any transaction (consumers)."""
    layer = get_channel_layer()
    if layer is not None:
        message = live_message(stream, event_type, data)
        message = await asyncio.to_thread(_stamped, stream, message)
        await layer.group_send(group_name(stream), message)
