"""The admin's forms for experiments and flags: each saves through the service, and the
service's errors land beside the input they name. Variants are rows (`variants_editor.js`)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from django import forms
from django.forms import Script
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from analytics.reports import EXPOSURE_EVENT
from analytics.selectors import event_type_catalog
from cmsproject.errors import Conflict, DomainError, FieldError
from content.admin.forms import error_root, service_dry_run
from experiments.models import KEY_VALIDATOR, Experiment, FeatureFlag
from experiments.services import (
    experiment_create,
    experiment_update,
    flag_create,
    flag_update,
)
from segmentation.selectors import segments_list

WIDGET_TEMPLATE = "admin/experiments/variants_editor_widget.html"
RESULTS_TEMPLATE = "admin/experiments/experiment/results.html"
Status = Experiment.Status
FINAL = (Status.COMPLETED, Status.ARCHIVED)
DEFAULT_VARIANTS = [{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}]
# The service speaks the API's nested names; the form has one input for each.
ERROR_FIELDS = {
    "segment": "segment_key",
    "metric.event": "metric_event",
    "metric.window_hours": "metric_window_hours",
    "analysis.method": "method",
    "analysis.alpha": "alpha",
    "analysis.min_exposures": "min_exposures",
    "analysis.min_runtime_hours": "min_runtime_hours",
}
VARIANT_PATH = re.compile(r"^variants\[(\d+)\](?:\.(\w+))?$")
WEIGHT_TOLERANCE = 1e-9


# --- Shared pieces of the forms ------------------------------------------------------------------
def segment_choices() -> list[tuple[str, str]]:
    return [("", "Everyone")] + [
        (segment.key, f"{segment.name} ({segment.key})")
        for segment in segments_list().only("key", "name")
    ]


def metric_event_choices() -> list[tuple[str, str]]:
    """Event types a conversion can be (the same catalogue the service checks against);
    exposures themselves are no metric."""
    names = sorted(name for name in event_type_catalog() if name != EXPOSURE_EVENT)
    return [("", "Choose an event")] + [(name, name) for name in names]


def errors_json(errors: list[FieldError]) -> list[dict[str, str]]:
    return [error.as_dict() for error in errors]


def variant_error_message(error: FieldError) -> str:
    """`variants[1].key` → "Variant 2, key: …", for people who never see the JSON."""
    found = VARIANT_PATH.match(error.attr)
    if found is None:
        return error.detail
    index, part = found.groups()
    where = f"Variant {int(index) + 1}" + (f", {part}" if part else "")
    return f"{where}: {error.detail}"


def same_split(new: Any, old: Any) -> bool:
    """The editor shows weights as percentages; a row nobody touched may come back a rounding
    away from the stored float, and that must not count as a change of the split."""
    if not isinstance(new, list) or not isinstance(old, list) or len(new) != len(old):
        return False
    for posted, stored in zip(new, old, strict=True):
        if (
            not isinstance(posted, dict)
            or not isinstance(stored, dict)
            or set(posted) != set(stored)
        ):
            return False
        for name, value in posted.items():
            if name == "weight" and is_number(value) and is_number(stored[name]):
                if not math.isclose(value, stored[name], rel_tol=0, abs_tol=WEIGHT_TOLERANCE):
                    return False
            elif value != stored[name]:
                return False
    return True


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.4g} %"


def variants_text(variants: Any) -> str:
    if not isinstance(variants, list):
        return "—"
    parts = [
        f"{variant.get('key')} {percent(variant.get('weight'))}"
        for variant in variants
        if isinstance(variant, dict)
    ]
    return " · ".join(parts) or "—"


class VariantsEditorWidget(forms.Widget):
    """A hidden input holding the variants as JSON, and the rows that write it
    (`variants_editor.js`). Without JavaScript the input keeps the stored variants, so a save
    changes nothing."""

    template_name = WIDGET_TEMPLATE

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.config: dict[str, Any] = {}

    @property
    def media(self) -> forms.Media:
        return forms.Media(
            js=[Script("experiments/variants_editor.js", type="module")],
            css={"all": ["experiments/admin.css"]},
        )

    def format_value(self, value: Any) -> str:
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["editor_config"] = self.config
        context["config_id"] = f"{context['widget']['attrs'].get('id', name)}_config"
        return context

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        # The project's template engine: the form renderer only looks in apps and Django's forms.
        html = render_to_string(self.template_name, self.get_context(name, value, attrs))
        return mark_safe(html)  # noqa: S308 - a template's output, escaped by the engine


class ServiceForm(forms.ModelForm):
    """Checks a save by running the service inside a savepoint that is always rolled back; the
    admin's `save_model` runs it for real. Service errors land beside the inputs they name."""

    variants = forms.JSONField(required=False, widget=VariantsEditorWidget, label="Variants")
    # By key, as the API takes it; not the model's `segment` (a foreign key the form must not set).
    segment_key = forms.ChoiceField(required=False, label="Segment")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.variant_errors: list[FieldError] = []
        if "key" in self.fields:
            self.fields["key"].validators.append(KEY_VALIDATOR)
        if "segment_key" in self.fields:
            self.fields["segment_key"].choices = segment_choices()
            if self.instance.segment_id:
                self.initial.setdefault("segment_key", self.instance.segment.key)
        if "variants" in self.fields:
            self.fields["variants"].widget.config = self.editor_config()

    def editor_config(self) -> dict[str, Any]:
        raise NotImplementedError

    def save_through_service(self) -> Any:
        raise NotImplementedError

    def validate_unique(self) -> None:
        """The service refuses a taken key (a `Conflict`, shown on the key): not twice."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            service_dry_run(self.save_through_service)
        except DomainError as exc:
            self.add_service_errors(exc)
        return cleaned

    def service_values(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The inputs the form has (read-only ones are not sent), as the service's arguments."""
        values = {name: self.cleaned_data[name] for name in names if name in self.fields}
        if "segment_key" in self.fields:
            values["segment"] = self.cleaned_data["segment_key"] or None
        return values

    def add_service_errors(self, exc: DomainError) -> None:
        if isinstance(exc, Conflict):
            self.add_conflict(exc)
            return
        placed = False
        for error in exc.errors:
            field = ERROR_FIELDS.get(error.attr) or error_root(error.attr)
            if field == "variants" and "variants" in self.fields:
                self.variant_errors.append(error)
                self.add_error("variants", variant_error_message(error))
                placed = True
            elif field in self.fields:
                self.add_error(field, error.detail)
                placed = True
        if not placed:
            self.add_error(None, exc.detail)
        if "variants" in self.fields:
            config = {**self.fields["variants"].widget.config}
            config["errors"] = errors_json(self.variant_errors)
            self.fields["variants"].widget.config = config

    def add_conflict(self, exc: Conflict) -> None:
        # Creating, the only conflict is a taken key.
        self.add_error("key" if self.instance.pk is None else None, exc.detail)


# --- Experiments ---------------------------------------------------------------------------------
STATE_FIELDS = (
    "status",
    "phase",
    "phase_started_at",
    "started_at",
    "ended_at",
    "winner",
    "winner_source",
    "results_computed_at",
)
EXPERIMENT_VALUES = (
    "name",
    "hypothesis",
    "variants",
    "traffic",
    "seed",
    "metric_event",
    "metric_window_hours",
    "method",
    "alpha",
    "min_exposures",
    "min_runtime_hours",
)


class ExperimentAdminForm(ServiceForm):
    metric_event = forms.ChoiceField(
        label="Metric event",
        help_text="A unit converts when it sends this event within the window after its first "
        "exposure.",
    )
    restart = forms.BooleanField(
        required=False,
        label="Restart (start a new phase)",
        help_text="Needed to change the variants, weights, traffic or seed of a started "
        "experiment: the current phase closes with its results, and counting starts afresh.",
    )

    class Meta:
        model = Experiment
        fields = [
            "key",
            "name",
            "hypothesis",
            "variants",
            "traffic",
            "seed",
            "metric_event",
            "metric_window_hours",
            "method",
            "alpha",
            "min_exposures",
            "min_runtime_hours",
        ]
        help_texts = {
            "traffic": "Share of units that take part, from 0 to 1 (0.5 = half).",
            "seed": "Leave empty to bucket by the key. A new seed re-buckets every unit.",
            "metric_window_hours": "Hours after the first exposure in which a conversion counts.",
            "alpha": "The significance level: 0.05 for 95 % confidence.",
            "min_exposures": "Per variant, before a winner may be declared by the rule.",
            "min_runtime_hours": "Before a winner may be declared by the rule.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "metric_event" in self.fields:
            self.fields["metric_event"].choices = metric_event_choices()
        if "variants" in self.fields:
            self.fields["variants"].required = True
            self.fields["variants"].help_text = (
                "The first variant is the control. Weights are shares of the experiment's "
                "traffic and must add up to 100 %."
            )
            if self.instance.pk is None:
                self.initial.setdefault("variants", DEFAULT_VARIANTS)
        if "segment_key" in self.fields:
            self.fields[
                "segment_key"
            ].help_text = (
                "Only its members take part; everyone else sees the default (control's content)."
            )

    def editor_config(self) -> dict[str, Any]:
        return {"minimum": 2, "control_first": True, "kind_input": None, "errors": []}

    def clean_variants(self) -> Any:
        variants = self.cleaned_data.get("variants")
        if self.instance.pk is not None and same_split(variants, self.instance.variants):
            return self.instance.variants
        return variants

    def save_through_service(self) -> Experiment:
        values = self.service_values(EXPERIMENT_VALUES)
        if self.instance.pk is None:
            return experiment_create(key=self.cleaned_data["key"], **values)
        return experiment_update(
            experiment=self.instance, restart=bool(self.cleaned_data.get("restart")), **values
        )

    def add_conflict(self, exc: Conflict) -> None:
        super().add_conflict(exc)
        started = self.instance.pk is not None and self.instance.phase > 0
        if started and "restart" in self.fields and not self.cleaned_data.get("restart"):
            self.add_error("restart", "Tick this to save these changes as a new phase.")


# --- Feature flags -------------------------------------------------------------------------------
FLAG_VALUES = ("name", "description", "kind", "enabled", "rollout", "variants")


class FeatureFlagAdminForm(ServiceForm):
    class Meta:
        model = FeatureFlag
        fields = ["key", "name", "description", "kind", "enabled", "rollout", "variants"]
        help_texts = {
            "rollout": "Share of units that get it, from 0 to 1 (0.25 = a quarter).",
            "enabled": "The kill switch: off means off for everyone, at once.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "variants" in self.fields:
            self.fields["variants"].help_text = (
                "Multivariate flags only: each unit that gets the flag gets one of these; "
                "weights must add up to 100 %."
            )
        if "segment_key" in self.fields:
            self.fields["segment_key"].help_text = "Only its members get the flag."

    def editor_config(self) -> dict[str, Any]:
        kind = self["kind"].auto_id if "kind" in self.fields else None
        return {"minimum": 2, "control_first": False, "kind_input": kind, "errors": []}

    def clean_variants(self) -> Any:
        variants = self.cleaned_data.get("variants")
        return [] if variants is None else variants

    def clean(self) -> dict[str, Any]:
        # A boolean flag has no variants: whatever the hidden editor still holds is not sent.
        kind = self.cleaned_data.get("kind") or self.instance.kind
        if kind == FeatureFlag.Kind.BOOLEAN:
            self.cleaned_data["variants"] = []
        return super().clean()

    def save_through_service(self) -> FeatureFlag:
        values = self.service_values(FLAG_VALUES)
        if self.instance.pk is None:
            return flag_create(key=self.cleaned_data["key"], **values)
        return flag_update(flag=self.instance, **values)
