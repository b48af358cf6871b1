"""The experiment admin: list, form, status buttons, phases, and the results page with charts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html

from cmsproject.errors import DomainError
from experiments.admin.forms import (
    FINAL,
    RESULTS_TEMPLATE,
    STATE_FIELDS,
    ExperimentAdminForm,
    Status,
    is_number,
    percent,
    variants_text,
)
from experiments.models import Experiment, ExperimentPhase
from experiments.services import (
    experiment_declare_winner,
    experiment_results_compute,
    experiment_transition,
    phase_results_body,
    results_body,
)


# --- Status moves --------------------------------------------------------------------------------
@dataclass(frozen=True)
class StatusAction:
    """A button that moves an experiment to `status`; offered while it is in `sources` (the
    service's `TRANSITIONS` decide; this only picks the words, "start" vs "resume")."""

    name: str
    label: str
    status: str
    sources: frozenset[str]
    confirm: str = ""


STATUS_ACTIONS = (
    StatusAction("start", "Start", Status.RUNNING, frozenset({Status.DRAFT})),
    StatusAction("pause", "Pause", Status.PAUSED, frozenset({Status.RUNNING})),
    StatusAction("resume", "Resume", Status.RUNNING, frozenset({Status.PAUSED})),
    StatusAction(
        "complete",
        "Complete",
        Status.COMPLETED,
        frozenset({Status.RUNNING, Status.PAUSED}),
        "Complete this experiment? No more exposures are counted; its results are kept.",
    ),
    StatusAction(
        "archive",
        "Archive",
        Status.ARCHIVED,
        frozenset({Status.DRAFT, Status.COMPLETED}),
        "Archive this experiment? It leaves the running lists; nothing is deleted.",
    ),
)
STATUS_ACTION_BY_NAME = {action.name: action for action in STATUS_ACTIONS}


def status_actions_for(experiment: Experiment) -> list[StatusAction]:
    return [action for action in STATUS_ACTIONS if experiment.status in action.sources]


def _results_url(experiment: Experiment, phase: int | None = None) -> str:
    url = reverse("admin:experiments_experiment_results", args=[experiment.pk])
    return f"{url}?phase={phase}" if phase is not None else url


def _phase_summary(results: dict[str, Any] | None) -> str:
    """One line of a closed phase's results: units and conversions per variant, the winner."""
    if not results:
        return "No results computed."
    parts = [
        f"{row.get('key')}: {row.get('conversions', 0)}/{row.get('exposures', 0)}"
        for row in results.get("variants") or []
    ]
    winner = results.get("winner")
    return " · ".join(parts) + (f" — winner {winner}" if winner else "")


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    form = ExperimentAdminForm
    list_display = [
        "name",
        "key",
        "status_badge",
        "variants_summary",
        "traffic_share",
        "segment_key",
        "metric_event",
        "winner_display",
        "results_computed_at",
        "results_link",
    ]
    list_filter = ["status", "method"]
    search_fields = ["key", "name"]
    list_select_related = ["segment"]
    change_form_template = "admin/experiments/experiment/change_form.html"
    actions = [
        "start_selected",
        "pause_selected",
        "resume_selected",
        "complete_selected",
        "archive_selected",
    ]

    class Media:
        js = ["experiments/confirm.js"]
        css = {"all": ["experiments/admin.css"]}

    # Never deleted: archived instead, so results and the winner stay on record.
    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    # The list ---------------------------------------------------------------------------------
    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Experiment) -> str:
        return format_html(
            '<span class="experiment-status experiment-status--{}">{}</span>',
            obj.status,
            obj.get_status_display(),
        )

    @admin.display(description="variants")
    def variants_summary(self, obj: Experiment) -> str:
        return variants_text(obj.variants)

    @admin.display(description="traffic", ordering="traffic")
    def traffic_share(self, obj: Experiment) -> str:
        return percent(obj.traffic)

    @admin.display(description="segment", ordering="segment__key")
    def segment_key(self, obj: Experiment) -> str:
        return obj.segment.key if obj.segment_id else "Everyone"

    @admin.display(description="winner", ordering="winner")
    def winner_display(self, obj: Experiment) -> str:
        if not obj.winner:
            return "—"
        return f"{obj.winner} ({obj.winner_source})" if obj.winner_source else obj.winner

    @admin.display(description="results")
    def results_link(self, obj: Experiment) -> str:
        if not obj.phase:
            return "—"
        return format_html('<a href="{}">Results</a>', _results_url(obj))

    def _transition_selected(self, request: HttpRequest, queryset: QuerySet, name: str) -> None:
        action = STATUS_ACTION_BY_NAME[name]
        moved, refused = [], []
        for experiment in queryset:
            try:
                experiment_transition(experiment=experiment, status=action.status)
            except DomainError as exc:
                refused.append(f"{experiment.key}: {exc.detail}")
            else:
                self.log_change(request, experiment, f"{action.label}: now {experiment.status}.")
                moved.append(experiment.key)
        if moved:
            self.message_user(request, f"{action.label}: {', '.join(moved)}.", messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.ERROR)

    @admin.action(description="Start the selected experiments", permissions=["change"])
    def start_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._transition_selected(request, queryset, "start")

    @admin.action(description="Pause the selected experiments", permissions=["change"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._transition_selected(request, queryset, "pause")

    @admin.action(description="Resume the selected experiments", permissions=["change"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._transition_selected(request, queryset, "resume")

    @admin.action(description="Complete the selected experiments", permissions=["change"])
    def complete_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._transition_selected(request, queryset, "complete")

    @admin.action(description="Archive the selected experiments", permissions=["change"])
    def archive_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._transition_selected(request, queryset, "archive")

    # The form ---------------------------------------------------------------------------------
    def _editable(self, request: HttpRequest, obj: Experiment | None) -> bool:
        if obj is None:
            return True
        return obj.status not in FINAL and self.has_change_permission(request, obj)

    def get_fieldsets(self, request: HttpRequest, obj: Experiment | None = None) -> list[Any]:
        editable = self._editable(request, obj)
        split = ["variants" if editable else "variants_summary", "traffic", "seed", "segment_key"]
        if editable and obj is not None and obj.phase:
            split.append("restart")
        fieldsets = [
            (None, {"fields": ["key", "name", "hypothesis"]}),
            ("Variants and targeting", {"fields": split}),
            ("Metric", {"fields": ["metric_event", "metric_window_hours"]}),
            (
                "Analysis",
                {"fields": ["method", "alpha", "min_exposures", "min_runtime_hours"]},
            ),
        ]
        if obj is not None:
            fieldsets.append(("State", {"fields": list(STATE_FIELDS)}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Experiment | None = None) -> list[str]:
        if obj is None:
            return []
        state = [*STATE_FIELDS, "variants_summary"]
        if obj.status in FINAL:  # the service refuses any change: show, do not offer
            return [*ExperimentAdminForm.Meta.fields, "segment_key", "restart", *state]
        # Bucketing, the API and content bindings use the key: renaming would orphan them.
        return ["key", *state]

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        # Before the model's own patterns: `<path:object_id>/` would swallow these.
        return [
            path(
                "<path:object_id>/results/",
                wrap(self.results_view),
                name="experiments_experiment_results",
            ),
            path(
                "<path:object_id>/results/recompute/",
                wrap(self.recompute_view),
                name="experiments_experiment_recompute",
            ),
            path(
                "<path:object_id>/winner/",
                wrap(self.winner_view),
                name="experiments_experiment_winner",
            ),
            path(
                "<path:object_id>/status/",
                wrap(self.status_view),
                name="experiments_experiment_status",
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
        obj: Experiment | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context["status_actions"] = (
                status_actions_for(obj) if self.has_change_permission(request, obj) else []
            )
            context["results_url"] = _results_url(obj) if obj.phase else None
            context["phases"] = self._phase_rows(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _phase_rows(self, experiment: Experiment) -> list[dict[str, Any]]:
        rows = []
        for phase in ExperimentPhase.objects.filter(experiment=experiment).order_by("number"):
            current = phase.number == experiment.phase
            results = experiment.results if current else phase.results
            rows.append(
                {
                    "number": phase.number,
                    "started_at": phase.started_at,
                    "ended_at": phase.ended_at,
                    "variants": variants_text(phase.variants),
                    "traffic": percent(phase.traffic),
                    "summary": _phase_summary(results),
                    "current": current,
                    "results_url": _results_url(experiment, None if current else phase.number)
                    if current or results
                    else None,
                }
            )
        return rows

    def save_model(
        self, request: HttpRequest, obj: Experiment, form: ExperimentAdminForm, change: bool
    ) -> None:
        saved = form.save_through_service()
        obj.__dict__.update(saved.__dict__)  # the admin goes on with `obj` (log, redirect)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Nothing related: the service saved everything."""

    # Status, results, winner --------------------------------------------------------------------
    def _experiment(self, request: HttpRequest, object_id: str, *, change: bool) -> Experiment:
        experiment = self.get_object(request, unquote(object_id))
        if experiment is None:
            raise Http404("No such experiment.")
        allowed = (
            self.has_change_permission(request, experiment)
            if change
            else self.has_view_permission(request, experiment)
        )
        if not allowed:
            raise PermissionDenied
        return experiment

    def _back(self, request: HttpRequest, experiment: Experiment) -> HttpResponseRedirect:
        target = request.POST.get("next")
        if target == "results" and experiment.phase:
            return HttpResponseRedirect(_results_url(experiment))
        return HttpResponseRedirect(
            reverse("admin:experiments_experiment_change", args=[experiment.pk])
        )

    def status_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST `action` (start, pause, resume, complete, archive): one status move."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        experiment = self._experiment(request, object_id, change=True)
        action = STATUS_ACTION_BY_NAME.get(request.POST.get("action", ""))
        if action is None:
            messages.error(request, "Unknown status action.")
            return self._back(request, experiment)
        try:
            experiment_transition(experiment=experiment, status=action.status)
        except DomainError as exc:
            messages.error(request, exc.detail)
        else:
            self.log_change(request, experiment, f"{action.label}: now {experiment.status}.")
            messages.success(request, f"“{experiment}” is now {experiment.status}.")
        return self._back(request, experiment)

    def recompute_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        experiment = self._experiment(request, object_id, change=True)
        had_winner = experiment.winner
        try:
            experiment_results_compute(experiment=experiment)
        except DomainError as exc:
            messages.error(request, exc.detail)
        else:
            experiment.refresh_from_db()
            self.log_change(request, experiment, "Recomputed the results.")
            messages.success(request, "Results recomputed.")
            if experiment.winner and experiment.winner != had_winner:
                messages.info(
                    request,
                    f"The decision rule is met: “{experiment.winner}” won, and everyone sees "
                    "it from now on.",
                )
        return self._back(request, experiment)

    def winner_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST `variant`: everyone sees it from now on; the experiment completes."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        experiment = self._experiment(request, object_id, change=True)
        variant = request.POST.get("variant", "")
        try:
            experiment = experiment_declare_winner(experiment=experiment, variant=variant)
        except DomainError as exc:
            messages.error(request, "; ".join(e.detail for e in exc.errors) or exc.detail)
        else:
            self.log_change(request, experiment, f"Declared the winner: {variant}.")
            messages.success(request, f"“{variant}” is the winner; everyone sees it from now on.")
        return self._back(request, experiment)

    def results_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The latest results (or a closed phase's, `?phase=N`): the figures per variant, the
        SRM check, the decision, charts; buttons for those who may change experiments."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        experiment = self._experiment(request, object_id, change=False)
        closed = self._closed_phase(experiment, request.GET.get("phase"))
        body = phase_results_body(closed) if closed else results_body(experiment)
        can_change = closed is None and self.has_change_permission(request, experiment)
        rows = results_rows(body)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Results of {experiment}",
            "experiment": experiment,
            "closed_phase": closed,
            "results": body,
            "rows": rows,
            "confidence": _confidence_label(body),
            "computed_at": parse_datetime(body["computed_at"]) if body["computed_at"] else None,
            "chart_data": chart_data(body, rows),
            "can_change": can_change,
            "status_actions": status_actions_for(experiment) if can_change else [],
            "can_declare_winner": can_change
            and experiment.status in (Status.RUNNING, Status.PAUSED, Status.COMPLETED),
            "can_recompute": can_change and bool(experiment.phase),
            "suggested_winner": body["winner"] or _best_variant(body),
            "change_url": reverse("admin:experiments_experiment_change", args=[experiment.pk]),
        }
        return TemplateResponse(request, RESULTS_TEMPLATE, context)

    def _closed_phase(self, experiment: Experiment, wanted: str | None) -> ExperimentPhase | None:
        if not wanted or not wanted.isdigit() or int(wanted) == experiment.phase:
            return None
        return ExperimentPhase.objects.filter(experiment=experiment, number=int(wanted)).first()


def _alpha(body: dict[str, Any]) -> float:
    alpha = body.get("alpha")
    return alpha if is_number(alpha) and 0 < alpha < 1 else 0.05


def _confidence_label(body: dict[str, Any]) -> str:
    return f"{(1 - _alpha(body)) * 100:g} %"


def _p_value(p: float | None) -> str:
    if p is None:
        return "—"
    return "< 0.0001" if p < 0.0001 else f"{p:.3g}"


def _signedpercent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:+.2f} %"


def results_rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's rows: figures formatted for people, a dash where a figure is null (the
    row's `reason` says why), and an interval on each rate: rate ± z·√(rate(1 - rate)/n), the
    normal approximation at the experiment's confidence."""
    z = NormalDist().inv_cdf(1 - _alpha(body) / 2)
    rows = []
    for index, variant in enumerate(body["variants"]):
        rate, n = variant.get("rate"), variant.get("exposures") or 0
        low = high = None
        if rate is not None and n:
            half = z * math.sqrt(rate * (1 - rate) / n)
            low, high = max(0.0, rate - half), min(1.0, rate + half)
        rows.append(
            {
                "key": variant.get("key"),
                "control": index == 0,
                "exposures": variant.get("exposures", 0),
                "conversions": variant.get("conversions", 0),
                "rate": percent(rate) if rate is None else f"{rate * 100:.2f} %",
                "rate_interval": "—" if low is None else f"{low * 100:.2f} to {high * 100:.2f} %",
                "uplift": _signedpercent(variant.get("uplift")),
                "ci_low": _signedpercent(variant.get("ci_low")),
                "ci_high": _signedpercent(variant.get("ci_high")),
                "p_value": _p_value(variant.get("p_value")),
                "chance_to_win": "—"
                if variant.get("chance_to_win") is None
                else f"{variant['chance_to_win'] * 100:.1f} %",
                "significant": bool(variant.get("significant")),
                "reason": variant.get("reason") or "",
                "winner": variant.get("key") == body["winner"],
                "figures": {
                    "rate": rate,
                    "rate_low": low,
                    "rate_high": high,
                    "uplift": variant.get("uplift"),
                    "ci_low": variant.get("ci_low"),
                    "ci_high": variant.get("ci_high"),
                },
            }
        )
    return rows


def chart_data(body: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What `results.js` draws; embedded with `json_script`, never as HTML."""
    return {
        "confidence": _confidence_label(body),
        "method": body["method"],
        "variants": [{"key": row["key"], **row["figures"]} for row in rows],
        "history": [
            point
            for point in body.get("history") or []
            if isinstance(point, list) and len(point) == 2
        ],
    }


def _best_variant(body: dict[str, Any]) -> str | None:
    """The winner select's default: the treatment most likely to win, else the first."""
    variants = body["variants"]
    scored = [v for v in variants[1:] if v.get("chance_to_win") is not None]
    if scored:
        return max(scored, key=lambda v: v["chance_to_win"])["key"]
    return variants[1]["key"] if len(variants) > 1 else None
