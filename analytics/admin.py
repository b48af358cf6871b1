"""Analytics in the admin: event types, dropped-event counts, and the journey report.

The journey report is the roll-ups' changelist: roll-up rows are machine-written and not worth
browsing one by one, while the charts drawn from them are what marketers come for. It reads the
same selectors as the REST reports (`analytics.reports`, `analytics.nps`).

One date range drives every chart on it: journey stages, an event over time, and NPS over time
and per lifecycle stage of the respondents. Each NPS period links to the same report for that
period alone (by day), so a dip in NPS can be read against that period's journey.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from analytics.models import DroppedEvents, EventRollup, EventType, Interval, JourneyStage
from analytics.nps import NpsReport, bucket_after, nps_report
from analytics.reports import journeys, timeseries
from analytics.selectors import event_type_catalog_forget
from analytics.services import event_type_save
from cmsproject.admin import ReadOnlyAdmin
from cmsproject.errors import ValidationError
from customers.models import LifecycleStage

DEFAULT_REPORT_DAYS = 30
ONE_DAY = timedelta(days=1)
DEFAULT_NPS_INTERVAL = "week"  # daily NPS of a month is mostly noise
NPS_INTERVALS = [("day", "per day"), ("week", "per week"), ("month", "per month")]


class EventTypeForm(forms.ModelForm):
    class Meta:
        model = EventType
        fields = ["name", "description", "journey_stage", "schema", "distinct_properties"]

    def clean_schema(self) -> Any:
        # The service checks again on save; here the marketer gets the message beside the field.
        schema = self.cleaned_data.get("schema")
        if schema is not None:
            if not isinstance(schema, dict):
                raise forms.ValidationError("A JSON Schema object.")
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                raise forms.ValidationError(f"Not a valid JSON Schema: {exc.message}") from exc
        return schema


@admin.register(EventType)
class EventTypeAdmin(admin.ModelAdmin):
    form = EventTypeForm
    list_display = ["name", "journey_stage", "has_schema", "created_at"]
    list_filter = ["journey_stage"]
    search_fields = ["name", "description"]

    @admin.display(boolean=True, description="schema")
    def has_schema(self, obj: EventType) -> bool:
        return bool(obj.schema)

    def save_model(self, request: HttpRequest, obj: EventType, form: Any, change: bool) -> None:
        # Through the service: ingestion's cached catalog must hear of the change.
        event_type_save(
            event_type=obj, **{name: form.cleaned_data[name] for name in EventTypeForm.Meta.fields}
        )

    def delete_model(self, request: HttpRequest, obj: EventType) -> None:
        super().delete_model(request, obj)
        event_type_catalog_forget()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        super().delete_queryset(request, queryset)
        event_type_catalog_forget()


@admin.register(DroppedEvents)
class DroppedEventsAdmin(ReadOnlyAdmin):
    list_display = ["day", "reason", "count"]
    list_filter = ["reason"]
    date_hierarchy = "day"
    ordering = ["-day", "reason"]


class JourneyReportForm(forms.Form):
    date_from = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To (included)", widget=forms.DateInput(attrs={"type": "date"}))
    event = forms.ChoiceField(label="Events over time", required=False)
    interval = forms.ChoiceField(
        choices=[(Interval.DAY, "per day"), (Interval.HOUR, "per hour")], initial=Interval.DAY
    )
    # Not required: links to the report made before NPS was on it must still work.
    nps_interval = forms.ChoiceField(
        label="NPS over time", choices=NPS_INTERVALS, initial=DEFAULT_NPS_INTERVAL, required=False
    )

    def __init__(self, *args: Any, event_names: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["event"].choices = [(name, name) for name in event_names]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        first, last = cleaned.get("date_from"), cleaned.get("date_to")
        if first and last and first > last:
            self.add_error("date_to", "Must not be before the start.")
        return cleaned


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@admin.register(EventRollup)
class JourneyReportAdmin(ReadOnlyAdmin):
    """The journey report: drop-off per stage (bars) and one event type over time (line)."""

    report_template = "admin/analytics/journey_report.html"

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        event_names = self._event_names()
        today = timezone.now().astimezone(UTC).date()
        initial = {
            "date_from": today - timedelta(days=DEFAULT_REPORT_DAYS - 1),
            "date_to": today,
            "event": event_names[0] if event_names else "",
            "interval": Interval.DAY,
            "nps_interval": DEFAULT_NPS_INTERVAL,
        }
        form = JourneyReportForm(
            request.GET if "date_from" in request.GET else initial, event_names=event_names
        )
        report: dict[str, Any] | None = None
        if form.is_valid():
            report = self._report(form)
        context = {
            **self.admin_site.each_context(request),
            "title": "Journey reports",
            "opts": self.model._meta,
            "form": form,
            "report": report,
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.report_template, context)

    def _event_names(self) -> list[str]:
        """Event types with a journey stage first (in stage order), then the rest by name."""
        order = {stage: index for index, stage in enumerate(JourneyStage.values)}
        types = EventType.objects.values_list("name", "journey_stage")
        return [
            name for name, stage in sorted(types, key=lambda t: (order.get(t[1], len(order)), t[0]))
        ]

    def _report(self, form: JourneyReportForm) -> dict[str, Any] | None:
        data = form.cleaned_data
        start, end = _midnight(data["date_from"]), _midnight(data["date_to"] + timedelta(days=1))
        try:
            stages = journeys(start=start, end=end)["stages"]
            series = []
            if data["event"]:
                series = timeseries(
                    event=data["event"], interval=data["interval"], start=start, end=end
                )
            nps = nps_report(
                start=start, end=end, interval=data["nps_interval"] or DEFAULT_NPS_INTERVAL
            )
        except ValidationError as exc:
            form.add_error(None, "; ".join(e.detail for e in exc.errors) or exc.detail)
            return None
        return {
            "stages": stages,
            "event": data["event"],
            "interval": data["interval"],
            "series": [
                {"bucket": point["bucket"].isoformat(), "count": point["count"]} for point in series
            ],
            "nps": _nps_for_page(nps, data),
        }


def _nps_for_page(nps: NpsReport, data: dict[str, Any]) -> dict[str, Any]:
    """The NPS report as the page shows it: each period with its dates (cut to the range asked
    for) and a link to the report of that period alone, by day."""
    first, last = data["date_from"], data["date_to"]
    series = []
    for point in nps["series"]:
        period_first = max(point["bucket"].date(), first)
        period_last = (
            min(bucket_after(point["bucket"], nps["interval"]).date(), last + ONE_DAY) - ONE_DAY
        )
        query = {
            "date_from": period_first.isoformat(),
            "date_to": period_last.isoformat(),
            "event": data["event"],
            "interval": data["interval"],
            "nps_interval": "day",
        }
        series.append(
            {
                "bucket": point["bucket"].isoformat(),
                "label": point["bucket"].date().isoformat(),
                "period": period_first.isoformat()
                if period_first == period_last
                else f"{period_first.isoformat()} to {period_last.isoformat()}",
                "nps": point["nps"],
                "responses": point["responses"],
                "href": "?" + urlencode(query),
            }
        )
    stage_labels = dict(LifecycleStage.choices)
    return {
        "interval": nps["interval"],
        "nps": nps["nps"],
        "responses": nps["responses"],
        "promoters": nps["promoters"],
        "passives": nps["passives"],
        "detractors": nps["detractors"],
        "sentiment": dict(nps["sentiment"]),
        "series": series,
        "by_stage": [
            {**stage, "label": stage_labels.get(stage["stage"], stage["stage"].capitalize())}
            for stage in nps["by_stage"]
        ],
    }
