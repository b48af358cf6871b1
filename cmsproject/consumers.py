"""`/ws/v1/live`: one socket per browser or app, many topic subscriptions over it (API.md).

Resuming (`subscribe` with `last_id`) on a replayed topic: the socket joins the group first and
holds the stream's live messages, then reads the history after `last_id`, sends it, and only then
lets the held messages through, dropping any id the replay already covered. A message published
while the history is read is therefore in the replay, or live, or both (sent once): never lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from redis import RedisError
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError

from cmsproject.observability.websocket import (
    websocket_closed,
    websocket_message_sent,
    websocket_opened,
)
from cmsproject.realtime import (
    Principal,
    group_name,
    live_history,
    message_order,
    remember_socket_loop,
    topics,
)

logger = logging.getLogger(__name__)

CLOSE_BAD_TOKEN = 4401
CLOSE_BAD_ORIGIN = 4403
MAX_MESSAGE_BYTES = 4096
MAX_SUBSCRIPTIONS = 100
MAX_ID_LENGTH = 64
ANONYMOUS_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin-1")
    return None


def origin_allowed(origin: str) -> bool:
    if origin in settings.CMS_ALLOWED_ORIGINS:
        return True
    domain, _port = split_domain_port(urlsplit(origin).netloc)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


@database_sync_to_async
def _user_from_token(raw: str) -> Any:
    auth = JWTAuthentication()
    return auth.get_user(auth.get_validated_token(raw.encode()))


async def principal_from_scope(scope: dict[str, Any]) -> Principal:
    """Raises InvalidToken/AuthenticationFailed when a token is given but is not valid."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    token = (query.get("token") or [None])[0]
    via_cookie = False
    if token is None:
        cookie_header = _header(scope, b"cookie")
        if cookie_header:
            morsel = SimpleCookie(cookie_header).get(settings.JWT_ACCESS_COOKIE)
            if morsel is not None:
                token, via_cookie = morsel.value, True
    user = await _user_from_token(token) if token else None
    anonymous_id = (query.get("anonymous_id") or [None])[0]
    if anonymous_id is not None and not ANONYMOUS_ID.fullmatch(anonymous_id):
        raise InvalidToken("The anonymous id is malformed.")
    return Principal(user=user, anonymous_id=anonymous_id, via_cookie=via_cookie)


class LiveConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.subscriptions: dict[str, str] = {}  # stream -> the topic the client subscribed to
        self.held: dict[str, list[dict[str, Any]]] = {}  # live messages waiting for a replay
        self.replayed_through: dict[str, tuple[int, int]] = {}  # stream -> newest id replayed
        remember_socket_loop(asyncio.get_running_loop())
        origin = _header(self.scope, b"origin")
        # Clients that send no Origin (apps, servers) rely on their token; a browser's Origin must
        # be one of ours, or any page on the web could ride a visitor's cookie into this socket.
        if origin is not None and not origin_allowed(origin):
            await self.accept()
            await self.close(code=CLOSE_BAD_ORIGIN)
            return
        try:
            self.principal = await principal_from_scope(self.scope)
        except (InvalidToken, AuthenticationFailed, TokenError):
            await self.accept()
            await self.close(code=CLOSE_BAD_TOKEN)
            return
        await self.accept()
        websocket_opened(self)

    async def disconnect(self, code: int) -> None:
        websocket_closed(self)
        for stream in getattr(self, "subscriptions", {}):
            await self.channel_layer.group_discard(group_name(stream), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        raw = text_data if text_data is not None else (bytes_data or b"").decode(errors="replace")
        if len(raw) > MAX_MESSAGE_BYTES:
            await self._error("too-large", f"Messages are limited to {MAX_MESSAGE_BYTES} bytes.")
            return
        try:
            message = json.loads(raw)
        except ValueError:
            await self._error("bad-request", "Messages must be JSON objects.")
            return
        if not isinstance(message, dict):
            await self._error("bad-request", "Messages must be JSON objects.")
            return
        action = message.get("action")
        if action == "ping":
            await self._send({"type": "pong"})
        elif action in ("subscribe", "unsubscribe"):
            topic = message.get("topic")
            last_id = message.get("last_id")
            if not isinstance(topic, str) or not topic or len(topic) > 200:
                await self._error("bad-request", "`topic` must be a non-empty string.")
            elif last_id is not None and (
                not isinstance(last_id, str) or not 0 < len(last_id) <= MAX_ID_LENGTH
            ):
                await self._error("bad-request", "`last_id` must be the id of an event.", topic)
            elif action == "subscribe":
                await self._subscribe(topic, last_id)
            else:
                await self._unsubscribe(topic)
        else:
            await self._error("bad-request", "`action` must be subscribe, unsubscribe or ping.")

    async def _subscribe(self, topic: str, last_id: str | None = None) -> None:
        matched = topics.match(topic)
        if matched is None:
            await self._error("unknown-topic", f"There is no topic {topic!r}.", topic)
            return
        spec, params = matched
        allowed = await database_sync_to_async(spec.authorize)(self.principal, params)
        stream = spec.stream_for(self.principal, params, topic) if allowed else None
        if not allowed or stream is None:
            await self._error("forbidden", f"You may not subscribe to {topic!r}.", topic)
            return
        if stream not in self.subscriptions and len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            await self._error("too-many", f"At most {MAX_SUBSCRIPTIONS} subscriptions.", topic)
            return
        if last_id is not None and spec.replay:
            self.held[stream] = []  # from the group_add on, live messages wait for the replay
        if stream not in self.subscriptions:
            await self.channel_layer.group_add(group_name(stream), self.channel_name)
        self.subscriptions[stream] = topic
        await self._send({"type": "subscribed", "topic": topic})
        if last_id is None:
            return
        if not spec.replay:
            await self._reset(topic, "This topic keeps no history: fetch the current state.")
            return
        await self._replay(stream, topic, last_id)

    async def _replay(self, stream: str, topic: str, last_id: str) -> None:
        """Send what `stream` had after `last_id`, then the live messages held meanwhile."""
        try:
            missed = await asyncio.to_thread(live_history().after, stream, last_id)
        except RedisError:
            logger.warning("live history unreadable for %s", stream, exc_info=True)
            missed = None
        finally:
            held = self.held.pop(stream, [])
        if missed is None:
            await self._reset(
                topic, "What followed `last_id` is not kept: fetch the current state."
            )
        else:
            through = message_order(missed[-1]["id"] if missed else last_id)
            if through is not None:
                self.replayed_through[stream] = max(
                    through, self.replayed_through.get(stream, through)
                )
            for message in missed:
                await self._send({**self._event(topic, message), "replayed": True})
        for message in held:
            await self.live_event(message)

    async def _unsubscribe(self, topic: str) -> None:
        for stream, subscribed in list(self.subscriptions.items()):
            if subscribed == topic:
                await self.channel_layer.group_discard(group_name(stream), self.channel_name)
                del self.subscriptions[stream]
                self.replayed_through.pop(stream, None)
        await self._send({"type": "unsubscribed", "topic": topic})

    async def live_event(self, message: dict[str, Any]) -> None:
        stream = message["stream"]
        topic = self.subscriptions.get(stream)
        if topic is None:  # a late message for a stream we just left
            return
        if stream in self.held:  # its history is being read: sent after the replay
            self.held[stream].append(message)
            return
        through = self.replayed_through.get(stream)
        order = message_order(message["id"])
        if through is not None and order is not None and order <= through:
            return  # the replay sent it (or the client had it already)
        await self._send(self._event(topic, message))

    @staticmethod
    def _event(topic: str, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": message["event"],
            "topic": topic,
            "data": message["data"],
            "id": message["id"],
        }

    async def _reset(self, topic: str, detail: str) -> None:
        await self._send({"type": "reset", "topic": topic, "detail": detail})

    async def _error(self, code: str, detail: str, topic: str | None = None) -> None:
        payload: dict[str, Any] = {"type": "error", "code": code, "detail": detail}
        if topic is not None:
            payload["topic"] = topic
        await self._send(payload)

    async def _send(self, payload: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(payload))
        websocket_message_sent()
