"""The Celery app and the one beat schedule of the whole product.

Every periodic task has `expires` shorter than its period, so a backlog after an outage runs
each job once, not once per missed tick. In embedded mode `cmsproject.scheduler` runs this same
schedule in-process.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cmsproject.settings")

app = Celery("cmsproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

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
    "customers-export-snapshot": {
        "task": "customers.tasks.customers_export_snapshot_task",
        "schedule": crontab(hour=2, minute=30),
        "options": {"expires": 60 * 60},
    },
}
