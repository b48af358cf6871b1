"""Writes of the content app: definitions (types, components) and entries.

Each state change checks, executes, then announces (the Wagtail action shape). Announcing means,
after the transaction commits: refresh the cache by tag, push to the entry's live topic, dispatch
webhooks. A draft save announces nothing: drafts never reach readers, caches or sockets.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nh3
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from cmsproject.errors import Conflict, FieldError, NotFound, ValidationError
from cmsproject.realtime import publish as live_publish
from content import cache as content_cache
from content.models import Component, Entry, EntryStatus, EntryType, MediaAsset, Revision
from content.schema import (
    SLUG_PATTERN,
    Definitions,
    definition_errors,
    drop_nulls,
    entry_schema,
    entry_validator,
    schema_errors,
    transform_document,
)
from content.selectors import locale_checked
from content.topics import entry_topic
from content.webhooks import webhooks_dispatch
from customers.models import LifecycleStage
from segmentation.selectors import segment_keys_unknown

DEFINITIONS_VERSION_KEY = "content:definitions-version"
DOCUMENT_KEYS = ("fields", "zones", "audience", "lifecycle_stage", "language")
WRITABLE_KEYS = frozenset({"slug", "locale", "status", *DOCUMENT_KEYS})
MAX_BREAKAGE_SAMPLES = 10


# --- Definitions ---------------------------------------------------------------------------------
def definitions_version() -> str:
    """A token that changes (after commit) on every change to a type or component. Processes
    compare it with the token they built their validators and GraphQL schema from, and rebuild
    when it moved. Random rather than a counter: if the cache loses it, a fresh token makes every
    process rebuild instead of trusting a stale copy."""
    return cache.get_or_set(DEFINITIONS_VERSION_KEY, lambda: uuid.uuid4().hex, timeout=None)


def _definitions_changed() -> None:
    global _definitions_memo
    _definitions_memo = None  # this process sees its own change at once, even before commit
    transaction.on_commit(
        lambda: cache.set(DEFINITIONS_VERSION_KEY, uuid.uuid4().hex, timeout=None), robust=True
    )


_definitions_memo: tuple[str, Definitions] | None = None


def _lists_changed(api_id: str) -> None:
    """Cached pages of the type's entries are not read again: at once, so this transaction's own
    reads see its change, and after commit, so a page another process computed meanwhile from
    the database as it was is not read either (content.cache)."""
    content_cache.list_generation_next(api_id)
    transaction.on_commit(lambda: content_cache.list_generation_next(api_id), robust=True)


def definitions_current() -> Definitions:
    """Every component's fields, rebuilt when the definitions version moved."""
    global _definitions_memo
    version = definitions_version()
    if _definitions_memo is None or _definitions_memo[0] != version:
        components = dict(Component.objects.values_list("api_id", "fields"))
        _definitions_memo = (version, Definitions(components=components))
    return _definitions_memo[1]


def _type_ids() -> set[str]:
    return set(EntryType.objects.values_list("api_id", flat=True))


@dataclass(frozen=True)
class Breakage:
    entries: int
    samples: list[FieldError]


def _entry_documents(entry: Entry) -> Iterable[tuple[str, dict[str, Any]]]:
    """Every version of an entry that must stay valid: working copy, live, scheduled."""
    yield "draft", {key: getattr(entry, key) for key in DOCUMENT_KEYS}
    if entry.live is not None:
        yield "live", {key: entry.live.get(key) for key in DOCUMENT_KEYS if key in entry.live}


def _breakage(
    entry_types: Iterable[EntryType], definitions: Definitions, overrides: dict[int, EntryType]
) -> Breakage:
    broken, samples = 0, []
    for entry_type in entry_types:
        checked = overrides.get(entry_type.pk, entry_type)
        validator = entry_validator(_schema_for(checked, definitions))
        for entry in Entry.objects.filter(type=entry_type).iterator(chunk_size=500):
            errors = [
                FieldError(f"{entry.slug}/{entry.locale} ({version}).{e.attr}", e.code, e.detail)
                for version, document in _entry_documents(entry)
                for e in schema_errors(validator, document)
            ]
            if errors:
                broken += 1
                samples += errors[: MAX_BREAKAGE_SAMPLES - len(samples)]
    return Breakage(broken, samples)


def entry_type_schema(*, entry_type: EntryType) -> dict[str, Any]:
    """The JSON Schema an entry body of this type must satisfy (served to developers too)."""
    return _schema_for(entry_type, definitions_current())


def _schema_for(entry_type: EntryType, definitions: Definitions) -> dict[str, Any]:
    return entry_schema(
        fields=entry_type.fields,
        zones=entry_type.zones,
        definitions=definitions,
        lifecycle_stages=LifecycleStage.values,
    )


def _refuse_breakage(breakage: Breakage, what: str) -> None:
    if breakage.entries:
        noun = "entry" if breakage.entries == 1 else "entries"
        raise Conflict(
            f"{what} would break {breakage.entries} existing {noun}; change or remove their "
            f"data first, or make the change compatible (e.g. an optional field).",
            errors=breakage.samples,
        )


def _raise_definition_errors(errors: list[FieldError]) -> None:
    if errors:
        raise ValidationError("The definition is invalid.", errors=errors)


@transaction.atomic
def component_create(
    *, api_id: str, name: str, fields: list[dict[str, Any]], description: str = ""
) -> Component:
    definitions = definitions_current()
    if api_id in definitions.components or Component.objects.filter(api_id=api_id).exists():
        raise Conflict(f"A component '{api_id}' exists already.")
    candidate = Definitions(components={**definitions.components, api_id: fields})
    _raise_definition_errors(
        definition_errors(fields=fields, definitions=candidate, type_ids=_type_ids(), owner=api_id)
    )
    component = Component.objects.create(
        api_id=api_id, name=name, fields=fields, description=description
    )
    _definitions_changed()
    return component


@transaction.atomic
def component_update(
    *,
    component: Component,
    name: str | None = None,
    fields: list[dict[str, Any]] | None = None,
    description: str | None = None,
) -> Component:
    component = Component.objects.select_for_update().get(pk=component.pk)
    if fields is not None:
        current = definitions_current()
        candidate = Definitions(components={**current.components, component.api_id: fields})
        _raise_definition_errors(
            definition_errors(
                fields=fields,
                definitions=candidate,
                type_ids=_type_ids(),
                owner=component.api_id,
            )
        )
        users = [
            t for t in EntryType.objects.all() if component.api_id in _components_used(t, current)
        ]
        _refuse_breakage(_breakage(users, candidate, {}), f"Changing '{component.api_id}'")
        component.fields = fields
    if name is not None:
        component.name = name
    if description is not None:
        component.description = description
    component.save()
    _definitions_changed()
    return component


def _components_used(entry_type: EntryType, definitions: Definitions) -> set[str]:
    schema = _schema_for(entry_type, definitions)
    return {name.split(".", 1)[1] for name in schema["$defs"]}


@transaction.atomic
def component_delete(*, component: Component) -> None:
    definitions = definitions_current()
    users = [
        t.api_id
        for t in EntryType.objects.all()
        if component.api_id in _components_used(t, definitions)
    ]
    nesting = [
        api_id
        for api_id, fields in definitions.components.items()
        if any(f.get("component") == component.api_id for f in fields)
    ]
    if users or nesting:
        raise Conflict(
            f"Component '{component.api_id}' is in use by "
            + ", ".join([*(f"type '{u}'" for u in users), *(f"component '{n}'" for n in nesting)])
            + "; remove it from them first (removing it from a zone is refused while entries "
            "use it)."
        )
    component.delete()
    _definitions_changed()


@transaction.atomic
def entry_type_create(
    *,
    api_id: str,
    name: str,
    kind: str = EntryType.Kind.COLLECTION,
    fields: list[dict[str, Any]] | None = None,
    zones: list[dict[str, Any]] | None = None,
    description: str = "",
) -> EntryType:
    fields, zones = fields or [], zones or []
    if EntryType.objects.filter(api_id=api_id).exists():
        raise Conflict(f"A content type '{api_id}' exists already.")
    _raise_definition_errors(
        definition_errors(
            fields=fields,
            zones=zones,
            definitions=definitions_current(),
            type_ids=_type_ids() | {api_id},
            owner=f"type:{api_id}",
        )
    )
    entry_type = EntryType.objects.create(
        api_id=api_id, name=name, kind=kind, fields=fields, zones=zones, description=description
    )
    _definitions_changed()
    return entry_type


@transaction.atomic
def entry_type_update(
    *,
    entry_type: EntryType,
    name: str | None = None,
    kind: str | None = None,
    fields: list[dict[str, Any]] | None = None,
    zones: list[dict[str, Any]] | None = None,
    description: str | None = None,
) -> EntryType:
    entry_type = EntryType.objects.select_for_update().get(pk=entry_type.pk)
    definitions = definitions_current()
    if fields is not None or zones is not None:
        candidate = EntryType(
            pk=entry_type.pk,
            api_id=entry_type.api_id,
            fields=entry_type.fields if fields is None else fields,
            zones=entry_type.zones if zones is None else zones,
        )
        _raise_definition_errors(
            definition_errors(
                fields=candidate.fields,
                zones=candidate.zones,
                definitions=definitions,
                type_ids=_type_ids(),
                owner=f"type:{entry_type.api_id}",
            )
        )
        _refuse_breakage(
            _breakage([entry_type], definitions, {entry_type.pk: candidate}),
            f"Changing '{entry_type.api_id}'",
        )
        entry_type.fields, entry_type.zones = candidate.fields, candidate.zones
    if kind is not None and kind != entry_type.kind:
        per_locale = entry_type.entries.values("locale").order_by()
        if kind == EntryType.Kind.SINGLE and per_locale.distinct().count() != per_locale.count():
            raise Conflict(
                f"'{entry_type.api_id}' has more than one entry in a locale; a single type holds "
                "one entry per locale."
            )
        entry_type.kind = kind
    if name is not None:
        entry_type.name = name
    if description is not None:
        entry_type.description = description
    entry_type.save()
    _definitions_changed()
    _lists_changed(entry_type.api_id)  # filters are typed by the fields
    return entry_type


@transaction.atomic
def entry_type_delete(*, entry_type: EntryType) -> None:
    count = entry_type.entries.count()
    if count:
        raise Conflict(f"'{entry_type.api_id}' has {count} entries; delete them first.")
    referencing = [
        t.api_id
        for t in EntryType.objects.exclude(pk=entry_type.pk)
        if any(f.get("to") == entry_type.api_id for f in t.fields)
    ]
    if referencing:
        raise Conflict(f"Types {', '.join(referencing)} reference '{entry_type.api_id}'.")
    entry_type.delete()
    _definitions_changed()
    _lists_changed(entry_type.api_id)


# --- Entries: validation -------------------------------------------------------------------------
def _sanitize_richtext(path: str, field: dict[str, Any], value: Any) -> Any:
    if field["type"] == "richtext" and isinstance(value, str):
        return nh3.clean(value)
    return value


def _new_block_ids(document: dict[str, Any]) -> dict[str, Any]:
    """Blocks and variants get a stable id on first save: editors reorder by it, experiments and
    analytics refer to it."""
    zones = {}
    for name, blocks in document["zones"].items():
        zones[name] = [
            {
                "id": block.get("id") or uuid.uuid4().hex[:12],
                **block,
                **(
                    {
                        "variants": [
                            {"id": variant.get("id") or uuid.uuid4().hex[:12], **variant}
                            for variant in block["variants"]
                        ]
                    }
                    if block.get("variants")
                    else {}
                ),
            }
            for block in blocks
        ]
    return {**document, "zones": zones}


def entry_document_clean(
    *, entry_type: EntryType, document: dict[str, Any], definitions: Definitions | None = None
) -> dict[str, Any]:
    """Validate an entry's fields, zones and personalization attributes; return them normalized
    (nulls dropped, rich text sanitized, block ids assigned). Raises ValidationError naming every
    bad path, including media, references and segment keys that do not exist."""
    definitions = definitions or definitions_current()
    document = transform_document(
        document, fields=entry_type.fields, definitions=definitions, visit=drop_nulls
    )
    errors = schema_errors(entry_validator(_schema_for(entry_type, definitions)), document)
    if errors:
        raise ValidationError("The entry is invalid.", errors=errors)
    errors = _reference_errors(entry_type, document, definitions)
    if errors:
        raise ValidationError("The entry refers to things that do not exist.", errors=errors)
    document = transform_document(
        document, fields=entry_type.fields, definitions=definitions, visit=_sanitize_richtext
    )
    return _new_block_ids(document)


def _reference_errors(
    entry_type: EntryType, document: dict[str, Any], definitions: Definitions
) -> list[FieldError]:
    media: dict[int, list[str]] = {}
    references: dict[tuple[str, int], list[str]] = {}

    def collect(path: str, field: dict[str, Any], value: Any) -> Any:
        if field["type"] == "media":
            media.setdefault(value, []).append(path)
        elif field["type"] == "reference":
            references.setdefault((field["to"], value), []).append(path)
        return value

    transform_document(document, fields=entry_type.fields, definitions=definitions, visit=collect)
    errors = []
    if media:
        found = set(MediaAsset.objects.filter(pk__in=media).values_list("pk", flat=True))
        for asset_id in set(media) - found:
            errors += [
                FieldError(path, "unknown_media", f"No media asset {asset_id}.")
                for path in media[asset_id]
            ]
    if references:
        wanted = Q()
        for type_id, entry_id in references:
            wanted |= Q(type__api_id=type_id, pk=entry_id)
        found_refs = set(Entry.objects.filter(wanted).values_list("type__api_id", "pk"))
        for type_id, entry_id in set(references) - found_refs:
            errors += [
                FieldError(path, "unknown_reference", f"No '{type_id}' entry {entry_id}.")
                for path in references[(type_id, entry_id)]
            ]
    segment_paths: dict[str, list[str]] = {}
    for index, key in enumerate(document.get("audience") or []):
        segment_paths.setdefault(key, []).append(f"audience[{index}]")
    for zone, blocks in (document.get("zones") or {}).items():
        for index, block in enumerate(blocks):
            for position, variant in enumerate(block.get("variants") or []):
                for number, key in enumerate(variant["segments"]):
                    segment_paths.setdefault(key, []).append(
                        f"zones.{zone}[{index}].variants[{position}].segments[{number}]"
                    )
    for key in segment_keys_unknown(segment_paths):
        errors += [
            FieldError(path, "unknown_segment", f"No segment '{key}'.")
            for path in segment_paths[key]
        ]
    return errors


def _slug_checked(slug: Any) -> str:
    import re

    if not isinstance(slug, str) or not re.fullmatch(SLUG_PATTERN, slug) or len(slug) > 200:
        raise ValidationError(
            "Invalid slug.",
            errors=[
                FieldError(
                    "slug",
                    "invalid_format",
                    "Lower-case letters, digits, '-' and '_' (at most 200).",
                )
            ],
        )
    return slug


def _body_checked(body: Any, *, status_now: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("The body must be a JSON object.")
    unknown = sorted(set(body) - WRITABLE_KEYS)
    if unknown:
        raise ValidationError(
            "Unknown fields.",
            errors=[FieldError(key, "unknown_field", "Unknown field.") for key in unknown],
        )
    if "status" in body and body["status"] != status_now:
        raise ValidationError(
            "Status changes through the publish and unpublish actions.",
            errors=[
                FieldError(
                    "status",
                    "read_only",
                    f"The entry is '{status_now}'; use .../publish/ or .../unpublish/.",
                )
            ],
        )
    return body


# --- Entries: writes -----------------------------------------------------------------------------
def _revision_data(entry: Entry) -> dict[str, Any]:
    return {
        "slug": entry.slug,
        "locale": entry.locale,
        **{key: getattr(entry, key) for key in DOCUMENT_KEYS},
    }


def _record_revision(
    entry: Entry, *, author: Any, kind: str, restored_from: int | None = None
) -> Revision:
    entry.revision += 1
    Entry.objects.filter(pk=entry.pk).update(revision=entry.revision)
    return Revision.objects.create(
        entry=entry,
        number=entry.revision,
        kind=kind,
        data=_revision_data(entry),
        author=_real_user(author),
        restored_from=restored_from,
    )


def _real_user(actor: Any) -> Any:
    return (
        actor if getattr(actor, "pk", None) and getattr(actor, "is_authenticated", False) else None
    )


def _save_unique(entry: Entry) -> None:
    try:
        with transaction.atomic():
            entry.save()
    except IntegrityError:
        raise Conflict(
            f"An entry '{entry.slug}' in locale '{entry.locale}' exists already.",
            errors=[FieldError("slug", "duplicate", "Taken in this type and locale.")],
        ) from None


@transaction.atomic
def entry_create(*, entry_type: EntryType, body: Any, author: Any = None) -> Entry:
    body = _body_checked(body, status_now=EntryStatus.DRAFT)
    locale = locale_checked(body.get("locale", settings.CMS_DEFAULT_LOCALE), blank_is_default=False)
    if entry_type.kind == EntryType.Kind.SINGLE:
        slug = body.get("slug", entry_type.api_id)
        if slug != entry_type.api_id:
            raise ValidationError(
                "A single type's entry has the type's api_id as its slug.",
                errors=[FieldError("slug", "invalid", f"Must be '{entry_type.api_id}'.")],
            )
    else:
        if "slug" not in body:
            raise ValidationError(
                "A slug is required.", errors=[FieldError("slug", "required", "Required.")]
            )
        slug = _slug_checked(body["slug"])
    document = entry_document_clean(
        entry_type=entry_type,
        document={
            "fields": body.get("fields", {}),
            "zones": body.get("zones", {}),
            "audience": body.get("audience", []),
            "lifecycle_stage": body.get("lifecycle_stage", ""),
            "language": body.get("language", ""),
        },
    )
    entry = Entry(
        type=entry_type, slug=slug, locale=locale, created_by=_real_user(author), **document
    )
    _save_unique(entry)
    _record_revision(entry, author=author, kind=Revision.Kind.CREATE)
    return entry


class StaleRevision(Conflict):
    """The caller edited an older revision than the entry is at: saving would silently undo
    someone else's save."""

    def __init__(self, current: int) -> None:
        super().__init__(
            f"The entry is at revision {current}, not the one this change was based on; "
            "read it again, or send the current revision to overwrite it knowingly."
        )
        self.current = current


@transaction.atomic
def entry_update(
    *,
    entry: Entry,
    body: Any,
    author: Any = None,
    replace: bool = False,
    expected_revision: int | None = None,
) -> Entry:
    """PATCH (replace=False): `fields` merge key by key (null removes one), each zone named in
    `zones` is replaced, other keys replace. PUT (replace=True): the body is the whole entry.
    Only the working copy changes; a published entry stays live as it was until published.
    `expected_revision`: refuse (StaleRevision) unless the entry is still at that revision."""
    entry = Entry.objects.select_for_update().select_related("type").get(pk=entry.pk)
    if expected_revision is not None and entry.revision != expected_revision:
        raise StaleRevision(entry.revision)
    body = _body_checked(body, status_now=entry.status)
    old_slug, old_locale = entry.slug, entry.locale
    if "locale" in body:
        entry.locale = locale_checked(body["locale"], blank_is_default=False)
    if "slug" in body and entry.type.kind == EntryType.Kind.COLLECTION:
        entry.slug = _slug_checked(body["slug"])
    if replace:
        document = {
            "fields": body.get("fields", {}),
            "zones": body.get("zones", {}),
            "audience": body.get("audience", []),
            "lifecycle_stage": body.get("lifecycle_stage", ""),
            "language": body.get("language", ""),
        }
    else:
        document = {key: getattr(entry, key) for key in DOCUMENT_KEYS}
        if "fields" in body:
            if not isinstance(body["fields"], dict):
                raise ValidationError(
                    "Invalid fields.",
                    errors=[FieldError("fields", "invalid_type", "Expected object.")],
                )
            document["fields"] = {**document["fields"], **body["fields"]}
        if "zones" in body:
            if not isinstance(body["zones"], dict):
                raise ValidationError(
                    "Invalid zones.",
                    errors=[FieldError("zones", "invalid_type", "Expected object.")],
                )
            document["zones"] = {**document["zones"], **body["zones"]}
        for key in ("audience", "lifecycle_stage", "language"):
            if key in body:
                document[key] = body[key]
    document = entry_document_clean(entry_type=entry.type, document=document)
    unchanged = all(getattr(entry, key) == document[key] for key in DOCUMENT_KEYS) and (
        entry.slug,
        entry.locale,
    ) == (old_slug, old_locale)
    if unchanged:
        return entry  # an identical save makes no revision
    for key, value in document.items():
        setattr(entry, key, value)
    _save_unique(entry)
    _record_revision(entry, author=author, kind=Revision.Kind.SAVE)
    if entry.live is not None and (entry.slug, entry.locale) != (old_slug, old_locale):
        # The live payload moves with the entry's address; readers of the old one must not keep it.
        entry.live = {**entry.live, "slug": entry.slug, "locale": entry.locale}
        entry.save(update_fields=["live"])
        _announce(entry, "content.updated", old_address=(old_slug, old_locale))
    return entry


@transaction.atomic
def entry_publish(*, entry: Entry, actor: Any = None, publish_at: datetime | None = None) -> Entry:
    entry = Entry.objects.select_for_update().select_related("type").get(pk=entry.pk)
    if publish_at is not None and publish_at > timezone.now():
        entry.status = EntryStatus.SCHEDULED if entry.live is None else entry.status
        entry.publish_at = publish_at
        entry.scheduled_revision = entry.revision
        entry.save(update_fields=["status", "publish_at", "scheduled_revision", "updated_at"])
        return entry
    if entry.live is not None and entry.live_revision == entry.revision:
        return entry  # already live as it is: nothing to announce
    return _go_live(entry, document=_revision_data(entry), revision=entry.revision)


def _go_live(entry: Entry, *, document: dict[str, Any], revision: int) -> Entry:
    was_live = entry.live is not None
    now = timezone.now()
    entry.live = {
        "id": entry.pk,
        "type": entry.type.api_id,
        "slug": entry.slug,
        "locale": entry.locale,
        **{key: document[key] for key in DOCUMENT_KEYS},
        "revision": revision,
        "published_at": now.isoformat(),
    }
    entry.live_revision = revision
    entry.status = EntryStatus.PUBLISHED
    entry.published_at = now
    entry.first_published_at = entry.first_published_at or now
    # A schedule for this same revision or an older one is fulfilled; a later one still stands.
    if entry.scheduled_revision is not None and entry.scheduled_revision <= revision:
        entry.publish_at = entry.scheduled_revision = None
    entry.save()
    _announce(entry, "content.updated" if was_live else "content.published")
    return entry


@transaction.atomic
def entry_unpublish(*, entry: Entry, actor: Any = None) -> Entry:
    entry = Entry.objects.select_for_update().select_related("type").get(pk=entry.pk)
    if entry.live is None and entry.status != EntryStatus.SCHEDULED:
        raise Conflict("The entry is not published.")
    was_live = entry.live is not None
    entry.live = entry.live_revision = entry.published_at = None
    entry.publish_at = entry.scheduled_revision = None
    entry.status = EntryStatus.ARCHIVED if was_live else EntryStatus.DRAFT
    entry.save()
    if was_live:
        _announce(entry, "content.unpublished")
    return entry


@transaction.atomic
def entry_delete(*, entry: Entry, actor: Any = None) -> None:
    entry = Entry.objects.select_for_update().select_related("type").get(pk=entry.pk)
    referrers = _referrers(entry)
    if referrers:
        raise Conflict(
            f"{len(referrers)} entries refer to this one ({', '.join(referrers[:5])}); "
            "change them first."
        )
    if entry.live is not None:
        _announce(entry, "content.unpublished")
    _announce(entry, "content.deleted")
    entry.delete()


def _referrers(entry: Entry) -> list[str]:
    """Entries whose reference fields (top level) point at `entry`."""
    found = []
    for entry_type in EntryType.objects.all():
        names = [
            f["name"]
            for f in entry_type.fields
            if f["type"] == "reference" and f["to"] == entry.type.api_id
        ]
        if not names:
            continue
        condition = Q()
        for name in names:
            condition |= Q(**{f"fields__{name}": entry.pk})
        found += [
            f"{entry_type.api_id}/{slug}"
            for slug in Entry.objects.filter(condition).values_list("slug", flat=True)
        ]
    return found


@transaction.atomic
def revision_restore(*, entry: Entry, number: int, author: Any = None) -> Entry:
    """The old revision becomes the working copy (a new revision); publishing is a separate act."""
    entry = Entry.objects.select_for_update().select_related("type").get(pk=entry.pk)
    try:
        revision = entry.revisions.get(number=number)
    except Revision.DoesNotExist:
        raise NotFound(f"No revision {number}.") from None
    data = revision.data
    try:
        document = entry_document_clean(
            entry_type=entry.type, document={key: data.get(key) for key in DOCUMENT_KEYS}
        )
    except ValidationError as error:
        raise Conflict(
            f"Revision {number} no longer fits the content type as it is now.", errors=error.errors
        ) from None
    for key, value in document.items():
        setattr(entry, key, value)
    entry.save()
    _record_revision(entry, author=author, kind=Revision.Kind.RESTORE, restored_from=number)
    return entry


def entries_publish_due(*, now: datetime | None = None) -> list[int]:
    """Scheduled entries whose time has come go live with the revision that was scheduled.
    Idempotent: an entry published by a concurrent run is no longer due."""
    now = now or timezone.now()
    published = []
    due = Entry.objects.filter(publish_at__lte=now, scheduled_revision__isnull=False)
    for entry_id in due.values_list("pk", flat=True)[:500]:
        with transaction.atomic():
            entry = (
                Entry.objects.select_for_update(skip_locked=True)
                .select_related("type")
                .filter(pk=entry_id, publish_at__lte=now, scheduled_revision__isnull=False)
                .first()
            )
            if entry is None:
                continue
            revision = entry.revisions.filter(number=entry.scheduled_revision).first()
            data = revision.data if revision else _revision_data(entry)
            _go_live(entry, document=data, revision=entry.scheduled_revision)
            published.append(entry.pk)
    return published


# --- Announcing ----------------------------------------------------------------------------------
def _announce(entry: Entry, event: str, *, old_address: tuple[str, str] | None = None) -> None:
    """After commit: cache refresh by tag, live topic, webhooks (all inside `on_commit`)."""
    api_id, slug, locale, entry_id = entry.type.api_id, entry.slug, entry.locale, entry.pk
    addresses = {(slug, locale)} | ({old_address} if old_address else set())
    _lists_changed(api_id)
    transaction.on_commit(
        lambda: content_cache_refresh(entry_id=entry_id, api_id=api_id, addresses=addresses),
        robust=True,
    )
    summary = {"id": entry_id, "type": api_id, "slug": slug, "locale": locale}
    payload = entry.live if event in ("content.published", "content.updated") else summary
    live_publish(entry_topic(api_id, slug), event, payload)
    if old_address and old_address[0] != slug:
        live_publish(entry_topic(api_id, old_address[0]), "content.unpublished", summary)
    webhooks_dispatch(
        event=event,
        payload=payload,
        # One delivery per announcement: an unpublish, republish and unpublish of the same
        # revision are three events, so the key cannot be derived from the revision alone.
        key=f"{event}:{entry_id}:{uuid.uuid4().hex}",
    )


def content_cache_refresh(
    *, entry_id: int, api_id: str, addresses: Iterable[tuple[str, str]]
) -> None:
    """Every cached answer that showed this entry, or that depended on its absence, is recomputed
    from the database and put back (so a reader that read before the commit cannot re-fill it
    with the old version). Cached lists are `_lists_changed`'s."""
    from content.selectors import live_response

    tags = [f"content:{entry_id}"]
    tags += [content_cache.missing_tag(api_id, slug) for slug, _locale in addresses]
    keys = content_cache.tags_pop(tags)
    keys |= {content_cache.live_key(api_id, slug, locale) for slug, locale in addresses}
    for key in keys:
        _, _, key_type, key_slug, key_locale = key.split(":", 4)
        response, index_tags = live_response(api_id=key_type, slug=key_slug, locale=key_locale)
        content_cache.cached_put(key, response, index_tags=index_tags)
