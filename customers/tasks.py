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
from customers.feedback_tasks import feedback_sentiment_score_task  # noqa: F401 - registers the task with workers


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


@shared_task(bind=True, ignore_result=True, max_retries=None)
def notification_deliver_task(self, notification_id: int) -> str:
    """Send one notification; a temporary failure retries with exponential backoff (with
    jitter) until CMS_NOTIFICATION_MAX_ATTEMPTS. Safe to run twice: a sent row is not resent."""
    from django.conf import settings

    from customers.notifications import TemporaryFailure, notification_deliver

    final = self.request.retries + 1 >= settings.CMS_NOTIFICATION_MAX_ATTEMPTS
    try:
        return notification_deliver(notification_id=notification_id, final_attempt=final)
    except TemporaryFailure as exc:
        delay = min(600, 5 * 2**self.request.retries)
        if self.request.is_eager:
            # Run in-process (embedded mode, tests): there is no broker to wait in, and a raised
            # Retry would escape `apply()` (eager propagation) and end the sends. A returned one
            # is re-applied by `apply()` at once, so the attempts still count to the maximum.
            return self.retry(exc=exc, countdown=delay, throw=False)
        raise self.retry(exc=exc, countdown=delay) from exc


@shared_task(ignore_result=True)
def notifications_pending_task() -> int:
    """Beat: re-enqueue notifications left pending past their retries' reach (a lost task)."""
    from customers.notifications import notifications_pending_resend

    return notifications_pending_resend()
