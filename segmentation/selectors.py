"""What other apps may ask the segmentation app."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from django.core.cache import cache
from django.db.models import Exists, OuterRef, Q, QuerySet

from segmentation.models import Segment, SegmentMembership


def segment_keys_unknown(keys: Iterable[str]) -> list[str]:
    """The keys among `keys` that content may not target. None: content may target a segment
    before a marketer has built it (the block then shows its default to everyone), and a
    segment's deletion must not make every entry that targets it unsaveable."""
    return []


def customer_segments_current(*, customer_id: int) -> list[Segment]:
    """The segments a customer is in now, by name."""
    return list(
        Segment.objects.filter(
            memberships__customer_id=customer_id, memberships__exited_at__isnull=True
        ).order_by("name")
    )


def customer_memberships(*, customer_id: int, limit: int = 50) -> list[SegmentMembership]:
    """A customer's stays in segments, newest first, current and past."""
    return list(
        SegmentMembership.objects.filter(customer_id=customer_id)
        .select_related("segment")
        .order_by("-entered_at")[:limit]
    )


def segments_list() -> QuerySet[Segment]:
    return Segment.objects.order_by("name")


def segment_current_customer_ids(*, segment_id: int) -> QuerySet[SegmentMembership]:
    """A subquery of the customers in a segment now (for `customer_id__in=`)."""
    return SegmentMembership.objects.filter(
        segment_id=segment_id, exited_at__isnull=True, customer__isnull=False
    ).values("customer_id")


# --- A subject's segments now, cached: what personalization reads on every request ----------------
SUBJECT_SEGMENTS_TTL_SECONDS = 300  # a safety net: membership changes forget the entry at once


def subject_segments_cache_key(subject: str) -> str:
    return "segmentation:subject:" + hashlib.sha256(subject.encode()).hexdigest()[:40]


def subject_segment_keys(*, subject: str, prefetched: list[str] | None = None) -> list[str]:
    """The keys of the segments `subject` (`c:<id>` or `a:<anonymous id>`) is in now, sorted.
    One cache read when warm (none when the caller `prefetched` the cache key's value in its
    own round trip); membership changes call `subject_segments_forget` after commit."""
    key = subject_segments_cache_key(subject)
    cached = prefetched if prefetched is not None else cache.get(key)
    if cached is not None:
        return cached
    keys = list(
        SegmentMembership.objects.filter(subject=subject, exited_at__isnull=True)
        .order_by("segment__key")
        .values_list("segment__key", flat=True)
    )
    cache.set(key, keys, SUBJECT_SEGMENTS_TTL_SECONDS)
    return keys


def subject_segments_forget(*, subject: str) -> None:
    cache.delete(subject_segments_cache_key(subject))


# --- For the evaluators (issue 5) ----------------------------------------------------------------
def segments_by_key(*, keys: Iterable[str]) -> dict[str, Segment]:
    """{key: segment} for the keys that name one (key, kind and rules only)."""
    wanted = set(keys)
    if not wanted:
        return {}
    return {
        segment.key: segment
        for segment in Segment.objects.filter(key__in=wanted).only("id", "key", "kind", "rules")
    }


def segments_referenced(
    *trees: dict, known: dict[str, Segment] | None = None
) -> dict[str, Segment]:
    """Every segment `trees` refer to, directly or through other dynamic segments, level by
    level (one query per level, at most MAX_REFERENCE_DEPTH levels). `known` ones are not read
    again. Returns `known` plus what was found."""
    from segmentation.criteria import MAX_REFERENCE_DEPTH, criteria_segment_refs

    found = dict(known or {})
    frontier = {ref for tree in trees for ref in criteria_segment_refs(tree)}
    for _ in range(MAX_REFERENCE_DEPTH):
        frontier -= found.keys()
        if not frontier:
            break
        loaded = segments_by_key(keys=frontier)
        found.update(loaded)
        frontier = {
            ref
            for segment in loaded.values()
            if segment.kind == Segment.Kind.DYNAMIC
            for ref in criteria_segment_refs(segment.rules)
        }
    return found


def subject_static_segment_keys(*, subject: str) -> set[str]:
    """The static segments a subject (`c:<id>` or `a:<anonymous id>`) is in now. A customer is
    matched by `customer_id`, as the SQL twin (`segment_customer_is_member`) does."""
    kind, _, ident = subject.partition(":")
    theirs = Q(customer_id=int(ident)) if kind == "c" else Q(subject=subject)
    return set(
        SegmentMembership.objects.filter(
            theirs, exited_at__isnull=True, segment__kind=Segment.Kind.STATIC
        ).values_list("segment__key", flat=True)
    )


def segment_customer_is_member(*, segment_id: int) -> Exists:
    """Whether the outer query's customer (OuterRef("pk")) is in the segment now, as a
    correlated EXISTS."""
    return Exists(
        SegmentMembership.objects.filter(
            segment_id=segment_id, customer_id=OuterRef("pk"), exited_at__isnull=True
        )
    )


# --- Preview of rules not saved yet (the REST preview and the admin's rule editor) ---------------
# (block added by the rule editor, issue 5 item 5; `segmentation.api.SegmentPreviewApi` may call it)
PREVIEW_SAMPLE_SIZE = 10


def segment_preview(
    *, rules: object, segment_key: str | None = None, sample_size: int = PREVIEW_SAMPLE_SIZE
) -> dict[str, object]:
    """How many customers match `rules` now, and the newest few of them. Invalid rules raise
    `ValidationError` naming each path; `segment_key` (the segment being edited) lets a
    reference back to itself be caught as the cycle it would be once saved."""
    from django.utils import timezone

    from segmentation.compiler import customers_matching
    from segmentation.criteria import criteria_clean

    cleaned = criteria_clean(rules, segment_key=segment_key)
    matching = customers_matching(rules=cleaned, now=timezone.now())
    sample = matching.order_by("-pk").values("id", "email", "name", "loyalty_tier")
    return {"count": matching.count(), "sample": list(sample[:sample_size])}


# --- End of the preview block --------------------------------------------------------------------
