"""The event buffer: where `POST /api/v1/events` appends and the drain worker reads.

Services mode: a Redis Stream read by a consumer group. An entry stays pending until the drain
acknowledges it after its transaction commits; entries a dead consumer left pending are claimed
by another with XAUTOCLAIM. Embedded mode: an append-only JSON-lines file with a committed read
offset, the same at-least-once contract for one process. Storing an event twice is impossible
either way: the drain inserts by event id and ignores ids it already has.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import hiredis
import redis
from django.conf import settings

logger = logging.getLogger(__name__)

GROUP = "drain"
REDIS_TIMEOUTS = {"socket_connect_timeout": 2, "socket_timeout": 5}


def stream_key() -> str:
    # Prefixed like the cache, so test runs and a developer's server never share a stream.
    return f"{settings.CACHE_KEY_PREFIX}:events"


class BufferUnavailable(Exception):
    """The buffer cannot take events right now (Redis down, disk full)."""


@dataclass(frozen=True)
class Entry:
    entry_id: str
    event: dict[str, Any] | None  # None: the entry could not be decoded


class Budget(Protocol):
    """A caller's request counter for the current window (`cmsproject.throttling.ThrottleWindow`):
    what `append_counted` needs to count a request and append in one step."""

    @property
    def limit(self) -> int: ...

    @property
    def redis_key(self) -> str: ...

    @property
    def expiry(self) -> int: ...

    def increment(self) -> int: ...


class EventBuffer(Protocol):
    def append(self, events: list[dict[str, Any]]) -> None: ...

    def append_counted(self, events: list[dict[str, Any]], *, budget: Budget) -> int: ...

    def read(self, *, count: int, block_ms: int = 0) -> list[Entry]: ...

    def ack(self, entry_ids: list[str]) -> None: ...

    def pending_count(self) -> int: ...

    def oldest_entry_at(self) -> datetime | None: ...


# `json.dumps(event, separators=(",", ":"))` without building an encoder per event.
_encoded = json.JSONEncoder(separators=(",", ":")).encode


def _decode(raw: bytes | str) -> dict[str, Any] | None:
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


# Count the request, then append only within the budget: a request over it writes nothing. One
# script is one round trip and atomic; a pipeline could not make the XADD depend on the INCR's
# reply, and MULTI/EXEC cannot branch at all. The EXPIRE is the one the throttles send.
APPEND_COUNTED_LUA = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2], 'NX')
if count > tonumber(ARGV[1]) then
    return count
end
for i = 3, #ARGV do
    redis.call('XADD', KEYS[2], '*', 'e', ARGV[i])
end
return count
"""


class RedisStreamBuffer:
    def __init__(self, url: str, *, consumer: str | None = None, claim_idle_ms: int | None = None):
        self.url = url
        self.redis = redis.Redis.from_url(url, **REDIS_TIMEOUTS)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.stream = stream_key()
        # How long an entry may sit with a consumer before another one takes it over: longer than
        # any healthy batch takes, short enough to keep roll-ups under a minute behind.
        self.claim_idle_ms = (
            claim_idle_ms
            if claim_idle_ms is not None
            else int(os.environ.get("CMS_EVENTS_CLAIM_IDLE_MS", 30_000))
        )
        self._group_ready = False
        self._append_counted = self.redis.register_script(APPEND_COUNTED_LUA)
        self._own_connection: redis.Connection | None = None
        self._own_lock = threading.Lock()
        _redis_buffers.add(self)

    def append(self, events: list[dict[str, Any]]) -> None:
        try:
            pipe = self.redis.pipeline(transaction=False)
            for event in events:
                pipe.xadd(self.stream, {"e": _encoded(event)})
            pipe.execute()
        except redis.RedisError as exc:
            raise BufferUnavailable(str(exc)) from exc

    def append_counted(self, events: list[dict[str, Any]], *, budget: Budget) -> int:
        """Count one request against `budget` and append the events only if the count is within
        its limit, in one round trip (EVALSHA; the script is loaded again after a Redis
        restart). Returns the count. The budget's counter must live in this Redis."""
        command = hiredis.pack_command(
            (
                "EVALSHA",
                self._append_counted.sha,
                2,
                budget.redis_key,
                self.stream,
                budget.limit,
                budget.expiry,
                *map(_encoded, events),
            )
        )
        try:
            return int(self._own_call(command))
        except redis.RedisError as exc:
            raise BufferUnavailable(str(exc)) from exc

    def _own_call(self, command: bytes) -> Any:
        """One packed command on the buffer's own connection, and its reply.

        `append_counted` serves one anonymous request with one command, so it skips redis-py's
        client layer (pool, retry wrapper, per-command lock and packing in Python): 32 µs of CPU
        per call against 56 through the client (bench/README.md). The connection is redis-py's
        own (connect, AUTH, SELECT, timeouts, the hiredis parser); a lock makes it thread-safe.

        It is never health-checked, so a connection Redis dropped (a restart, an idle timeout)
        fails its next command: reconnect and send it again, once. At worst an event is appended
        twice, and the drain stores each event id once. After a Redis restart the script is gone
        (NOSCRIPT): load it and send again."""
        with self._own_lock:
            if self._own_connection is None:
                pool = redis.ConnectionPool.from_url(self.url, **REDIS_TIMEOUTS)
                self._own_connection = pool.make_connection()
            connection = self._own_connection
            script_loaded = reconnected = False
            while True:
                try:
                    connection.send_packed_command([command], check_health=False)
                    return connection.read_response()
                except redis.exceptions.NoScriptError:
                    if script_loaded:
                        raise
                    self.redis.script_load(APPEND_COUNTED_LUA)
                    script_loaded = True
                except redis.ResponseError:
                    raise  # the reply was read: the connection is fine
                except redis.ConnectionError:
                    connection.disconnect()
                    if reconnected:
                        raise
                    reconnected = True
                except BaseException:
                    # A timeout (the reply may still come, and would answer the next command).
                    connection.disconnect()
                    raise

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def read(self, *, count: int, block_ms: int = 0) -> list[Entry]:
        """Own pending entries first (a retry after a failed batch), then entries left pending by
        dead consumers, then new ones."""
        try:
            return self._read(count=count, block_ms=block_ms)
        except redis.ResponseError as exc:
            if not str(exc).startswith("NOGROUP"):
                raise
            # Redis lost the stream with its group (restarted without persistence, flushed): what
            # was appended since is in a new stream that no group reads yet. Make the group again,
            # from the stream's first entry, instead of failing every drain until a restart.
            logger.warning("The events stream lost its consumer group; creating it again")
            self._group_ready = False
            return self._read(count=count, block_ms=block_ms)

    def _read(self, *, count: int, block_ms: int) -> list[Entry]:
        self._ensure_group()
        own = self.redis.xreadgroup(GROUP, self.consumer, {self.stream: "0"}, count=count)
        entries = self._entries(own)
        if not entries:
            _next, claimed, _deleted = self.redis.xautoclaim(
                self.stream,
                GROUP,
                self.consumer,
                min_idle_time=self.claim_idle_ms,
                start_id="0-0",
                count=count,
            )
            entries = [self._entry(entry_id, fields) for entry_id, fields in claimed]
        if not entries:
            fresh = self.redis.xreadgroup(
                GROUP, self.consumer, {self.stream: ">"}, count=count, block=block_ms or None
            )
            entries = self._entries(fresh)
        return entries

    def ack(self, entry_ids: list[str]) -> None:
        if not entry_ids:
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(self.stream, GROUP, *entry_ids)
        pipe.xdel(self.stream, *entry_ids)  # acknowledged entries are in the database now
        pipe.execute()

    def pending_count(self) -> int:
        """Entries not yet stored: acknowledged entries are deleted, so the stream's length."""
        self._ensure_group()
        return int(self.redis.xlen(self.stream))

    def oldest_entry_at(self) -> datetime | None:
        """When the oldest entry not yet stored was appended (its id's milliseconds). Read-only."""
        first = self.redis.xrange(self.stream, count=1)
        if not first:
            return None
        entry_id = first[0][0].decode() if isinstance(first[0][0], bytes) else first[0][0]
        return datetime.fromtimestamp(int(entry_id.split("-")[0]) / 1000, tz=UTC)

    def _entries(self, response: Any) -> list[Entry]:
        if not response:
            return []
        _stream, items = response[0]
        return [self._entry(entry_id, fields) for entry_id, fields in items if fields]

    @staticmethod
    def _entry(entry_id: bytes | str, fields: dict) -> Entry:
        entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        raw = (fields or {}).get(b"e") or (fields or {}).get("e") or b""
        return Entry(entry_id, _decode(raw))


# A connection opened before a fork would be shared by parent and child (gunicorn --preload):
# each child opens its own. Closing the inherited client in the child leaves the parent's socket
# open (redis-py shuts a socket down only in the process that opened it).
_redis_buffers: weakref.WeakSet[RedisStreamBuffer] = weakref.WeakSet()


def _forget_own_connections() -> None:
    for buffer in list(_redis_buffers):
        buffer._own_connection = None
        buffer._own_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_own_connections)


class FileBuffer:
    """Embedded mode: `events.jsonl` plus `events.offset` (bytes already drained).

    Appends and reads take an exclusive lock on the file, so the web process and the in-process
    drain never interleave. When everything is drained the file is truncated, so it stays small.
    """

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "events.jsonl"
        self.offset_path = self.directory / "events.offset"
        self.path.touch(exist_ok=True)

    @contextmanager
    def _locked(self) -> Iterator[Any]:
        with self.path.open("a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def append(self, events: list[dict[str, Any]]) -> None:
        payload = b"".join(_encoded(event).encode() + b"\n" for event in events)
        try:
            with self._locked() as handle:
                handle.seek(0, os.SEEK_END)
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())  # accepted means on disk
        except OSError as exc:
            raise BufferUnavailable(str(exc)) from exc

    def append_counted(self, events: list[dict[str, Any]], *, budget: Budget) -> int:
        """Count one request against `budget` (the cache's counter), then append within it."""
        count = budget.increment()
        if count <= budget.limit:
            self.append(events)
        return count

    def _offset(self) -> int:
        try:
            return int(self.offset_path.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def read(self, *, count: int, block_ms: int = 0) -> list[Entry]:
        with self._locked() as handle:
            handle.seek(self._offset())
            entries = []
            while len(entries) < count:
                start = handle.tell()
                line = handle.readline()
                if not line.endswith(b"\n"):  # nothing more, or a write still in flight
                    break
                # The entry id is "<start>-<end>": acking it moves the offset to <end>.
                entries.append(Entry(f"{start}-{handle.tell()}", _decode(line)))
            return entries

    def ack(self, entry_ids: list[str]) -> None:
        if not entry_ids:
            return
        end = max(int(entry_id.split("-")[1]) for entry_id in entry_ids)
        with self._locked() as handle:
            size = handle.seek(0, os.SEEK_END)
            if end >= size:
                handle.truncate(0)  # all drained: start the file afresh
                end = 0
            tmp = self.offset_path.with_suffix(".tmp")
            tmp.write_text(str(end))
            os.replace(tmp, self.offset_path)

    def pending_count(self) -> int:
        with self._locked() as handle:
            handle.seek(self._offset())
            return sum(1 for line in handle if line.endswith(b"\n"))

    def oldest_entry_at(self) -> datetime | None:
        """When the oldest entry not yet drained was received (its `receivedAt`). Read-only."""
        entries = self.read(count=1)
        event = entries[0].event if entries else None
        try:
            return datetime.fromisoformat(event["receivedAt"]) if event else None
        except (KeyError, TypeError, ValueError):
            return None


_buffer: EventBuffer | None = None


def event_buffer() -> EventBuffer:
    """The process's buffer, chosen by mode."""
    global _buffer
    if _buffer is None:
        if settings.REDIS_URL:
            _buffer = RedisStreamBuffer(settings.REDIS_URL)
        else:
            _buffer = FileBuffer(Path(settings.VAR_DIR) / "events")
    return _buffer


def event_buffer_reset() -> None:
    """Forget the process's buffer (tests switch directories and URLs)."""
    global _buffer
    _buffer = None
