"""Cross-device session state: one small JSON document per session token, shared by every page
and device that holds the token (a cart, a draft form), versioned so that no write is lost.

The token is the capability. Whoever holds it may read and write the state and hear its changes
on the live topic `session:<token>`; there is no owner, no account and no listing. Tokens are
therefore long random strings (32-128 characters of `[A-Za-z0-9_-]`), made by the client.

Every write names the version it edited (compare-and-set): the first write says version 0 and
gets version 1; a write from a stale version is refused with the current state, so the client
re-applies its change on top of it and retries (`SessionStateConflict`). States live
`CMS_SESSION_STATE_TTL_SECONDS` after their last write, then the token starts over at version 0.

Where the states live depends on the mode: Redis when it is configured (a hash per token, the
check-and-write one Lua script, so every web process agrees), else the process's local-memory
cache with a lock (the embedded mode is one process).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from cmsproject.errors import (
    Conflict,
    DomainError,
    FieldError,
    PayloadTooLarge,
    ServiceUnavailable,
    ValidationError,
)
from cmsproject.realtime import publish

SESSION_TOKEN_PATTERN = r"[A-Za-z0-9_-]{32,128}"  # noqa: S105 - a format, not a secret
SESSION_TOKEN = re.compile(SESSION_TOKEN_PATTERN)
SESSION_STATE_MAX_BYTES = 64 * 1024
SESSION_STATE_MAX_DEPTH = 32  # nesting levels, the state object being 1: far past any cart
SESSION_STATE_EVENT = "session.state"


@dataclass(frozen=True)
class SessionState:
    version: int  # 0: nothing written yet (or expired)
    state: dict[str, Any]
    updated_at: str | None  # ISO 8601, None while version is 0

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "state": self.state, "updated_at": self.updated_at}


EMPTY = SessionState(version=0, state={}, updated_at=None)


class PreconditionRequired(DomainError):
    status = HTTPStatus.PRECONDITION_REQUIRED
    code = "precondition-required"


class SessionStateConflict(Conflict):
    """The write named a version that is not the current one; `current` is what is stored."""

    def __init__(self, detail: str, *, current: SessionState) -> None:
        super().__init__(detail)
        self.current = current


def session_stream_for(*, token: str) -> str:
    """The live stream of a session; also the topic clients subscribe to."""
    return f"session:{token}"


# --- The stores -----------------------------------------------------------------------------------
class SessionStateStore(Protocol):
    def get(self, token: str) -> SessionState: ...

    def compare_and_set(
        self, token: str, *, expected_version: int, state_json: str, updated_at: str, ttl: int
    ) -> tuple[bool, SessionState]:
        """Write if the stored version is `expected_version`: (True, the new state). Else
        nothing is written: (False, the stored state)."""
        ...


def _key(token: str) -> str:
    # Under the cache's own prefix (`<CMS_CACHE_PREFIX>:1:session:<token>`), like the cache's tag
    # sets: test runs and servers that share a Redis never see each other's sessions.
    return cache.make_key(f"session:{token}")


# KEYS[1] the session hash; ARGV: expected version, state JSON, updated_at, ttl seconds.
# Returns {written (1/0), version, state JSON, updated_at}: the new values, or the stored ones.
_COMPARE_AND_SET = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current ~= tonumber(ARGV[1]) then
  if current == 0 then
    return {0, 0, '{}', ''}
  end
  local stored = redis.call('HMGET', KEYS[1], 'state', 'updated_at')
  return {0, current, stored[1], stored[2]}
end
local written = current + 1
redis.call('HSET', KEYS[1], 'version', written, 'state', ARGV[2], 'updated_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return {1, written, ARGV[2], ARGV[3]}
"""


def _text(raw: bytes | str | None) -> str:
    return raw.decode() if isinstance(raw, bytes) else (raw or "")


class RedisSessionStateStore:
    """A hash per token: version, state (JSON text), updated_at; expiry pushed out by each write."""

    def __init__(self) -> None:
        self._script: Any = None

    def _connection(self) -> Any:
        from django_redis import get_redis_connection

        return get_redis_connection("default")

    def get(self, token: str) -> SessionState:
        import redis

        try:
            version, state, updated_at = self._connection().hmget(
                _key(token), "version", "state", "updated_at"
            )
        except redis.RedisError as exc:
            raise ServiceUnavailable("Session state is unavailable right now.") from exc
        if version is None:
            return EMPTY
        return SessionState(int(version), json.loads(state), _text(updated_at) or None)

    def compare_and_set(
        self, token: str, *, expected_version: int, state_json: str, updated_at: str, ttl: int
    ) -> tuple[bool, SessionState]:
        import redis

        connection = self._connection()
        if self._script is None:
            self._script = connection.register_script(_COMPARE_AND_SET)
        try:
            written, version, state, stored_at = self._script(
                keys=[_key(token)],
                args=[expected_version, state_json, updated_at, ttl],
                client=connection,
            )
        except redis.RedisError as exc:
            raise ServiceUnavailable("Session state is unavailable right now.") from exc
        current = SessionState(int(version), json.loads(_text(state)), _text(stored_at) or None)
        return bool(written), current


class LocalSessionStateStore:
    """The embedded mode's: the local-memory cache, the check-and-write under a process lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def get(self, token: str) -> SessionState:
        stored = cache.get(_key(token))
        if stored is None:
            return EMPTY
        return SessionState(stored["version"], json.loads(stored["state"]), stored["updated_at"])

    def compare_and_set(
        self, token: str, *, expected_version: int, state_json: str, updated_at: str, ttl: int
    ) -> tuple[bool, SessionState]:
        with self._lock:
            current = self.get(token)
            if current.version != expected_version:
                return False, current
            version = current.version + 1
            stored = {"version": version, "state": state_json, "updated_at": updated_at}
            cache.set(_key(token), stored, timeout=ttl)
        return True, SessionState(version, json.loads(state_json), updated_at)


_stores: dict[bool, SessionStateStore] = {}


def session_state_store() -> SessionStateStore:
    """Redis when the cache is Redis (services mode), else the local-memory store."""
    uses_redis = settings.CACHES["default"]["BACKEND"].startswith("django_redis")
    if uses_redis not in _stores:
        _stores[uses_redis] = RedisSessionStateStore() if uses_redis else LocalSessionStateStore()
    return _stores[uses_redis]


# --- Reads and writes -----------------------------------------------------------------------------
def session_token_checked(*, token: str) -> str:
    """The token, or ValidationError naming `token`."""
    if not SESSION_TOKEN.fullmatch(token):
        raise ValidationError(
            "The session token is malformed.",
            errors=[
                FieldError(
                    "token",
                    "invalid",
                    "32 to 128 characters of A-Z, a-z, 0-9, '_' and '-' (a random secret).",
                )
            ],
        )
    return token


def _depth(value: Any) -> int:
    """How deeply `value` nests, counted without recursion (a hostile body must not reach
    Python's recursion limit in the encoder)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            if depth <= SESSION_STATE_MAX_DEPTH:
                stack.extend((child, depth + 1) for child in item)
    return deepest


def _state_encoded(state: Any) -> str:
    if not isinstance(state, dict):
        raise ValidationError(
            "The state must be a JSON object.",
            errors=[FieldError("state", "invalid", 'A JSON object, e.g. {} or {"cart": []}.')],
        )
    if _depth(state) > SESSION_STATE_MAX_DEPTH:
        raise ValidationError(
            f"The state nests deeper than {SESSION_STATE_MAX_DEPTH} levels.",
            errors=[FieldError("state", "too-deep", f"At most {SESSION_STATE_MAX_DEPTH} levels.")],
        )
    try:
        encoded = json.dumps(state, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            "The state is not plain JSON.", errors=[FieldError("state", "invalid", str(exc))]
        ) from exc
    if len(encoded.encode()) > SESSION_STATE_MAX_BYTES:
        raise PayloadTooLarge(
            f"The state is larger than {SESSION_STATE_MAX_BYTES} bytes.",
            errors=[
                FieldError(
                    "state",
                    "too-large",
                    f"At most {SESSION_STATE_MAX_BYTES} bytes of compact JSON.",
                )
            ],
        )
    return encoded


def session_state_get(*, token: str) -> SessionState:
    """The state of a session; an unknown (or expired) token reads as version 0, state `{}`, so
    a new device can start a session with a write from version 0."""
    return session_state_store().get(session_token_checked(token=token))


def session_state_set(*, token: str, state: Any, expected_version: int | None) -> SessionState:
    """Replace the state if it is still at `expected_version`, then announce the new version on
    `session:<token>`. Raises PreconditionRequired without a version, SessionStateConflict (with
    the current state) when the version is stale."""
    session_token_checked(token=token)
    if expected_version is None:
        raise PreconditionRequired(
            "Say which version you edited: If-Match: <version> (0 to start a session).",
            errors=[FieldError("If-Match", "required", "The version this state was edited from.")],
        )
    if expected_version < 0:
        raise ValidationError(
            "A version is 0 or more.",
            errors=[FieldError("If-Match", "invalid", "A version is 0 or more.")],
        )
    encoded = _state_encoded(state)
    written, current = session_state_store().compare_and_set(
        token,
        expected_version=expected_version,
        state_json=encoded,
        updated_at=timezone.now().isoformat(),
        ttl=settings.CMS_SESSION_STATE_TTL_SECONDS,
    )
    if not written:
        raise SessionStateConflict(
            f"The session is at version {current.version}, not {expected_version}: apply your "
            "change to the current state and write again.",
            current=current,
        )
    # The store is not the database: called outside a transaction (as a request is), publish
    # sends at once; inside one, after it commits.
    publish(session_stream_for(token=token), SESSION_STATE_EVENT, current.as_dict())
    return current
