"""Segments in the admin: marketers build a dynamic segment's rules with the visual rule editor
(never typing JSON) and see who matches as they go; static segments take their members from a
CSV file.

The rule editor is jQuery QueryBuilder (vendored under `segmentation/static/segmentation/
vendor/`), driven by `rule_editor.js`, which converts between the builder's model and the
criteria language of API.md and writes the rules into the form's hidden `rules` input. The page
embeds what the editor may offer (attributes with their types, ops and choices, event types
with their properties, other segments) as JSON. Every write goes through
`segmentation.services`, so the admin accepts exactly what the API accepts; the service's errors
come back by path (`rules.all[1].value`) and land on the condition they name. The live count
comes from `preview/`, which asks `segmentation.selectors.segment_preview`, as the REST preview
does.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.forms import Script
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import capfirst

from analytics.selectors import event_type_catalog
from cmsproject.errors import DomainError, FieldError, ValidationError
from content.admin.entries import ServiceDeleteMixin
from content.admin.forms import error_root, service_dry_run
from customers.models import Customer
from segmentation.models import Segment
from segmentation.selectors import segment_preview, segments_list
from segmentation.services import (
    segment_create,
    segment_delete,
    segment_update,
    static_members_from_csv,
)

WIDGET_TEMPLATE = "admin/segmentation/segment/rule_editor_widget.html"
IMPORT_TEMPLATE = "admin/segmentation/segment/import_members.html"
MAX_PREVIEW_BODY = 256 * 1024
NUMERIC = {"number", "integer"}


# --- What the editor may offer -------------------------------------------------------------------
def _choice_labels(name: str) -> dict[Any, str]:
    """Labels of a core column's choices: `gold` → "Gold"."""
    return {value: str(label) for value, label in Customer._meta.get_field(name).choices or ()}


def _core_label(name: str) -> str:
    return capfirst(str(Customer._meta.get_field(name).verbose_name))


def _declared_types(schema: Any) -> dict[str, set[str]]:
    """{property: its JSON types} as an event type's schema declares them."""
    declared = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(declared, dict):
        return {}
    found = {}
    for name, spec in declared.items():
        types = spec.get("type") if isinstance(spec, dict) else None
        found[name] = {types} if isinstance(types, str) else set(types or ())
    return found


def rule_editor_catalog(*, editing: str | None = None) -> dict[str, Any]:
    """The vocabulary of the rule editor: `segmentation.criteria.criteria_catalog` (what the
    validator accepts: attribute types and ops, event types, aggregates) with labels for people,
    the numeric properties of each event type, and the other segments with their names."""
    from segmentation.criteria import (
        AGGREGATE_OPS,
        MAX_WITHIN_DAYS,
        PROPERTY_AGGREGATES,
        criteria_catalog,
    )

    catalog = criteria_catalog()
    attributes = []
    for info in catalog["attributes"]:
        name = info["name"]
        custom = name.startswith("attributes.")
        labels = {} if custom else _choice_labels(name)
        attributes.append(
            {
                "name": name,
                "label": (info["description"] or name) if custom else _core_label(name),
                "group": "attributes" if custom else "customer",
                "type": info["type"],
                "ops": info["ops"],
                "choices": [
                    {"value": value, "label": labels.get(value, str(value))}
                    for value in info.get("choices", [])
                ],
            }
        )
    types = event_type_catalog()
    events = []
    for info in catalog["events"]:
        declared = _declared_types(getattr(types.get(info["name"]), "schema", None))
        events.append(
            {
                "name": info["name"],
                "label": capfirst(info["name"].replace("_", " ")),
                "numeric_properties": sorted(p for p, t in declared.items() if t & NUMERIC),
                "distinct_properties": list(info["distinct_properties"]),
            }
        )
    return {
        "attributes": attributes,
        "events": sorted(events, key=lambda event: event["name"]),
        "aggregates": catalog["aggregates"],
        "property_aggregates": list(PROPERTY_AGGREGATES),
        "aggregate_ops": list(AGGREGATE_OPS),
        "max_within_days": MAX_WITHIN_DAYS,
        "segments": [
            {"key": segment.key, "name": segment.name, "kind": segment.kind}
            for segment in segments_list().only("key", "name", "kind")
            if segment.key != editing
        ],
    }


def _customer_url_pattern() -> str | None:
    """The admin page of customer 0, for the editor to fill in the sample's ids."""
    try:
        return reverse("admin:customers_customer_change", args=[0])
    except NoReverseMatch:
        return None


def errors_json(errors: list[FieldError]) -> list[dict[str, str]]:
    return [{"attr": error.attr, "code": error.code, "detail": error.detail} for error in errors]


# --- The form ------------------------------------------------------------------------------------
class RuleEditorWidget(forms.Widget):
    """A hidden input holding the rules as JSON, the visual editor that writes it, and the live
    preview. Without JavaScript the input keeps the stored rules, so a save changes nothing."""

    template_name = WIDGET_TEMPLATE

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.config: dict[str, Any] = {}

    @property
    def media(self) -> forms.Media:
        extra = "" if settings.DEBUG else ".min"
        return forms.Media(
            js=[
                f"admin/js/vendor/jquery/jquery{extra}.js",
                "admin/js/jquery.init.js",
                "segmentation/jquery_global.js",
                "segmentation/vendor/jquery-querybuilder/query-builder.standalone.js",
                Script("segmentation/rule_editor.js", type="module"),
            ],
            css={
                "all": [
                    "segmentation/vendor/jquery-querybuilder/query-builder.default.css",
                    "segmentation/rule_editor.css",
                ]
            },
        )

    def format_value(self, value: Any) -> str:
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["editor_config"] = self.config
        return context

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        # The project's template engine: the form renderer only looks in apps and Django's forms.
        html = render_to_string(self.template_name, self.get_context(name, value, attrs))
        return mark_safe(html)  # noqa: S308 - a template's output, escaped by the engine


class SegmentAdminForm(forms.ModelForm):
    """Checks a save by running the service inside a savepoint that is always rolled back (so
    the admin refuses exactly what the API refuses); `SegmentAdmin.save_model` runs it for real.
    """

    rules = forms.JSONField(required=False, widget=RuleEditorWidget, label="Rules")

    class Meta:
        model = Segment
        fields = ["key", "name", "description", "kind", "rules"]

    def __init__(self, *args: Any, readonly: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rule_errors: list[FieldError] = []
        editing = self.instance.key if self.instance.pk else None
        self.fields["rules"].widget.config = {
            "catalog": rule_editor_catalog(editing=editing),
            "errors": [],
            "preview_url": reverse("admin:segmentation_segment_preview"),
            "segment_key": editing,
            "customer_url": _customer_url_pattern(),
            "readonly": readonly,
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            service_dry_run(self.save_through_service)
        except DomainError as exc:
            self.add_service_errors(exc)
        return cleaned

    def clean_rules(self) -> Any:
        rules = self.cleaned_data.get("rules")
        return {} if rules is None else rules

    def _kind(self) -> str:
        return self.cleaned_data.get("kind") or self.instance.kind or Segment.Kind.DYNAMIC

    def _rules(self) -> Any:
        # A static segment has no rules: whatever the hidden editor still holds is not sent.
        return None if self._kind() == Segment.Kind.STATIC else self.cleaned_data.get("rules")

    def save_through_service(self) -> Segment:
        data = self.cleaned_data
        if self.instance.pk is None:
            return segment_create(
                key=data["key"],
                name=data["name"],
                kind=self._kind(),
                rules=self._rules(),
                description=data.get("description", ""),
            )
        return segment_update(
            segment=self.instance,
            name=data["name"],
            kind=self._kind(),
            rules=self._rules(),
            description=data.get("description", ""),
        )

    def add_service_errors(self, exc: DomainError) -> None:
        """`rules.*` errors under the editor (which also marks the condition they name), `key`
        and the other inputs' on them, anything else above the form."""
        placed = False
        for error in exc.errors:
            field = error_root(error.attr)
            if field == "rules":
                self.rule_errors.append(error)
                self.add_error("rules", f"{error.attr}: {error.detail}")
                placed = True
            elif field in self.fields:
                self.add_error(field, exc.detail if exc.status == 409 else error.detail)
                placed = True
        if not placed:
            self.add_error(None, exc.detail)
        self.fields["rules"].widget.config["errors"] = errors_json(self.rule_errors)


class MembersImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="A header row with an `email` or `external_id` column; one customer per row.",
    )
    replace = forms.BooleanField(
        required=False,
        label="Replace the members",
        help_text="Unticked: the file's customers are added. Ticked: they become the members.",
    )


# --- The admin -----------------------------------------------------------------------------------
@admin.register(Segment)
class SegmentAdmin(ServiceDeleteMixin, admin.ModelAdmin):
    form = SegmentAdminForm
    list_display = ["name", "key", "kind", "member_count", "evaluated_at"]
    list_filter = ["kind"]
    search_fields = ["key", "name"]
    change_form_template = "admin/segmentation/segment/change_form.html"
    actions = ["recompute_now"]

    @admin.action(description="Recompute the selected segments now", permissions=["change"])
    def recompute_now(self, request: HttpRequest, queryset: Any) -> None:
        from cmsproject.celery import enqueue_on_commit
        from segmentation.tasks import segment_recompute_task

        dynamic = list(queryset.filter(kind=Segment.Kind.DYNAMIC).values_list("pk", flat=True))
        for segment_id in dynamic:
            enqueue_on_commit(segment_recompute_task, segment_id)
        self.message_user(
            request, f"Recomputing {len(dynamic)} dynamic segment(s); static ones are unchanged."
        )

    def get_fieldsets(self, request: HttpRequest, obj: Segment | None = None) -> list[Any]:
        editable = obj is None or self.has_change_permission(request, obj)
        rules = "rules" if editable else "rules_editor"
        state = ["member_count", "evaluated_at", "created_at", "updated_at"] if obj else []
        return [
            (None, {"fields": ["key", "name", "description", "kind"]}),
            ("Rules", {"fields": [rules], "classes": ["rule-editor-fieldset"]}),
            *([("State", {"fields": state})] if state else []),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Segment | None = None) -> list[str]:
        # Segments, content audiences and experiments refer to a segment by its key.
        state = ["member_count", "evaluated_at", "created_at", "updated_at"]
        return ["key", *state] if obj is not None else state

    @admin.display(description="Rules")
    def rules_editor(self, obj: Segment) -> str:
        """For those who may only look: the editor, read-only (its count still works)."""
        if obj.kind == Segment.Kind.STATIC:
            return "A static segment: its members are chosen, not ruled."
        form = SegmentAdminForm(instance=obj, readonly=True)
        return form["rules"].as_widget()

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        # Before the model's own patterns: `<path:object_id>/` would swallow these.
        return [
            path("preview/", wrap(self.preview_view), name="segmentation_segment_preview"),
            path(
                "<path:object_id>/members/import/",
                wrap(self.import_members_view),
                name="segmentation_segment_import",
            ),
            *super().get_urls(),
        ]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Segment | None = None,
    ) -> HttpResponse:
        context["can_import_members"] = (
            obj is not None
            and obj.kind == Segment.Kind.STATIC
            and self.has_change_permission(request, obj)
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(
        self, request: HttpRequest, obj: Segment, form: SegmentAdminForm, change: bool
    ) -> None:
        saved = form.save_through_service()
        obj.__dict__.update(saved.__dict__)  # the admin goes on with `obj` (log, redirect)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Nothing related: the service saved everything."""

    def service_delete(self, request: HttpRequest, obj: Segment) -> None:
        segment_delete(segment=obj)

    # The live count -------------------------------------------------------------------------------
    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """POST `{"rules", "segment"?}` (JSON, CSRF-checked) → `{"count", "sample"}`, or 400 with
        the errors by path. Reading customers: the segment view permission."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_permission(request):
            raise PermissionDenied
        if len(request.body) > MAX_PREVIEW_BODY:
            return _problem(ValidationError("The rule is too large to preview."))
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return _problem(ValidationError("The body is not JSON."))
        if not isinstance(body, dict):
            return _problem(ValidationError('Send {"rules": …}.'))
        segment = body.get("segment")
        try:
            result = segment_preview(
                rules=body.get("rules"), segment_key=segment if isinstance(segment, str) else None
            )
        except ValidationError as exc:
            return _problem(exc)
        return JsonResponse(result)

    # Static members from a file -------------------------------------------------------------------
    def import_members_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        segment = self.get_object(request, unquote(object_id))
        if segment is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, segment):
            raise PermissionDenied
        change_url = reverse("admin:segmentation_segment_change", args=[segment.pk])
        if segment.kind != Segment.Kind.STATIC:
            messages.error(request, f"“{segment}” is dynamic: its rules choose its members.")
            return HttpResponseRedirect(change_url)
        form = MembersImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                result = static_members_from_csv(
                    segment=segment,
                    data=form.cleaned_data["file"].read(),
                    replace=form.cleaned_data["replace"],
                )
            except DomainError as exc:
                form.add_error("file", exc.detail)
            else:
                message = _import_message(result)
                self.log_change(request, segment, message)
                messages.success(request, message)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Import members of {segment}",
            "segment": segment,
            "form": form,
            "change_url": change_url,
        }
        return TemplateResponse(request, IMPORT_TEMPLATE, context)


def _problem(exc: ValidationError) -> JsonResponse:
    return JsonResponse({"detail": exc.detail, "errors": errors_json(exc.errors)}, status=400)


def _import_message(result: dict[str, Any]) -> str:
    message = (
        f"{result['matched']} customer(s) in the file matched; "
        f"{result['changed']} membership(s) changed."
    )
    if result["unknown"]:
        shown = ", ".join(result["unknown"][:10])
        more = "…" if len(result["unknown"]) > 10 else ""
        message += f" Not found: {shown}{more}."
    return message
