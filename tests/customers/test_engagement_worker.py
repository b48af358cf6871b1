"""Services mode: an order's confirmation email is sent by a real `celery worker` process through
Redis, exactly once, even when its task is enqueued twice and two pool processes take the two
copies at the same moment (the row lock and the status check of `notification_deliver`).

The worker runs on this test's PostgreSQL database and on a private queue of the pass's Redis.
It writes mail with Django's file-based backend into a temporary folder: the worker is another
process, so `mail.outbox` cannot see it. Settings choose the mail backend from EMAIL_HOST only,
so the worker is started through a small bootstrap that sets EMAIL_BACKEND and EMAIL_FILE_PATH
on the settings module before Celery loads it (no product code changes for the test).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from customers.models import Consent, Notification, Order
from customers.tasks import notification_deliver_task
from tests.factories import CustomerFactory
from tests.support.processes import process_start, process_stop

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
TASK = "customers.tasks.notification_deliver_task"
ORDERS = "/api/v1/orders/"
WORKER_BOOTSTRAP = """
import os, sys
import cmsproject.settings as settings_module
settings_module.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
settings_module.EMAIL_FILE_PATH = os.environ["ENGAGEMENT_TEST_MAIL_DIR"]
from celery.__main__ import main
sys.argv = ["celery", *sys.argv[1:]]
main()
"""


def _worker(queue: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-c", WORKER_BOOTSTRAP,
        "-A", "cmsproject", "worker", "--pool", "prefork", "--concurrency", "2",
        "--queues", queue, "--hostname", f"{queue}@%h", "--loglevel", "INFO",
        "--without-heartbeat", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    return process_start(argv, env, log)


def _forget_queue(queue: str) -> None:
    """Remove what Celery's Redis transport keeps for the private queue (only names carrying its
    token: the Redis may be shared)."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5)
    try:
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        for tag, payload in client.hscan_iter("unacked"):
            if queue.encode() in payload:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
        pidbox = "_kombu.binding.celery.pidbox"
        for member in client.smembers(pidbox):
            if queue.encode() in member:
                client.srem(pidbox, member)
        if not client.exists(pidbox):
            client.zrem("_kombu.binding_deadlines", "celery.pidbox")
    finally:
        client.close()


def _log_text(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


def _wait(condition: Callable[[], Any], timeout: float, what: str, worker: Any, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if worker.poll() is not None:
            break
        time.sleep(0.1)
    tail = "\n".join(_log_text(log).splitlines()[-40:])
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; worker log:\n{tail}")


def test_a_worker_sends_an_orders_email_once_though_its_task_is_enqueued_twice(
    staff_client, events_buffer, tmp_path
):
    from cmsproject.celery import app
    from tests.customers.test_orders import order_body
    from tests.e2e.conftest import _with_database

    customer = CustomerFactory(preferences={"channels": ["email"]})
    Consent.objects.create(customer=customer, purpose="email", granted=True)
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    log = tmp_path / "worker.log"
    queue = f"engagement-test-{secrets.token_hex(4)}"
    env = {
        **os.environ,
        "DATABASE_URL": _with_database(
            os.environ["DATABASE_URL"], connection.settings_dict["NAME"]
        ),
        "ENGAGEMENT_TEST_MAIL_DIR": str(mail_dir),
        "DJANGO_SETTINGS_MODULE": "cmsproject.settings",
        "PYTHONUNBUFFERED": "1",
    }
    default_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue  # this process's sends go to the private queue
    worker = None
    try:
        # Given the order placed (its task enqueued after commit) and the same task enqueued
        # again (a producer retry), both waiting before any worker runs
        placed = staff_client.post(ORDERS, order_body(customer), format="json")
        assert placed.status_code == 201, placed.content
        row = Notification.objects.get(customer=customer, channel="email")
        assert row.status == "pending"
        notification_deliver_task.delay(row.pk)

        # When a worker with two pool processes starts and takes both
        worker = _worker(queue, env, log)
        _wait(
            lambda: (
                _log_text(log).count(f"Task {TASK}[") >= 2
                and _log_text(log).count("succeeded in") >= 2
            ),
            90,
            "the worker to run both copies of the task",
            worker,
            log,
        )

        # Then one email was written, and the row says sent after one attempt
        files = list(mail_dir.iterdir())
        assert len(files) == 1, [f.read_text(errors="replace")[:300] for f in files]
        message = files[0].read_text()
        assert "Subject: Order confirmed" in message
        assert f"To: {customer.email}" in message
        assert "Total: 37.50 EUR" in message
        assert message.count("X-Notification-Key:") == 1
        row.refresh_from_db()
        assert (row.status, row.attempts) == ("sent", 1)

        # And posting the order number again enqueues and sends nothing more
        again = staff_client.post(ORDERS, order_body(customer), format="json")
        assert again.status_code == 200
        time.sleep(1.0)
        assert len(list(mail_dir.iterdir())) == 1
        assert Order.objects.count() == 1
        assert _log_text(log).count("succeeded in") == 2
    finally:
        app.conf.task_default_queue = default_queue
        if worker is not None:
            process_stop(worker)
        _forget_queue(queue)
