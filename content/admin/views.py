"""The entry editor's pages: the editor itself (add and change), the type picker, the preview as
a segment, and the revision history with restore.

The editor page embeds a JSON description of the entry's type, the components its zones allow
(and those nested in them), the experiments and flags a block may be bound to, the working copy
and any errors; `zone_editor.js` renders the inputs from it and posts the document back in one
hidden field. Every write goes through `content.services`, so the admin accepts exactly what the
API accepts; its errors come back by path (`zones.body[1].data.heading`) and land on the input
they name.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import nh3
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.safestring import mark_safe

from cmsproject.errors import Conflict, DomainError, FieldError, ValidationError
from content.admin.forms import EntryMetaForm, document_parsed, segment_keys_parsed
from content.models import Component, Entry, EntryType, MediaAsset
from content.resolution import zones_resolve
from content.selectors import revisions_list
from content.services import (
    StaleRevision,
    entry_create,
    entry_document_clean,
    entry_publish,
    entry_unpublish,
    entry_update,
    revision_restore,
)
from experiments.models import Experiment, FeatureFlag

if TYPE_CHECKING:
    from content.admin.entries import EntryAdmin

EDITOR_TEMPLATE = "admin/content/entry/editor.html"
TYPE_PICKER_TEMPLATE = "admin/content/entry/type_picker.html"
PREVIEW_TEMPLATE = "admin/content/entry/preview.html"
REVISIONS_TEMPLATE = "admin/content/entry/revisions.html"
MAX_MEDIA_OPTIONS = 300
MAX_REFERENCE_OPTIONS = 500
MAX_EXPERIMENT_OPTIONS = 300
MAX_FLAG_OPTIONS = 300


# --- What the editor is told ---------------------------------------------------------------------
def components_for(entry_type: EntryType) -> dict[str, dict[str, Any]]:
    """The components the type's zones and fields use, and every component nested in them."""
    every = {
        row["api_id"]: row
        for row in Component.objects.values("api_id", "name", "description", "fields")
    }
    pending = [f["component"] for f in entry_type.fields if f.get("type") == "component"]
    for zone in entry_type.zones:
        pending += zone["components"]
    found: dict[str, dict[str, Any]] = {}
    while pending:
        api_id = pending.pop()
        if api_id in found or api_id not in every:
            continue
        row = every[api_id]
        found[api_id] = {
            "name": row["name"],
            "description": row["description"],
            "fields": row["fields"],
        }
        pending += [f["component"] for f in row["fields"] if f.get("type") == "component"]
    return found


def _reference_targets(entry_type: EntryType, components: dict[str, dict[str, Any]]) -> set[str]:
    definitions = [entry_type.fields, *(c["fields"] for c in components.values())]
    return {f["to"] for fields in definitions for f in fields if f.get("type") == "reference"}


def _reference_options(targets: set[str]) -> dict[str, list[dict[str, Any]]]:
    options: dict[str, list[dict[str, Any]]] = {}
    for api_id in sorted(targets):
        rows = (
            Entry.objects.filter(type__api_id=api_id)
            .order_by("slug", "locale")
            .values("pk", "slug", "locale", "status")[:MAX_REFERENCE_OPTIONS]
        )
        options[api_id] = [
            {"id": r["pk"], "label": f"{r['slug']} ({r['locale']}, {r['status']})"} for r in rows
        ]
    return options


def _media_options() -> list[dict[str, Any]]:
    rows = MediaAsset.objects.order_by("-created_at").values(
        "pk", "original_filename", "width", "height"
    )[:MAX_MEDIA_OPTIONS]
    return [
        {
            "id": r["pk"],
            "label": f"#{r['pk']} {r['original_filename']} ({r['width']}x{r['height']})",
        }
        for r in rows
    ]


def _experiment_options() -> list[dict[str, Any]]:
    """What a block may be A/B tested with; `variants` in order, the first is control."""
    rows = Experiment.objects.order_by("key").values("key", "name", "status", "variants")
    return [
        {
            "key": r["key"],
            "name": r["name"],
            "status": r["status"],
            "variants": [
                v["key"] for v in r["variants"] or [] if isinstance(v, dict) and "key" in v
            ],
        }
        for r in rows[:MAX_EXPERIMENT_OPTIONS]
    ]


def _flag_options() -> list[dict[str, Any]]:
    rows = FeatureFlag.objects.order_by("key").values("key", "name", "enabled")
    return list(rows[:MAX_FLAG_OPTIONS])


def segment_suggestions(document: dict[str, Any], audience: list[str]) -> list[str]:
    """Segment keys the entry already uses (audience, variants): what a preview would pick."""
    keys = list(audience)
    for blocks in (document.get("zones") or {}).values():
        for block in blocks if isinstance(blocks, list) else []:
            for variant in (block.get("variants") if isinstance(block, dict) else None) or []:
                if isinstance(variant, dict):
                    keys += [k for k in variant.get("segments") or [] if isinstance(k, str)]
    return list(dict.fromkeys(keys))


def editor_config(
    *,
    entry_type: EntryType,
    document: dict[str, Any],
    errors: list[FieldError],
    readonly: bool,
    audience: list[str],
) -> dict[str, Any]:
    components = components_for(entry_type)
    zones = document.get("zones") if isinstance(document.get("zones"), dict) else {}
    return {
        "type": {
            "api_id": entry_type.api_id,
            "name": entry_type.name,
            "kind": entry_type.kind,
            "fields": entry_type.fields,
            "zones": entry_type.zones,
        },
        "components": components,
        "document": {
            "fields": document.get("fields") if isinstance(document.get("fields"), dict) else {},
            "zones": zones,
        },
        "errors": [{"attr": e.attr, "detail": e.detail} for e in errors],
        "options": {
            "media": _media_options(),
            "references": _reference_options(_reference_targets(entry_type, components)),
            "segments": segment_suggestions(document, audience),
            "experiments": _experiment_options(),
            "flags": _flag_options(),
        },
        "readonly": readonly,
    }


# --- The editor ----------------------------------------------------------------------------------
def _meta_initial(entry: Entry | None) -> dict[str, Any]:
    if entry is None:
        return {}
    return {
        "slug": entry.slug,
        "locale": entry.locale,
        "audience": ", ".join(entry.audience),
        "lifecycle_stage": entry.lifecycle_stage,
        "language": entry.language,
        "publish_at": timezone.localtime(entry.publish_at) if entry.publish_at else None,
    }


def _saved(
    *,
    entry: Entry | None,
    entry_type: EntryType,
    body: dict[str, Any],
    user: Any,
    base_revision: str | None,
) -> tuple[Entry, bool]:
    """(entry, whether a revision was made). Two marketers on one entry: the second save must
    not silently undo the first, so the save is refused unless the entry is still at the
    revision the editor was opened at."""
    if entry is None:
        return entry_create(entry_type=entry_type, body=body, author=user), True
    before = entry.revision
    expected = int(base_revision) if base_revision and base_revision.isdigit() else None
    try:
        entry = entry_update(
            entry=entry, body=body, author=user, replace=True, expected_revision=expected
        )
    except StaleRevision as stale:
        raise EditedMeanwhile(stale.current) from None
    return entry, entry.revision != before


def _success_message(entry: Entry, *, created: bool, new_revision: bool, action: str) -> str:
    if action == "publish":
        if entry.publish_at and entry.scheduled_revision == entry.revision:
            when = date_format(timezone.localtime(entry.publish_at), "DATETIME_FORMAT")
            return f"Revision {entry.revision} is scheduled to go live at {when}."
        return f"Published revision {entry.revision}: readers see it now."
    if created:
        return f"Created “{entry}” as a draft (revision {entry.revision})."
    if not new_revision:
        return "Nothing changed: no new revision."
    if entry.live is not None:
        return (
            f"Saved revision {entry.revision} as a draft; readers still see revision "
            f"{entry.live_revision} until you publish."
        )
    return f"Saved revision {entry.revision} as a draft."


def entry_editor_view(
    model_admin: EntryAdmin, request: HttpRequest, *, entry: Entry | None, entry_type: EntryType
) -> HttpResponse:
    if entry is None:
        can_write = model_admin.has_add_permission(request)
    else:
        can_write = model_admin.has_change_permission(request, entry)
    page = EditorPage(model_admin, request, entry=entry, entry_type=entry_type, can_write=can_write)
    if request.method != "POST":
        meta_form = EntryMetaForm(initial=_meta_initial(entry), entry_type=entry_type)
        document = {"fields": entry.fields, "zones": entry.zones} if entry else {}
        return page.render(meta_form, document, base_revision=entry.revision if entry else None)
    if not can_write:
        raise PermissionDenied
    action = request.POST.get("_action", "save")
    if action == "unpublish" and entry is not None:
        return _unpublished(model_admin, request, entry)
    meta_form = EntryMetaForm(request.POST, entry_type=entry_type)
    meta_valid = meta_form.is_valid()
    document = document_parsed(request.POST.get("document"))
    base_revision = request.POST.get("base_revision") or None
    try:
        if document is None:
            raise ValidationError("The editor's state could not be read; reload the page.")
        if not meta_valid:
            return page.render(meta_form, document, base_revision=base_revision)
        with transaction.atomic():
            saved, new_revision = _saved(
                entry=entry,
                entry_type=entry_type,
                body=meta_form.body(document),
                user=request.user,
                base_revision=base_revision,
            )
            if action == "publish":
                publish_at = meta_form.cleaned_data.get("publish_at")
                saved = entry_publish(entry=saved, actor=request.user, publish_at=publish_at)
    except DomainError as exc:
        if isinstance(exc, EditedMeanwhile):
            base_revision = exc.revision  # so that saving again overwrites, knowingly
        editor_errors = meta_form.add_service_errors(exc) if meta_valid else []
        return page.render(
            meta_form,
            document or {},
            base_revision=base_revision,
            problem=exc,
            editor_errors=editor_errors,
        )
    message = _success_message(
        saved, created=entry is None, new_revision=new_revision, action=action
    )
    if entry is None:
        model_admin.log_addition(request, saved, message)
    elif new_revision or action == "publish":
        model_admin.log_change(request, saved, message)
    messages.success(request, message)
    return HttpResponseRedirect(reverse("admin:content_entry_change", args=[saved.pk]))


class EditedMeanwhile(Conflict):
    def __init__(self, revision: int) -> None:
        super().__init__(
            f"Someone saved revision {revision} of this entry after you opened it. Your edits "
            "are still below: save again to replace their version with yours, or compare in the "
            "revision history first."
        )
        self.revision = revision


class EditorPage:
    """Renders the editor page for one entry (or a new one of a type)."""

    def __init__(
        self,
        model_admin: EntryAdmin,
        request: HttpRequest,
        *,
        entry: Entry | None,
        entry_type: EntryType,
        can_write: bool,
    ) -> None:
        self.model_admin = model_admin
        self.request = request
        self.entry = entry
        self.entry_type = entry_type
        self.can_write = can_write

    def render(
        self,
        meta_form: EntryMetaForm,
        document: dict[str, Any],
        *,
        base_revision: Any,
        problem: DomainError | None = None,
        editor_errors: list[FieldError] | None = None,
    ) -> HttpResponse:
        entry, model_admin = self.entry, self.model_admin
        if not self.can_write:
            for field in meta_form.fields.values():
                field.disabled = True
        audience = segment_keys_parsed(str(meta_form["audience"].value() or ""))
        config = editor_config(
            entry_type=self.entry_type,
            document=document,
            errors=editor_errors or [],
            readonly=not self.can_write,
            audience=audience,
        )
        context = {
            **model_admin.admin_site.each_context(self.request),
            "opts": model_admin.opts,
            "title": f"Change {entry}" if entry else f"Add {self.entry_type.name}",
            "entry": entry,
            "entry_type": self.entry_type,
            "meta_form": meta_form,
            "base_revision": base_revision,
            "problem": problem,
            "can_write": self.can_write,
            "can_delete": entry is not None
            and model_admin.has_delete_permission(self.request, entry),
            "config": config,
            "segment_suggestions": config["options"]["segments"],
            "api_url": _api_url(entry),
        }
        return TemplateResponse(self.request, EDITOR_TEMPLATE, context)


def _unpublished(model_admin: EntryAdmin, request: HttpRequest, entry: Entry) -> HttpResponse:
    try:
        entry = entry_unpublish(entry=entry, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        message = "Unpublished: readers no longer see this entry."
        model_admin.log_change(request, entry, message)
        messages.success(request, message)
    return HttpResponseRedirect(reverse("admin:content_entry_change", args=[entry.pk]))


def _api_url(entry: Entry | None) -> str | None:
    if entry is None or entry.live is None:
        return None
    if entry.type.kind == EntryType.Kind.SINGLE:
        return f"/api/v1/content/{entry.type.api_id}/?locale={entry.locale}"
    return f"/api/v1/content/{entry.type.api_id}/{entry.slug}/?locale={entry.locale}"


def type_picker_view(
    model_admin: EntryAdmin, request: HttpRequest, *, unknown: str | None = None
) -> HttpResponse:
    if unknown:
        messages.error(request, f"There is no content type “{unknown}”.")
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": "Add entry: choose its type",
        "entry_types": EntryType.objects.order_by("name"),
    }
    return TemplateResponse(request, TYPE_PICKER_TEMPLATE, context)


# --- Preview as a segment ------------------------------------------------------------------------
def _label(field: dict[str, Any]) -> str:
    return field.get("label") or field["name"].replace("_", " ").capitalize()


def data_rows(
    fields: list[dict[str, Any]], data: Any, components: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """A block's (or the entry's) data as labelled rows, in the definition's order."""
    if not isinstance(data, dict):
        return []
    rows = []
    for field in fields:
        if field["name"] not in data:
            continue
        value, kind = data[field["name"]], field["type"]
        row: dict[str, Any] = {"label": _label(field), "kind": "text"}
        if kind == "component":
            nested = components.get(field["component"], {}).get("fields", [])
            if isinstance(value, list):
                row["kind"] = "items"
                row["items"] = [data_rows(nested, item, components) for item in value]
            else:
                row["kind"] = "rows"
                row["rows"] = data_rows(nested, value, components)
        elif kind == "richtext":
            # Sanitized again here: the preview shows rich text as readers' pages would.
            row["kind"] = "html"
            row["html"] = mark_safe(nh3.clean(str(value)))  # noqa: S308
        elif kind == "json":
            row["kind"] = "code"
            row["code"] = json.dumps(value, indent=2, ensure_ascii=False)
        elif kind == "boolean":
            row["text"] = "Yes" if value else "No"
        elif kind == "media":
            row["text"] = f"Media asset #{value}"
        elif kind == "reference":
            row["text"] = f"{field['to']} entry #{value}"
        else:
            row["text"] = str(value)
        rows.append(row)
    return rows


def preview_zones(
    entry_type: EntryType, zones: dict[str, list[dict[str, Any]]], segments: list[str]
) -> list[dict[str, Any]]:
    """Each zone's blocks as a caller in `segments` receives them, and which variant won."""
    components = components_for(entry_type)
    resolved = zones_resolve(zones, segments)
    shown = []
    for zone in entry_type.zones:
        blocks = []
        raw_blocks = zones.get(zone["name"], [])
        for raw, block in zip(raw_blocks, resolved.get(zone["name"], []), strict=True):
            component = components.get(block["component"], {"name": block["component"]})
            variant = next(
                (v for v in raw.get("variants") or [] if v.get("id") == block["variant"]), None
            )
            blocks.append(
                {
                    "component": component["name"],
                    "variant": variant,
                    "rows": data_rows(component.get("fields", []), block["data"], components),
                }
            )
        shown.append(
            {"name": zone["name"], "label": zone.get("label") or zone["name"], "blocks": blocks}
        )
    return shown


def entry_preview_view(model_admin: EntryAdmin, request: HttpRequest) -> HttpResponse:
    """GET `?entry=<id>&segments=vip`: the saved working copy. POST (from the editor, in a new
    tab): the editor's unsaved document."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    params = request.POST if request.method == "POST" else request.GET
    segments = segment_keys_parsed(params.get("segments", ""))
    entry = None
    if params.get("entry"):
        entry = get_object_or_404(Entry.objects.select_related("type"), pk=params["entry"])
    errors: list[FieldError] = []
    if request.method == "POST":
        entry_type = get_object_or_404(EntryType, api_id=params.get("type", ""))
        parsed = document_parsed(params.get("document")) or {}
        document = {"fields": parsed.get("fields", {}), "zones": parsed.get("zones", {})}
        try:
            document = entry_document_clean(entry_type=entry_type, document=document)
        except ValidationError as exc:
            errors = exc.errors or [FieldError("", "invalid", exc.detail)]
    elif entry is not None:
        entry_type = entry.type
        document = {"fields": entry.fields, "zones": entry.zones}
    else:
        raise PermissionDenied("Preview what? Pass ?entry=<id>.")
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": f"Preview of {entry or entry_type.name}",
        "entry": entry,
        "entry_type": entry_type,
        "segments": segments,
        "segments_text": ", ".join(segments),
        "errors": errors,
        "fields": []
        if errors
        else data_rows(entry_type.fields, document["fields"], components_for(entry_type)),
        "zones": [] if errors else preview_zones(entry_type, document["zones"], segments),
        "resubmit": {
            "method": request.method,
            "type": entry_type.api_id,
            "document": params.get("document", ""),
        },
        "segment_suggestions": segment_suggestions(document, entry.audience if entry else []),
    }
    return TemplateResponse(request, PREVIEW_TEMPLATE, context)


# --- Revisions -----------------------------------------------------------------------------------
def _revision_summary(data: dict[str, Any]) -> str:
    zones = data.get("zones") or {}
    parts = [
        f"{name}: {len(blocks)} block{'s' * (len(blocks) != 1)}" for name, blocks in zones.items()
    ]
    return "; ".join(parts) or "no blocks"


def entry_revisions_view(
    model_admin: EntryAdmin, request: HttpRequest, object_id: str
) -> HttpResponse:
    entry = model_admin.get_object(request, unquote(object_id))
    if entry is None:
        return model_admin._get_obj_does_not_exist_redirect(request, model_admin.opts, object_id)
    if not model_admin.has_view_or_change_permission(request, entry):
        raise PermissionDenied
    revisions = [
        {
            "number": revision.number,
            "kind": revision.get_kind_display(),
            "restored_from": revision.restored_from,
            "author": revision.author.get_username() if revision.author else "—",
            "created_at": revision.created_at,
            "summary": _revision_summary(revision.data),
            "data": json.dumps(revision.data, indent=2, ensure_ascii=False),
            "is_current": revision.number == entry.revision,
            "is_live": revision.number == entry.live_revision,
        }
        for revision in revisions_list(entry=entry)
    ]
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": f"Revisions of {entry}",
        "entry": entry,
        "revisions": revisions,
        "can_restore": model_admin.has_change_permission(request, entry),
    }
    return TemplateResponse(request, REVISIONS_TEMPLATE, context)


def entry_revision_restore_view(
    model_admin: EntryAdmin, request: HttpRequest, object_id: str, number: int
) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    entry = model_admin.get_object(request, unquote(object_id))
    if entry is None:
        return model_admin._get_obj_does_not_exist_redirect(request, model_admin.opts, object_id)
    if not model_admin.has_change_permission(request, entry):
        raise PermissionDenied
    try:
        entry = revision_restore(entry=entry, number=number, author=request.user)
    except DomainError as exc:
        details = "; ".join(f"{e.attr}: {e.detail}" for e in exc.errors[:5])
        messages.error(request, f"{exc.detail} {details}".strip())
        return HttpResponseRedirect(reverse("admin:content_entry_revisions", args=[entry.pk]))
    message = (
        f"Revision {number} restored as revision {entry.revision}, a draft: publish it to make "
        "it live."
    )
    model_admin.log_change(request, entry, message)
    messages.success(request, message)
    return HttpResponseRedirect(reverse("admin:content_entry_change", args=[entry.pk]))
