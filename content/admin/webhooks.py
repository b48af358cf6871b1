"""Admin of outgoing webhooks: endpoints (events as checkboxes, the secret masked once saved, a
test ping) and the delivery log (read-only, every attempt inline, "retry now").

Forms check through `content.webhooks`, and saves go through its services, so the admin accepts
exactly what the API accepts.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from cmsproject.errors import DomainError
from content.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from content.webhooks import (
    webhook_delivery_retry_now,
    webhook_endpoint_clean,
    webhook_endpoint_create,
    webhook_endpoint_ping,
    webhook_endpoint_update,
    webhook_events,
    webhook_secret_mask,
)

FORM_FIELDS = ("name", "url", "events", "is_active")
NEW_ENDPOINT_SESSION_KEY = "content.new_webhook_endpoint"


class WebhookEndpointAdminForm(forms.ModelForm):
    # A plain text field: Django's URLValidator refuses single-label hosts (`http://hooks:8080/`)
    # that the API accepts; the service decides.
    url = forms.CharField(max_length=500, strip=False, help_text="http:// or https:// URL.")
    events = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    new_secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        label="New secret",
        help_text="At least 16 characters. Leave blank to keep the current one; on creation, "
        "leave blank to have one generated and shown once.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = list(FORM_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [
            (name, f"{name}: {description}") for name, description in webhook_events().items()
        ]
        # An event no app registers any more stays visible, so it can be unticked.
        stale = [event for event in self.instance.events or [] if event not in webhook_events()]
        choices += [(event, f"{event} (no longer known)") for event in stale]
        self.fields["events"].choices = choices

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        data = {field: cleaned.get(field) for field in FORM_FIELDS}
        data["secret"] = cleaned.get("new_secret") or None
        try:
            webhook_endpoint_clean(data=data)
        except DomainError as exc:
            for error in exc.errors:
                field = error.attr.split("[", 1)[0]
                field = "new_secret" if field == "secret" else field
                self.add_error(field if field in self.fields else None, error.detail)
        return cleaned


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointAdminForm
    list_display = ["__str__", "url", "event_list", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "url"]
    readonly_fields = ["masked_secret", "created_by", "created_at", "deliveries"]
    actions = ["send_test_ping"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        main = ["name", "url", "events", "is_active"]
        if obj is None:
            return [(None, {"fields": [*main, "new_secret"]})]
        return [
            (None, {"fields": main}),
            ("Signing", {"fields": ["masked_secret", "new_secret"]}),
            ("History", {"fields": ["created_by", "created_at", "deliveries"]}),
        ]

    @admin.display(description="events")
    def event_list(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.events)

    @admin.display(description="secret")
    def masked_secret(self, endpoint: WebhookEndpoint) -> str:
        return webhook_secret_mask(endpoint.secret) if endpoint.secret else "-"

    @admin.display(description="deliveries")
    def deliveries(self, endpoint: WebhookEndpoint) -> str:
        if endpoint.pk is None:
            return "-"
        url = reverse("admin:content_webhookdelivery_changelist")
        return format_html('<a href="{}?endpoint__id__exact={}">Delivery log</a>', url, endpoint.pk)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        data = {field: form.cleaned_data[field] for field in FORM_FIELDS}
        new_secret = form.cleaned_data.get("new_secret") or None
        if change:
            if new_secret:
                data["secret"] = new_secret
            webhook_endpoint_update(endpoint=obj, data=data)
            return
        created, secret = webhook_endpoint_create(
            created_by=request.user, secret=new_secret, **data
        )
        obj.__dict__.update(created.__dict__)  # the admin goes on with `obj` (log, redirect)
        if new_secret is None:
            # Held in the (server-side) session for the one page that shows it: a message would
            # travel in the messages cookie across the redirect.
            request.session[NEW_ENDPOINT_SESSION_KEY] = {"pk": created.pk, "secret": secret}

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: Any = None) -> Any:
        shown_once = request.session.get(NEW_ENDPOINT_SESSION_KEY) or {}
        if shown_once.get("pk") == obj.pk and IS_POPUP_VAR not in request.POST:
            super().response_add(request, obj, post_url_continue)  # its "added" message
            return HttpResponseRedirect(
                reverse("admin:content_webhookendpoint_change", args=[obj.pk])
            )
        return super().response_add(request, obj, post_url_continue)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> Any:
        shown_once = request.session.get(NEW_ENDPOINT_SESSION_KEY) or {}
        if request.method == "GET" and str(shown_once.get("pk")) == object_id:
            del request.session[NEW_ENDPOINT_SESSION_KEY]
            messages.warning(
                request,
                f"The signing secret is {shown_once['secret']} . Copy it now: it is not shown "
                "again.",
            )
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Send a test ping", permissions=["change"])
    def send_test_ping(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhook_endpoint_ping(endpoint=endpoint)
        self.message_user(
            request,
            f"Ping sent to {queryset.count()} endpoint(s); see the delivery log for the answers.",
        )


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    fields = ["number", "status_code", "error", "duration_ms", "attempted_at"]
    readonly_fields = fields
    can_delete = False
    ordering = ["number"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The log: what was sent where, and how every attempt went. Nothing here is editable."""

    list_display = ["event", "endpoint", "status", "attempts", "next_attempt_at", "created_at"]
    list_filter = ["status", "event", "endpoint"]
    list_select_related = ["endpoint"]
    search_fields = ["=idempotency_key"]
    show_full_result_count = False
    ordering = ["-id"]
    fields = [
        "endpoint",
        "event",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
        "idempotency_key",
        "payload_pretty",
    ]
    readonly_fields = fields
    inlines = [WebhookAttemptInline]
    actions = ["retry_now"]

    @admin.display(description="payload")
    def payload_pretty(self, delivery: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(delivery.payload, indent=2, sort_keys=True))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.action(description="Retry now", permissions=["retry"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        retried, skipped = 0, 0
        for delivery in queryset:
            try:
                webhook_delivery_retry_now(delivery=delivery)
                retried += 1
            except DomainError:
                skipped += 1
        self.message_user(request, f"{retried} delivery(ies) sent again.")
        if skipped:
            self.message_user(
                request, f"{skipped} had already succeeded and were left alone.", messages.WARNING
            )
