"""Workers of the customers app. Thin: each reads its configuration and calls one service."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from customers.export import customers_export_snapshot, export_directory, export_snapshot_format


@shared_task
def customers_export_snapshot_task() -> str:
    """The daily snapshot (beat: `customers-export-snapshot`). Idempotent: a second run the same
    day replaces that day's file. Returns the file's path."""
    path = customers_export_snapshot(
        directory=export_directory(),
        export_format=export_snapshot_format(),
        day=timezone.now().date(),
    )
    return str(path)
