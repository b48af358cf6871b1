"""Admin of content: components and content types (definitions, for developers mostly), and
entries (for marketers) with the zone editor, the preview as a segment and revision history.

Nothing here writes a row itself: every save, publish, restore and delete goes through
`content.services`, which validate, record revisions and announce after commit.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.forms import Script
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from cmsproject.errors import DomainError
from content.admin import views
from content.admin.forms import ComponentAdminForm, EntryTypeAdminForm, service_dry_run
from content.models import Component, Entry, EntryType
from content.services import (
    component_delete,
    entry_delete,
    entry_publish,
    entry_type_delete,
    entry_unpublish,
)


class ServiceDeleteMixin:
    """Deletion through the service: the confirmation page lists its refusal (an entry that
    others refer to, a component in use) as a protected object, so nothing half-happens."""

    def service_delete(self, request: HttpRequest, obj: Any) -> None:
        raise NotImplementedError

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        protected = list(protected)
        for obj in objs:
            try:
                service_dry_run(lambda obj=obj: self.service_delete(request, obj))
            except DomainError as exc:
                protected.append(f"{obj}: {exc.detail}")
        return deleted, model_count, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.service_delete(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.service_delete(request, obj)


# --- Definitions ---------------------------------------------------------------------------------
class DefinitionAdmin(ServiceDeleteMixin, admin.ModelAdmin):
    """Saves through the form's service call (checked in the form, run for real here)."""

    class Media:  # the row editor of field definitions and zones
        js = [Script("content/admin/definition_editor.js", type="module")]
        css = {"all": ["content/admin/definition_editor.css"]}

    readonly_on_change: tuple[str, ...] = ()

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Entries, clients and GraphQL names use the api_id: renaming would orphan them.
        return ["api_id", *self.readonly_on_change] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        saved = form.save_through_service()
        obj.__dict__.update(saved.__dict__)  # the admin goes on with `obj` (log, redirect)

    @admin.display(description="fields")
    def field_names(self, obj: Any) -> str:
        return ", ".join(field["name"] for field in obj.fields) or "—"


@admin.register(Component)
class ComponentAdmin(DefinitionAdmin):
    form = ComponentAdminForm
    list_display = ["api_id", "name", "field_names", "builtin", "updated_at"]
    list_filter = ["builtin"]
    search_fields = ["api_id", "name"]
    readonly_on_change = ("builtin",)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        main = ["api_id", "name", "description", "fields"]
        return [*main, "builtin"] if obj is not None else main

    def service_delete(self, request: HttpRequest, obj: Component) -> None:
        component_delete(component=obj)


@admin.register(EntryType)
class EntryTypeAdmin(DefinitionAdmin):
    form = EntryTypeAdminForm
    list_display = ["api_id", "name", "kind", "field_names", "zone_names", "entries", "add_entry"]
    list_filter = ["kind"]
    search_fields = ["api_id", "name"]
    fields = ["api_id", "name", "kind", "description", "fields", "zones"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[EntryType]:
        return super().get_queryset(request).annotate(entry_count=Count("entries"))

    @admin.display(description="zones")
    def zone_names(self, obj: EntryType) -> str:
        return ", ".join(zone["name"] for zone in obj.zones) or "—"

    @admin.display(description="entries", ordering="entry_count")
    def entries(self, obj: EntryType) -> str:
        url = reverse("admin:content_entry_changelist")
        return format_html('<a href="{}?type__id__exact={}">{}</a>', url, obj.pk, obj.entry_count)

    @admin.display(description="")
    def add_entry(self, obj: EntryType) -> str:
        url = reverse("admin:content_entry_add")
        return format_html('<a class="addlink" href="{}?type={}">Add entry</a>', url, obj.api_id)

    def service_delete(self, request: HttpRequest, obj: EntryType) -> None:
        entry_type_delete(entry_type=obj)


# --- Entries -------------------------------------------------------------------------------------
@admin.register(Entry)
class EntryAdmin(ServiceDeleteMixin, admin.ModelAdmin):
    list_display = ["slug", "type", "locale", "status", "unpublished_changes", "updated_at"]
    list_display_links = ["slug"]
    list_filter = ["type", "status", "locale"]
    list_select_related = ["type"]
    search_fields = ["slug"]
    ordering = ["-updated_at"]
    actions = ["publish_selected", "unpublish_selected"]

    @admin.display(boolean=True, description="unpublished changes")
    def unpublished_changes(self, entry: Entry) -> bool:
        return entry.has_unpublished_changes

    def get_queryset(self, request: HttpRequest) -> QuerySet[Entry]:
        return super().get_queryset(request).select_related("type")

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        # Before the model's own patterns: `<path:object_id>/` would swallow these.
        return [
            path("preview/", wrap(self.preview_view), name="content_entry_preview"),
            path(
                "<path:object_id>/revisions/",
                wrap(self.revisions_view),
                name="content_entry_revisions",
            ),
            path(
                "<path:object_id>/revisions/<int:number>/restore/",
                wrap(self.restore_view),
                name="content_entry_restore",
            ),
            *super().get_urls(),
        ]

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        api_id = request.GET.get("type", "")
        entry_type = EntryType.objects.filter(api_id=api_id).first() if api_id else None
        if entry_type is None:
            return views.type_picker_view(self, request, unknown=api_id or None)
        return views.entry_editor_view(self, request, entry=None, entry_type=entry_type)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        entry = self.get_object(request, unquote(object_id))
        if entry is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, entry):
            raise PermissionDenied
        return views.entry_editor_view(self, request, entry=entry, entry_type=entry.type)

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        return views.entry_preview_view(self, request)

    def revisions_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return views.entry_revisions_view(self, request, object_id)

    def restore_view(self, request: HttpRequest, object_id: str, number: int) -> HttpResponse:
        return views.entry_revision_restore_view(self, request, object_id, number)

    def service_delete(self, request: HttpRequest, obj: Entry) -> None:
        entry_delete(entry=obj, actor=request.user)

    @admin.action(description="Publish selected entries", permissions=["change"])
    def publish_selected(self, request: HttpRequest, queryset: QuerySet[Entry]) -> None:
        for entry in queryset:
            entry_publish(entry=entry, actor=request.user)
        self.message_user(request, f"{queryset.count()} entry(ies) published.")

    @admin.action(description="Unpublish selected entries", permissions=["change"])
    def unpublish_selected(self, request: HttpRequest, queryset: QuerySet[Entry]) -> None:
        done, skipped = 0, 0
        for entry in queryset:
            try:
                entry_unpublish(entry=entry, actor=request.user)
                done += 1
            except DomainError:
                skipped += 1
        self.message_user(request, f"{done} entry(ies) unpublished.")
        if skipped:
            self.message_user(request, f"{skipped} were not published.", messages.WARNING)
