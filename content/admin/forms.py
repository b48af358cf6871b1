"""Forms of the content admin.

Definitions (components and content types) are edited as JSON that `definition_editor.js` turns
into rows (name, type, required, choices, ...); the form checks them by running the service
itself inside a savepoint that is always rolled back, so the admin refuses exactly what the API
refuses (a breaking change shows the same 409 message). `ModelAdmin.save_model` then runs the
service for real.

An entry's flat attributes (slug, locale, personalization) are a plain Django form; its fields
and zones come from the zone editor as one hidden JSON document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.conf import settings
from django.db import transaction

from cmsproject.errors import DomainError, FieldError
from content.models import Component, EntryType
from content.services import (
    component_create,
    component_update,
    entry_type_create,
    entry_type_update,
)
from customers.models import LifecycleStage

DOCUMENT_ROOTS = ("fields", "zones")  # error paths the zone editor shows on its own inputs


class _DryRun(Exception):
    """Raised to roll a service call back once it has checked everything."""


def service_dry_run(call: Callable[[], Any]) -> None:
    """Run a service write and undo it: its DomainError (if any) is the answer. Announcements
    registered with `on_commit` inside the savepoint are discarded with it."""
    try:
        with transaction.atomic():
            call()
            raise _DryRun
    except _DryRun:
        pass


def error_root(attr: str) -> str:
    """`zones.body[1].data.heading` → `zones`; `audience[0]` → `audience`."""
    return re.split(r"[.\[]", attr, maxsplit=1)[0]


# --- Definitions ---------------------------------------------------------------------------------
class PrettyJSONField(forms.JSONField):
    """JSON shown indented, so the plain textarea (no JavaScript) is still readable. Blank is an
    empty list: a type may have no fields."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["required"] = False
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)

    def clean(self, value: Any) -> Any:
        cleaned = super().clean(value)
        return [] if cleaned is None else cleaned


class DefinitionEditorWidget(forms.Textarea):
    """The JSON of field definitions or zones; `definition_editor.js` edits it as rows."""

    def __init__(self, kind: str) -> None:
        super().__init__(
            attrs={
                "rows": 14,
                "cols": 100,
                "class": "vLargeTextField definition-json",
                "spellcheck": "false",
                "data-definition-editor": kind,
            }
        )


def _choices_json(rows: Iterable[tuple[str, str]]) -> str:
    return json.dumps([{"api_id": api_id, "name": name} for api_id, name in rows])


class DefinitionForm(forms.ModelForm):
    """Shared by components and types: the editor's choices, and service errors on the inputs."""

    definition_fields: tuple[str, ...] = ("fields",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        components = _choices_json(Component.objects.values_list("api_id", "name"))
        types = _choices_json(EntryType.objects.values_list("api_id", "name"))
        for name in self.definition_fields:
            if name in self.fields:
                self.fields[name].widget.attrs.update(
                    {"data-components": components, "data-types": types}
                )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            service_dry_run(self.save_through_service)
        except DomainError as exc:
            self.add_service_errors(exc)
        return cleaned

    def save_through_service(self) -> Any:
        raise NotImplementedError

    def add_service_errors(self, exc: DomainError) -> None:
        """Errors on `fields[2].name` go under the fields editor (which also marks row 3);
        anything else, and a conflict's explanation, above the form."""
        if not exc.errors or exc.status == 409:
            self.add_error(None, exc.detail)
        by_field: dict[str, list[FieldError]] = {}
        for error in exc.errors:
            root = error_root(error.attr)
            if exc.status != 409 and root in self.definition_fields and root in self.fields:
                by_field.setdefault(root, []).append(error)
                self.add_error(root, f"{error.attr}: {error.detail}")
            else:
                self.add_error(None, f"{error.attr}: {error.detail}")
        for name, errors in by_field.items():
            self.fields[name].widget.attrs["data-errors"] = json.dumps(
                [{"attr": e.attr, "detail": e.detail} for e in errors]
            )

    def validate_unique(self) -> None:
        """The service refuses a taken api_id (as a conflict); one message is enough."""


class ComponentAdminForm(DefinitionForm):
    class Meta:
        model = Component
        fields = ["api_id", "name", "description", "fields"]
        field_classes = {"fields": PrettyJSONField}
        widgets = {"fields": DefinitionEditorWidget("fields")}

    def save_through_service(self) -> Component:
        data = self.cleaned_data
        if self.instance.pk is None:
            return component_create(
                api_id=data["api_id"],
                name=data["name"],
                fields=data["fields"],
                description=data.get("description", ""),
            )
        return component_update(
            component=self.instance,
            name=data["name"],
            fields=data["fields"],
            description=data.get("description", ""),
        )


class EntryTypeAdminForm(DefinitionForm):
    definition_fields = ("fields", "zones")

    class Meta:
        model = EntryType
        fields = ["api_id", "name", "kind", "description", "fields", "zones"]
        field_classes = {"fields": PrettyJSONField, "zones": PrettyJSONField}
        widgets = {
            "fields": DefinitionEditorWidget("fields"),
            "zones": DefinitionEditorWidget("zones"),
        }

    def save_through_service(self) -> EntryType:
        data = self.cleaned_data
        if self.instance.pk is None:
            return entry_type_create(
                api_id=data["api_id"],
                name=data["name"],
                kind=data["kind"],
                fields=data["fields"],
                zones=data["zones"],
                description=data.get("description", ""),
            )
        return entry_type_update(
            entry_type=self.instance,
            name=data["name"],
            kind=data["kind"],
            fields=data["fields"],
            zones=data["zones"],
            description=data.get("description", ""),
        )


# --- Entries -------------------------------------------------------------------------------------
def segment_keys_parsed(raw: str) -> list[str]:
    """`vip, newsletter  vip` → ["vip", "newsletter"]: marketers type keys, not JSON."""
    return list(dict.fromkeys(key for key in re.split(r"[\s,]+", raw.strip()) if key))


class EntryMetaForm(forms.Form):
    """Everything of an entry but its fields and zones. Only shapes the input: the service
    validates (its errors come back onto these fields by path)."""

    slug = forms.CharField(
        max_length=200,
        required=False,
        help_text="Lower-case letters, digits, '-' and '_': the entry's address in the API.",
    )
    locale = forms.ChoiceField()
    audience = forms.CharField(
        required=False,
        label="Audience",
        help_text="Segment keys, separated by commas. Lists can be filtered by them.",
        widget=forms.TextInput(attrs={"list": "entry-editor-segments", "autocomplete": "off"}),
    )
    lifecycle_stage = forms.ChoiceField(required=False, label="Lifecycle stage")
    language = forms.CharField(
        max_length=16, required=False, help_text="A language tag such as en or pt-BR."
    )
    publish_at = forms.DateTimeField(
        required=False,
        label="Publish at",
        help_text="Optional: a later time schedules the publication.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def __init__(self, *args: Any, entry_type: EntryType, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entry_type = entry_type
        self.fields["locale"].choices = [(code, code) for code in settings.CMS_LOCALES]
        self.fields["locale"].initial = settings.CMS_DEFAULT_LOCALE
        self.fields["lifecycle_stage"].choices = [("", "Any"), *LifecycleStage.choices]
        if entry_type.kind == EntryType.Kind.SINGLE:
            del self.fields["slug"]  # a single type's entry is addressed by the type

    def body(self, document: dict[str, Any]) -> dict[str, Any]:
        """The entry body, as the REST API takes it."""
        data = self.cleaned_data
        body: dict[str, Any] = {
            "locale": data["locale"],
            "fields": document.get("fields", {}),
            "zones": document.get("zones", {}),
            "audience": segment_keys_parsed(data.get("audience") or ""),
            "lifecycle_stage": data.get("lifecycle_stage") or "",
            "language": (data.get("language") or "").strip(),
        }
        if "slug" in self.fields:
            body["slug"] = (data.get("slug") or "").strip()
        return body

    def add_service_errors(self, exc: DomainError) -> list[FieldError]:
        """Put each error on its input here; return those the zone editor shows (fields, zones).
        The page lists every error above the form as well, so none is lost."""
        for_editor: list[FieldError] = []
        for error in exc.errors:
            root = error_root(error.attr)
            if root in DOCUMENT_ROOTS:
                for_editor.append(error)
            elif root in self.fields:
                self.add_error(root, error.detail)
        return for_editor


def document_parsed(raw: str | None) -> dict[str, Any] | None:
    """The zone editor's hidden JSON, or None when it is missing or not an object."""
    try:
        document = json.loads(raw or "")
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    return {key: document[key] for key in DOCUMENT_ROOTS if key in document}
