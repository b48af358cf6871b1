"""Admin of customer profiles and attribute definitions.

The change list must stay fast at 100k+ customers: no full COUNT(*) per page, filters on
indexed columns, no join per row. Forms validate through the services' checks, so the admin
accepts exactly what the APIs accept.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime

from cmsproject.errors import DomainError
from customers.models import AnonymousId, AttributeDefinition, Consent, Customer
from customers.services import (
    ATTRIBUTE_DEFINITION_FIELDS,
    CUSTOMER_WRITABLE_FIELDS,
    attribute_definition_check,
    customer_check,
)


def _add_domain_errors(form: forms.ModelForm, exc: DomainError) -> None:
    """Show each error of a service check on its form field (`attributes.plan` on
    `attributes`), or above the form when no field matches."""
    if not exc.errors:
        form.add_error(None, exc.detail)
        return
    for error in exc.errors:
        field = error.attr.split(".", 1)[0].split("[", 1)[0]
        if field in form.fields:
            form.add_error(field, f"{error.attr}: {error.detail}")
        else:
            form.add_error(None, f"{error.attr}: {error.detail}")


class CustomerAdminForm(forms.ModelForm):
    class Meta:
        model = Customer
        fields = list(CUSTOMER_WRITABLE_FIELDS)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        # The instance already carries the form's values (ModelForm._post_clean runs later, so
        # copy them now) for the service to check as the APIs would.
        checked = [field for field in self.changed_data if field in cleaned]
        for field in checked:
            setattr(self.instance, field, cleaned[field])
        try:
            customer_check(customer=self.instance, fields=checked)
        except DomainError as exc:
            _add_domain_errors(self, exc)
        return cleaned


class ConsentInline(admin.TabularInline):
    model = Consent
    extra = 0
    fields = ["purpose", "granted", "given_at"]
    readonly_fields = ["given_at"]


class AnonymousIdInline(admin.TabularInline):
    """Linked by `identify`; shown for support, never edited by hand."""

    model = AnonymousId
    extra = 0
    fields = ["value", "linked_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SegmentListFilter(admin.SimpleListFilter):
    """Customers in a segment now. A subquery on the memberships' (segment, exited_at, customer)
    index: as fast at 100k customers as the column filters."""

    title = "segment"
    parameter_name = "segment"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        from segmentation.selectors import segments_list

        return [(str(segment.pk), segment.name) for segment in segments_list()]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        from segmentation.selectors import segment_current_customer_ids

        if not (self.value() or "").isdigit():
            return queryset
        return queryset.filter(pk__in=segment_current_customer_ids(segment_id=int(self.value())))


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    form = CustomerAdminForm
    list_display = [
        "email",
        "name",
        "external_id",
        "loyalty_tier",
        "lifecycle_stage",
        "last_seen",
        "total_spend",
    ]
    list_filter = [
        SegmentListFilter,
        "loyalty_tier",
        "lifecycle_stage",
        ("last_seen", admin.DateFieldListFilter),
    ]
    # external_id is matched exactly (its unique index answers); email and name by substring.
    search_fields = ["=external_id", "email", "name"]
    # No column follows a relation; an empty list says so, and keeps Django from joining.
    list_select_related: list[str] = []
    # A COUNT(*) of the whole table per page load is the slow part at 100k rows.
    show_full_result_count = False
    list_per_page = 50
    ordering = ["-id"]
    inlines = [ConsentInline, AnonymousIdInline]
    readonly_fields = [
        "user",
        "last_seen",
        "total_spend",
        "created_at",
        "updated_at",
        "erased_at",
        "segment_memberships",
        "interaction_timeline",
    ]
    fieldsets = [
        (None, {"fields": ["email", "name", "external_id", "user"]}),
        ("Marketing", {"fields": ["loyalty_tier", "lifecycle_stage", "attributes"]}),
        ("Segments", {"fields": ["segment_memberships"]}),
        ("Preferences", {"fields": ["preferences"]}),
        (
            "Activity",
            {"fields": ["last_seen", "total_spend", "created_at", "updated_at", "erased_at"]},
        ),
        ("Interactions", {"fields": ["interaction_timeline"]}),
    ]

    @admin.display(description="segments")
    def segment_memberships(self, customer: Customer) -> str:
        """Every stay in a segment, newest first: in it now, or when it left."""
        from segmentation.selectors import customer_memberships

        if customer.pk is None:
            return "-"
        stays = customer_memberships(customer_id=customer.pk)
        if not stays:
            return "In no segment."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    stay.segment.name,
                    date_format(localtime(stay.entered_at), "DATETIME_FORMAT"),
                    date_format(localtime(stay.exited_at), "DATETIME_FORMAT")
                    if stay.exited_at
                    else "in it now",
                )
                for stay in stays
            ),
        )
        return format_html(
            "<table><thead><tr><th>segment</th><th>entered</th><th>exited</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="latest interactions")
    def interaction_timeline(self, customer: Customer) -> str:
        """The latest events, newest first: what the customer did, when, with what."""
        from analytics.selectors import customer_events_recent

        if customer.pk is None:
            return "-"
        events = customer_events_recent(customer_id=customer.pk)
        if not events:
            return "No interactions recorded yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            (
                (
                    date_format(localtime(e["timestamp"]), "DATETIME_FORMAT"),
                    e["type"],
                    json.dumps(e["properties"])[:200],
                )
                for e in events
            ),
        )
        return format_html(
            "<table><thead><tr><th>when</th><th>event</th><th>properties</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )


class AttributeDefinitionAdminForm(forms.ModelForm):
    class Meta:
        model = AttributeDefinition
        fields = list(ATTRIBUTE_DEFINITION_FIELDS)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        # The key is read-only on change, so it is not in `cleaned`: start from the saved row.
        values = {field: getattr(self.instance, field) for field in ATTRIBUTE_DEFINITION_FIELDS}
        definition = AttributeDefinition(pk=self.instance.pk, **{**values, **cleaned})
        try:
            attribute_definition_check(definition=definition)
        except DomainError as exc:
            _add_domain_errors(self, exc)
        return cleaned


@admin.register(AttributeDefinition)
class AttributeDefinitionAdmin(admin.ModelAdmin):
    form = AttributeDefinitionAdminForm
    list_display = ["key", "label", "type", "required"]
    list_filter = ["type", "required"]
    search_fields = ["key", "label"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Customers store values under the key: renaming it would orphan them.
        return ["key"] if obj is not None else []
