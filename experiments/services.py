"""Experiments and flags: validation, the status machine, phases, results and the winner.

Status moves draft → running ⇄ paused → completed → archived. While an experiment has started,
its variants, weights, traffic and seed are the phase's: changing them needs `restart`, which
closes the phase (keeping its results) and opens the next, so results never mix two splits.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone

from analytics.reports import experiment_exposures
from analytics.selectors import event_type_catalog
from cmsproject.errors import Conflict, FieldError, ValidationError
from cmsproject.realtime import publish
from experiments.models import KEY_VALIDATOR, Experiment, ExperimentPhase, FeatureFlag
from experiments.selectors import rules_forget
from experiments.stats import Analysis, VariantCounts, experiment_analyze
from segmentation.models import Segment

Status = Experiment.Status
TRANSITIONS: dict[str, set[str]] = {
    Status.DRAFT: {Status.RUNNING, Status.ARCHIVED},
    Status.RUNNING: {Status.PAUSED, Status.COMPLETED},
    Status.PAUSED: {Status.RUNNING, Status.COMPLETED},
    Status.COMPLETED: {Status.ARCHIVED},
    Status.ARCHIVED: set(),
}
# Changing any of these after the start would re-bucket units mid-test.
PHASE_FIELDS = ("variants", "traffic", "seed")
EDITABLE = {
    "name",
    "hypothesis",
    "variants",
    "traffic",
    "seed",
    "segment",
    "metric_event",
    "metric_window_hours",
    "method",
    "alpha",
    "min_exposures",
    "min_runtime_hours",
}
MAX_VARIANTS = 10
WEIGHT_TOLERANCE = 1e-6
MAX_WINDOW_HOURS = 24 * 90
HISTORY_POINTS = 500


def _forget_rules_after_commit() -> None:
    transaction.on_commit(rules_forget)


# --- Validation -----------------------------------------------------------------------------------
def variants_errors(
    variants: Any, *, field: str = "variants", minimum: int = 2
) -> list[FieldError]:
    if not isinstance(variants, list) or not minimum <= len(variants) <= MAX_VARIANTS:
        return [FieldError(field, "invalid", f"{minimum} to {MAX_VARIANTS} variants.")]
    errors: list[FieldError] = []
    seen: set[str] = set()
    total = 0.0
    for index, variant in enumerate(variants):
        path = f"{field}[{index}]"
        if not isinstance(variant, dict) or set(variant) - {"key", "weight", "name"}:
            errors.append(FieldError(path, "invalid", "An object with `key` and `weight`."))
            continue
        key, weight = variant.get("key"), variant.get("weight")
        if not isinstance(key, str) or not KEY_VALIDATOR.regex.fullmatch(key):
            errors.append(FieldError(f"{path}.key", "invalid", "1-63 characters: a-z 0-9 _ -"))
        elif key in seen:
            errors.append(FieldError(f"{path}.key", "duplicate", f"'{key}' is listed twice."))
        else:
            seen.add(key)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
            errors.append(FieldError(f"{path}.weight", "invalid", "A number in [0, 1]."))
        else:
            total += weight
    if not errors and abs(total - 1) > WEIGHT_TOLERANCE:
        errors.append(
            FieldError(field, "weights", f"Weights sum to {total:g}; they must sum to 1.")
        )
    return errors


def _share_errors(value: Any, field: str) -> list[FieldError]:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        return [FieldError(field, "invalid", "A number in [0, 1].")]
    return []


def _segment(key: str | None) -> Segment | None:
    if key in (None, ""):
        return None
    segment = Segment.objects.filter(key=key).first()
    if segment is None:
        raise ValidationError(
            "Unknown segment.", errors=[FieldError("segment", "unknown", f"No segment '{key}'.")]
        )
    return segment


def _experiment_errors(values: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    if "variants" in values:
        errors += variants_errors(values["variants"])
    if "traffic" in values:
        errors += _share_errors(values["traffic"], "traffic")
    if "metric_event" in values and values["metric_event"] not in event_type_catalog():
        errors.append(
            FieldError("metric.event", "unknown", f"No event type '{values['metric_event']}'.")
        )
    window = values.get("metric_window_hours")
    if window is not None and not 1 <= window <= MAX_WINDOW_HOURS:
        errors.append(
            FieldError("metric.window_hours", "invalid", f"1 to {MAX_WINDOW_HOURS} hours.")
        )
    alpha = values.get("alpha")
    if alpha is not None and not 0 < alpha < 0.5:
        errors.append(FieldError("analysis.alpha", "invalid", "Between 0 and 0.5."))
    if values.get("min_runtime_hours", 0) < 0:
        errors.append(FieldError("analysis.min_runtime_hours", "invalid", "Not negative."))
    return errors


# Model field -> the name clients use (REST and GraphQL nest these).
API_FIELD = {
    "metric_event": "metric.event",
    "metric_window_hours": "metric.window_hours",
    "method": "analysis.method",
    "alpha": "analysis.alpha",
    "min_exposures": "analysis.min_exposures",
    "min_runtime_hours": "analysis.min_runtime_hours",
}


def _model_checked(instance: Experiment | FeatureFlag) -> None:
    """The model's own checks (key syntax, lengths, choices) as our ValidationError, so every
    caller (REST, GraphQL, admin) gets field errors rather than Django's exception."""
    try:
        instance.full_clean(validate_unique=False, validate_constraints=False)
    except DjangoValidationError as exc:
        raise ValidationError(
            "Invalid values.",
            errors=[
                FieldError(
                    API_FIELD.get(name, name),
                    (error.code or "invalid").replace("_", "-"),
                    " ".join(error.messages),
                )
                for name, errors in exc.error_dict.items()
                for error in errors
            ],
        ) from None


def _raise(errors: list[FieldError]) -> None:
    if errors:
        raise ValidationError("Invalid experiment.", errors=errors)


# --- Experiments ----------------------------------------------------------------------------------
@transaction.atomic
def experiment_create(*, key: str, status: str = Status.DRAFT, **values: Any) -> Experiment:
    if Experiment.objects.filter(key=key).exists():
        raise Conflict(f"An experiment '{key}' exists.")
    values.setdefault(
        "variants", [{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}]
    )
    _raise(_experiment_errors(values))
    segment = _segment(values.pop("segment", None))
    experiment = Experiment(key=key, segment=segment, **values)
    _model_checked(experiment)
    experiment.save()
    if status != Status.DRAFT:
        experiment_transition(experiment=experiment, status=status)
    _forget_rules_after_commit()
    return experiment


@transaction.atomic
def experiment_update(
    *, experiment: Experiment, restart: bool = False, status: str | None = None, **values: Any
) -> Experiment:
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    unknown = set(values) - EDITABLE
    if unknown:
        raise ValidationError(
            "Unknown fields.",
            errors=[FieldError(name, "unknown-field", "Not editable.") for name in sorted(unknown)],
        )
    if experiment.status in (Status.COMPLETED, Status.ARCHIVED) and values:
        raise Conflict(f"The experiment is {experiment.status}: its settings are final.")
    _raise(_experiment_errors(values))
    if "segment" in values:
        values["segment"] = _segment(values["segment"])
    phase_changes = [
        name
        for name in PHASE_FIELDS
        if name in values and values[name] != getattr(experiment, name)
    ]
    if phase_changes and experiment.phase > 0 and not restart:
        raise Conflict(
            f"Changing {', '.join(phase_changes)} of a started experiment re-buckets its units; "
            "it needs a restart, which starts a new phase (the current results stay with the "
            "closed one).",
            errors=[FieldError("restart", "required", "Restart to change the split.")],
        )
    for name, value in values.items():
        setattr(experiment, name, value)
    _model_checked(experiment)
    experiment.save()
    if restart and experiment.phase > 0:
        _phase_open(experiment)
    if status is not None and status != experiment.status:
        experiment_transition(experiment=experiment, status=status)
    _forget_rules_after_commit()
    return experiment


@transaction.atomic
def experiment_transition(*, experiment: Experiment, status: str) -> Experiment:
    if status not in TRANSITIONS:
        raise ValidationError(
            "Unknown status.", errors=[FieldError("status", "invalid", f"No status '{status}'.")]
        )
    if status not in TRANSITIONS[experiment.status]:
        raise Conflict(f"An experiment cannot go from {experiment.status} to {status}.")
    now = timezone.now()
    if status == Status.RUNNING and experiment.phase == 0:
        experiment.started_at = now
        _phase_open(experiment, now=now)
    if status == Status.COMPLETED:
        experiment.ended_at = now
        _phase_close(experiment, now=now)
    experiment.status = status
    experiment.save()
    _forget_rules_after_commit()
    return experiment


def _phase_open(experiment: Experiment, *, now: datetime | None = None) -> None:
    now = now or timezone.now()
    if experiment.phase:
        _phase_close(experiment, now=now)
    experiment.phase += 1
    experiment.phase_started_at = now
    experiment.results = None
    experiment.results_computed_at = None
    experiment.winner = ""
    experiment.winner_source = ""
    experiment.save()
    ExperimentPhase.objects.create(
        experiment=experiment,
        number=experiment.phase,
        variants=experiment.variants,
        traffic=experiment.traffic,
        seed=experiment.hash_seed,
        started_at=now,
    )


def _phase_close(experiment: Experiment, *, now: datetime) -> None:
    ExperimentPhase.objects.filter(
        experiment=experiment, number=experiment.phase, ended_at__isnull=True
    ).update(ended_at=now, results=experiment.results)


@transaction.atomic
def experiment_declare_winner(
    *, experiment: Experiment, variant: str, source: str = "manual"
) -> Experiment:
    """Everyone sees `variant` from now on (bound content blocks and `/assignment/`); the
    experiment completes, keeping its results."""
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if variant not in experiment.variant_keys:
        raise ValidationError(
            "Unknown variant.",
            errors=[FieldError("variant", "unknown", f"No variant '{variant}' here.")],
        )
    if experiment.status not in (Status.RUNNING, Status.PAUSED, Status.COMPLETED):
        raise Conflict(f"A winner needs a started experiment; this one is {experiment.status}.")
    experiment.winner = variant
    experiment.winner_source = source
    if experiment.status != Status.COMPLETED:
        experiment_transition(experiment=experiment, status=Status.COMPLETED)
    else:
        experiment.save()
        ExperimentPhase.objects.filter(experiment=experiment, number=experiment.phase).update(
            results=experiment.results
        )
    _forget_rules_after_commit()
    _publish_results(experiment)
    return experiment


# --- Results ----------------------------------------------------------------------------------
def experiment_results_compute(*, experiment: Experiment, now: datetime | None = None) -> dict:
    """Counts the current phase's units and conversions, runs the statistics, stores the
    snapshot (with a point of its exposure history), writes a winner back when the decision rule
    is met, and pushes the snapshot to `experiment:<key>`."""
    now = now or timezone.now()
    if experiment.phase == 0:
        raise Conflict("The experiment has not started: there is nothing to compute.")
    end = experiment.ended_at if experiment.status in (Status.COMPLETED, Status.ARCHIVED) else None
    report = experiment_exposures(
        experiment=experiment.key,
        metric_event=experiment.metric_event,
        window=timedelta(hours=experiment.metric_window_hours),
        start=experiment.phase_started_at,
        end=end,
    )
    counted = {row.variant: row for row in report.variants}
    variants = [
        VariantCounts(
            key=variant["key"],
            exposures=counted[variant["key"]].exposures if variant["key"] in counted else 0,
            conversions=counted[variant["key"]].conversions if variant["key"] in counted else 0,
            weight=float(variant["weight"]),
        )
        for variant in experiment.variants
    ]
    runtime = (end or now) - experiment.phase_started_at
    analysis = Analysis(
        method=experiment.method,
        alpha=experiment.alpha,
        min_exposures=experiment.min_exposures,
        min_runtime_hours=experiment.min_runtime_hours,
    )
    results = experiment_analyze(variants, analysis, runtime_hours=runtime.total_seconds() / 3600)
    unknown = sum(
        row.exposures for key, row in counted.items() if key not in experiment.variant_keys
    )
    history = list((experiment.results or {}).get("history") or [])
    history.append([now.isoformat(), [variant.exposures for variant in variants]])
    if len(history) > HISTORY_POINTS:  # thin the older half, keep the newest points dense
        half = len(history) // 2
        history = history[:half:2] + history[half:]
    results.update(
        experiment=experiment.key,
        phase=experiment.phase,
        status=experiment.status,
        computed_at=now.isoformat(),
        runtime_hours=round(runtime.total_seconds() / 3600, 3),
        mixed_units=report.mixed_units,
        unknown_variant_units=unknown,
        history=history,
    )
    rule_winner = results.get("winner")
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if locked.phase != experiment.phase:
            return results  # restarted meanwhile: these counts belong to a closed phase
        if locked.winner:
            results["winner"] = locked.winner  # a declared winner stands
        locked.results = results
        locked.results_computed_at = now
        locked.save(update_fields=["results", "results_computed_at", "updated_at"])
        experiment.results, experiment.results_computed_at = results, now
        if rule_winner and not locked.winner and locked.status == Status.RUNNING:
            experiment_declare_winner(experiment=locked, variant=rule_winner, source="rule")
            experiment.refresh_from_db()
        else:
            _publish_results(locked)
    return results


def _publish_results(experiment: Experiment) -> None:
    publish(f"experiment:{experiment.key}", "experiment.results", results_body(experiment))


def results_body(experiment: Experiment) -> dict[str, Any]:
    """The API's results document: the latest snapshot, with the experiment's status and
    winner as they stand now (a winner declared by hand shows at once)."""
    snapshot = dict(experiment.results or {})
    body = {
        "experiment": experiment.key,
        "status": experiment.status,
        "phase": experiment.phase,
        "method": snapshot.get("method", experiment.method),
        "alpha": snapshot.get("alpha", experiment.alpha),
        "variants": snapshot.get("variants")
        or [
            {
                "key": key,
                "exposures": 0,
                "conversions": 0,
                "rate": None,
                "reason": "not computed yet",
            }
            for key in experiment.variant_keys
        ],
        "srm": snapshot.get("srm") or {"p_value": None, "ok": True, "reason": "not computed yet"},
        "winner": experiment.winner or None,
        "winner_source": experiment.winner_source or None,
        "decision": snapshot.get("decision"),
        "computed_at": experiment.results_computed_at.isoformat()
        if experiment.results_computed_at
        else None,
        "runtime_hours": snapshot.get("runtime_hours"),
        "mixed_units": snapshot.get("mixed_units", 0),
        "history": snapshot.get("history", []),
    }
    return body


def phase_results_body(phase: ExperimentPhase) -> dict[str, Any]:
    """A closed phase's results, in the shape of `results_body`."""
    snapshot = dict(phase.results or {})
    return {
        "experiment": phase.experiment.key,
        "status": "closed" if phase.ended_at else phase.experiment.status,
        "phase": phase.number,
        "method": snapshot.get("method", phase.experiment.method),
        "alpha": snapshot.get("alpha", phase.experiment.alpha),
        "variants": snapshot.get("variants")
        or [
            {
                "key": v["key"],
                "exposures": 0,
                "conversions": 0,
                "rate": None,
                "reason": "no results",
            }
            for v in phase.variants
        ],
        "srm": snapshot.get("srm") or {"p_value": None, "ok": True, "reason": "no results"},
        "winner": snapshot.get("winner"),
        "winner_source": None,
        "decision": snapshot.get("decision"),
        "computed_at": snapshot.get("computed_at"),
        "runtime_hours": snapshot.get("runtime_hours"),
        "mixed_units": snapshot.get("mixed_units", 0),
        "history": snapshot.get("history", []),
    }


def experiments_results_compute_running() -> int:
    """The scheduled job: every running experiment's results; returns how many."""
    computed = 0
    for experiment in Experiment.objects.filter(status=Status.RUNNING):
        experiment_results_compute(experiment=experiment)
        computed += 1
    return computed


# --- Flags ------------------------------------------------------------------------------------
FLAG_EDITABLE = {"name", "description", "kind", "enabled", "rollout", "segment", "variants"}


def _flag_errors(values: dict[str, Any], kind: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if "rollout" in values:
        errors += _share_errors(values["rollout"], "rollout")
    if kind == FeatureFlag.Kind.MULTIVARIATE:
        errors += variants_errors(values.get("variants"), minimum=2)
    elif values.get("variants"):
        errors.append(FieldError("variants", "invalid", "A boolean flag has no variants."))
    return errors


@transaction.atomic
def flag_create(*, key: str, **values: Any) -> FeatureFlag:
    if FeatureFlag.objects.filter(key=key).exists():
        raise Conflict(f"A flag '{key}' exists.")
    kind = values.get("kind", FeatureFlag.Kind.BOOLEAN)
    errors = _flag_errors(values, kind)
    if errors:
        raise ValidationError("Invalid flag.", errors=errors)
    segment = _segment(values.pop("segment", None))
    flag = FeatureFlag(key=key, segment=segment, **values)
    _model_checked(flag)
    flag.save()
    _forget_rules_after_commit()
    return flag


@transaction.atomic
def flag_update(*, flag: FeatureFlag, **values: Any) -> FeatureFlag:
    unknown = set(values) - FLAG_EDITABLE
    if unknown:
        raise ValidationError(
            "Unknown fields.",
            errors=[FieldError(name, "unknown-field", "Not editable.") for name in sorted(unknown)],
        )
    kind = values.get("kind", flag.kind)
    merged = {"variants": flag.variants, **values}
    errors = _flag_errors(merged, kind)
    if errors:
        raise ValidationError("Invalid flag.", errors=errors)
    if "segment" in values:
        values["segment"] = _segment(values["segment"])
    for name, value in values.items():
        setattr(flag, name, value)
    _model_checked(flag)
    flag.save()
    _forget_rules_after_commit()
    return flag


@transaction.atomic
def flag_delete(*, flag: FeatureFlag) -> None:
    flag.delete()
    _forget_rules_after_commit()
