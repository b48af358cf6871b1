"""The one beat schedule: run in-process in embedded mode, by a real worker in services mode."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from cmsproject.celery import app
from cmsproject.models import AuditEntry
from cmsproject.scheduler import EmbeddedScheduler

REPO = Path(__file__).resolve().parents[2]


def test_every_periodic_task_exists_and_expires():
    EmbeddedScheduler()  # imports the tasks modules, as a worker does when it starts
    for name, entry in app.conf.beat_schedule.items():
        assert entry["task"] in app.tasks, name
        assert entry["options"]["expires"] > 0, name


@pytest.mark.embedded
@pytest.mark.django_db
def test_embedded_scheduler_runs_what_is_due_and_nothing_else():
    old = AuditEntry.objects.create(actor_label="x", action="api.post")
    AuditEntry.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=100))
    scheduler = EmbeddedScheduler()

    assert scheduler.run_due() == []  # nothing is due right after start
    scheduler.last_run["audit-prune"] -= timedelta(days=2)
    assert scheduler.run_due() == ["audit-prune"]
    assert not AuditEntry.objects.exists()
    assert scheduler.run_due() == []


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_real_celery_worker_runs_tasks_from_the_redis_broker(tmp_path):
    old = AuditEntry.objects.create(actor_label="x", action="api.post")
    AuditEntry.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=100))
    database = settings.DATABASES["default"]
    env = {
        **os.environ,
        # The worker must see the test database this test writes to.
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}"
        f"/{database['NAME']}",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "cmsproject",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=REPO,
        env=env,
        stdout=(tmp_path / "worker.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        started = time.monotonic()
        result = app.send_task("cmsproject.tasks.audit_prune_task")
        assert result.get(timeout=60) == 1
        assert time.monotonic() - started < 60
        assert not AuditEntry.objects.exists()
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    assert "audit_prune_task" in (tmp_path / "worker.log").read_text()
