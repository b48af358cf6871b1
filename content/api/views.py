"""REST views of content: definitions (types, components) and entries with their actions.

Readers (anonymous, customers, `content:read` keys) get the published payload from the cache;
editors (staff with the view permission on entries, `content:write` keys) get the working copy.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cmsproject.auth import HasApiKeyScope, StaffModelPermission
from cmsproject.errors import (
    FieldError,
    NotFound,
    ValidationError,
)
from cmsproject.fastpath import served_before_drf, throttled_response
from cmsproject.pagination import CursorPagination, PageNumberPagination
from cmsproject.throttling import anonymous_throttle_then_get, anonymous_throttle_then_get_many
from content import cache as content_cache
from content.api.access import SCOPES, WRITE, is_editor
from content.api.serializers import (
    ENTRY_BODY_SCHEMA,
    ComponentSerializer,
    ComponentUpdateSerializer,
    EntryTypeSerializer,
    EntryTypeUpdateSerializer,
    PublishSerializer,
)
from content.cache import CachedResponse
from content.delivery import (
    anonymous_id_clean,
    audience_for,
    audience_prefetch_keys,
    entry_deliver,
)
from content.models import Component, Entry, EntryType
from content.selectors import (
    component_get,
    components_list,
    entries_for_editors,
    entries_for_readers,
    entry_editor_payload,
    entry_filters_from_query,
    entry_for_editors,
    entry_reader_payload,
    entry_type_get,
    entry_types_list,
    live_response_cached,
    live_response_fill,
    locale_checked,
    publish_at_parsed,
    revision_payload,
    revisions_list,
    single_entry_for_editors,
)
from content.services import (
    component_create,
    component_delete,
    component_update,
    entry_create,
    entry_delete,
    entry_publish,
    entry_type_create,
    entry_type_delete,
    entry_type_schema,
    entry_type_update,
    entry_unpublish,
    entry_update,
    revision_restore,
)

PROBLEM = OpenApiResponse(description="application/problem+json")
ENTRY = OpenApiResponse(ENTRY_BODY_SCHEMA)
ENTRY_BODY = {"application/json": ENTRY_BODY_SCHEMA}
LOCALE = OpenApiParameter("locale", str, description="Defaults to CMS_DEFAULT_LOCALE.")
IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    description="The ETag an editor read; 409 if the entry was saved since.",
)


def reader_response(request: HttpRequest, cached: CachedResponse) -> HttpResponse:
    if cached.status == 404:
        raise NotFound("No published entry here.")
    headers = {
        "ETag": cached.etag,
        "Cache-Tag": " ".join(cached.tags),
        "Vary": "Authorization, Cookie",
    }
    headers["Surrogate-Key"] = headers["Cache-Tag"]
    headers["Cache-Control"] = "public, max-age=0, must-revalidate"
    if cached.etag in _etags(request.headers.get("If-None-Match", "")):
        return HttpResponse(status=304, headers=headers)
    return HttpResponse(cached.body, content_type="application/json", headers=headers)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


EDITOR_ETAG = re.compile(r'"e(?P<entry>\d+)r(?P<revision>\d+)-(?P<live>\d+)"')


def editor_response(request: Request, entry: Entry, status_code: int = 200) -> Response:
    etag = f'"e{entry.pk}r{entry.revision}-{entry.live_revision or 0}"'
    headers = {"ETag": etag, "Cache-Control": "private, no-store"}
    if status_code == 200 and etag in _etags(request.headers.get("If-None-Match", "")):
        return Response(status=304, headers=headers)
    return Response(entry_editor_payload(entry), status=status_code, headers=headers)


# --- Definitions ---------------------------------------------------------------------------------
class DefinitionAccess:
    permission_classes = (StaffModelPermission | HasApiKeyScope,)
    required_scope = SCOPES


class ContentTypeListApi(DefinitionAccess, APIView):
    permission_model = EntryType

    pagination_class = PageNumberPagination  # also tells the OpenAPI document the list is paged

    @extend_schema(responses={200: EntryTypeSerializer(many=True)})
    def get(self, request: Request) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(entry_types_list(), request, view=self)
        return paginator.get_paginated_response(EntryTypeSerializer(page, many=True).data)

    @extend_schema(
        request=EntryTypeSerializer,
        responses={201: EntryTypeSerializer, 400: PROBLEM, 409: PROBLEM},
    )
    def post(self, request: Request) -> Response:
        body = EntryTypeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        entry_type = entry_type_create(**body.validated_data)
        return Response(EntryTypeSerializer(entry_type).data, status=status.HTTP_201_CREATED)


class ContentTypeDetailApi(DefinitionAccess, APIView):
    permission_model = EntryType

    @extend_schema(responses={200: EntryTypeSerializer, 404: PROBLEM})
    def get(self, request: Request, api_id: str) -> Response:
        return Response(EntryTypeSerializer(entry_type_get(api_id=api_id)).data)

    @extend_schema(
        request=EntryTypeUpdateSerializer,
        responses={200: EntryTypeSerializer, 400: PROBLEM, 404: PROBLEM, 409: PROBLEM},
        description="A change that would break existing entries is refused with 409, which says "
        "how many entries and where.",
    )
    def patch(self, request: Request, api_id: str) -> Response:
        entry_type = entry_type_get(api_id=api_id)
        body = EntryTypeUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        entry_type = entry_type_update(entry_type=entry_type, **body.validated_data)
        return Response(EntryTypeSerializer(entry_type).data)

    @extend_schema(responses={204: None, 404: PROBLEM, 409: PROBLEM})
    def delete(self, request: Request, api_id: str) -> Response:
        entry_type_delete(entry_type=entry_type_get(api_id=api_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContentTypeSchemaApi(DefinitionAccess, APIView):
    permission_model = EntryType

    @extend_schema(responses={200: OpenApiResponse(description="JSON Schema"), 404: PROBLEM})
    def get(self, request: Request, api_id: str) -> Response:
        """The JSON Schema an entry body of this type is validated against."""
        return Response(entry_type_schema(entry_type=entry_type_get(api_id=api_id)))


class ComponentListApi(DefinitionAccess, APIView):
    permission_model = Component

    pagination_class = PageNumberPagination  # also tells the OpenAPI document the list is paged

    @extend_schema(responses={200: ComponentSerializer(many=True)})
    def get(self, request: Request) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(components_list(), request, view=self)
        return paginator.get_paginated_response(ComponentSerializer(page, many=True).data)

    @extend_schema(
        request=ComponentSerializer,
        responses={201: ComponentSerializer, 400: PROBLEM, 409: PROBLEM},
    )
    def post(self, request: Request) -> Response:
        body = ComponentSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        component = component_create(**body.validated_data)
        return Response(ComponentSerializer(component).data, status=status.HTTP_201_CREATED)


class ComponentDetailApi(DefinitionAccess, APIView):
    permission_model = Component

    @extend_schema(responses={200: ComponentSerializer, 404: PROBLEM})
    def get(self, request: Request, api_id: str) -> Response:
        return Response(ComponentSerializer(component_get(api_id=api_id)).data)

    @extend_schema(
        request=ComponentUpdateSerializer,
        responses={200: ComponentSerializer, 400: PROBLEM, 404: PROBLEM, 409: PROBLEM},
    )
    def patch(self, request: Request, api_id: str) -> Response:
        component = component_get(api_id=api_id)
        body = ComponentUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(
            ComponentSerializer(component_update(component=component, **body.validated_data)).data
        )

    @extend_schema(responses={204: None, 404: PROBLEM, 409: PROBLEM})
    def delete(self, request: Request, api_id: str) -> Response:
        component_delete(component=component_get(api_id=api_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Entries -------------------------------------------------------------------------------------
class EntryAccess:
    """Reads are open (readers see published entries only); writes need the entry permissions
    (publish and restore count as a change) or a `content:write` key."""

    permission_model = Entry
    required_scope = SCOPES

    def get_permissions(self) -> list[Any]:
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return [AllowAny()]
        return [(StaffModelPermission | HasApiKeyScope)()]


class ChangePermission(StaffModelPermission):
    perms_for_method = {**StaffModelPermission.perms_for_method, "POST": "change"}


class EntryActionAccess(EntryAccess):
    def get_permissions(self) -> list[Any]:
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return [(StaffModelPermission | HasApiKeyScope)()]
        return [(ChangePermission | HasApiKeyScope)()]


class EntryListApi(EntryAccess, APIView):
    """`/content/<type>/`: a collection's entries, or a single type's one entry."""

    @extend_schema(
        operation_id="content_list",
        parameters=[LOCALE],
        responses={200: ENTRY, 400: PROBLEM, 404: PROBLEM},
        description="A collection's entries (cursor pages), or a single type's one entry.",
    )
    def get(self, request: Request, type_api_id: str) -> Any:
        locale = locale_checked(request.query_params.get("locale"))
        editor = is_editor(request) and request.query_params.get("version") != "live"
        if not editor:
            # Readers' pages are cached under the type's list generation, read before the
            # database (content.cache). The key is the whole URL: the page's links carry it.
            generation = content_cache.list_generation(type_api_id)
            key = content_cache.list_key(
                type_api_id, generation, f"rest {request.build_absolute_uri()}"
            )
            cached = content_cache.list_get(key)
            if cached is not None:
                return Response(cached)
        entry_type = entry_type_get(api_id=type_api_id)
        if entry_type.kind == EntryType.Kind.SINGLE:
            return _entry_detail(request, entry_type, entry_type.api_id, locale)
        filters = entry_filters_from_query(request.query_params, editor=editor)
        paginator = CursorPagination()
        if editor:
            page = paginator.paginate_queryset(
                entries_for_editors(entry_type=entry_type, filters=filters), request, view=self
            )
            return paginator.get_paginated_response([entry_editor_payload(e) for e in page])
        page = paginator.paginate_queryset(
            entries_for_readers(entry_type=entry_type, filters=filters), request, view=self
        )
        response = paginator.get_paginated_response([entry_reader_payload(e) for e in page])
        content_cache.list_put(key, response.data)
        return response

    @extend_schema(request=ENTRY_BODY, responses={201: ENTRY, 400: PROBLEM, 409: PROBLEM})
    def post(self, request: Request, type_api_id: str) -> Response:
        entry_type = entry_type_get(api_id=type_api_id)
        if entry_type.kind == EntryType.Kind.SINGLE:
            raise ValidationError(f"'{type_api_id}' is a single type: PUT its one entry here.")
        entry = entry_create(entry_type=entry_type, body=request.data, author=request.user)
        response = editor_response(request, entry, status.HTTP_201_CREATED)
        response["Location"] = f"{request.path.rstrip('/')}/{entry.slug}/?locale={entry.locale}"
        return response

    @extend_schema(
        operation_id="content_single_replace",
        parameters=[LOCALE],
        request=ENTRY_BODY,
        responses={200: ENTRY, 201: ENTRY, 400: PROBLEM},
    )
    def put(self, request: Request, type_api_id: str) -> Response:
        """A single type's entry, created or replaced (as a draft revision)."""
        entry_type = entry_type_get(api_id=type_api_id)
        if entry_type.kind != EntryType.Kind.SINGLE:
            raise ValidationError(
                f"'{type_api_id}' is a collection: POST entries, PUT one by its slug."
            )
        body = request.data
        if not isinstance(body, dict):
            raise ValidationError("The body must be a JSON object.")
        locale = locale_checked(body.get("locale") or request.query_params.get("locale"))
        existing = single_entry_for_editors(entry_type=entry_type, locale=locale)
        if existing is None:
            entry = entry_create(
                entry_type=entry_type, body={**body, "locale": locale}, author=request.user
            )
            return editor_response(request, entry, status.HTTP_201_CREATED)
        entry = entry_update(entry=existing, body=body, author=request.user, replace=True)
        return editor_response(request, entry)


def _entry_detail(request: Request, entry_type: EntryType, slug: str, locale: str) -> Any:
    if is_editor(request) and request.query_params.get("version") != "live":
        return editor_response(
            request, entry_for_editors(entry_type=entry_type, slug=slug, locale=locale)
        )
    return reader_response(
        request, live_response_cached(api_id=entry_type.api_id, slug=slug, locale=locale)
    )


def _anonymous_read(request: HttpRequest, type_api_id: str, slug: str) -> HttpResponse:
    locale = locale_checked(request.GET.get("locale"))
    key = content_cache.live_key(type_api_id, slug, locale)
    retry_after, value = anonymous_throttle_then_get(request, key)
    if retry_after is not None:
        return throttled_response(retry_after)
    if value:
        cached = CachedResponse.from_value(value)
    else:
        cached = live_response_fill(api_id=type_api_id, slug=slug, locale=locale)
    return reader_response(request, cached)


class EntryDetailApi(EntryAccess, APIView):
    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        """An anonymous GET (no credentials at all) is the hot path of every site: it is answered
        before DRF, with the anonymous throttle and the cache read in one Redis round trip.
        Everything else (editors, customers, keys, writes) goes through DRF as usual."""
        return served_before_drf(
            super().as_view(**initkwargs), methods=("GET", "HEAD"), answer=_anonymous_read
        )

    @extend_schema(
        parameters=[LOCALE, OpenApiParameter("version", str, enum=["live", "draft"])],
        responses={200: ENTRY, 304: None, 404: PROBLEM},
        description="Readers get the published payload (cached, with ETag and Cache-Tag); a "
        "locale the entry lacks falls back to CMS_FALLBACK_LOCALE. Editors get the working copy "
        "unless they ask for `version=live`.",
    )
    def get(self, request: Request, type_api_id: str, slug: str) -> Any:
        locale = locale_checked(request.query_params.get("locale"))
        if not is_editor(request) or request.query_params.get("version") == "live":
            # The hot path: one cache read, no SQL, no type lookup.
            cached = live_response_cached(api_id=type_api_id, slug=slug, locale=locale)
            return reader_response(request, cached)
        return _entry_detail(request, entry_type_get(api_id=type_api_id), slug, locale)

    @extend_schema(
        parameters=[LOCALE, IF_MATCH],
        request=ENTRY_BODY,
        responses={200: ENTRY, 400: PROBLEM, 404: PROBLEM, 409: PROBLEM},
    )
    def patch(self, request: Request, type_api_id: str, slug: str) -> Response:
        entry = self._entry(request, type_api_id, slug)
        entry = entry_update(
            entry=entry,
            body=request.data,
            author=request.user,
            expected_revision=self._expected_revision(request),
        )
        return editor_response(request, entry)

    @extend_schema(
        parameters=[LOCALE],
        request=ENTRY_BODY,
        responses={200: ENTRY, 400: PROBLEM, 404: PROBLEM, 409: PROBLEM},
    )
    def put(self, request: Request, type_api_id: str, slug: str) -> Response:
        entry = self._entry(request, type_api_id, slug)
        entry = entry_update(
            entry=entry,
            body=request.data,
            author=request.user,
            replace=True,
            expected_revision=self._expected_revision(request),
        )
        return editor_response(request, entry)

    @extend_schema(parameters=[LOCALE], responses={204: None, 404: PROBLEM, 409: PROBLEM})
    def delete(self, request: Request, type_api_id: str, slug: str) -> Response:
        entry_delete(entry=self._entry(request, type_api_id, slug), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @staticmethod
    def _expected_revision(request: Request) -> int | None:
        """`If-Match` with the ETag an editor read: the write is refused with 409 if the entry
        moved on since (another editor saved). No header: last write wins."""
        header = request.headers.get("If-Match", "").strip()
        if not header or header == "*":
            return None
        found = EDITOR_ETAG.fullmatch(header.removeprefix("W/"))
        if found is None:
            raise ValidationError(
                "If-Match must be an ETag this API sent for the entry.",
                errors=[FieldError("If-Match", "invalid_format", 'Like "e12r3-2".')],
            )
        return int(found["revision"])

    @staticmethod
    def _entry(request: Request, type_api_id: str, slug: str) -> Entry:
        entry_type = entry_type_get(api_id=type_api_id)
        locale = locale_checked(request.query_params.get("locale"))
        return entry_for_editors(entry_type=entry_type, slug=slug, locale=locale)


class EntryPublishApi(EntryActionAccess, APIView):
    @extend_schema(
        parameters=[LOCALE],
        request=PublishSerializer,
        responses={200: ENTRY, 400: PROBLEM, 404: PROBLEM},
        description="Publishes the working copy now, or schedules it for `publish_at` (a later "
        "edit does not change what was scheduled).",
    )
    def post(self, request: Request, type_api_id: str, slug: str) -> Response:
        entry = EntryDetailApi._entry(request, type_api_id, slug)
        body = request.data or {}
        if not isinstance(body, dict) or set(body) - {"publish_at"}:
            raise ValidationError('The body is {} or {"publish_at": <ISO 8601 time>}.')
        publish_at = publish_at_parsed(body.get("publish_at"))
        entry = entry_publish(entry=entry, actor=request.user, publish_at=publish_at)
        return editor_response(request, entry)


class EntryUnpublishApi(EntryActionAccess, APIView):
    @extend_schema(
        parameters=[LOCALE], request=None, responses={200: ENTRY, 404: PROBLEM, 409: PROBLEM}
    )
    def post(self, request: Request, type_api_id: str, slug: str) -> Response:
        entry = EntryDetailApi._entry(request, type_api_id, slug)
        return editor_response(request, entry_unpublish(entry=entry, actor=request.user))


class EntryRevisionListApi(EntryActionAccess, APIView):
    # Revisions hold drafts and their authors: editors only (see `is_editor`). A `content:read`
    # key sees published payloads only, so reading them takes `content:write`.
    required_scope = {**SCOPES, "GET": WRITE, "HEAD": WRITE}

    @extend_schema(
        parameters=[LOCALE], responses={200: OpenApiResponse(description="Revisions, newest first")}
    )
    def get(self, request: Request, type_api_id: str, slug: str) -> Response:
        entry = EntryDetailApi._entry(request, type_api_id, slug)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(revisions_list(entry=entry), request, view=self)
        return paginator.get_paginated_response([revision_payload(r) for r in page])


class EntryRevisionRestoreApi(EntryActionAccess, APIView):
    @extend_schema(
        parameters=[LOCALE], request=None, responses={200: ENTRY, 404: PROBLEM, 409: PROBLEM}
    )
    def post(self, request: Request, type_api_id: str, slug: str, number: int) -> Response:
        entry = EntryDetailApi._entry(request, type_api_id, slug)
        return editor_response(
            request, revision_restore(entry=entry, number=number, author=request.user)
        )


class DeliverApi(APIView):
    """`/deliver/<type>/<slug>/`: the published entry, each block resolved for the caller."""

    permission_classes = (AllowAny,)

    @extend_schema(
        parameters=[
            LOCALE,
            OpenApiParameter(
                "X-Anonymous-Id",
                str,
                OpenApiParameter.HEADER,
                description="The browser's id, for visitors without a customer token.",
            ),
        ],
        responses={200: OpenApiResponse(description="{data, meta}"), 304: None, 404: PROBLEM},
        description="Variants and targeting never leave the server: each block carries the one "
        "`data` chosen for the caller's segments (none for a customer who refused "
        "personalization).",
    )
    def get(self, request: Request, type_api_id: str, slug: str) -> HttpResponse:
        locale = locale_checked(request.query_params.get("locale"))
        audience = audience_for(
            user=request.user, anonymous_id=request.headers.get("X-Anonymous-Id")
        )
        delivery = entry_deliver(api_id=type_api_id, slug=slug, locale=locale, audience=audience)
        return delivery_response(request, delivery)

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        """A browser without credentials (the storefront case) is answered before DRF: the
        anonymous throttle, the cached entry, the browser's link to a customer and its segments
        are read in one Redis round trip, with no SQL when all are cached."""
        return served_before_drf(
            super().as_view(**initkwargs), methods=("GET", "HEAD"), answer=_anonymous_deliver
        )


def _anonymous_deliver(request: HttpRequest, type_api_id: str, slug: str) -> HttpResponse:
    locale = locale_checked(request.GET.get("locale"))
    anonymous_id = anonymous_id_clean(request.headers.get("X-Anonymous-Id"))
    audience_keys = audience_prefetch_keys(anonymous_id)
    live_key = content_cache.live_key(type_api_id, slug, locale)
    retry_after, values = anonymous_throttle_then_get_many(request, [live_key, *audience_keys])
    if retry_after is not None:
        return throttled_response(retry_after)
    audience = audience_for(
        user=None,
        anonymous_id=anonymous_id,
        prefetched=dict(zip(audience_keys, values[1:], strict=True)),
    )
    cached = CachedResponse.from_value(values[0]) if values[0] else None
    delivery = entry_deliver(
        api_id=type_api_id, slug=slug, locale=locale, audience=audience, cached=cached
    )
    return delivery_response(request, delivery)


def delivery_response(request: HttpRequest, delivery: Any) -> HttpResponse:
    etag = delivery.etag()
    headers = {
        "ETag": etag,
        "Cache-Tag": " ".join(delivery.tags),
        # Personal: never stored by a shared cache; the browser revalidates with the ETag.
        "Cache-Control": "private, no-cache",
        "Vary": "Authorization, Cookie, X-Anonymous-Id",
    }
    if etag in _etags(request.headers.get("If-None-Match", "")):
        return HttpResponse(status=304, headers=headers)
    body = json.dumps(delivery.body, separators=(",", ":"), ensure_ascii=False)
    return HttpResponse(body, content_type="application/json", headers=headers)
