"""The visitor mix `bench/load.py` drives with `locust --headless`, one Locust run per user step.

Each user is a browser session paced at `LOAD_USER_RPS` requests/s (`constant_throughput`):
70 % personalized delivery of the home page, 20 % event ingestion (single events, and one request
in ten a batch), 10 % GraphQL. Every request carries an anonymous id from the pool `load.py`
wrote; a share of them are VIP members, so the personalized path runs.

Locust's own statistics round latencies and are reset when spawning completes, which would hide
errors made during the ramp. So this file keeps its own record, written as JSON to `LOAD_OUT` when
Locust quits: exact latencies of the requests started after spawning completed, the status of
every request (ramp included), and the id of every event sent with its outcome, which `load.py`
compares with `analytics_event` once the drain is done.

The run ends here too, not by `--run-time`: Locust's time limit can kill a user in the middle of
a request (even with `--stop-timeout`), and an event whose answer never came cannot be accounted
for. After `LOAD_SECONDS` no task starts; once the requests in flight are answered, Locust quits.
`--run-time` stays as a safety net.

Configuration comes from the environment (set by load.py): `LOAD_POOL` (JSON file with the
anonymous and VIP ids), `LOAD_OUT`, `LOAD_SECONDS`, `LOAD_RUN` (event id prefix), `LOAD_STEP`,
`LOAD_USER_RPS`, `LOAD_VIP_SHARE`, `LOAD_BATCH_SIZE`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
from load import DELIVER_PATH, GRAPHQL_BODY  # this folder is on sys.path (Locust puts it there)
from locust import FastHttpUser, constant_throughput, events, task
from locust.env import Environment
from locust.exception import StopUser

CATEGORIES = ("shoes", "shirts", "bags", "hats", "socks")

POOL = json.loads(Path(os.environ["LOAD_POOL"]).read_text()) if "LOAD_POOL" in os.environ else {}
VISITORS: list[str] = POOL.get("visitors", ["anonymous"])
VIPS: list[str] = POOL.get("vips", []) or VISITORS
VIP_SET = frozenset(POOL.get("vips", []))
RUN = os.environ.get("LOAD_RUN", "load")
STEP = os.environ.get("LOAD_STEP", "0")
USER_RPS = float(os.environ.get("LOAD_USER_RPS", "5"))
VIP_SHARE = float(os.environ.get("LOAD_VIP_SHARE", "0.1"))
BATCH_SIZE = int(os.environ.get("LOAD_BATCH_SIZE", "20"))
OUT = os.environ.get("LOAD_OUT")
SECONDS = float(os.environ.get("LOAD_SECONDS", "30"))
DRAIN_TIMEOUT = 15.0  # longer than FastHttpUser's network timeout: every answer comes in

# What this process saw; written once, when Locust quits.
measured_from: float | None = None  # set when every user is spawned
deadline = time.time() + SECONDS  # reset when the test starts
in_flight = 0
latencies_ms: dict[str, list[float]] = defaultdict(list)  # after spawning only
statuses: dict[str, Counter[str]] = defaultdict(Counter)  # every request, ramp included
measured_statuses: dict[str, Counter[str]] = defaultdict(Counter)
event_ids: dict[str, list[str]] = {"accepted": [], "refused": [], "unknown": []}
_sequence = itertools.count()


def _event_id() -> str:
    return f"{RUN}-{STEP}-{os.getpid()}-{next(_sequence)}"


def _visitor() -> str:
    return random.choice(VIPS) if random.random() < VIP_SHARE else random.choice(VISITORS)


def _event(anonymous_id: str) -> dict[str, Any]:
    kind = random.random()
    if kind < 0.6:
        event_type, properties = "page_view", {"path": random.choice(("/", "/faq", "/sale"))}
    elif kind < 0.9:
        event_type = "product_view"
        properties = {"sku": f"SKU-{random.randrange(50)}", "category": random.choice(CATEGORIES)}
    else:
        event_type, properties = "add_to_cart", {"sku": f"SKU-{random.randrange(50)}"}
    return {
        "id": _event_id(),
        "type": event_type,
        "anonymousId": anonymous_id,
        "properties": properties,
    }


def _outcome(status: int) -> str:
    """Where an answered event stands: 202 stored (once the drain runs), any other 4xx refused
    (nothing was appended), anything else (5xx, no answer) unknown: it may have been appended."""
    if status == 202:
        return "accepted"
    if 400 <= status < 500:
        return "refused"
    return "unknown"


@events.test_start.add_listener
def _started(environment: Environment, **_kwargs: Any) -> None:
    global deadline
    deadline = time.time() + SECONDS
    gevent.spawn(_quit_when_done, environment)


def _quit_when_done(environment: Environment) -> None:
    gevent.sleep(max(0.0, deadline - time.time()))
    waited = time.time()
    while in_flight and time.time() - waited < DRAIN_TIMEOUT:
        gevent.sleep(0.05)
    if environment.runner is not None:
        environment.runner.quit()


@events.spawning_complete.add_listener
def _spawned(user_count: int, **_kwargs: Any) -> None:
    global measured_from
    measured_from = time.time()


def _open() -> None:
    """Called first by every task: past the deadline the user stops before sending anything."""
    if time.time() >= deadline:
        raise StopUser()


@events.request.add_listener
def _request(
    name: str,
    response_time: float,
    response: Any,
    exception: BaseException | None,
    start_time: float,
    **_kwargs: Any,
) -> None:
    # "200"/"202" for a success; "error <why>" for a failure, which load.py counts.
    status = getattr(response, "status_code", 0) or 0
    if exception is None:
        label = str(status)
    elif not status:
        label = f"error no answer ({type(exception).__name__})"
    elif 200 <= status < 300:
        label = f"error {status}: {exception}"
    else:
        label = f"error {status}"
    statuses[name][label] += 1
    if measured_from is not None and start_time >= measured_from:
        measured_statuses[name][label] += 1
        latencies_ms[name].append(response_time)


@events.quitting.add_listener
def _write(**_kwargs: Any) -> None:
    if not OUT:
        return
    payload = {
        "measured_from": measured_from,
        "ended_at": min(deadline, time.time()),  # no request starts after the deadline
        "in_flight_at_quit": in_flight,
        "latencies_ms": latencies_ms,
        "statuses": statuses,
        "measured_statuses": measured_statuses,
        "event_ids": event_ids,
    }
    Path(OUT).write_text(json.dumps(payload))


class Visitor(FastHttpUser):
    wait_time = constant_throughput(USER_RPS)
    network_timeout = 10.0
    connection_timeout = 10.0

    @task(70)
    def deliver(self) -> None:
        _open()
        visitor = _visitor()
        with (
            self._counted(),
            self.client.get(
                DELIVER_PATH,
                headers={"X-Anonymous-Id": visitor},
                name="delivery",
                catch_response=True,
            ) as response,
        ):
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
            # The segment list names `vip` for members only: the right variant under load too.
            elif (b'"vip"' in (response.content or b"")) != (visitor in VIP_SET):
                response.failure("wrong personalization")

    @task(18)
    def ingest(self) -> None:
        _open()
        event = _event(_visitor())
        self._post_events("/api/v1/events/", event, [event["id"]], "ingest")

    @task(2)
    def ingest_batch(self) -> None:
        _open()
        visitor = _visitor()
        batch = [_event(visitor) for _ in range(BATCH_SIZE)]
        ids = [event["id"] for event in batch]
        self._post_events("/api/v1/events/batch/", {"events": batch}, ids, "ingest batch")

    @task(10)
    def graphql(self) -> None:
        _open()
        with (
            self._counted(),
            self.client.post(
                "/graphql/",
                data=GRAPHQL_BODY,
                headers={"Content-Type": "application/json", "X-Anonymous-Id": _visitor()},
                name="graphql",
                catch_response=True,
            ) as response,
        ):
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
            elif b'"errors"' in (response.content or b""):
                response.failure("GraphQL errors")

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        global in_flight
        in_flight += 1
        try:
            yield
        finally:
            in_flight -= 1

    def _post_events(self, path: str, body: dict[str, Any], ids: list[str], name: str) -> None:
        status = 0
        rejected: set[int] = set()
        try:
            with (
                self._counted(),
                self.client.post(
                    path,
                    data=json.dumps(body, separators=(",", ":")),
                    headers={"Content-Type": "application/json"},
                    name=name,
                    catch_response=True,
                ) as response,
            ):
                status = response.status_code or 0
                if status != 202:
                    response.failure(f"HTTP {status}")
                elif path.endswith("/batch/"):
                    answer = json.loads(response.content or b"{}")
                    rejected = {item["index"] for item in answer.get("rejected") or []}
                    if rejected:
                        response.failure(f"{len(rejected)} events rejected")
        finally:
            # Also when the user is stopped mid-request: an id never answered is `unknown`.
            for index, event_id in enumerate(ids):
                outcome = "refused" if index in rejected else _outcome(status)
                event_ids[outcome].append(event_id)
