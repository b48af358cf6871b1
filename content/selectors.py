"""Reads of the content app.

Two audiences: readers (anonymous callers, customers, `content:read` keys) see only the live
payload of published entries, through the cache; editors (staff, `content:write` keys) see the
working copy straight from the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

from cmsproject.errors import FieldError, NotFound, ValidationError
from cmsproject.observability.metrics import CONTENT_CACHE_MISS
from content import cache as content_cache
from content.cache import CachedResponse
from content.models import Component, Entry, EntryStatus, EntryType, Revision

MISSING_TTL_SECONDS = 60  # a 404 is cached briefly: random slugs must not fill the cache for long


def entry_type_get(*, api_id: str) -> EntryType:
    try:
        return EntryType.objects.get(api_id=api_id)
    except EntryType.DoesNotExist:
        raise NotFound(f"No content type '{api_id}'.") from None


def entry_types_list() -> QuerySet[EntryType]:
    return EntryType.objects.order_by("api_id")


def component_get(*, api_id: str) -> Component:
    try:
        return Component.objects.get(api_id=api_id)
    except Component.DoesNotExist:
        raise NotFound(f"No component '{api_id}'.") from None


def components_list() -> QuerySet[Component]:
    return Component.objects.order_by("api_id")


def locale_checked(locale: Any, *, blank_is_default: bool = True) -> str:
    """A configured locale; a blank one (a query without `?locale=`) is the default one."""
    if blank_is_default and locale in (None, ""):
        return settings.CMS_DEFAULT_LOCALE
    if locale not in settings.CMS_LOCALES:
        raise ValidationError(
            "Unknown locale.",
            errors=[
                FieldError(
                    "locale",
                    "invalid_choice",
                    f"Must be one of: {', '.join(settings.CMS_LOCALES)}.",
                )
            ],
        )
    return locale


# --- Readers: the live payload, through the cache ------------------------------------------------
def _live_entry(api_id: str, slug: str, locale: str) -> Entry | None:
    candidates = [locale] + (
        [settings.CMS_FALLBACK_LOCALE] if locale != settings.CMS_FALLBACK_LOCALE else []
    )
    found = {
        entry.locale: entry
        for entry in Entry.objects.filter(
            type__api_id=api_id, slug=slug, locale__in=candidates, live__isnull=False
        ).only("pk", "locale", "live")
    }
    return next((found[c] for c in candidates if c in found), None)


def live_response(*, api_id: str, slug: str, locale: str) -> tuple[CachedResponse, list[str]]:
    """The reader's answer for (type, slug, locale) from the database, and the tags whose purge
    must drop it. A locale the entry lacks falls back to CMS_FALLBACK_LOCALE; such an answer also
    depends on the requested locale's entry *not* existing, hence the `missing:` tag."""
    entry = _live_entry(api_id, slug, locale)
    missing = content_cache.missing_tag(api_id, slug)
    if entry is None:
        return CachedResponse(status=404, body=b"", etag="", tags=()), [missing]
    body = json.dumps(entry.live, separators=(",", ":"), ensure_ascii=False).encode()
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    tags = content_cache.entry_tags(entry_id=entry.pk, api_id=api_id)
    index = [f"content:{entry.pk}"] + ([missing] if entry.locale != locale else [])
    return CachedResponse(status=200, body=body, etag=etag, tags=tags), index


def live_response_cached(*, api_id: str, slug: str, locale: str) -> CachedResponse:
    """One cache read when warm; no SQL."""
    key = content_cache.live_key(api_id, slug, locale)
    cached = content_cache.cached_get(key)
    if cached is not None:
        return cached
    return live_response_fill(api_id=api_id, slug=slug, locale=locale)


def live_response_fill(*, api_id: str, slug: str, locale: str) -> CachedResponse:
    """A cache miss: answer from the database and fill the cache."""
    CONTENT_CACHE_MISS.inc()
    key = content_cache.live_key(api_id, slug, locale)
    response, index_tags = live_response(api_id=api_id, slug=slug, locale=locale)
    content_cache.cached_fill(
        key,
        response,
        index_tags=index_tags,
        timeout=MISSING_TTL_SECONDS if response.status == 404 else None,
    )
    return response


# --- Lists and filters ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EntryFilters:
    audience: str | None = None
    locale: str | None = None
    lifecycle_stage: str | None = None
    language: str | None = None
    status: str | None = None
    search: str | None = None
    fields: Mapping[str, str] | None = None


def entry_filters_from_query(query: Mapping[str, str], *, editor: bool) -> EntryFilters:
    status = query.get("status")
    if status is not None and status not in EntryStatus.values:
        raise ValidationError(
            "Unknown status.",
            errors=[
                FieldError("status", "invalid_choice", f"One of {', '.join(EntryStatus.values)}.")
            ],
        )
    if status is not None and not editor:
        raise ValidationError(
            "Readers see published entries only.",
            errors=[FieldError("status", "forbidden", "Only editors filter by status.")],
        )
    return EntryFilters(
        audience=query.get("audience") or None,
        locale=locale_checked(query["locale"]) if query.get("locale") else None,
        lifecycle_stage=query.get("lifecycle_stage") or None,
        language=query.get("language") or None,
        status=status,
        search=(query.get("search") or "").strip()[:200] or None,
        fields={key[7:]: value for key, value in query.items() if key.startswith("fields.")},
    )


def _typed(field: Mapping[str, Any], raw: str, name: str) -> Any:
    kind = field["type"]
    try:
        if kind in ("integer", "media", "reference"):
            return int(raw)
        if kind == "number":
            return float(raw)
        if kind == "boolean":
            return {"true": True, "false": False}[raw.lower()]
    except (ValueError, KeyError):
        raise ValidationError(
            "Invalid filter.",
            errors=[FieldError(f"fields.{name}", "invalid_type", f"Expected a {kind}.")],
        ) from None
    if kind in ("json", "component"):
        raise ValidationError(
            "Invalid filter.",
            errors=[
                FieldError(f"fields.{name}", "not_filterable", f"{kind} fields cannot be filtered.")
            ],
        )
    return raw


def entries_filter(
    entries: QuerySet[Entry], *, entry_type: EntryType, filters: EntryFilters, live: bool
) -> QuerySet[Entry]:
    """`live`: filter on the published payload (readers); else on the working copy (editors)."""
    prefix = "live__" if live else ""
    condition = Q()
    if filters.locale:
        condition &= Q(locale=filters.locale)
    if filters.status:
        condition &= Q(status=filters.status)
    if filters.audience:
        # Segment keys are [a-z0-9_-]: matching the quoted key in the JSON array's text is exact.
        condition &= Q(**{f"{prefix}audience__icontains": f'"{filters.audience}"'})
    if filters.lifecycle_stage:
        condition &= Q(**{f"{prefix}lifecycle_stage": filters.lifecycle_stage})
    if filters.language:
        condition &= Q(**{f"{prefix}language": filters.language})
    if filters.search:
        condition &= Q(slug__icontains=filters.search) | Q(
            **{f"{prefix}fields__icontains": filters.search}
        )
    defined = {field["name"]: field for field in entry_type.fields}
    for name, raw in (filters.fields or {}).items():
        if name not in defined:
            raise ValidationError(
                "Unknown field.",
                errors=[FieldError(f"fields.{name}", "unknown_field", "Not a field of this type.")],
            )
        condition &= Q(**{f"{prefix}fields__{name}": _typed(defined[name], raw, name)})
    return entries.filter(condition)


def entries_for_readers(*, entry_type: EntryType, filters: EntryFilters) -> QuerySet[Entry]:
    entries = Entry.objects.filter(type=entry_type, live__isnull=False).only(
        "pk", "slug", "locale", "live", "published_at"
    )
    return entries_filter(entries, entry_type=entry_type, filters=filters, live=True)


def entries_for_editors(*, entry_type: EntryType, filters: EntryFilters) -> QuerySet[Entry]:
    entries = Entry.objects.filter(type=entry_type).select_related("type")
    return entries_filter(entries, entry_type=entry_type, filters=filters, live=False)


def entry_for_editors(*, entry_type: EntryType, slug: str, locale: str) -> Entry:
    try:
        return Entry.objects.select_related("type").get(type=entry_type, slug=slug, locale=locale)
    except Entry.DoesNotExist:
        raise NotFound(f"No '{entry_type.api_id}' entry '{slug}' in locale '{locale}'.") from None


def single_entry_for_editors(*, entry_type: EntryType, locale: str) -> Entry | None:
    return Entry.objects.select_related("type").filter(type=entry_type, locale=locale).first()


def reader_entries_page_rows_cached(
    *, api_id: str, query: Mapping[str, str], size: int, after_id: int | None
) -> tuple[list[dict[str, Any]], bool]:
    """`entries_page_rows` for readers, cached under the type's list generation: two cache
    reads and no SQL when warm."""
    # The generation is read before the database: see content.cache on why that order matters.
    generation = content_cache.list_generation(api_id)
    key = content_cache.list_key(
        api_id, generation, json.dumps([sorted(query.items()), size, after_id])
    )
    cached = content_cache.list_get(key)
    if cached is not None:
        return cached
    page = entries_page_rows(api_id=api_id, query=query, size=size, after_id=after_id, editor=False)
    content_cache.list_put(key, page)
    return page


def entries_page_rows(
    *, api_id: str, query: Mapping[str, str], size: int, after_id: int | None, editor: bool
) -> tuple[list[dict[str, Any]], bool]:
    """A page of a type's entries, newest first, as editors or readers see them (`query`: the
    REST filter parameters), and whether more follow. One SQL query after the type's."""
    entry_type = entry_type_get(api_id=api_id)
    entry_filters = entry_filters_from_query(query, editor=editor)
    entries: QuerySet[Entry] = (
        entries_for_editors(entry_type=entry_type, filters=entry_filters)
        if editor
        else entries_for_readers(entry_type=entry_type, filters=entry_filters)
    )
    if after_id is not None:
        entries = entries.filter(pk__lt=after_id)
    rows = list(entries.order_by("-pk")[: size + 1])
    shape = entry_editor_payload if editor else entry_reader_payload_published
    return [shape(entry) for entry in rows[:size]], len(rows) > size


def revisions_list(*, entry: Entry) -> QuerySet[Revision]:
    return entry.revisions.select_related("author").order_by("-number")


# --- Representations -----------------------------------------------------------------------------
def entry_editor_payload(entry: Entry) -> dict[str, Any]:
    """What editors read: the working copy, where it stands, and what is live."""
    return {
        "id": entry.pk,
        "type": entry.type.api_id,
        "slug": entry.slug,
        "locale": entry.locale,
        "status": entry.status,
        "fields": entry.fields,
        "zones": entry.zones,
        "audience": entry.audience,
        "lifecycle_stage": entry.lifecycle_stage,
        "language": entry.language,
        "revision": entry.revision,
        "live_revision": entry.live_revision,
        "has_unpublished_changes": entry.has_unpublished_changes,
        "publish_at": _iso(entry.publish_at),
        "published_at": _iso(entry.published_at),
        "first_published_at": _iso(entry.first_published_at),
        "created_at": _iso(entry.created_at),
        "updated_at": _iso(entry.updated_at),
    }


def entry_reader_payload(entry: Entry) -> dict[str, Any]:
    return entry.live or {}


def entry_reader_payload_published(entry: Entry) -> dict[str, Any]:
    return {**entry_reader_payload(entry), "status": EntryStatus.PUBLISHED}


def revision_payload(revision: Revision) -> dict[str, Any]:
    return {
        "number": revision.number,
        "kind": revision.kind,
        "author": revision.author.get_username() if revision.author else None,
        "created_at": _iso(revision.created_at),
        "restored_from": revision.restored_from,
        "data": revision.data,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def publish_at_parsed(raw: Any) -> Any:
    if raw in (None, ""):
        return None
    try:
        parsed = parse_datetime(raw) if isinstance(raw, str) else None
        if parsed is not None and parsed.tzinfo is not None:
            # In UTC: PostgreSQL refuses offsets past ±15:59 that Python takes (a 500), and a
            # time with no UTC date (after 9999) is no time to publish at.
            parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # ValueError: well formed but no date (2026-13-45)
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValidationError(
            "Invalid publish_at.",
            errors=[FieldError("publish_at", "invalid_format", "An ISO 8601 time with a zone.")],
        )
    return parsed


# --- For GraphQL reference fields (content/graphql.py) -------------------------------------------
def entries_by_ids(*, api_id: str, ids: set[int] | list[int], editor: bool) -> dict[int, Entry]:
    """Entries of one type by id, in one query: working copies for editors, published entries
    (their live payload) for readers. Ids that are absent or unpublished are simply missing."""
    entries = Entry.objects.filter(type__api_id=api_id, pk__in=ids)
    if editor:
        entries = entries.select_related("type")
    else:
        entries = entries.filter(live__isnull=False).only("pk", "live")
    return {entry.pk: entry for entry in entries}


# --- End of GraphQL reference fields -------------------------------------------------------------
