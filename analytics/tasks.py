from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from analytics.drain import drain_until_empty
from analytics.rollups import subject_hourly_rollups_prune
from analytics.services import MAX_AGE


@shared_task(ignore_result=True)
def events_drain_task() -> dict[str, int]:
    """Run every couple of seconds by beat; safe to run twice at once (each worker reads as its
    own consumer, and event ids make inserts idempotent)."""
    report = drain_until_empty()
    return {"read": report.read, "inserted": report.inserted, "duplicates": report.duplicates}


@shared_task(ignore_result=True)
def subject_hourly_rollups_prune_task() -> int:
    """Daily (beat): per-subject hourly rows past the events' age limit are final; drop them."""
    return subject_hourly_rollups_prune(now=timezone.now(), max_age=timedelta(seconds=MAX_AGE))
