"""Embedded mode's `celery beat`: runs the one beat schedule (cmsproject.celery) in a thread.

Tasks run eagerly in embedded mode, so "sending" a task runs it here, off the serving thread.
Due times come from Celery's own schedule objects (`is_due`), so crontab and interval entries
mean exactly what they mean under a real beat.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from celery.schedules import BaseSchedule, schedule
from django.db import close_old_connections
from django.utils import timezone

from cmsproject.celery import app

logger = logging.getLogger(__name__)


def _as_schedule(value: object) -> BaseSchedule:
    if isinstance(value, BaseSchedule):
        return value
    if isinstance(value, (int, float)):
        value = timedelta(seconds=value)
    return schedule(run_every=value, app=app)


class EmbeddedScheduler(threading.Thread):
    def __init__(self, tick_seconds: float = 1.0) -> None:
        super().__init__(name="cms-embedded-beat", daemon=True)
        self.tick_seconds = tick_seconds
        self._stop_requested = threading.Event()
        # A worker imports every app's tasks module when it starts; there is no worker here,
        # so import them now, or the schedule would name tasks Celery has never heard of.
        app.loader.import_default_modules()
        started = timezone.now()
        self.entries: dict[str, tuple[dict, BaseSchedule]] = {
            name: (entry, _as_schedule(entry["schedule"]))
            for name, entry in app.conf.beat_schedule.items()
        }
        self.last_run: dict[str, datetime] = dict.fromkeys(self.entries, started)

    def stop(self) -> None:
        self._stop_requested.set()

    def run(self) -> None:
        logger.info("Embedded scheduler running %d periodic tasks", len(self.entries))
        while not self._stop_requested.wait(self.tick_seconds):
            self.run_due()

    def run_due(self) -> list[str]:
        ran = []
        for name, (entry, sched) in self.entries.items():
            due, _next = sched.is_due(self.last_run[name])
            if not due:
                continue
            self.last_run[name] = timezone.now()
            close_old_connections()
            try:
                app.tasks[entry["task"]].apply(
                    args=entry.get("args", ()), kwargs=entry.get("kwargs", {})
                )
                ran.append(name)
            except Exception:
                logger.exception("Periodic task %s failed", name)
            finally:
                close_old_connections()
        return ran
