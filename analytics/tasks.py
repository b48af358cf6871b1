from __future__ import annotations

from celery import shared_task

from analytics.drain import drain_until_empty


@shared_task(ignore_result=True)
def events_drain_task() -> dict[str, int]:
    """Run every couple of seconds by beat; safe to run twice at once (each worker reads as its
    own consumer, and event ids make inserts idempotent)."""
    report = drain_until_empty()
    return {"read": report.read, "inserted": report.inserted, "duplicates": report.duplicates}
