from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from cmsproject.models import ApiKey, AuditEntry
from cmsproject.services import api_key_create, api_key_revoke


class ApiKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ApiKey
        fields = ["name", "scopes"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "prefix",
        "scope_list",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix"]
    actions = ["revoke"]
    readonly_fields = ["prefix", "scopes", "created_by", "created_at", "last_used_at", "revoked_at"]

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["name", "scopes"] if obj is None else ["name", *self.readonly_fields]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        key, full_key = api_key_create(
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            created_by=request.user,
        )
        obj.pk = key.pk
        obj.prefix = key.prefix
        messages.warning(request, f"Copy the key now; it is never shown again: {full_key}")

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        prefixes = list(queryset.filter(revoked_at__isnull=True).values_list("prefix", flat=True))
        for prefix in prefixes:
            api_key_revoke(prefix=prefix)
        self.message_user(request, f"Revoked {len(prefixes)} key(s).")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the row keeps the history of who used what


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records written only by the system (audit log, counters): look, never touch."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "ip",
    ]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "object_id", "object_repr"]
    date_hierarchy = "created_at"
    list_select_related = ["actor"]
