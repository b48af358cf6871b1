"""What delivery asks of experiments and flags: per content block, whether it shows (its flag)
and which experiment variant's data it carries; and the exposures that follow.

A block's segment variant, when one matched, wins over its experiment: targeted content is a
decision the marketer made, the experiment tests the default. A block requiring an unknown flag
is hidden (a typo must not switch a feature on).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache

from analytics.reports import EXPOSURE_EVENT
from analytics.services import Caller, events_accept
from cmsproject.errors import ServiceUnavailable
from experiments.selectors import (
    Assignment,
    assignment_for,
    experiment_rules,
    flag_rules,
    flag_value,
)

log = logging.getLogger(__name__)
EXPOSURE_SEEN_SECONDS = 24 * 3600
SERVER = Caller(may_name_any_user=True)


@dataclass
class BlocksOutcome:
    zones: dict[str, list[dict[str, Any]]]
    assignments: dict[str, Assignment] = field(default_factory=dict)

    @property
    def experiments(self) -> dict[str, str]:
        """`meta.experiments` of a delivery: experiment key → the variant shown."""
        return {
            key: assignment.variant
            for key, assignment in self.assignments.items()
            if assignment.variant is not None
        }


def zones_bound(zones: Mapping[str, list[Mapping[str, Any]]]) -> bool:
    """Whether any block needs experiments or flags (most entries do not: skip the rules)."""
    return any(
        "experiment" in block or "flag" in block for blocks in zones.values() for block in blocks
    )


def zones_apply(
    live_zones: Mapping[str, list[Mapping[str, Any]]],
    resolved_zones: Mapping[str, list[dict[str, Any]]],
    *,
    unit: str | None,
    segments: Iterable[str],
) -> BlocksOutcome:
    """`resolved_zones` (segment variants already applied, block for block with `live_zones`)
    with flags and experiments applied for `unit` (None: a caller with no id)."""
    segments = frozenset(segments)
    experiments, flags = experiment_rules(), flag_rules()
    outcome = BlocksOutcome(zones={})
    for name, blocks in resolved_zones.items():
        shown = []
        for live, resolved in zip(live_zones.get(name) or (), blocks, strict=True):
            if "flag" in live and not _flag_on(flags.get(live["flag"]), unit, segments):
                continue
            bound = live.get("experiment")
            if bound and resolved.get("variant") is None:
                assignment = _assignment(experiments.get(bound["key"]), unit, segments)
                if assignment is not None:
                    outcome.assignments.setdefault(bound["key"], assignment)
                    if assignment.variant is not None:
                        data = (bound.get("variants") or {}).get(assignment.variant) or {}
                        resolved = {**resolved, "data": {**resolved["data"], **data}}
            shown.append(resolved)
        outcome.zones[name] = shown
    return outcome


def _flag_on(rule: Any, unit: str | None, segments: frozenset[str]) -> bool:
    if rule is None:
        return False
    if unit is None:  # no id to bucket: only a flag that is on for everyone is on
        return rule.enabled and rule.segment is None and rule.rollout >= 1
    return bool(flag_value(rule, unit=unit, segments=segments))


def _assignment(rule: Any, unit: str | None, segments: frozenset[str]) -> Assignment | None:
    if rule is None:
        return None
    if unit is None:
        if rule.winner and rule.status in ("completed", "archived"):
            return assignment_for(rule, unit="", segments=segments)
        return None
    return assignment_for(rule, unit=unit, segments=segments)


# --- Exposures --------------------------------------------------------------------------------
def exposure_event_id(*, experiment: str, phase: int, unit: str) -> str:
    """The same id for a unit's every exposure in a phase: the drain keeps the first and drops
    the rest, so repeat deliveries never count a unit twice."""
    digest = hashlib.blake2b(f"{experiment}\x00{phase}\x00{unit}".encode(), digest_size=16)
    return "xp-" + digest.hexdigest()


def exposures_record(
    assignments: Iterable[Assignment],
    *,
    unit: str,
    user_id: str | None,
    anonymous_id: str | None,
) -> int:
    """Append an `experiment_exposure` event for each assignment that exposed `unit`, once per
    unit and phase (a cache mark saves the stream the repeats; the event id makes a repeat
    harmless when the mark is gone). Best effort: delivery answers even when the event buffer
    is down. Returns how many were appended."""
    events = []
    for assignment in assignments:
        if not assignment.exposed:
            continue
        event_id = exposure_event_id(
            experiment=assignment.experiment, phase=assignment.phase, unit=unit
        )
        if not cache.add(f"experiments:exposed:{event_id}", 1, EXPOSURE_SEEN_SECONDS):
            continue
        events.append(
            {
                "id": event_id,
                "type": EXPOSURE_EVENT,
                "properties": {
                    "experiment": assignment.experiment,
                    "variant": assignment.variant,
                    "source": "delivery",
                },
                **({"userId": user_id} if user_id else {"anonymousId": anonymous_id}),
            }
        )
    if not events:
        return 0
    try:
        return events_accept(events=events, caller=SERVER).accepted
    except ServiceUnavailable:
        cache.delete_many([f"experiments:exposed:{event['id']}" for event in events])
        log.warning("exposures not recorded: the event buffer is unavailable")
        return 0
