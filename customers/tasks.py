"""Workers of the customers app. Thin: each reads its configuration and calls one service."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from customers.export import (
    customers_export_snapshot,
    export_directory,
    export_keep_days,
    export_snapshot_format,
    export_snapshots_prune,
)


@shared_task
def customers_export_snapshot_task() -> str:
    """The daily snapshot (beat: `customers-export-snapshot`), then the prune of those past
    `CMS_EXPORT_KEEP_DAYS`. Idempotent: a second run the same day replaces that day's file.
    Returns the file's path."""
    today = timezone.now().date()
    path = customers_export_snapshot(
        directory=export_directory(), export_format=export_snapshot_format(), day=today
    )
    export_snapshots_prune(directory=export_directory(), today=today, keep_days=export_keep_days())
    return str(path)
