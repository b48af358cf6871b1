"""Workers of the content app. Thin: each takes ids and calls one service; each is idempotent."""

from __future__ import annotations

from celery import shared_task

from content.media import media_renditions_make, media_renditions_pending
from content.services import entries_publish_due
from content.webhooks import webhook_attempt, webhooks_retry_due


@shared_task(ignore_result=True)
def entries_publish_due_task() -> int:
    """Beat: publishes scheduled entries whose time has come. Returns how many went live."""
    return len(entries_publish_due())


@shared_task(ignore_result=True)
def media_renditions_task(asset_id: int) -> None:
    media_renditions_make(asset_id=asset_id)


@shared_task(ignore_result=True)
def media_renditions_pending_task() -> int:
    return media_renditions_pending()


@shared_task(ignore_result=True)
def webhook_deliver_task(delivery_id: int) -> None:
    webhook_attempt(delivery_id=delivery_id)


@shared_task(ignore_result=True)
def webhooks_retry_due_task() -> int:
    return webhooks_retry_due()
