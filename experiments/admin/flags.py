"""The feature flag admin: the kill switch in the list, saves through the service."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import (
    HttpRequest,
)

from content.admin.entries import ServiceDeleteMixin
from experiments.admin.forms import FeatureFlagAdminForm, percent, variants_text
from experiments.models import FeatureFlag
from experiments.services import (
    flag_delete,
    flag_update,
)


@admin.register(FeatureFlag)
class FeatureFlagAdmin(ServiceDeleteMixin, admin.ModelAdmin):
    form = FeatureFlagAdminForm
    list_display = ["key", "name", "kind", "enabled", "rollout_share", "segment_key", "updated_at"]
    list_display_links = ["key", "name"]
    list_editable = ["enabled"]  # saved through `flag_update` (see save_model)
    list_filter = ["enabled", "kind"]
    search_fields = ["key", "name"]
    list_select_related = ["segment"]
    actions = ["turn_on", "kill"]

    class Media:
        css = {"all": ["experiments/admin.css"]}

    def get_fieldsets(self, request: HttpRequest, obj: FeatureFlag | None = None) -> list[Any]:
        editable = obj is None or self.has_change_permission(request, obj)
        variants = "variants" if editable else "variants_summary"
        return [
            (None, {"fields": ["key", "name", "description", "kind"]}),
            ("Who gets it", {"fields": ["enabled", "rollout", "segment_key", variants]}),
        ]

    def get_readonly_fields(
        self, request: HttpRequest, obj: FeatureFlag | None = None
    ) -> list[str]:
        # Clients ask for a flag by its key: renaming would switch it off for them.
        return ["key", "variants_summary"] if obj is not None else []

    @admin.display(description="rollout", ordering="rollout")
    def rollout_share(self, obj: FeatureFlag) -> str:
        return percent(obj.rollout)

    @admin.display(description="segment", ordering="segment__key")
    def segment_key(self, obj: FeatureFlag) -> str:
        return obj.segment.key if obj.segment_id else "Everyone"

    @admin.display(description="variants")
    def variants_summary(self, obj: FeatureFlag) -> str:
        return variants_text(obj.variants) if obj.variants else "—"

    def _switch(self, request: HttpRequest, queryset: QuerySet, *, enabled: bool) -> int:
        switched = 0
        for flag in queryset.filter(enabled=not enabled):
            flag_update(flag=flag, enabled=enabled)
            self.log_change(request, flag, "Turned on." if enabled else "Killed.")
            switched += 1
        return switched

    @admin.action(description="Turn on the selected flags", permissions=["change"])
    def turn_on(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = self._switch(request, queryset, enabled=True)
        self.message_user(request, f"Turned on {count} flag(s).")

    @admin.action(description="Kill the selected flags (off for everyone)", permissions=["change"])
    def kill(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = self._switch(request, queryset, enabled=False)
        self.message_user(request, f"Killed {count} flag(s): off for everyone now.")

    def save_model(self, request: HttpRequest, obj: FeatureFlag, form: Any, change: bool) -> None:
        if isinstance(form, FeatureFlagAdminForm):
            saved = form.save_through_service()
            obj.__dict__.update(saved.__dict__)  # the admin goes on with `obj` (log, redirect)
        else:  # the list's kill switch (`list_editable`): the rules cache must forget it too
            flag_update(flag=obj, enabled=form.cleaned_data["enabled"])

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Nothing related: the service saved everything."""

    def service_delete(self, request: HttpRequest, obj: FeatureFlag) -> None:
        flag_delete(flag=obj)
