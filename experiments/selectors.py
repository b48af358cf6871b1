"""What the hot paths read: every experiment's and flag's bucketing rules (one cache read, no
query), and the assignment and flag values they give a unit.

Rules are cached whole under one key; any save deletes it after commit, so a kill switch or a
pause reaches every server on its next request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.core.cache import cache

from cmsproject.errors import FieldError, ValidationError
from experiments.bucketing import ROLLOUT_SEED_PREFIX, in_traffic, unit_hash, variant_index
from experiments.models import Experiment, FeatureFlag

EXPERIMENT_RULES_KEY = "experiments:rules:v1"
FLAG_RULES_KEY = "experiments:flags:v1"
RULES_TTL_SECONDS = 3600
MAX_UNIT_LENGTH = 255  # an anonymous id or a customer's external id


@dataclass(frozen=True)
class ExperimentRule:
    key: str
    status: str
    seed: str
    phase: int
    variants: tuple[str, ...]
    weights: tuple[float, ...]
    traffic: float
    segment: str | None
    winner: str | None


@dataclass(frozen=True)
class Assignment:
    experiment: str
    variant: str | None
    reason: str  # assigned | winner | not-running | not-in-segment | outside-traffic | unknown
    exposed: bool = False  # True when the unit takes part now: an exposure should be recorded
    phase: int = 0


@dataclass(frozen=True)
class FlagRule:
    key: str
    kind: str
    enabled: bool
    rollout: float
    segment: str | None
    variants: tuple[str, ...]
    weights: tuple[float, ...]


def experiment_rules(
    *, prefetched: dict[str, ExperimentRule] | None = None
) -> dict[str, ExperimentRule]:
    """Every experiment's rules by key; `prefetched`: the cache's value, read by the caller in
    its own round trip (None: read it here)."""
    rules = prefetched if prefetched is not None else cache.get(EXPERIMENT_RULES_KEY)
    if rules is None:
        rules = {
            experiment.key: ExperimentRule(
                key=experiment.key,
                status=experiment.status,
                seed=experiment.hash_seed,
                phase=experiment.phase,
                variants=tuple(v["key"] for v in experiment.variants),
                weights=tuple(float(v["weight"]) for v in experiment.variants),
                traffic=experiment.traffic,
                segment=experiment.segment.key if experiment.segment_id else None,
                winner=experiment.winner or None,
            )
            for experiment in Experiment.objects.select_related("segment")
        }
        cache.set(EXPERIMENT_RULES_KEY, rules, RULES_TTL_SECONDS)
    return rules


def flag_rules(*, prefetched: dict[str, FlagRule] | None = None) -> dict[str, FlagRule]:
    """Every flag's rules by key; `prefetched` as for `experiment_rules`."""
    rules = prefetched if prefetched is not None else cache.get(FLAG_RULES_KEY)
    if rules is None:
        rules = {
            flag.key: FlagRule(
                key=flag.key,
                kind=flag.kind,
                enabled=flag.enabled,
                rollout=flag.rollout,
                segment=flag.segment.key if flag.segment_id else None,
                variants=tuple(v["key"] for v in flag.variants),
                weights=tuple(float(v["weight"]) for v in flag.variants),
            )
            for flag in FeatureFlag.objects.select_related("segment")
        }
        cache.set(FLAG_RULES_KEY, rules, RULES_TTL_SECONDS)
    return rules


def rules_forget() -> None:
    cache.delete_many([EXPERIMENT_RULES_KEY, FLAG_RULES_KEY])


def assignment_for(rule: ExperimentRule, *, unit: str, segments: Iterable[str] = ()) -> Assignment:
    """The variant `unit` sees. Running: bucketed (segment, then traffic, then weights).
    Ended with a winner: the winner, for everyone (the write-back). Otherwise none: the caller
    shows the default, which is control's content."""
    status = rule.status
    if status in (Experiment.Status.COMPLETED, Experiment.Status.ARCHIVED) and rule.winner:
        return Assignment(rule.key, rule.winner, "winner", phase=rule.phase)
    if status != Experiment.Status.RUNNING:
        return Assignment(rule.key, None, "not-running", phase=rule.phase)
    if rule.segment is not None and rule.segment not in set(segments):
        return Assignment(rule.key, None, "not-in-segment", phase=rule.phase)
    if not in_traffic(rule.key, unit, rule.traffic):
        return Assignment(rule.key, None, "outside-traffic", phase=rule.phase)
    variant = rule.variants[variant_index(rule.seed, unit, rule.weights)]
    return Assignment(rule.key, variant, "assigned", exposed=True, phase=rule.phase)


def flag_value(rule: FlagRule, *, unit: str, segments: Iterable[str] = ()) -> bool | str:
    """False when the flag is off for `unit` (killed, outside the segment or the rollout);
    else True, or the variant's key for a multivariate flag."""
    if not rule.enabled:
        return False
    if rule.segment is not None and rule.segment not in set(segments):
        return False
    if rule.rollout < 1 and unit_hash(ROLLOUT_SEED_PREFIX + rule.key, unit) >= rule.rollout:
        return False
    if rule.kind == FeatureFlag.Kind.MULTIVARIATE and rule.variants:
        return rule.variants[variant_index(rule.key, unit, rule.weights)]
    return True


def needs_segments(rules: Iterable[ExperimentRule | FlagRule]) -> bool:
    return any(rule.segment is not None for rule in rules)


def unit_segments(unit: str) -> list[str]:
    """The segments of the subject behind a unit: the customer with that external id, else the
    customer an anonymous id was linked to, else the anonymous id itself."""
    from customers.selectors import anonymous_link_customer, customers_by_external_id
    from segmentation.selectors import subject_segment_keys

    customer_id = customers_by_external_id(external_ids=[unit]).get(unit)
    if customer_id is None:
        customer_id = anonymous_link_customer(anonymous_id=unit)
    subject = f"c:{customer_id}" if customer_id is not None else f"a:{unit}"
    return subject_segment_keys(subject=subject)


def unit_clean(raw: str | None) -> str:
    unit = (raw or "").strip()
    if not 0 < len(unit) <= MAX_UNIT_LENGTH or "\x00" in unit:
        raise ValidationError(
            "A unit is required.",
            errors=[FieldError("unit", "invalid", f"1-{MAX_UNIT_LENGTH} characters.")],
        )
    return unit


def flag_values(*, unit: str, rules: dict[str, FlagRule] | None = None) -> dict[str, bool | str]:
    """Every flag's value for `unit` (REST `/flags/?unit=`, GraphQL `flags`)."""
    rules = flag_rules(prefetched=rules)
    segments = unit_segments(unit) if needs_segments(rules.values()) else []
    return {
        key: flag_value(rule, unit=unit, segments=segments) for key, rule in sorted(rules.items())
    }
