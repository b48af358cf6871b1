"""Published content in the Django cache, tagged, purged by tag.

Each cached response carries tags (`content:<id>`, `type:<api_id>`); the tag index maps a tag to
the keys that carry it, so a publish purges exactly what showed that entry, never everything.
The index lives where the cache lives: Redis sets in services mode (shared by every process),
a dict in embedded mode (the local-memory cache is per process too).

Race between a reader filling the cache and a writer publishing: the writer *writes* the new
payload of the entry's own key (it does not merely delete it), and readers fill with `add`, which
never overwrites. A reader that read the database before the publish committed therefore cannot
put the old version back. Other keys that carry the tag (fallback locales) are deleted.

Lists (pages of a type's published entries, for REST and GraphQL readers) are not tagged:
their keys carry the type's *list generation*, a counter that every change of an entry or of the
type moves on, at once (the changing transaction's own reads see the change) and again after
commit. A reader reads the generation before it reads the database, so a page computed from the
database as it was before a commit is filed under a generation nobody asks for afterwards. Keys
expire after CMS_CONTENT_LIST_CACHE_SECONDS: the safety net should a move be lost with a cache
outage.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

from cmsproject.observability.metrics import CONTENT_CACHE_HIT, CONTENT_CACHE_MISS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedResponse:
    """A response body ready to send: JSON bytes, its ETag and its tags."""

    status: int
    body: bytes
    etag: str
    tags: tuple[str, ...]

    def as_value(self) -> dict[str, Any]:
        return {"s": self.status, "b": self.body, "e": self.etag, "t": list(self.tags)}

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> CachedResponse:
        CONTENT_CACHE_HIT.inc()  # every read that found the entry decodes it here, fast paths too
        return cls(status=value["s"], body=value["b"], etag=value["e"], tags=tuple(value["t"]))


def live_key(api_id: str, slug: str, locale: str) -> str:
    return f"content:live:{api_id}:{slug}:{locale}"


def _list_generation_key(api_id: str) -> str:
    return f"content:list-generation:{api_id}"


def list_generation(api_id: str) -> int:
    return cache.get(_list_generation_key(api_id)) or 0


def list_generation_next(api_id: str) -> None:
    """After a change of the type's entries or of the type: no list cached before is read again."""
    key = _list_generation_key(api_id)
    cache.add(key, 0, timeout=None)
    try:
        cache.incr(key)
    except ValueError:  # expired or evicted between the two calls: any new number will do
        cache.set(key, 1, timeout=None)


def list_key(api_id: str, generation: int, query: str) -> str:
    digest = hashlib.sha256(query.encode()).hexdigest()[:32]  # filters can be long: bound the key
    return f"content:list:{api_id}:{generation}:{digest}"


def list_get(key: str) -> Any:
    page = cache.get(key)
    (CONTENT_CACHE_HIT if page is not None else CONTENT_CACHE_MISS).inc()
    return page


def list_put(key: str, page: Any) -> None:
    cache.set(key, page, settings.CMS_CONTENT_LIST_CACHE_SECONDS)


def entry_tags(*, entry_id: int, api_id: str) -> tuple[str, ...]:
    """The public tags of an entry's response (the `Cache-Tag` header a CDN purges by)."""
    return (f"content:{entry_id}", f"type:{api_id}")


def missing_tag(api_id: str, slug: str) -> str:
    """Indexes answers that depend on an entry *not* existing (a 404, a fallback locale)."""
    return f"missing:{api_id}:{slug}"


def cached_get(key: str) -> CachedResponse | None:
    value = cache.get(key)
    return CachedResponse.from_value(value) if value else None


def cached_fill(
    key: str, response: CachedResponse, *, index_tags: Iterable[str], timeout: int | None = None
) -> None:
    """A reader's fill: never overwrites what a writer (or another reader) put there.

    `index_tags` are the tags whose purge must drop this key; they may differ from the response's
    public `Cache-Tag` (see `content.selectors`)."""
    timeout = timeout or settings.CMS_CONTENT_CACHE_SECONDS
    try:
        tag_index.add(index_tags, key, timeout)
    except CacheUnavailable:
        return  # a key we could not index could never be purged: better not cached at all
    cache.add(key, response.as_value(), timeout)


def cached_put(key: str, response: CachedResponse, *, index_tags: Iterable[str]) -> None:
    """A writer's put, after its transaction committed: replaces whatever is there."""
    timeout = settings.CMS_CONTENT_CACHE_SECONDS
    try:
        tag_index.add(index_tags, key, timeout)
    except CacheUnavailable:
        cache.delete(key)
        return
    cache.set(key, response.as_value(), timeout)


def tags_pop(tags: Iterable[str]) -> set[str]:
    """The keys indexed under any of `tags`, forgetting them from the index."""
    return tag_index.pop(tags)


def keys_delete(keys: Iterable[str]) -> None:
    keys = list(keys)
    if keys:
        cache.delete_many(keys)


class LocalTagIndex:
    def __init__(self) -> None:
        self._keys: dict[str, set[str]] = defaultdict(set)
        self._lock = threading.Lock()

    def add(self, tags: Iterable[str], key: str, timeout: int) -> None:
        with self._lock:
            for tag in tags:
                self._keys[tag].add(key)

    def pop(self, tags: Iterable[str]) -> set[str]:
        with self._lock:
            found: set[str] = set()
            for tag in tags:
                found |= self._keys.pop(tag, set())
            return found

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


class RedisTagIndex:
    """Tag → keys as Redis sets beside the cache's own keys (same prefix)."""

    def _connection(self) -> Any:
        from django_redis import get_redis_connection

        return get_redis_connection("default")

    def _set_name(self, tag: str) -> str:
        return cache.make_key(f"tag:{tag}")

    def add(self, tags: Iterable[str], key: str, timeout: int) -> None:
        try:
            pipe = self._connection().pipeline(transaction=False)
            for tag in tags:
                pipe.sadd(self._set_name(tag), key)
                # The set outlives every key in it: each add pushes its expiry out.
                pipe.expire(self._set_name(tag), timeout + 60)
            pipe.execute()
        except Exception:  # a cache outage must not fail the read; the key will not be filled
            logger.warning("Tag index unavailable; not caching %s", key, exc_info=True)
            raise CacheUnavailable from None

    def pop(self, tags: Iterable[str]) -> set[str]:
        names = [self._set_name(tag) for tag in tags]
        try:
            pipe = self._connection().pipeline(transaction=True)
            for name in names:
                pipe.smembers(name)
            pipe.delete(*names)
            members = pipe.execute()[:-1]
        except Exception:
            logger.error("Tag purge failed for %s", names, exc_info=True)
            return set()
        return {member.decode() for group in members for member in group}

    def clear(self) -> None:
        return None


class CacheUnavailable(Exception):
    pass


def _make_index() -> LocalTagIndex | RedisTagIndex:
    backend = settings.CACHES["default"]["BACKEND"]
    return RedisTagIndex() if backend.startswith("django_redis") else LocalTagIndex()


tag_index = _make_index()
