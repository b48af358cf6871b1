"""What other apps may ask the segmentation app. Segments themselves arrive with issue 5; until
then the registry of segment keys is empty and every well-formed key is accepted."""

from __future__ import annotations

from collections.abc import Iterable

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
