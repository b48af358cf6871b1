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
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime

from cmsproject.errors import DomainError
from customers.models import (
    AnonymousId,
    AttributeDefinition,
    Consent,
    Customer,
    Notification,
    Order,
    OrderLine,
    Ticket,
    TicketStatusChange,
)
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
        "tickets_recent",
        "orders_recent",
        "notifications_recent",
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
        ("Support and orders", {"fields": ["tickets_recent", "orders_recent"]}),
        ("Notifications", {"fields": ["notifications_recent"]}),
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

    @admin.display(description="tickets")
    def tickets_recent(self, customer: Customer) -> str:
        from customers.tickets import customer_tickets_recent

        if customer.pk is None:
            return "-"
        tickets = customer_tickets_recent(customer_id=customer.pk, limit=RECENT_ROWS)
        if not tickets:
            return "No tickets."
        return _table(
            ["ticket", "status", "subject", "updated"],
            (
                (
                    _change_link(ticket, f"#{ticket.pk}"),
                    ticket.get_status_display(),
                    ticket.subject,
                    _when(ticket.updated_at),
                )
                for ticket in tickets
            ),
        )

    @admin.display(description="orders")
    def orders_recent(self, customer: Customer) -> str:
        from customers.orders import customer_orders_recent

        if customer.pk is None:
            return "-"
        orders = customer_orders_recent(customer_id=customer.pk, limit=RECENT_ROWS)
        if not orders:
            return "No orders."
        return _table(
            ["order", "placed", "status", "total"],
            (
                (
                    _change_link(order, order.external_id or f"#{order.pk}"),
                    _when(order.placed_at),
                    order.get_status_display(),
                    f"{order.total} {order.currency}",
                )
                for order in orders
            ),
        )

    @admin.display(description="recent notifications")
    def notifications_recent(self, customer: Customer) -> str:
        """What the customer was sent, or why not (`skipped` with the reason)."""
        if customer.pk is None:
            return "-"
        notifications = list(customer.notifications.all()[:RECENT_ROWS])
        if not notifications:
            return "No notifications."
        return _table(
            ["when", "what", "channel", "status", "read"],
            (
                (
                    _when(n.created_at),
                    n.title or n.kind,
                    n.channel,
                    f"{n.status} ({n.reason})" if n.reason else n.status,
                    _when(n.read_at) if n.read_at else "",
                )
                for n in notifications
            ),
        )


RECENT_ROWS = 20


def _when(moment: Any) -> str:
    return date_format(localtime(moment), "DATETIME_FORMAT")


def _change_link(obj: Any, text: str) -> str:
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text)


def _table(headers: list[str], rows: Any) -> str:
    """An escaped HTML table (cells from `_change_link` are already safe)."""
    head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


# --- Engagement: orders (read only), tickets (moved through the service), notifications -------
class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    fields = ["sku", "name", "quantity", "unit_price", "line_total"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    """Orders come in through the API (`POST /api/v1/orders/`) and are financial records:
    shown, never added, edited or deleted here."""

    list_display = ["__str__", "customer", "status", "total", "currency", "placed_at"]
    list_filter = ["status", ("placed_at", admin.DateFieldListFilter)]
    search_fields = ["=external_id", "=customer__external_id"]
    list_select_related = ["customer"]
    show_full_result_count = False
    fields = [
        "external_id",
        "customer",
        "status",
        "currency",
        "subtotal",
        "tax",
        "shipping",
        "discount",
        "total",
        "placed_at",
        "created_at",
    ]
    readonly_fields = fields
    inlines = [OrderLineInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TicketStatusChangeInline(admin.TabularInline):
    """The ticket's timeline; written by the service on every move, never by hand."""

    model = TicketStatusChange
    extra = 0
    fields = ["changed_at", "from_status", "to_status", "note", "changed_by"]
    readonly_fields = fields
    can_delete = False
    ordering = ["changed_at", "id"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TicketAdminForm(forms.ModelForm):
    move_to = forms.ChoiceField(
        required=False, label="Move to", help_text="The statuses this ticket may move to now."
    )
    note = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Kept with the move; a move to awaiting customer sends it to the customer.",
    )

    class Meta:
        model = Ticket
        fields = ["customer", "subject", "description", "priority", "order"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from customers.tickets import ticket_moves_from

        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            del self.fields["move_to"]
            del self.fields["note"]
        else:
            moves = ticket_moves_from(self.instance.status)
            labels = dict(Ticket.Status.choices)
            self.fields["move_to"].choices = [("", "(stay)")] + [(m, labels[m]) for m in moves]

    def clean(self) -> dict[str, Any]:
        from customers.tickets import ticket_create_check

        cleaned = super().clean()
        if self.errors:
            return cleaned
        if self.instance.pk is None:
            order = cleaned.get("order")
            try:
                ticket_create_check(
                    customer=cleaned["customer"],
                    subject=cleaned.get("subject", ""),
                    description=cleaned.get("description", ""),
                    priority=cleaned.get("priority"),
                    order_id=order.pk if order else None,
                )
            except DomainError as exc:
                _add_domain_errors(self, exc)
        elif cleaned.get("note") and not cleaned.get("move_to"):
            self.add_error("note", "A note goes with a move.")
        return cleaned


# The customer's own words and the ticket's owner stay as written; the status moves (move_to).
TICKET_CHANGE_READONLY = ("customer", "subject", "description", "order", "status")


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    form = TicketAdminForm
    list_display = ["__str__", "customer", "status", "priority", "updated_at"]
    list_filter = ["status", "priority"]
    search_fields = ["subject", "=customer__external_id", "customer__email"]
    list_select_related = ["customer"]
    show_full_result_count = False
    raw_id_fields = ["customer", "order"]
    inlines = [TicketStatusChangeInline]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return ["customer", "subject", "description", "priority", "order"]
        return [*TICKET_CHANGE_READONLY, "priority", "move_to", "note"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else list(TICKET_CHANGE_READONLY)

    def save_model(self, request: HttpRequest, obj: Ticket, form: Any, change: bool) -> None:
        """Through the services, as the API does: history, webhooks, the customer's message."""
        from customers.tickets import ticket_create, ticket_update

        if change:
            ticket = ticket_update(
                ticket=obj,
                changed_by=request.user,
                status=form.cleaned_data.get("move_to") or None,
                note=form.cleaned_data.get("note", ""),
                priority=obj.priority,
            )
        else:
            ticket = ticket_create(
                customer=obj.customer,
                subject=obj.subject,
                description=obj.description,
                priority=obj.priority,
                order_id=obj.order_id,
                created_by=request.user,
            )
        obj.pk = ticket.pk
        obj.refresh_from_db()


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Every message and its outcome, for "did they get it, and if not why?". Read only."""

    list_display = ["kind", "customer", "channel", "status", "reason", "created_at", "sent_at"]
    list_filter = ["status", "channel", "kind"]
    search_fields = ["=key", "=customer__external_id"]
    list_select_related = ["customer"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
