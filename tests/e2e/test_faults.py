"""The services-mode stack through real outages, with nothing restarted but the failed service
(DESIGN.md, "The write path for events" and "Security and reliability").

gunicorn (HTTP), a Celery worker and Celery beat (which sends the drain every 2 s) run against a
PostgreSQL cluster and a Redis server of this module's own (`tests.support.private_services`),
so stopping them disturbs no other test run or developer server.

1. Redis crashes: ingestion and health answer 503 problem+json, never 500; health names the
   cache, the broker and the channel layer (the errors themselves for staff only). Redis starts
   again, empty, at the same address: the first request after it answers is served, by every
   web process, and the drain, whose consumer group went with the old Redis, stores what was
   accepted since.
2. PostgreSQL stops (`pg_ctl stop -m fast`, then start: a restart with an outage long enough to
   look at): what needs the database answers 503 problem+json (DRF views, GraphQL, the admin),
   ingestion keeps accepting, anonymous and with an API key known from its last reading (events
   wait in the stream), health names the database (to staff tokens too);
   once it accepts connections again, the same web processes and worker carry on at once.
3. PostgreSQL stops while the worker holds a batch it has read and cannot store, and the worker is
   SIGKILLed: a new worker claims the batch once the database is back. (A worker killed inside
   its INSERT, with the database up, is `tests/analytics/test_pipeline_reliability.py`.)

Every scenario compares the ids the API answered 202 for with the ids in the events table: each
exactly once, none of the refused ones, and the roll-ups count each event once. The measured
timings are printed (pytest -s). Costs about 65 s, most of it starting the processes.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from analytics.buffer import GROUP
from tests.support.cms import (
    celery_beat_start,
    celery_worker_start,
    gunicorn_start,
    manage,
    service_env,
)
from tests.support.private_services import PrivatePostgres, PrivateRedis
from tests.support.processes import log_tail, process_stop, wait_for

pytestmark = [pytest.mark.services, pytest.mark.e2e]

PROBLEM = "application/problem+json"
QUEUE = "celery"  # the Redis is private: the default queue, where beat sends
CLAIM_IDLE_MS = 1000  # CMS_EVENTS_CLAIM_IDLE_MS: a dead consumer's entries are claimed after 1 s
STAFF = ("faults-staff", "faults-staff-password-1")
DRAIN_BUDGET_S = 30  # last accepted event -> stored (DESIGN.md allows roll-ups 60 s behind)
REQUEST_BUDGET_S = 5  # an answer during an outage, 503 or not, comes within this

_ids = itertools.count()


# --- the stack ------------------------------------------------------------------------------------


@dataclass
class Stack:
    postgres: PrivatePostgres
    redis: PrivateRedis
    env: dict[str, str]
    workdir: Path
    base_url: str
    api_key: str
    database_url: str
    prefix: str
    web: subprocess.Popen[bytes]
    beat: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes] | None = None
    workers_started: int = 0

    def worker_start(self) -> subprocess.Popen[bytes]:
        self.workers_started += 1
        name = f"faults-{self.workers_started}"
        self.worker = celery_worker_start(
            self.env, self.workdir / f"{name}.log", queue=QUEUE, hostname=name
        )
        return self.worker

    @property
    def worker_log(self) -> Path:
        return self.workdir / f"faults-{self.workers_started}.log"

    def consumer_of(self, worker: subprocess.Popen[bytes]) -> str:
        return f"{socket.gethostname()}-{worker.pid}"  # RedisStreamBuffer's default consumer name

    @property
    def stream(self) -> str:
        return f"{self.prefix}:events"  # analytics.buffer.stream_key() for this prefix

    def alive(self) -> None:
        """The web server, beat and the current worker still run: none exited on the fault."""
        for name, proc in (("gunicorn", self.web), ("beat", self.beat), ("worker", self.worker)):
            assert proc is not None and proc.poll() is None, f"{name} exited: {proc.returncode}"

    def stored(self, event_type: str) -> list[str]:
        """Ids in the events table for this type, one per row (a double would show twice)."""
        import psycopg

        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT id FROM analytics_event WHERE type = %s", (event_type,)
            ).fetchall()
        return sorted(row[0] for row in rows)

    def rollup_counts(self, event_type: str) -> dict[str, int]:
        import psycopg

        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT interval, sum(count) FROM analytics_eventrollup "
                "WHERE event_type = %s GROUP BY interval",
                (event_type,),
            ).fetchall()
        return {interval: int(total) for interval, total in rows}

    def stream_state(self) -> tuple[int, dict[str, int]]:
        """(stream length, {consumer: pending entries})."""
        import redis

        client = redis.Redis.from_url(self.redis.url(), socket_timeout=2)
        try:
            length = int(client.xlen(self.stream))
            try:
                summary = client.xpending(self.stream, GROUP)
            except redis.ResponseError:  # no group yet
                return length, {}
            return length, {c["name"].decode(): int(c["pending"]) for c in summary["consumers"]}
        finally:
            client.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("faults")
    cleanups: list[Any] = []
    try:
        postgres = PrivatePostgres.create()
        cleanups.append(postgres.remove)
        postgres.start()
        postgres.create_database("cms")
        redis_server = PrivateRedis(workdir)
        cleanups.append(redis_server.remove)
        redis_server.start()
        prefix = f"cms-faults-{secrets.token_hex(3)}"
        database_url = postgres.url("cms")
        env = service_env(
            database_url=database_url,
            redis_url=redis_server.url(),
            prefix=prefix,
            workdir=workdir,
            claim_idle_ms=CLAIM_IDLE_MS,
            secret_key="faults-tests-only-0123456789abcdef0123456789abcdef",
        )
        env["CMS_COOKIES_SECURE"] = "0"  # the admin session cookie over plain HTTP
        # An API key is trusted for a second after each reading, so the outages below outlast it
        # and the key must be served from its last reading.
        env["CMS_API_KEY_CACHE_SECONDS"] = "1"
        manage(env, "migrate", "--noinput", "-v", "0")
        out = manage(
            env,
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model\n"
            "from cmsproject.services import api_key_create\n"
            f"get_user_model().objects.create_superuser({STAFF[0]!r}, 'f@example.com', "
            f"{STAFF[1]!r})\n"
            "_, raw = api_key_create(name='faults', scopes=['events:write'], created_by=None)\n"
            "print('KEY=' + raw)",
        )
        api_key = next(line[4:] for line in out.splitlines() if line.startswith("KEY="))
        beat = celery_beat_start(
            env, workdir / "beat.log", schedule=workdir / "celerybeat-schedule"
        )
        cleanups.append(lambda: process_stop(beat))
        base_url, web = gunicorn_start(env, workdir / "web.log", workers=2)
        cleanups.append(lambda: process_stop(web))
        built = Stack(
            postgres, redis_server, env, workdir, base_url, api_key, database_url, prefix, web, beat
        )
        built.worker_start()
        cleanups.append(lambda: built.worker and process_stop(built.worker))
        yield built
    finally:
        for cleanup in reversed(cleanups):
            with contextlib.suppress(Exception):
                cleanup()


# --- clients --------------------------------------------------------------------------------------


@dataclass
class Ingest:
    """Posts events as browsers (anonymous, one at a time) and servers (an API key, batches) do,
    and remembers the ids the API accepted. An answer other than 202 must be a 503 problem."""

    stack: Stack
    event_type: str
    accepted: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.stack.base_url, timeout=REQUEST_BUDGET_S)

    def _event(self) -> dict[str, Any]:
        return {
            "id": f"{self.event_type}-{next(_ids):05d}",
            "type": self.event_type,
            "anonymousId": f"fault-anonymous-{len(self.accepted) % 7}",
            "properties": {"k": 1},
        }

    def _record(self, response: httpx.Response, ids: list[str]) -> int:
        if response.status_code == 202:
            self.accepted.update(ids)
        else:
            assert_problem(response, 503)
            self.refused.update(ids)
        return response.status_code

    def single(self) -> int:
        event = self._event()
        return self._record(self.http.post("/api/v1/events/", json=event), [event["id"]])

    def batch(self, size: int = 10) -> int:
        events = [self._event() for _ in range(size)]
        response = self.http.post(
            "/api/v1/events/batch/",
            json={"events": events},
            headers={"Authorization": f"Api-Key {self.stack.api_key}"},
        )
        if response.status_code == 202:
            assert response.json() == {"accepted": size, "rejected": []}
        return self._record(response, [e["id"] for e in events])

    def some(self, singles: int = 10, batches: int = 2) -> None:
        for _ in range(singles):
            assert self.single() == 202
        for _ in range(batches):
            assert self.batch() == 202

    def close(self) -> None:
        self.http.close()


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code}: {response.text[:500]}"
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


def staff_token(base_url: str) -> str:
    response = httpx.post(
        f"{base_url}/api/v1/auth/token/",
        json={"username": STAFF[0], "password": STAFF[1]},
        timeout=REQUEST_BUDGET_S,
    )
    assert response.status_code == 200, response.text
    return response.json()["access"]


def admin_session(base_url: str) -> httpx.Client:
    """A client logged in to the Django admin (a session in the database)."""
    client = httpx.Client(base_url=base_url, timeout=REQUEST_BUDGET_S)
    client.get("/admin/login/")
    response = client.post(
        "/admin/login/?next=/admin/",
        data={
            "username": STAFF[0],
            "password": STAFF[1],
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
            "next": "/admin/",
        },
        headers={"Referer": f"{base_url}/admin/login/"},
    )
    assert response.status_code == 302, response.text[:300]
    assert client.get("/admin/").status_code == 200
    return client


def health(base_url: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{base_url}/api/v1/health/", headers=headers, timeout=REQUEST_BUDGET_S)


def drained(stack: Stack, ingest: Ingest) -> bool:
    """Every accepted event stored, and the stream emptied (acknowledged after the commit)."""
    if not set(stack.stored(ingest.event_type)) >= ingest.accepted:
        return False
    length, pending = stack.stream_state()
    return length == 0 and not any(pending.values())


def assert_stored_exactly_once(stack: Stack, ingest: Ingest) -> None:
    stored = stack.stored(ingest.event_type)
    assert len(stored) == len(set(stored)), "an event is stored twice"
    assert set(stored) == ingest.accepted, (
        f"missing {sorted(ingest.accepted - set(stored))[:10]}, "
        f"not accepted {sorted(set(stored) - ingest.accepted)[:10]}"
    )
    assert not set(stored) & ingest.refused
    counts = stack.rollup_counts(ingest.event_type)
    assert counts == {interval: len(stored) for interval in ("minute", "hour", "day")}
    length, pending = stack.stream_state()
    assert length == 0
    assert sum(pending.values()) == 0


def wait_drained(stack: Stack, ingest: Ingest, what: str) -> None:
    try:
        wait_for(lambda: drained(stack, ingest), DRAIN_BUDGET_S, what, poll=0.05)
    except BaseException:
        print(f"worker log:\n{log_tail(stack.worker_log, 30)}")
        print(f"beat log:\n{log_tail(stack.workdir / 'beat.log', 10)}")
        raise


# --- 1. Redis -------------------------------------------------------------------------------------


def test_redis_restarted_empty_ingestion_health_and_the_drain_recover_by_themselves(stack: Stack):
    ingest = Ingest(stack, "fault_redis")
    token = staff_token(stack.base_url)
    try:
        # Given events accepted and drained: the worker's consumer group exists, and each web
        # process holds its Redis connections.
        ingest.some(singles=20)
        wait_drained(stack, ingest, "the events before the outage to be stored")

        # When Redis goes away (a crash: nothing of it survives).
        stack.redis.stop(signal.SIGKILL)
        down_at = time.monotonic()

        # Then ingestion answers 503 problem+json, and health names what failed. (One anonymous
        # event only: a web process that sends none keeps a connection Redis dropped.)
        assert ingest.single() == 503
        assert ingest.batch() == 503
        refusal_ms = (time.monotonic() - down_at) / 2 * 1000
        body = assert_problem(health(stack.base_url), 503)
        for name in ("cache", "broker", "channel_layer"):
            assert name in body["detail"]
            assert body["checks"][name] == "error"  # no error text for anonymous callers
        assert body["checks"]["database"] == "ok"
        staff = assert_problem(health(stack.base_url, token), 503)
        for name in ("cache", "broker", "channel_layer"):
            assert staff["checks"][name].startswith("error: "), staff["checks"]
        time.sleep(max(0.0, 2.0 - (time.monotonic() - down_at)))  # beat and worker notice too
        outage_s = time.monotonic() - down_at

        # When the same Redis address answers again, empty.
        launched = time.monotonic()
        stack.redis.start()  # returns once it answers PING
        back = time.monotonic()

        # Then every request is served again at once, by the same processes ...
        assert ingest.single() == 202
        first_202_s = time.monotonic() - back
        assert ingest.batch() == 202
        assert health(stack.base_url).status_code == 200
        health_200_s = time.monotonic() - back
        ingest.some(singles=20)
        # ... and the drain stores what was accepted since, in a stream its group went with.
        last_accept = time.monotonic()
        wait_drained(stack, ingest, "the drain to store what was accepted after")
        drained_s = time.monotonic() - last_accept
        recovered_s = time.monotonic() - back

        stack.alive()
        assert_stored_exactly_once(stack, ingest)
        print(
            f"\n[redis] outage {outage_s:.1f}s (503 in {refusal_ms:.0f} ms); redis-server start "
            f"-> PING {back - launched:.2f}s; PING -> first 202 {first_202_s:.2f}s, health 200 "
            f"{health_200_s:.2f}s; last 202 -> all stored {drained_s:.1f}s; PING -> all stored "
            f"{recovered_s:.1f}s; {len(ingest.accepted)} accepted, {len(ingest.refused)} refused"
        )
    finally:
        ingest.close()


# --- 2. PostgreSQL --------------------------------------------------------------------------------


def _database_endpoints(stack: Stack, token: str, admin: httpx.Client) -> list[httpx.Response]:
    """A login (DRF; its serializer reads the user), a staff read (DRF; the JWT's user), the
    admin index (plain Django; the session)."""
    login = httpx.post(
        f"{stack.base_url}/api/v1/auth/token/",
        json={"username": STAFF[0], "password": STAFF[1]},
        timeout=REQUEST_BUDGET_S,
    )
    staff_read = httpx.get(
        f"{stack.base_url}/api/v1/event-types/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=REQUEST_BUDGET_S,
    )
    return [login, staff_read, admin.get("/admin/")]


def test_postgres_restarted_what_needs_it_answers_503_then_everything_recovers(stack: Stack):
    ingest = Ingest(stack, "fault_pg")
    token = staff_token(stack.base_url)
    admin = admin_session(stack.base_url)
    try:
        # Given events accepted and drained: web and worker hold database connections.
        ingest.some()
        wait_drained(stack, ingest, "the events before the outage to be stored")
        assert [r.status_code for r in _database_endpoints(stack, token, admin)] == [200] * 3

        # When PostgreSQL stops (fast: its sessions are terminated).
        stack.postgres.stop("fast")
        down_at = time.monotonic()

        # Then what needs the database answers 503 problem+json, health names it ...
        for response in _database_endpoints(stack, token, admin):
            assert_problem(response, 503)
        body = assert_problem(health(stack.base_url), 503)
        assert "database" in body["detail"]
        assert body["checks"] == {
            "database": "error",
            "cache": "ok",
            "channel_layer": "ok",
            "broker": "ok",
        }
        # (A staff token cannot be checked without the database: its caller is told as anyone.)
        assert assert_problem(health(stack.base_url, token), 503)["checks"] == body["checks"]
        # ... and ingestion goes on, anonymous and with an API key (known from its last reading):
        # the events wait in the stream.
        while time.monotonic() - down_at < 3:  # beat sends the drain, which cannot store
            assert ingest.single() == 202
            assert ingest.batch() == 202
            time.sleep(0.1)
        outage_s = time.monotonic() - down_at
        assert stack.stream_state()[0] > 0

        # When PostgreSQL is back.
        stack.postgres.start()  # returns once it accepts connections
        back = time.monotonic()

        # Then the same processes serve from the database again at once ...
        assert health(stack.base_url).status_code == 200
        health_200_s = time.monotonic() - back
        assert [r.status_code for r in _database_endpoints(stack, token, admin)] == [200] * 3
        database_200_s = time.monotonic() - back
        ingest.some()
        # ... and the worker's drain stores what waited in the stream.
        last_accept = time.monotonic()
        wait_drained(stack, ingest, "the drain to store the events of the outage")
        drained_s = time.monotonic() - last_accept
        recovered_s = time.monotonic() - back

        stack.alive()
        assert_stored_exactly_once(stack, ingest)
        print(
            f"\n[postgres] outage {outage_s:.1f}s; accepting again -> health 200 "
            f"{health_200_s:.2f}s, login + staff read + admin 200 {database_200_s:.2f}s; "
            f"last 202 -> all stored {drained_s:.1f}s; accepting again -> all stored "
            f"{recovered_s:.1f}s; "
            f"{len(ingest.accepted)} accepted, {len(ingest.refused)} refused"
        )
    finally:
        admin.close()
        ingest.close()


# --- 3. PostgreSQL outage and a dead worker -------------------------------------------------------


def test_a_worker_killed_holding_a_batch_during_a_postgres_outage_loses_nothing(stack: Stack):
    ingest = Ingest(stack, "fault_kill")
    try:
        # Given PostgreSQL down, and events the worker has read but cannot store.
        stack.postgres.stop("fast")
        ingest.some(singles=20, batches=0)
        worker = stack.worker
        assert worker is not None
        consumer = stack.consumer_of(worker)
        held = wait_for(
            lambda: stack.stream_state()[1].get(consumer, 0),
            15,
            "the worker to read events it cannot store (pending on its consumer)",
        )

        # When the worker is SIGKILLed holding them, more arrive, and PostgreSQL comes back.
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        ingest.some(singles=10, batches=0)
        stack.postgres.start()
        back = time.monotonic()
        stack.worker_start()

        # Then the new worker claims the dead one's batch and stores everything once.
        wait_drained(stack, ingest, "the new worker to store the dead one's batch")
        recovered_s = time.monotonic() - back

        stack.alive()
        assert_stored_exactly_once(stack, ingest)
        print(
            f"\n[kill] {len(ingest.accepted)} events, {held} pending on the killed consumer; "
            f"postgres back and a new worker -> all stored {recovered_s:.1f}s"
        )
    finally:
        ingest.close()
