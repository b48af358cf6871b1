"""Workers of segmentation. Thin and idempotent: a recompute sets members to what the rules say."""

from __future__ import annotations

from celery import shared_task

from segmentation.services import segment_recompute, segments_recompute_all


@shared_task(ignore_result=True)
def segment_recompute_task(segment_id: int) -> int:
    """After a segment's rules change, and on demand from the admin."""
    return segment_recompute(segment_id=segment_id)


@shared_task(ignore_result=True)
def segments_recompute_all_task() -> dict[str, int]:
    """Beat: every dynamic segment, so time windows move on without any event ("no purchase in
    30 days" becomes true by itself)."""
    return segments_recompute_all()
