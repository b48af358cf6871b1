"""Recording who entered and left segments, and telling the world after commit.

Both evaluation paths end here: incremental (one subject, all segments) and bulk (one segment,
all customers). A change opens or closes a stay, then, once the transaction commits:
- the subject's cached segment set is forgotten (personalization reads the new one next time);
- `segments.changed` goes to the subject's own sockets (`customer:me`: the customer's login and
  every browser linked to them, or the anonymous browser itself);
- webhooks `segment.entered` / `segment.exited` are dispatched (inside the transaction: the
  deliveries are rows, sent after commit).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from cmsproject.realtime import publish
from content.webhooks import webhook_endpoints_for, webhooks_dispatch
from customers.selectors import customer_ids_refusing, customer_streams
from customers.topics import customer_stream_for
from segmentation.models import Segment, SegmentMembership
from segmentation.selectors import subject_segments_forget


@dataclass
class SubjectChange:
    entered: set[str] = field(default_factory=set)
    exited: set[str] = field(default_factory=set)


def customer_id_of(subject: str) -> int | None:
    kind, _, value = subject.partition(":")
    return int(value) if kind == "c" and value.isdigit() else None


def subject_memberships_set(
    *, subject: str, keys: set[str], segments: Iterable[Segment], now: datetime
) -> SubjectChange:
    """Incremental: among `segments` (those just evaluated), `subject` is in exactly `keys`."""
    segments = list(segments)
    by_id = {segment.pk: segment for segment in segments}
    current = set(
        SegmentMembership.objects.filter(
            subject=subject, exited_at__isnull=True, segment_id__in=by_id
        ).values_list("segment__key", flat=True)
    )
    change = SubjectChange(entered=keys - current, exited=current - keys)
    by_key = {segment.key: segment for segment in segments}
    _apply({subject: change}, by_key=by_key, now=now)
    return change


def segment_members_set(
    *, segment: Segment, subjects: set[str], now: datetime, among: Q | None = None
) -> dict[str, SubjectChange]:
    """Bulk: `segment`'s members are exactly `subjects` (within `among`, a filter on memberships:
    e.g. customers only, when a bulk recompute evaluated customers and not anonymous browsers)."""
    open_stays = SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True)
    if among is not None:
        open_stays = open_stays.filter(among)
    current = set(open_stays.values_list("subject", flat=True))
    changes: dict[str, SubjectChange] = defaultdict(SubjectChange)
    for subject in subjects - current:
        changes[subject].entered.add(segment.key)
    for subject in current - subjects:
        changes[subject].exited.add(segment.key)
    _apply(changes, by_key={segment.key: segment}, now=now)
    return dict(changes)


def _apply(
    changes: Mapping[str, SubjectChange], *, by_key: Mapping[str, Segment], now: datetime
) -> None:
    changes = {
        subject: change for subject, change in changes.items() if change.entered or change.exited
    }
    if not changes:
        return
    with transaction.atomic():
        for key, segment in by_key.items():
            leaving = [subject for subject, change in changes.items() if key in change.exited]
            if leaving:
                SegmentMembership.objects.filter(
                    segment=segment, subject__in=leaving, exited_at__isnull=True
                ).update(exited_at=now)
            SegmentMembership.objects.bulk_create(
                [
                    SegmentMembership(
                        segment=segment,
                        subject=subject,
                        customer_id=customer_id_of(subject),
                        entered_at=now,
                    )
                    for subject, change in changes.items()
                    if key in change.entered
                ],
                batch_size=1000,
            )
            Segment.objects.filter(pk=segment.pk).update(
                member_count=SegmentMembership.objects.filter(
                    segment=segment, exited_at__isnull=True
                ).count()
            )
        _announce(changes, now=now)


def _announce(changes: Mapping[str, SubjectChange], *, now: datetime) -> None:
    subjects = list(changes)
    transaction.on_commit(
        lambda: [subject_segments_forget(subject=subject) for subject in subjects], robust=True
    )
    customers = {customer_id_of(subject) for subject in subjects} - {None}
    streams = customer_streams(customer_ids=customers)  # type: ignore[arg-type]
    # A customer who refused personalization leaves every segment, silently: nothing about
    # their segments reaches their screens or other systems.
    silent = customer_ids_refusing(customer_ids=customers, purpose="personalization")  # type: ignore[arg-type]
    current = _current_keys(subjects)
    # Read once for the whole batch: a bulk recompute announces thousands of changes.
    endpoints = {
        event: webhook_endpoints_for(event=event) for event in ("segment.entered", "segment.exited")
    }
    for subject, change in changes.items():
        customer_id = customer_id_of(subject)
        if customer_id in silent:
            continue
        message = {
            "entered": sorted(change.entered),
            "exited": sorted(change.exited),
            "segments": current.get(subject, []),
        }
        if customer_id is not None:
            targets = streams.get(customer_id, [])
        else:
            targets = [customer_stream_for(anonymous_id=subject.partition(":")[2])]
        for stream in targets:
            publish(stream, "segments.changed", message)
        for event, keys in (("segment.entered", change.entered), ("segment.exited", change.exited)):
            if not endpoints[event]:
                continue
            for key in sorted(keys):
                webhooks_dispatch(
                    event=event,
                    payload={
                        "segment": key,
                        "subject": subject,
                        "customer_id": customer_id,
                        "at": now.isoformat(),
                    },
                    key=f"{event}:{key}:{subject}:{now.isoformat()}",
                    endpoints=endpoints[event],
                )


def _current_keys(subjects: list[str]) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = defaultdict(list)
    for subject, key in (
        SegmentMembership.objects.filter(subject__in=subjects, exited_at__isnull=True)
        .order_by("segment__key")
        .values_list("subject", "segment__key")
    ):
        keys[subject].append(key)
    return keys
