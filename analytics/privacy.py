"""Erasure on the analytics side: a person's events and roll-ups lose the person, keep the counts.

Events stay (funnels, time series and experiment results must not shift after an erasure) but
are cut loose from the customer and their anonymous ids, and lose personal properties. Per-subject
daily roll-ups move to a fresh random subject, so per-subject aggregates (counts, uniques) survive
while nothing links them back to the customer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q

from analytics.models import Event, SubjectDailyRollup, SubjectHourlyRollup

# Property names (any depth, any case) whose values identify a person. Behavioural properties
# (amount, category, product) stay: they are what the kept aggregates are made of.
PERSONAL_PROPERTY_KEYS = (
    "email",
    "name",
    "first_name",
    "last_name",
    "full_name",
    "username",
    "phone",
    "phone_number",
    "mobile",
    "address",
    "street",
    "postal_code",
    "zip",
    "ip",
    "ip_address",
    "user_agent",
    "birthday",
    "date_of_birth",
)
_PERSONAL = frozenset(PERSONAL_PROPERTY_KEYS)

# Rows rewritten per statement: bounded memory for a customer with a long history.
BATCH_SIZE = 500


@dataclass(frozen=True)
class AnonymizedCounts:
    events: int
    rollups: int


def properties_without_personal_keys(value: Any) -> Any:
    """`value` with every personal key removed from its objects, however deeply nested."""
    if isinstance(value, dict):
        return {
            key: properties_without_personal_keys(item)
            for key, item in value.items()
            if str(key).lower() not in _PERSONAL
        }
    if isinstance(value, list):
        return [properties_without_personal_keys(item) for item in value]
    return value


def events_anonymize_customer(
    *, customer_id: int, anonymous_ids: Iterable[str] = ()
) -> AnonymizedCounts:
    """Anonymize the events and roll-ups of one customer, including those recorded under their
    anonymous ids before they were linked (pass the ids: the caller is about to delete them).

    Safe to run again: a second run finds nothing that still points at the person.
    """
    anonymous = sorted(set(anonymous_ids) - {""})
    with transaction.atomic():
        events = _events_anonymize(customer_id=customer_id, anonymous_ids=anonymous)
        rollups = _rollups_anonymize(customer_id=customer_id, anonymous_ids=anonymous)
    return AnonymizedCounts(events=events, rollups=rollups)


def _events_anonymize(*, customer_id: int, anonymous_ids: list[str]) -> int:
    theirs = Q(customer_id=customer_id)
    if anonymous_ids:
        theirs |= Q(anonymous_id__in=anonymous_ids)
    pending = Event.objects.filter(theirs).only("id", "properties").order_by("pk")
    done = 0
    # Each rewritten event stops matching `theirs`, so the next slice is the next batch.
    while batch := list(pending[:BATCH_SIZE]):
        for event in batch:
            event.customer_id = None
            event.anonymous_id = ""
            event.properties = properties_without_personal_keys(event.properties)
        Event.objects.bulk_update(batch, ["customer", "anonymous_id", "properties"])
        done += len(batch)
    return done


def _rollups_anonymize(*, customer_id: int, anonymous_ids: list[str]) -> int:
    subjects = [f"c:{customer_id}", *(f"a:{value}" for value in anonymous_ids)]
    pending = (
        SubjectDailyRollup.objects.filter(Q(customer_id=customer_id) | Q(subject__in=subjects))
        .only("id", "subject", "distinct", "event_type", "day")
        .order_by("pk")
    )
    # One fresh subject per old subject: rows that were one subject stay one (uniques hold), and
    # no two old subjects collide on the (subject, day, type) constraint.
    renamed: dict[str, str] = {}
    spans: dict[str, set[tuple[str, date]]] = {}
    done = 0
    while batch := list(pending[:BATCH_SIZE]):
        for row in batch:
            spans.setdefault(row.subject, set()).add((row.event_type, row.day))
            row.subject = renamed.setdefault(row.subject, f"erased:{uuid.uuid4()}")
            row.customer_id = None
            # Distinct values of a marked property could be personal (an email marked distinct).
            row.distinct = {
                key: values for key, values in row.distinct.items() if key.lower() not in _PERSONAL
            }
        SubjectDailyRollup.objects.bulk_update(batch, ["subject", "customer", "distinct"])
        done += len(batch)
    _hourly_rollups_rename(renamed=renamed, spans=spans)
    return done


def _hourly_rollups_rename(
    *, renamed: dict[str, str], spans: dict[str, set[tuple[str, date]]]
) -> None:
    """The hourly rows move to the same fresh subjects as the daily ones. They exist only for
    the (type, day) pairs the daily rows have, and their key starts with (type, hour): bounding
    each update by those pairs lets it use the key instead of scanning every subject's rows."""
    for old, new in renamed.items():
        by_type: dict[str, list[date]] = {}
        for event_type, day in spans[old]:
            by_type.setdefault(event_type, []).append(day)
        for event_type, days in by_type.items():
            start = datetime.combine(min(days), time.min, tzinfo=UTC)
            end = datetime.combine(max(days), time.min, tzinfo=UTC) + timedelta(days=1)
            SubjectHourlyRollup.objects.filter(
                event_type=event_type, hour__gte=start, hour__lt=end, subject=old
            ).update(subject=new)
