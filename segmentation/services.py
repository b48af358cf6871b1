"""Writes of segmentation: segments, static members, and evaluation (incremental and bulk).

- Incremental: right after a subject's events commit (the drain's `events_ingested`) or its
  profile changes (`customer_changed`), that subject is evaluated against every dynamic segment
  in Python (`segmentation.evaluation`) and its stays updated.
- Bulk: a segment's rules compile to one SQL query over all customers
  (`segmentation.compiler`); run on a schedule, when the rules change, and on demand.
Both end in `segmentation.memberships`, which records the stays and announces them.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import ProtectedError, Q
from django.utils import timezone

from cmsproject.celery import enqueue_on_commit
from cmsproject.errors import Conflict, FieldError, ValidationError
from cmsproject.observability.metrics import SEGMENT_EVALUATION_BULK, SEGMENT_EVALUATION_INCREMENTAL
from segmentation.memberships import segment_members_set, subject_memberships_set
from segmentation.models import Segment, SegmentMembership

logger = logging.getLogger(__name__)
MAX_CSV_ROWS = 100_000
CUSTOMERS_ONLY = Q(customer__isnull=False)


def _clean_rules(*, kind: str, rules: Any, key: str) -> dict[str, Any]:
    from segmentation.criteria import criteria_clean

    if kind == Segment.Kind.STATIC:
        if rules not in (None, {}, []):
            raise ValidationError(
                "A static segment has no rules: its members are chosen.",
                errors=[FieldError("rules", "not_allowed", "Leave empty for a static segment.")],
            )
        return {}
    return criteria_clean(rules, segment_key=key)


@transaction.atomic
def segment_create(
    *,
    key: str,
    name: str,
    kind: str = Segment.Kind.DYNAMIC,
    rules: Any = None,
    description: str = "",
) -> Segment:
    if Segment.objects.filter(key=key).exists():
        raise Conflict(
            f"A segment '{key}' exists already.", errors=[FieldError("key", "duplicate", "Taken.")]
        )
    segment = Segment.objects.create(
        key=key,
        name=name,
        kind=kind,
        rules=_clean_rules(kind=kind, rules=rules, key=key),
        description=description,
    )
    _recompute_after_commit(segment)
    return segment


@transaction.atomic
def segment_update(
    *,
    segment: Segment,
    name: str | None = None,
    kind: str | None = None,
    rules: Any = None,
    description: str | None = None,
) -> Segment:
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    recompute = False
    if kind is not None and kind != segment.kind:
        segment.kind, recompute = kind, True
        if kind == Segment.Kind.STATIC and rules is None:
            segment.rules = {}  # members stay as they are; from now on they are chosen
    if rules is not None or (kind == Segment.Kind.DYNAMIC and recompute):
        cleaned = _clean_rules(
            kind=segment.kind, rules=rules if rules is not None else segment.rules, key=segment.key
        )
        recompute = recompute or cleaned != segment.rules
        segment.rules = cleaned
    if name is not None:
        segment.name = name
    if description is not None:
        segment.description = description
    segment.save()
    if recompute:
        _recompute_after_commit(segment)
    return segment


@transaction.atomic
def segment_delete(*, segment: Segment) -> None:
    from segmentation.criteria import criteria_segment_refs

    users = [
        other.key
        for other in Segment.objects.exclude(pk=segment.pk).filter(kind=Segment.Kind.DYNAMIC)
        if segment.key in criteria_segment_refs(other.rules)
    ]
    if users:
        raise Conflict(
            f"Segments {', '.join(sorted(users))} refer to '{segment.key}'; change them first."
        )
    try:
        segment.delete()
    except ProtectedError as exc:
        # Experiments and flags target segments; deleting one would widen them to everyone.
        targeting = sorted({str(obj) for obj in exc.protected_objects})
        raise Conflict(
            f"'{segment.key}' is targeted by {', '.join(targeting)}; retarget them first."
        ) from None


def _recompute_after_commit(segment: Segment) -> None:
    if segment.kind == Segment.Kind.DYNAMIC:
        from segmentation.tasks import segment_recompute_task

        enqueue_on_commit(segment_recompute_task, segment.pk)


# --- Bulk ----------------------------------------------------------------------------------------
def segment_recompute(*, segment_id: int, now: datetime | None = None) -> int:
    """Members of a dynamic segment = the customers its rules select now (one SQL query).
    Anonymous browsers keep their stays: they are evaluated on their own events. Idempotent.
    Returns how many subjects entered or left."""
    from segmentation.compiler import customers_matching

    now = now or timezone.now()
    segment = Segment.objects.filter(pk=segment_id, kind=Segment.Kind.DYNAMIC).first()
    if segment is None:
        return 0
    with transaction.atomic(), SEGMENT_EVALUATION_BULK.time():
        ids = customers_matching(rules=segment.rules, now=now).values_list("pk", flat=True)
        subjects = {f"c:{customer_id}" for customer_id in ids}
        changes = segment_members_set(
            segment=segment, subjects=subjects, now=now, among=CUSTOMERS_ONLY
        )
        Segment.objects.filter(pk=segment.pk).update(evaluated_at=now)
    return len(changes)


def segments_recompute_all(*, now: datetime | None = None) -> dict[str, int]:
    """Every dynamic segment, referenced segments before those that refer to them."""
    now = now or timezone.now()
    return {
        segment.key: segment_recompute(segment_id=segment.pk, now=now)
        for segment in _in_dependency_order()
    }


def _in_dependency_order() -> list[Segment]:
    segments = {s.key: s for s in Segment.objects.filter(kind=Segment.Kind.DYNAMIC)}
    if not segments:
        return []
    from segmentation.criteria import criteria_segment_refs

    ordered: list[Segment] = []
    seen: set[str] = set()

    def visit(key: str) -> None:
        if key in seen or key not in segments:
            return
        seen.add(key)
        for ref in sorted(criteria_segment_refs(segments[key].rules)):
            visit(ref)
        ordered.append(segments[key])

    for key in sorted(segments):
        visit(key)
    return ordered


# --- Incremental ---------------------------------------------------------------------------------
def subjects_reevaluate(
    *, subjects: Iterable[str], now: datetime | None = None
) -> dict[str, set[str]]:
    """Evaluate these subjects against every dynamic segment and record what changed.
    Returns {subject: keys it is in now, among dynamic segments}."""
    now = now or timezone.now()
    dynamic = _in_dependency_order()
    if not dynamic:
        return {}
    from segmentation.evaluation import subject_segments_evaluate

    result = {}
    for subject in sorted(set(subjects)):
        with transaction.atomic(), SEGMENT_EVALUATION_INCREMENTAL.time():
            keys = subject_segments_evaluate(subject=subject, segments=dynamic, now=now)
            subject_memberships_set(subject=subject, keys=keys, segments=dynamic, now=now)
        result[subject] = keys
    return result


def subject_linked_to_customer(
    *, anonymous_id: str, customer_id: int, now: datetime | None = None
) -> None:
    """Identify made a browser's history the customer's: the browser's own stays end (its
    subject is now the customer) and the customer is evaluated with the merged history."""
    now = now or timezone.now()
    with transaction.atomic():
        segments = list(Segment.objects.filter(kind=Segment.Kind.DYNAMIC))
        subject_memberships_set(subject=f"a:{anonymous_id}", keys=set(), segments=segments, now=now)
    subjects_reevaluate(subjects=[f"c:{customer_id}"], now=now)


# --- Static members ------------------------------------------------------------------------------
def _static(segment: Segment) -> Segment:
    if segment.kind != Segment.Kind.STATIC:
        raise Conflict(f"'{segment.key}' is dynamic: its rules choose its members.")
    return segment


def static_members_add(
    *, segment: Segment, customer_ids: Iterable[int], now: datetime | None = None
) -> int:
    segment, now = _static(segment), now or timezone.now()
    current = _static_members(segment)
    wanted = current | {f"c:{customer_id}" for customer_id in customer_ids}
    return len(segment_members_set(segment=segment, subjects=wanted, now=now))


def static_members_remove(
    *, segment: Segment, customer_ids: Iterable[int], now: datetime | None = None
) -> int:
    segment, now = _static(segment), now or timezone.now()
    gone = {f"c:{customer_id}" for customer_id in customer_ids}
    return len(
        segment_members_set(segment=segment, subjects=_static_members(segment) - gone, now=now)
    )


def static_members_from_csv(
    *, segment: Segment, data: bytes, replace: bool = False
) -> dict[str, Any]:
    """A CSV with an `email` or `external_id` column (a header row). Unknown rows are reported,
    not fatal; `replace` makes the file the whole membership."""
    from customers.selectors import customers_by_email, customers_by_external_id

    _static(segment)
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValidationError(
            "The file is not a UTF-8 CSV.", errors=[FieldError("file", "invalid", str(exc))]
        ) from None
    if len(rows) > MAX_CSV_ROWS:
        raise ValidationError(
            f"At most {MAX_CSV_ROWS} rows.",
            errors=[FieldError("file", "too_many", "Too many rows.")],
        )
    column = next((name for name in ("external_id", "email") if rows and name in rows[0]), None)
    if column is None:
        raise ValidationError(
            "The CSV needs an `email` or `external_id` column.",
            errors=[
                FieldError("file", "missing_column", "Add a header row with email or external_id.")
            ],
        )
    values = [row[column].strip() for row in rows if (row.get(column) or "").strip()]
    lookup = customers_by_external_id if column == "external_id" else customers_by_email
    found = lookup(**({"external_ids": values} if column == "external_id" else {"emails": values}))
    ids = set(found.values())
    if replace:
        subjects = {f"c:{customer_id}" for customer_id in ids}
        changed = len(segment_members_set(segment=segment, subjects=subjects, now=timezone.now()))
    else:
        changed = static_members_add(segment=segment, customer_ids=ids)
    unknown = sorted(set(values) - set(found))
    return {"matched": len(ids), "unknown": unknown[:100], "changed": changed}


def _static_members(segment: Segment) -> set[str]:
    return set(
        SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).values_list(
            "subject", flat=True
        )
    )


# --- Listeners (wired in apps.py) ----------------------------------------------------------------
def on_events_ingested(*, customer_ids: set[int], anonymous_ids: set[str], **_: Any) -> None:
    subjects_reevaluate(
        subjects=[*(f"c:{i}" for i in customer_ids), *(f"a:{a}" for a in anonymous_ids)]
    )


def on_customer_changed(*, customer_id: int, anonymous_ids: list[str], **_: Any) -> None:
    for anonymous_id in anonymous_ids:
        subject_linked_to_customer(anonymous_id=anonymous_id, customer_id=customer_id)
    if not anonymous_ids:
        subjects_reevaluate(subjects=[f"c:{customer_id}"])
