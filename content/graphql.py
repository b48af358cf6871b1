"""GraphQL of content: `contentEntries` for any type, and one generated root field per type.

The static part (in the committed SDL) is `contentEntries(type:, filters:, locale:, first:,
after:)` returning a `ContentEntryPage` of generic `ContentEntry` objects.

The generated part depends on the content types in the database, so it is not in the SDL:
`content_root_fields` turns the types into root fields and object types, and
`cmsproject.schema.schema_current` adds them to the root Query, rebuilt when a type changes.

Naming of what is generated (deterministic: types are taken in api_id order):
- object type: the api_id in PascalCase (`site_settings` → `SiteSettings`); when that name is
  taken (by a static type such as `Customer` or `Me`, or a generated one), `<PascalCase>Entry`.
- root field: a collection's api_id camelCased and pluralized (`homepage` → `homepages`,
  `category` → `categories`, `box` → `boxes`); a single type's api_id camelCased
  (`site_settings` → `siteSettings`). When that name is taken (by a static root field such as
  `me`, `customer`, `funnel`, `contentEntries`, or a generated one), `<camelCase>Entries` for a
  collection and `<camelCase>Entry` for a single type.
- A type whose names are taken even then gets no root field (a warning is logged); it stays
  reachable through `contentEntries(type:)`.
- fields: each field of the type camelCased as graphene does (`hero_title` → `heroTitle`), plus
  `id slug locale status publishedAt audience lifecycleStage language revision zones`. A
  `reference` field is the referenced id (`author: Int`) and, unless the type has a field of
  that name, `<name>Entry` is the referenced entry as its own type (`authorEntry: Person`),
  loaded for a whole page in one query (`EntryByIdLoader`).

Who sees what is REST's rule (`content.api.access.is_editor`): editors get working copies and may
filter by status; everybody else gets published entries, as published.

Paging: newest first (as REST). `first` is 1 to 100 (default 50); `after` is the `id` of the last
entry of the previous page (`pageInfo.endCursor` in `contentEntries`). A page is one SQL query
whatever its size: entries carry their data as JSON.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import graphene
from django.utils.dateparse import parse_datetime
from graphene.relay import PageInfo
from graphene.types.generic import GenericScalar
from graphene.utils.str_converters import to_camel_case

from cmsproject.errors import FieldError, ValidationError
from content.api.access import is_editor
from content.delivery import audience_for, entry_deliver
from content.models import EntryStatus, EntryType
from content.schema import RESERVED_FIELD_NAMES
from content.selectors import (
    entries_by_ids,
    entries_page_rows,
    entry_editor_payload,
    entry_reader_payload_published,
    entry_type_get,
    live_response_cached,
    locale_checked,
    reader_entries_page_rows_cached,
    single_entry_for_editors,
)

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100  # the cost rule's assumed page for a variable `first`
GRAPHQL_NAME = re.compile(r"^(?!__)[_A-Za-z][_0-9A-Za-z]*$")
ATTRIBUTE_PREFIX = "content__"  # of generated attributes; their GraphQL names are set explicitly
FILTER_NAMES = ("audience", "locale", "lifecycle_stage", "language", "status", "search")

Payload = dict[str, Any]


def _published_at(payload: Payload, info: graphene.ResolveInfo) -> Any:
    value = payload.get("published_at")
    return parse_datetime(value) if isinstance(value, str) else value


# --- Static types --------------------------------------------------------------------------------
class StringFilter(graphene.InputObjectType):
    """A condition on a text value."""

    eq = graphene.String(description="Equal to.")


class EntryFilter(graphene.InputObjectType):
    """The REST list filters: readers filter the published version, editors the working copy."""

    audience = graphene.InputField(
        StringFilter, description="Entries targeted at this segment key."
    )
    locale = graphene.InputField(StringFilter)
    lifecycle_stage = graphene.InputField(StringFilter)
    language = graphene.InputField(StringFilter)
    status = graphene.InputField(StringFilter, description="Editors only.")
    search = graphene.InputField(StringFilter, description="In the slug and the fields' text.")
    fields = GenericScalar(
        description='Equality on the type\'s own fields: `{"rank": 3, "hero_title": "Hi"}`.'
    )


class EntryCommonFields(graphene.ObjectType):
    """What every entry has, generic or generated."""

    class Meta:
        abstract = True

    id = graphene.ID(required=True)
    slug = graphene.String(required=True)
    locale = graphene.String(required=True)
    status = graphene.String(
        required=True, description="`published` for readers; the working copy's status for editors."
    )
    published_at = graphene.DateTime(resolver=_published_at)
    audience = graphene.List(graphene.NonNull(graphene.String), required=True)
    lifecycle_stage = graphene.String(required=True)
    language = graphene.String(required=True)
    revision = graphene.Int(description="The revision readers see, or the editor's latest.")
    zones = GenericScalar(required=True, description="Dynamic zones: `{zone: [block, ...]}`.")


class ContentEntry(EntryCommonFields):
    """An entry of any content type, its fields as JSON."""

    type = graphene.String(required=True, description="The content type's api_id.")
    fields = GenericScalar(required=True)


class ContentEntryPage(graphene.ObjectType):
    items = graphene.List(graphene.NonNull(ContentEntry), required=True)
    page_info = graphene.Field(PageInfo, required=True)


def page_arguments() -> dict[str, Any]:
    return {
        "filters": graphene.Argument(EntryFilter),
        "locale": graphene.String(description="Only this locale (all locales when absent)."),
        "first": graphene.Int(description=f"Page size, 1 to {MAX_PAGE_SIZE} (default 50)."),
        "after": graphene.String(description="The `id` of the last entry of the previous page."),
    }


class Delivery(graphene.ObjectType):
    """A published entry with each block resolved for the caller (as REST's `/deliver/`)."""

    data = GenericScalar(required=True)
    meta = GenericScalar(required=True)


class ContentQueries(graphene.ObjectType):
    deliver = graphene.Field(
        Delivery,
        required=True,
        type=graphene.String(required=True),
        slug=graphene.String(required=True),
        locale=graphene.String(),
        anonymous_id=graphene.String(
            description="The browser's id; the `X-Anonymous-Id` header works too."
        ),
        description="The entry for the caller: their segments pick each block's variant.",
    )

    @staticmethod
    def resolve_deliver(
        root: Any,
        info: graphene.ResolveInfo,
        type: str,
        slug: str,
        locale: str | None = None,
        anonymous_id: str | None = None,
    ) -> Delivery:
        request = info.context
        audience = audience_for(
            user=getattr(request, "user", None),
            anonymous_id=anonymous_id or request.headers.get("X-Anonymous-Id"),
        )
        delivered = entry_deliver(
            api_id=type, slug=slug, locale=locale_checked(locale), audience=audience
        )
        return Delivery(data=delivered.body["data"], meta=delivered.body["meta"])

    content_entries = graphene.Field(
        ContentEntryPage,
        required=True,
        type=graphene.String(required=True, description="The content type's api_id."),
        **page_arguments(),
        description="Entries of a content type, newest first. Published entries only, unless "
        "the caller is an editor.",
    )

    @staticmethod
    def resolve_content_entries(
        root: Any, info: graphene.ResolveInfo, type: str, **arguments: Any
    ) -> ContentEntryPage:
        page = entries_page(info, api_id=type, **arguments)
        return ContentEntryPage(
            items=page.items,
            page_info=PageInfo(
                has_next_page=page.has_next,
                has_previous_page=page.has_previous,
                start_cursor=str(page.items[0]["id"]) if page.items else None,
                end_cursor=str(page.items[-1]["id"]) if page.items else None,
            ),
        )


# --- Reading -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EntriesPage:
    items: list[Payload]
    has_next: bool
    has_previous: bool


def _editor(info: graphene.ResolveInfo) -> bool:
    return info.context is not None and is_editor(info.context)


def _filter_query(filters: Mapping[str, Any] | None, locale: str | None) -> dict[str, str]:
    """EntryFilter as the REST query string it stands for, so both APIs share one parser."""
    query: dict[str, str] = {}
    for name in FILTER_NAMES:
        condition = (filters or {}).get(name)
        value = condition.get("eq") if condition else None
        if value is not None:
            query[name] = value
    if locale is not None:
        if query.get("locale", locale) != locale:
            raise ValidationError(
                "Two different locales.",
                errors=[FieldError("locale", "conflict", "Give `locale` or `filters.locale`.")],
            )
        query["locale"] = locale
    fields = (filters or {}).get("fields")
    if fields is None:
        return query
    if not isinstance(fields, dict):
        raise ValidationError(
            "Invalid filter.",
            errors=[FieldError("fields", "invalid_type", "An object of field: value.")],
        )
    for name, value in fields.items():
        if isinstance(value, bool):
            query[f"fields.{name}"] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            query[f"fields.{name}"] = str(value)
        else:
            raise ValidationError(
                "Invalid filter.",
                errors=[
                    FieldError(f"fields.{name}", "invalid_type", "A string, number or boolean.")
                ],
            )
    return query


def _page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE_SIZE
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise ValidationError(
            "Invalid page size.",
            errors=[FieldError("first", "invalid", f"From 1 to {MAX_PAGE_SIZE}.")],
        )
    return first


def _after_id(after: str | None) -> int | None:
    if after is None:
        return None
    if not after.isdigit():
        raise ValidationError(
            "Invalid cursor.",
            errors=[FieldError("after", "invalid", "The `id` of an entry.")],
        )
    return int(after)


def entries_page(
    info: graphene.ResolveInfo,
    *,
    api_id: str,
    filters: Mapping[str, Any] | None = None,
    locale: str | None = None,
    first: int | None = None,
    after: str | None = None,
) -> EntriesPage:
    """One page of a type's entries as the caller may see them. Editors' pages are one SQL
    query; readers' pages are cached under the type's list generation (content.cache), so a
    storefront's shelf costs two cache reads and no SQL."""
    query = _filter_query(filters, locale)
    size, after_id = _page_size(first), _after_id(after)
    if _editor(info):
        rows, has_next = entries_page_rows(
            api_id=api_id, query=query, size=size, after_id=after_id, editor=True
        )
    else:
        rows, has_next = reader_entries_page_rows_cached(
            api_id=api_id, query=query, size=size, after_id=after_id
        )
    return EntriesPage(
        items=_siblings_linked(rows), has_next=has_next, has_previous=after_id is not None
    )


def single_entry(info: graphene.ResolveInfo, *, api_id: str, locale: str | None) -> Payload | None:
    """A single type's entry in a locale: readers get the cached published payload (with the
    fallback locale, as REST), editors the working copy."""
    locale = locale_checked(locale)
    if _editor(info):
        entry = single_entry_for_editors(entry_type=entry_type_get(api_id=api_id), locale=locale)
        return None if entry is None else entry_editor_payload(entry)
    cached = live_response_cached(api_id=api_id, slug=api_id, locale=locale)
    if cached.status == 404:
        return None
    return {**json.loads(cached.body), "status": EntryStatus.PUBLISHED}


# --- References: one query per reference field per page, not per entry --------------------------
SIBLINGS = "__siblings"  # payload key: the payloads loaded with this one, to batch references


def _siblings_linked(payloads: list[Payload]) -> list[Payload]:
    for payload in payloads:
        payload[SIBLINGS] = payloads
    return payloads


class EntryByIdLoader:
    """Request-scoped (kept on the request): entries of one type by id, as the caller may see
    them. `load_many` fetches the keys it has not seen in one query and answers in key order.

    graphene 3 executes synchronously here, so nothing defers a resolver until its siblings have
    asked; instead a reference resolver asks for the keys of every entry of its page at once
    (`SIBLINGS`), and its siblings then find theirs loaded."""

    def __init__(self, *, api_id: str, editor: bool) -> None:
        self.api_id, self.editor = api_id, editor
        self._loaded: dict[int, Payload | None] = {}

    @classmethod
    def for_request(cls, info: graphene.ResolveInfo, *, api_id: str) -> EntryByIdLoader:
        request = info.context
        loaders: dict[str, EntryByIdLoader] = getattr(request, "content_entry_loaders", {})
        if api_id not in loaders:
            loaders[api_id] = cls(api_id=api_id, editor=_editor(info))
            if request is not None:
                request.content_entry_loaders = loaders
        return loaders[api_id]

    def load_many(self, keys: list[int]) -> list[Payload | None]:
        missing = {key for key in keys if key not in self._loaded}
        if missing:
            found = entries_by_ids(api_id=self.api_id, ids=missing, editor=self.editor)
            shape = entry_editor_payload if self.editor else entry_reader_payload_published
            loaded = {key: shape(entry) for key, entry in found.items()}
            _siblings_linked(list(loaded.values()))
            self._loaded.update({key: loaded.get(key) for key in missing})
        return [self._loaded[key] for key in keys]


def _reference_key(payload: Payload, name: str) -> int | None:
    value = (payload.get("fields") or {}).get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _reference_resolver(name: str, to: str) -> Callable[..., Payload | None]:
    def resolve(root: Payload, info: graphene.ResolveInfo) -> Payload | None:
        key = _reference_key(root, name)
        if key is None:
            return None
        loader = EntryByIdLoader.for_request(info, api_id=to)
        page = [_reference_key(sibling, name) for sibling in root.get(SIBLINGS) or [root]]
        loader.load_many([k for k in page if k is not None])
        return loader.load_many([key])[0]

    return resolve


# --- Generated per type --------------------------------------------------------------------------
SCALARS: dict[str, type[graphene.Scalar]] = {
    "string": graphene.String,
    "text": graphene.String,
    "richtext": graphene.String,
    "datetime": graphene.String,
    "enum": graphene.String,
    "integer": graphene.Int,
    "number": graphene.Float,
    "boolean": graphene.Boolean,
    "media": graphene.Int,
    "reference": graphene.Int,
    "json": GenericScalar,
    "component": GenericScalar,
}


def pluralized(word: str) -> str:
    """English plural of a camelCase name's last word, by the common rules only."""
    if re.search(r"(s|x|z|ch|sh)$", word):
        return word + "es"
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ies"
    return word + "s"


def type_name(api_id: str) -> str:
    camel = to_camel_case(api_id)
    return camel[:1].upper() + camel[1:]


def root_field_name(api_id: str, kind: str) -> str:
    camel = to_camel_case(api_id)
    return pluralized(camel) if kind == EntryType.Kind.COLLECTION else camel


def _value_resolver(name: str) -> Callable[..., Any]:
    def resolve(root: Payload, info: graphene.ResolveInfo) -> Any:
        return (root.get("fields") or {}).get(name)

    return resolve


def _object_type(
    entry_type: EntryType,
    name: str,
    object_types: Mapping[str, type[graphene.ObjectType]],
    generated: Collection[str],
) -> type[graphene.ObjectType]:
    """`generated`: the api_ids that get an object type. `object_types` (api_id → object type)
    is complete by the time graphene resolves the lambdas of reference fields (schema build)."""
    attributes: dict[str, Any] = {
        "Meta": type("Meta", (), {"name": name, "description": entry_type.name}),
    }
    # Attributes are prefixed and named explicitly: a field called `resolve_slug` must not become
    # the resolver graphene looks up for `slug`.
    names = {to_camel_case(field["name"]) for field in entry_type.fields}
    names |= {to_camel_case(reserved) for reserved in RESERVED_FIELD_NAMES}
    for field in entry_type.fields:
        attributes[f"{ATTRIBUTE_PREFIX}{field['name']}"] = graphene.Field(
            SCALARS.get(field["type"], GenericScalar),
            name=to_camel_case(field["name"]),
            description=field.get("label") or field.get("help_text"),
            resolver=_value_resolver(field["name"]),
        )
    for field in entry_type.fields:
        target = field.get("to")
        if field["type"] != "reference" or target not in generated:
            continue
        entry_field = to_camel_case(f"{field['name']}_entry")
        if entry_field in names:
            logger.warning("'%s.%s' exists: no entry field for the reference.", name, entry_field)
            continue
        attributes[f"{ATTRIBUTE_PREFIX}{field['name']}_entry"] = graphene.Field(
            lambda target=target: object_types[target],
            name=entry_field,
            description=f"The '{target}' entry `{to_camel_case(field['name'])}` refers to.",
            resolver=_reference_resolver(field["name"], target),
        )
    return type(name, (EntryCommonFields,), attributes)


def _collection_resolver(api_id: str) -> Callable[..., list[Payload]]:
    def resolve(root: Any, info: graphene.ResolveInfo, **arguments: Any) -> list[Payload]:
        return entries_page(info, api_id=api_id, **arguments).items

    return resolve


def _single_resolver(api_id: str) -> Callable[..., Payload | None]:
    def resolve(root: Any, info: graphene.ResolveInfo, locale: str | None = None) -> Payload | None:
        return single_entry(info, api_id=api_id, locale=locale)

    return resolve


def _first_free(candidates: Iterable[str], taken: Collection[str]) -> str | None:
    return next((c for c in candidates if GRAPHQL_NAME.match(c) and c not in taken), None)


def content_root_fields(
    *,
    entry_types: Iterable[EntryType],
    taken_fields: Collection[str],
    taken_types: Collection[str],
) -> dict[str, graphene.Field]:
    """One root field per content type (names as in the module docstring), as attributes for
    the root Query class. `taken_*` are the static schema's root field and type names."""
    named: list[tuple[EntryType, str, str]] = []  # (type, object type name, root field name)
    type_names, field_names = set(taken_types), set(taken_fields)
    for entry_type in sorted(entry_types, key=lambda t: t.api_id):
        api_id, kind = entry_type.api_id, entry_type.kind
        camel = to_camel_case(api_id)
        single = kind == EntryType.Kind.SINGLE
        object_name = _first_free([type_name(api_id), type_name(api_id) + "Entry"], type_names)
        field_name = _first_free(
            [root_field_name(api_id, kind), camel + ("Entry" if single else "Entries")],
            field_names,
        )
        if object_name is None or field_name is None:
            logger.warning(
                "Content type '%s' gets no GraphQL root field: its names are taken.", api_id
            )
            continue
        type_names.add(object_name)
        field_names.add(field_name)
        named.append((entry_type, object_name, field_name))

    object_types: dict[str, type[graphene.ObjectType]] = {}
    generated = {entry_type.api_id for entry_type, _, _ in named}
    for entry_type, object_name, _field_name in named:
        object_types[entry_type.api_id] = _object_type(
            entry_type, object_name, object_types, generated
        )

    fields: dict[str, graphene.Field] = {}
    for entry_type, _object_name, field_name in named:
        api_id, object_type = entry_type.api_id, object_types[entry_type.api_id]
        if entry_type.kind == EntryType.Kind.SINGLE:
            fields[f"{ATTRIBUTE_PREFIX}{field_name}"] = graphene.Field(
                object_type,
                name=field_name,
                locale=graphene.String(description="Defaults to the default locale."),
                resolver=_single_resolver(api_id),
                description=f"The '{api_id}' entry ({entry_type.name}).",
            )
        else:
            fields[f"{ATTRIBUTE_PREFIX}{field_name}"] = graphene.List(
                graphene.NonNull(object_type),
                required=True,
                name=field_name,
                **page_arguments(),
                resolver=_collection_resolver(api_id),
                description=f"'{api_id}' entries ({entry_type.name}), newest first.",
            )
    return fields
