"""What other apps may ask the segmentation app."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from django.core.cache import cache
from django.db.models import QuerySet

from segmentation.models import Segment, SegmentMembership


def segment_keys_unknown(keys: Iterable[str]) -> list[str]:
    """The keys among `keys` that name no segment. With no segments defined yet, none is unknown:
    content can target a segment before a marketer has built it."""
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


def _subject_segments_cache_key(subject: str) -> str:
    return "segmentation:subject:" + hashlib.sha256(subject.encode()).hexdigest()[:40]


def subject_segment_keys(*, subject: str) -> list[str]:
    """The keys of the segments `subject` (`c:<id>` or `a:<anonymous id>`) is in now, sorted.
    One cache read when warm; membership changes call `subject_segments_forget` after commit."""
    key = _subject_segments_cache_key(subject)
    cached = cache.get(key)
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
    cache.delete(_subject_segments_cache_key(subject))
