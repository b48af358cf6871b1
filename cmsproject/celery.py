"""The Celery app and the one beat schedule of the whole product.

Every periodic task has `expires` shorter than its period, so a backlog after an outage runs
each job once, not once per missed tick. In embedded mode `cmsproject.scheduler` runs this same
schedule in-process.
"""

from __future__ import annotations

import contextvars
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Celery
from celery.schedules import crontab

from cmsproject.observability.celery_signals import connect_signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cmsproject.settings")

app = Celery("cmsproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Task outcomes and durations as metrics; traceparent and request id from publisher to worker.
connect_signals()

app.conf.beat_schedule = {
    # Roll-ups must be at most 60 s behind: drain every 2 s; a run that waited longer than its
    # period is dropped, the next one picks up the same entries.
    "events-drain": {
        "task": "analytics.tasks.events_drain_task",
        "schedule": 2.0,
        "options": {"expires": 2},
    },
    "audit-prune": {
        "task": "cmsproject.tasks.audit_prune_task",
        "schedule": crontab(hour=3, minute=17),
        "options": {"expires": 60 * 60},
    },
    # Scheduled entries go live within 60 s of their time.
    "content-publish-due": {
        "task": "content.tasks.entries_publish_due_task",
        "schedule": 15.0,
        "options": {"expires": 15},
    },
    # Webhook retries wait in the database (next_attempt_at); this sends the ones now due.
    "webhooks-retry-due": {
        "task": "content.tasks.webhooks_retry_due_task",
        "schedule": 5.0,
        "options": {"expires": 5},
    },
    # A safety net: notifications whose task was lost (a worker died before sending) go again.
    "notifications-pending": {
        "task": "customers.tasks.notifications_pending_task",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # A safety net: renditions of an upload whose task was lost (worker died) are made here.
    "media-renditions-pending": {
        "task": "content.tasks.media_renditions_pending_task",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    # Windows move on without events ("no purchase in 30 days" becomes true by itself).
    # Sequential testing keeps frequent looks honest, so results can follow the data closely.
    "experiments-results": {
        "task": "experiments.tasks.experiments_results_task",
        "schedule": crontab(minute="*/5"),
        "options": {"expires": 4 * 60},
    },
    # Sentiment and key phrases of new feedback. A run stops after about 20 s (the embedded beat
    # runs jobs one after another, the events drain among them); the next run carries on.
    "feedback-sentiment-score": {
        "task": "customers.feedback_tasks.feedback_sentiment_score_task",
        "schedule": crontab(minute="*/10"),
        "options": {"expires": 9 * 60},
    },
    "segments-recompute-all": {
        "task": "segmentation.tasks.segments_recompute_all_task",
        "schedule": crontab(minute="*/15"),
        "options": {"expires": 14 * 60},
    },
    "subject-hourly-rollups-prune": {
        "task": "analytics.tasks.subject_hourly_rollups_prune_task",
        "schedule": crontab(hour=3, minute=47),
        "options": {"expires": 60 * 60},
    },
    "customers-export-snapshot": {
        "task": "customers.tasks.customers_export_snapshot_task",
        "schedule": crontab(hour=2, minute=30),
        "options": {"expires": 60 * 60},
    },
}


logger = logging.getLogger(__name__)
# Embedded mode has no worker: eager tasks sent from a request run on this small pool instead of
# inside the request (a webhook POST or an AVIF encode must not hold up the response).
_embedded_pool: ThreadPoolExecutor | None = None


def enqueue_on_commit(task: Any, *args: Any) -> None:
    """Send `task(*args)` once the current transaction commits (at once when there is none).

    Services mode: to the broker, for a worker. Embedded mode: to a background thread, or inline
    when CMS_EMBEDDED_TASKS_INLINE is set (the test suite, so tests need not wait).
    """
    from django.conf import settings
    from django.db import transaction

    if not settings.CELERY_TASK_ALWAYS_EAGER:
        transaction.on_commit(lambda: task.delay(*args), robust=True)
    elif settings.CMS_EMBEDDED_TASKS_INLINE:
        transaction.on_commit(lambda: task.apply(args=args), robust=True)
    else:
        transaction.on_commit(lambda: _embedded_submit(task, args), robust=True)


def _embedded_submit(task: Any, args: tuple[Any, ...]) -> None:
    global _embedded_pool
    if _embedded_pool is None:
        _embedded_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cms-task")
    # The caller's context goes along: the task's logs carry its request id and trace id.
    _embedded_pool.submit(contextvars.copy_context().run, _run_embedded, task, args)


def _run_embedded(task: Any, args: tuple[Any, ...]) -> None:
    from django.db import close_old_connections

    close_old_connections()
    try:
        task.apply(args=args)
    except Exception:
        logger.exception("Background task %s failed", task.name)
    finally:
        close_old_connections()
