"""The event pipeline under real failures: real gunicorn, real Celery workers, real PostgreSQL and
Redis, no mocks (DESIGN.md, "The write path for events").

1. 1,000 events (950 distinct ids and 50 re-sent ones) go in through the HTTP API. A Celery
   worker drains the first half, then is SIGKILLed in the middle of the second batch: it has read
   the entries (pending on its consumer in the stream) and its transaction is waiting to insert
   them. A second worker (a new consumer) claims what the dead one left and drains it. Every id is
   stored exactly once and the roll-ups count each event once.
2. An entry the database refuses (U+0000, which the API itself rejects) is dropped and counted;
   the events of its batch are stored, the stream empties.
3. With Redis gone, ingestion and health answer 503 problem+json, never 500.

The worker is made to stop at a known point without touching product code: the test holds a
PostgreSQL `SHARE` lock on the events table, so the worker's INSERT waits (a slow database, as
far as the worker can tell) while the test checks XPENDING and kills it.

Everything runs against a PostgreSQL database and Redis key prefix of its own (Redis db 9 of the
pass's Redis, plus a private Celery queue), and a private `redis-server` for the outage, so no
other test run or developer server is disturbed. Costs about 30 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from analytics.buffer import GROUP
from tests.e2e.conftest import (
    _database_create,
    _database_drop,
    _redis_forget,
    _with_database,
)
from tests.support.cms import gunicorn_start, manage, service_env
from tests.support.processes import (
    free_port,
    log_tail,
    port_open,
    process_start,
    process_stop,
    wait_for,
)

pytestmark = [pytest.mark.services, pytest.mark.e2e]

REDIS_DB = 9
DRAIN_TASK = "analytics.tasks.events_drain_task"
EVENT_TYPE = "reliability_view"
PROBLEM = "application/problem+json"
CLAIM_IDLE_MS = 1000  # CMS_EVENTS_CLAIM_IDLE_MS for the workers: the test must not wait 30 s
RECOVERY_BUDGET_S = 60  # DESIGN.md: roll-ups at most 60 s behind


# --- the stack: a database, a key prefix, a web server --------------------------------------------


@dataclass
class Stack:
    env: dict[str, str]
    database_url: str
    redis_url: str
    prefix: str
    queue: str
    base_url: str
    api_key: str
    workdir: Path

    @property
    def stream(self) -> str:
        return f"{self.prefix}:events"  # analytics.buffer.stream_key() for this prefix

    def psql(self, **kwargs: Any) -> Any:
        import psycopg

        url = self.database_url.replace("postgres://", "postgresql://", 1)
        return psycopg.connect(url, connect_timeout=5, **kwargs)

    def redis(self) -> Any:
        import redis

        return redis.Redis.from_url(self.redis_url, socket_timeout=5)


def _forget_queue(redis_url: str, queue: str) -> None:
    """Remove what Celery's Redis transport keeps for our queue and our workers (db 9 may be
    shared with another run: only names carrying this run's token are touched)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        # A worker killed with a task reserved leaves it in kombu's `unacked` hash.
        for tag, payload in client.hscan_iter("unacked"):
            if queue.encode() in payload:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
        # A SIGKILLed worker never unbinds its remote-control mailbox.
        pidbox = "_kombu.binding.celery.pidbox"
        for member in client.smembers(pidbox):
            if queue.encode() in member:
                client.srem(pidbox, member)
        if not client.exists(pidbox):
            client.zrem("_kombu.binding_deadlines", "celery.pidbox")
    finally:
        client.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("pipeline-reliability")
    token = secrets.token_hex(5)
    database = f"cms_reliability_{token}"
    prefix = f"cms-reliability-{token}"
    database_url = _with_database(os.environ["DATABASE_URL"], database)
    redis_url = _with_database(os.environ["REDIS_URL"], str(REDIS_DB))
    queue = f"reliability-{token}"
    env = service_env(
        database_url=database_url,
        redis_url=redis_url,
        prefix=prefix,
        workdir=workdir,
        claim_idle_ms=CLAIM_IDLE_MS,
        secret_key="reliability-tests-only-0123456789abcdef0123456789",
    )
    cleanups: list[Callable[[], None]] = []
    _database_create(database)
    cleanups.append(lambda: _database_drop(database))
    cleanups.append(lambda: _redis_forget(redis_url, prefix))
    cleanups.append(lambda: _forget_queue(redis_url, queue))
    try:
        manage(env, "migrate", "--noinput", "-v", "0")
        out = manage(
            env,
            "shell",
            "-c",
            "from cmsproject.services import api_key_create\n"
            "_, raw = api_key_create(name='reliability', scopes=['events:write'], "
            "created_by=None)\n"
            "print('KEY=' + raw)",
        )
        api_key = next(line[4:] for line in out.splitlines() if line.startswith("KEY="))
        base_url, web = gunicorn_start(env, workdir / "web.log", workers=2)
        cleanups.append(lambda: process_stop(web))
        yield Stack(env, database_url, redis_url, prefix, queue, base_url, api_key, workdir)
    finally:
        for cleanup in reversed(cleanups):
            with contextlib.suppress(Exception):
                cleanup()


# --- test 1: a worker killed mid-batch ------------------------------------------------------------


def _events() -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]], list[str]]:
    """Ten requests of 100 events: the first five carry ids 0-499; the last five carry ids
    500-949 plus 50 re-sends (25 ids of the first half, already stored when they are re-sent,
    and 25 of the second half, re-sent within the batch the worker is killed in)."""
    moment = (datetime.now(UTC) - timedelta(minutes=10)).replace(microsecond=0).isoformat()

    def event(n: int) -> dict[str, Any]:
        subject = (
            {"userId": f"rel-user-{n % 30}"} if n % 3 == 0 else {"anonymousId": f"rel-a-{n % 50}"}
        )
        return {
            "id": f"rel-{n:04d}",
            "type": EVENT_TYPE,
            "timestamp": moment,
            "properties": {"n": n},
            **subject,
        }

    first = [event(n) for n in range(500)]
    second = [event(n) for n in range(500, 950)]
    second += [event(n) for n in range(0, 500, 20)]  # 25 re-sends of stored events
    second += [event(n) for n in range(500, 950, 18)]  # 25 re-sends within the batch
    random.Random(7).shuffle(second)
    distinct = sorted({e["id"] for e in first + second})

    def requests(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        return [events[start : start + 100] for start in range(0, len(events), 100)]

    return requests(first), requests(second), distinct


def _post_all(stack: Stack, batches: list[list[dict[str, Any]]]) -> None:
    headers = {"Authorization": f"Api-Key {stack.api_key}"}
    with httpx.Client(base_url=stack.base_url, headers=headers, timeout=30) as client:
        for batch in batches:
            response = client.post("/api/v1/events/batch/", json={"events": batch})
            assert response.status_code == 202, response.text
            assert response.json() == {"accepted": len(batch), "rejected": []}


def _worker(stack: Stack, name: str) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "celery", "-A", "cmsproject", "worker", "--pool", "solo",
        "--queues", stack.queue, "--hostname", f"{stack.queue}-{name}@%h",
        "--loglevel", "INFO",
        "--without-heartbeat", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    return process_start(argv, stack.env, stack.workdir / f"worker-{name}.log")


@dataclass
class Observed:
    """What the test reads from PostgreSQL and Redis."""

    stack: Stack
    db: Any
    redis: Any

    def stored(self) -> int:
        from psycopg import sql

        query = sql.SQL("SELECT count(*) FROM {} WHERE type = %s").format(
            sql.Identifier(_table("Event"))
        )
        return self.db.execute(query, (EVENT_TYPE,)).fetchone()[0]

    def stream_length(self) -> int:
        return int(self.redis.xlen(self.stack.stream))

    def pending(self) -> dict[str, int]:
        """XPENDING per consumer: entries read by a consumer and not acknowledged."""
        import redis

        try:
            summary = self.redis.xpending(self.stack.stream, GROUP)
        except redis.ResponseError:  # no group yet: no worker has read the stream
            return {}
        return {
            consumer["name"].decode(): int(consumer["pending"]) for consumer in summary["consumers"]
        }

    def drained(self, stored: int) -> bool:
        return (
            self.stored() == stored
            and self.stream_length() == 0
            and sum(self.pending().values()) == 0
        )


def _table(model: str) -> str:
    from django.apps import apps

    return apps.get_model("analytics", model)._meta.db_table


def _blocked_inserts(observed: Observed, database: str) -> list[int]:
    """Backends of the test database waiting for a lock in an INSERT into the events table."""
    rows = observed.db.execute(
        "SELECT pid, query FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
        (database,),
    ).fetchall()
    return [pid for pid, query in rows if "INSERT INTO" in query and _table("Event") in query]


def test_a_worker_killed_mid_batch_loses_nothing_and_stores_nothing_twice(stack: Stack):
    from celery import Celery
    from psycopg import sql

    first_half, second_half, distinct = _events()
    database = stack.database_url.rsplit("/", 1)[1]
    producer = Celery("reliability-test", broker=stack.redis_url)
    workers: list[subprocess.Popen[bytes]] = []
    redis_client = stack.redis()
    db = stack.psql(autocommit=True)
    locker = stack.psql()  # holds the table lock in an open transaction
    observed = Observed(stack, db, redis_client)

    def drain_soon() -> None:
        producer.send_task(DRAIN_TASK, queue=stack.queue)

    try:
        # First half: posted, then drained and acknowledged by worker 1.
        _post_all(stack, first_half)
        assert observed.stream_length() == 500
        first = _worker(stack, "1")
        workers.append(first)
        drain_soon()
        wait_for(lambda: observed.drained(500), 45, "worker 1 to drain the first 500 events")

        # Second half: worker 1 reads it, and its INSERT waits behind the test's lock.
        locker.execute(
            sql.SQL("LOCK TABLE {} IN SHARE MODE").format(sql.Identifier(_table("Event")))
        )
        _post_all(stack, second_half)
        assert observed.stream_length() == 500
        drain_soon()
        dead_consumer = f"{socket.gethostname()}-{first.pid}"  # RedisStreamBuffer's default
        blocked = wait_for(
            lambda: (
                observed.pending().get(dead_consumer) == 500
                and _blocked_inserts(observed, database)
            ),
            20,
            "worker 1 to read the second half and wait in its INSERT",
        )

        # SIGKILL in the middle of the batch: read, not committed, not acknowledged.
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        pending_at_kill = observed.pending()
        stored_at_kill = observed.stored()
        assert pending_at_kill == {dead_consumer: 500}
        assert observed.stream_length() == 500
        assert stored_at_kill == 500  # 0 < stored < 950: the first batch committed, not this one
        locker.rollback()  # the "slow database" recovers; the dead worker's transaction aborts
        wait_for(lambda: not _blocked_inserts(observed, database), 10, "the dead worker's backend")

        # A new worker is a new consumer: it claims the dead one's entries once they are idle.
        started = time.monotonic()
        workers.append(_worker(stack, "2"))
        next_tick = started
        while not observed.drained(950):
            now = time.monotonic()
            assert now < started + RECOVERY_BUDGET_S, (
                f"not drained within {RECOVERY_BUDGET_S}s: stored {observed.stored()}, stream "
                f"{observed.stream_length()}, pending {observed.pending()}\n"
                f"{log_tail(stack.workdir / 'worker-2.log')}"
            )
            if now >= next_tick:  # as beat would: a drain task every 2 s
                drain_soon()
                next_tick = now + 2
            time.sleep(0.1)
        recovered_in = time.monotonic() - started

        # Every accepted id exactly once; roll-ups count each event once; nothing left over.
        events = sql.Identifier(_table("Event"))
        ids = db.execute(
            sql.SQL("SELECT id FROM {} WHERE type = %s").format(events), (EVENT_TYPE,)
        ).fetchall()
        assert sorted(row[0] for row in ids) == distinct
        assert len(distinct) == 950
        rollups = db.execute(
            sql.SQL("SELECT interval, count FROM {} WHERE event_type = %s").format(
                sql.Identifier(_table("EventRollup"))
            ),
            (EVENT_TYPE,),
        ).fetchall()
        assert sorted(rollups) == [("day", 950), ("hour", 950), ("minute", 950)]
        per_subject = db.execute(
            sql.SQL("SELECT sum(count) FROM {} WHERE event_type = %s").format(
                sql.Identifier(_table("SubjectDailyRollup"))
            ),
            (EVENT_TYPE,),
        ).fetchone()[0]
        assert per_subject == 950
        assert observed.stream_length() == 0
        assert sum(observed.pending().values()) == 0
        assert recovered_in < RECOVERY_BUDGET_S
        print(
            f"\nkilled worker 1 (pid {first.pid}) blocked in INSERT (backend {blocked}); "
            f"pending at kill {pending_at_kill}, stored at kill {stored_at_kill}; "
            f"worker 2 drained the rest in {recovered_in:.1f}s"
        )
    finally:
        with contextlib.suppress(Exception):
            locker.rollback()
        locker.close()
        for worker in workers:
            process_stop(worker)
        db.close()
        redis_client.close()
        producer.close()


# --- test 2: one event the database refuses -------------------------------------------------------

POISON_TYPE = "reliability_poison"
POISON_BUDGET_S = 20


def test_one_event_the_database_refuses_does_not_stall_the_events_sent_with_it(stack: Stack):
    """PostgreSQL cannot store U+0000 in text or jsonb. The API refuses such an event, but an entry
    can still reach the stream (written by an older version, or a bug in validation): the drain
    must drop it and store the rest of its batch, not fail the batch on every pass forever."""
    from celery import Celery
    from psycopg import sql

    def event(n: int) -> dict[str, Any]:
        return {
            "id": f"poison-{n}",
            "type": POISON_TYPE,
            "anonymousId": "p",
            "properties": {"n": n},
        }

    good = [event(n) for n in range(9)]
    bad = {**event(99), "properties": {"t": "\0"}}
    producer = Celery("reliability-test", broker=stack.redis_url)
    db = stack.psql(autocommit=True)
    redis_client = stack.redis()
    worker = None
    stored_query = sql.SQL("SELECT id FROM {} WHERE type = %s").format(
        sql.Identifier(_table("Event"))
    )
    dropped_query = sql.SQL("SELECT coalesce(sum(count), 0) FROM {}").format(
        sql.Identifier(_table("DroppedEvents"))
    )
    try:
        dropped_before = db.execute(dropped_query).fetchone()[0]
        headers = {"Authorization": f"Api-Key {stack.api_key}"}
        with httpx.Client(base_url=stack.base_url, headers=headers, timeout=30) as client:
            refused = client.post("/api/v1/events/batch/", json={"events": [bad]})
        assert refused.status_code == 202, refused.text
        assert refused.json()["accepted"] == 0  # the API's own check
        # The same event, written to the stream as events_accept would have: mid-batch.
        _post_all(stack, [good[:4]])
        now = datetime.now(UTC).isoformat()
        stamped = {**bad, "userId": None, "timestamp": now, "receivedAt": now}
        redis_client.xadd(stack.stream, {"e": json.dumps(stamped, separators=(",", ":"))})
        _post_all(stack, [good[4:]])
        assert redis_client.xlen(stack.stream) == 10

        worker = _worker(stack, "3")
        deadline = time.monotonic() + POISON_BUDGET_S
        next_tick = 0.0
        stored: list[str] = []
        while time.monotonic() < deadline:
            stored = sorted(row[0] for row in db.execute(stored_query, (POISON_TYPE,)))
            if len(stored) == len(good) and redis_client.xlen(stack.stream) == 0:
                break
            if time.monotonic() >= next_tick:
                producer.send_task(DRAIN_TASK, queue=stack.queue)
                next_tick = time.monotonic() + 2
            time.sleep(0.1)

        assert stored == sorted(e["id"] for e in good), (
            f"{len(stored)} of {len(good)} good events stored after {POISON_BUDGET_S}s; worker "
            f"log:\n{log_tail(stack.workdir / 'worker-3.log', 12)}"
        )
        assert redis_client.xlen(stack.stream) == 0
        assert sum(Observed(stack, db, redis_client).pending().values()) == 0
        assert db.execute(dropped_query).fetchone()[0] == dropped_before + 1
    finally:
        if worker is not None:
            process_stop(worker)
        with contextlib.suppress(Exception):
            redis_client.delete(stack.stream)  # what could not be drained goes with the test
        db.close()
        redis_client.close()
        producer.close()


# --- test 3: Redis gone ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_down_server(stack: Stack) -> Iterator[str]:
    """A web server on the stack's database and a private redis-server, which is then killed."""
    port = free_port()
    log = stack.workdir / "redis-down.log"
    redis_argv = [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--daemonize", "no",
    ]  # fmt: skip
    redis_proc = process_start(redis_argv, stack.env, stack.workdir / "private-redis.log")
    web = None
    try:
        wait_for(lambda: port_open(port), 10, "the private redis-server")
        env = {**stack.env, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        base_url, web = gunicorn_start(env, log, workers=1)
        os.kill(redis_proc.pid, signal.SIGKILL)
        redis_proc.wait(timeout=10)
        assert not port_open(port)
        yield base_url
    finally:
        if web is not None:
            process_stop(web)
        process_stop(redis_proc)


def test_with_redis_down_ingestion_answers_503_problem_json(redis_down_server: str):
    with httpx.Client(base_url=redis_down_server, timeout=30) as client:
        single = client.post("/api/v1/events/", json={"type": "page_view", "anonymousId": "a"})
        batch = client.post(
            "/api/v1/events/batch/", json={"events": [{"type": "page_view", "anonymousId": "a"}]}
        )

    for response in (single, batch):
        assert response.status_code == 503, response.text
        assert response.headers["Content-Type"] == PROBLEM
        assert response.json()["status"] == 503


def test_with_redis_down_health_answers_503_naming_cache_and_broker(redis_down_server: str):
    response = httpx.get(f"{redis_down_server}/api/v1/health/", timeout=30)

    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == PROBLEM
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"] != "ok"
    assert body["checks"]["broker"] != "ok"
    assert "cache" in body["detail"] and "broker" in body["detail"]
