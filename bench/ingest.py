"""Event ingestion and drain throughput in services mode, against the floor measured in one run.

1. HTTP (gunicorn, 2 workers, PostgreSQL + Redis, one server for every figure): wrk drives
   `GET /bench/django/` and `GET /bench/drf/` (the floors), `POST /api/v1/events/` (one anonymous
   event) and `POST /api/v1/events/batch/` (100 events), views alternating round by round.
   Targets: single-event req/s >= 0.7 x the django floor; batch >= 20,000 events/s.
2. Raw `XADD` from Python (redis-py pipelines of 100), as a reference for what the buffer costs.
3. The drain: N events (distinct ids, a handful of types, 10,000 subjects) are XADDed in the
   format `events_accept` writes, then `drain_until_empty` runs in this process into PostgreSQL.
   Target: >= 10,000 events/s.

Everything runs in a PostgreSQL database and a Redis key prefix of its own, both removed at the
end. No worker drains during the HTTP part: the stream is deleted after each load run so Redis's
memory stays flat. Run on demand (never by pytest); see bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import floor

TARGET_SINGLE_RATIO = 0.7
TARGET_BATCH_EVENTS_PER_S = 20_000
TARGET_DRAIN_EVENTS_PER_S = 10_000
DRAIN_SLICE_S = 5.0
BATCH_SIZE = 100
# High enough never to refuse the load, and per second so DRF's throttle history (a list of
# timestamps cached per client) holds one second of requests, not a minute of them.
UNTHROTTLED = "10000000/s"
EVENT_TYPES = ("page_view", "product_view", "add_to_cart", "checkout_complete", "purchase")
SINGLE_BODY = json.dumps({"type": "page_view", "anonymousId": "bench-anon-1"})
BATCH_BODY = json.dumps(
    {
        "events": [
            {
                "type": EVENT_TYPES[n % len(EVENT_TYPES)],
                "anonymousId": f"bench-anon-{n}",
                "properties": {"path": f"/p/{n}", "n": n},
            }
            for n in range(BATCH_SIZE)
        ]
    },
    separators=(",", ":"),
)
POST_LUA = """
wrk.method = "POST"
wrk.body = [[BODY]]
wrk.headers["Content-Type"] = "application/json"
"""


@dataclass
class Endpoint:
    name: str
    path: str
    body: str | None = None  # None: GET
    events_per_request: int = 0

    def lua(self) -> str:
        if self.body is None:
            return floor.WRK_REPORT_LUA
        return POST_LUA.replace("BODY", self.body) + floor.WRK_REPORT_LUA


ENDPOINTS = [
    Endpoint("django", floor.VIEWS["django"]),
    Endpoint("drf", floor.VIEWS["drf"]),
    Endpoint("events", "/api/v1/events/", SINGLE_BODY, 1),
    Endpoint("batch", "/api/v1/events/batch/", BATCH_BODY, BATCH_SIZE),
]


@dataclass
class Figures:
    http: list[floor.ViewResult] = field(default_factory=list)
    landed: dict[str, dict[str, int]] = field(default_factory=dict)  # stream entries vs expected
    http_error: str = ""
    xadd_events_per_s: float | None = None
    drain: dict[str, Any] = field(default_factory=dict)

    def rps(self, name: str) -> float | None:
        return next((r.rps for r in self.http if r.view == name), None)


# --- the database and the Redis prefix of this run ------------------------------------------------


def with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def admin_connection(url: str) -> Any:
    import psycopg

    return psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True)


def database_create(url: str, name: str) -> None:
    from psycopg import sql

    with admin_connection(url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_drop(url: str, name: str) -> None:
    from psycopg import sql

    with admin_connection(url) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def redis_forget(client: Any, prefix: str) -> int:
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    return len(keys)


# --- 1. HTTP --------------------------------------------------------------------------------------


def post_status(url: str, body: str) -> int:
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def settle(client: Any, stream: str, quiet: float = 0.5, timeout: float = 10.0) -> int:
    """The stream's length once it has stopped growing: when wrk stops, requests it had sent are
    still queued in gunicorn and land afterwards."""
    length, since, deadline = -1, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        now_length = int(client.xlen(stream))
        if now_length != length:
            length, since = now_length, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(0.05)
    return length


def bench_http(
    env: dict[str, str],
    wrk: str | None,
    tmp: Path,
    args: argparse.Namespace,
    redis_client: Any,
    stream: str,
) -> tuple[list[floor.ViewResult], dict[str, dict[str, int]]]:
    spec = floor.ServerSpec("services/gunicorn", "services", floor.gunicorn_argv(), env)
    scripts = {}
    for endpoint in ENDPOINTS:
        scripts[endpoint.name] = tmp / f"{endpoint.name}.lua"
        scripts[endpoint.name].write_text(endpoint.lua())
    log = tmp / "gunicorn.log"
    runs: dict[str, list[floor.LoadStats]] = {e.name: [] for e in ENDPOINTS}
    landed: dict[str, dict[str, int]] = {}
    print(f"[{spec.label}] starting", flush=True)
    with floor.running(spec, log) as (base, pgid):
        for endpoint in ENDPOINTS:
            url = base + endpoint.path
            if endpoint.body is None:
                floor.preflight(url, wrk, scripts[endpoint.name], args)
                continue
            status = post_status(url, endpoint.body)
            if status != 202:
                raise RuntimeError(f"POST {url} answered {status} before load")
            if args.warmup:
                floor.run_load(wrk, scripts[endpoint.name], url, args, args.warmup)
            redis_client.delete(stream)
        for round_no in range(1, args.rounds + 1):
            for endpoint in ENDPOINTS:
                if endpoint.events_per_request:
                    settle(redis_client, stream)  # requests queued by the last run land first
                    redis_client.delete(stream)
                stats = floor.measure(base + endpoint.path, pgid, wrk, scripts[endpoint.name], args)
                runs[endpoint.name].append(stats)
                if endpoint.events_per_request:
                    # Every accepted event is one stream entry: check the 202s were real.
                    entries = settle(redis_client, stream)
                    redis_client.delete(stream)
                    expected = stats.requests * endpoint.events_per_request
                    seen = landed.setdefault(endpoint.name, {"entries": 0, "expected": 0})
                    seen["entries"] += entries
                    seen["expected"] += expected
                extra = (
                    f" = {stats.rps * endpoint.events_per_request:,.0f} events/s"
                    if endpoint.events_per_request > 1
                    else ""
                )
                print(
                    f"[{spec.label}] round {round_no} {endpoint.name}: "
                    f"{stats.rps:,.0f} req/s{extra}",
                    flush=True,
                )
    tail = floor.tail(log)
    if tail.strip():
        print(f"\n[{spec.label}] server log (last lines):\n{tail}")
    results = [floor.summarize(spec.label, name, stats) for name, stats in runs.items()]
    return results, landed


# --- 2. raw XADD ----------------------------------------------------------------------------------


def stamped(n: int, rng: random.Random, now: datetime, subjects: int) -> dict[str, Any]:
    """One event as `analytics.services._stamped` writes it to the stream."""
    subject = rng.randrange(subjects)
    # A fifth of the subjects are known users (the drain creates their profiles), the rest
    # anonymous: both paths of the drain are exercised.
    user = f"bench-user-{subject}" if subject % 5 == 0 else None
    event_type = EVENT_TYPES[rng.randrange(len(EVENT_TYPES))]
    properties: dict[str, Any] = {"path": f"/p/{rng.randrange(500)}"}
    if event_type == "purchase":
        properties["amount"] = rng.randrange(1, 500)
    return {
        "id": f"bench-{n:08d}",
        "type": event_type,
        "userId": user,
        "anonymousId": "" if user else f"bench-anon-{subject}",
        "properties": properties,
        # Spread over the last 30 minutes, as a backlog of recent traffic would be.
        "timestamp": (now - timedelta(seconds=rng.uniform(60, 1800))).isoformat(),
        "receivedAt": now.isoformat(),
    }


def xadd_all(client: Any, stream: str, payloads: list[bytes], chunk: int) -> None:
    for start in range(0, len(payloads), chunk):
        pipe = client.pipeline(transaction=False)
        for payload in payloads[start : start + chunk]:
            pipe.xadd(stream, {"e": payload})
        pipe.execute()


def bench_xadd(client: Any, stream: str, seconds: float) -> float:
    """Events/s of redis-py pipelines of 100 XADDs, as the buffer appends a batch request."""
    rng = random.Random(1)
    now = datetime.now(UTC)
    payloads = [
        json.dumps(stamped(n, rng, now, 10_000), separators=(",", ":")).encode()
        for n in range(BATCH_SIZE * 20)
    ]
    sent = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        xadd_all(client, stream, payloads, BATCH_SIZE)
        sent += len(payloads)
        client.delete(stream)  # timed too: one round trip per 2,000 events, memory stays flat
    return sent / (time.perf_counter() - started)


# --- 3. the drain ---------------------------------------------------------------------------------


def bench_drain(
    env: dict[str, str], client: Any, args: argparse.Namespace, profile_path: Path | None
) -> dict[str, Any]:
    """Fill the stream with N events, then drain it in this process (Django set up with the
    services environment of this run)."""
    for key in ("DATABASE_URL", "REDIS_URL", "CMS_CACHE_PREFIX", "SECRET_KEY", "ALLOWED_HOSTS"):
        os.environ[key] = env[key]
    os.environ["DJANGO_SETTINGS_MODULE"] = "cmsproject.settings"
    os.environ["DEBUG"] = "0"
    sys.path.insert(0, str(floor.ROOT))
    import django

    django.setup()
    from django.db import connection

    from analytics.buffer import RedisStreamBuffer, stream_key
    from analytics.drain import drain_until_empty
    from analytics.models import Event

    stream = stream_key()
    rng = random.Random(7)
    now = datetime.now(UTC)
    print(f"[drain] filling the stream with {args.events:,} events", flush=True)
    client.delete(stream)
    payloads = [
        json.dumps(stamped(n, rng, now, args.subjects), separators=(",", ":")).encode()
        for n in range(args.events)
    ]
    xadd_all(client, stream, payloads, 1000)
    del payloads
    buffer = RedisStreamBuffer(env["REDIS_URL"], consumer="bench-drain")
    print("[drain] draining", flush=True)
    profiler = cProfile.Profile() if profile_path else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    # drain_until_empty in slices of a few seconds, as the beat-driven task calls it, so the
    # rate can be followed as the tables grow (a cost that grew with them would show here).
    read = inserted = 0
    slices: list[dict[str, float]] = []
    while True:
        remaining = args.drain_max_seconds - (time.perf_counter() - started)
        if remaining <= 0:
            break
        slice_started = time.perf_counter()
        report = drain_until_empty(buffer=buffer, max_seconds=min(DRAIN_SLICE_S, remaining))
        read, inserted = read + report.read, inserted + report.inserted
        took = time.perf_counter() - slice_started
        if report.read:
            slices.append(
                {
                    "stored_before": inserted - report.inserted,
                    "inserted": report.inserted,
                    "events_per_s": round(report.inserted / took, 1),
                }
            )
            print(
                f"[drain] {inserted:>9,} stored, {report.inserted / took:>8,.0f} events/s "
                "in this slice",
                flush=True,
            )
        if report.read == 0:
            break
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    stored = Event.objects.count()
    left = int(client.xlen(stream))
    if profiler and profile_path:
        profiler.dump_stats(profile_path)
        print(f"\n[drain] profile written to {profile_path}; top 25 by cumulative time:")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    connection.close()
    return {
        "events": args.events,
        "subjects": args.subjects,
        "read": read,
        "inserted": inserted,
        "stored": stored,
        "left_in_stream": left,
        "seconds": round(elapsed, 2),
        "events_per_s": round(inserted / elapsed, 1) if elapsed else 0.0,
        "finished": left == 0,
        "slices": slices,
    }


# --- report ---------------------------------------------------------------------------------------


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "n/a"
    return "ok" if value >= target else "MISSED"


def summary_rows(figures: Figures) -> list[tuple[str, str, str, str]]:
    django, drf = figures.rps("django"), figures.rps("drf")
    single, batch = figures.rps("events"), figures.rps("batch")
    single_ratio = single / django if single and django else None
    batch_events = batch * BATCH_SIZE if batch else None
    drain = figures.drain.get("events_per_s")
    rows = [
        ("GET /bench/django/ (floor) req/s", fmt(django), "", ""),
        ("GET /bench/drf/ req/s", fmt(drf), "", ""),
        ("POST /api/v1/events/ req/s", fmt(single), "", ""),
        (
            "  / django floor",
            fmt(single_ratio, 2),
            f">= {TARGET_SINGLE_RATIO}",
            verdict(single_ratio, TARGET_SINGLE_RATIO),
        ),
        ("  / drf floor", fmt(single / drf if single and drf else None, 2), "", ""),
        ("POST /api/v1/events/batch/ req/s (x100)", fmt(batch), "", ""),
        (
            "  batch ingest events/s",
            fmt(batch_events),
            f">= {TARGET_BATCH_EVENTS_PER_S:,}",
            verdict(batch_events, TARGET_BATCH_EVENTS_PER_S),
        ),
        ("raw XADD events/s (reference)", fmt(figures.xadd_events_per_s), "", ""),
        (
            "drain events/s",
            fmt(drain),
            f">= {TARGET_DRAIN_EVENTS_PER_S:,}",
            verdict(drain, TARGET_DRAIN_EVENTS_PER_S),
        ),
    ]
    return rows


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def print_report(figures: Figures) -> None:
    if figures.http:
        floor.print_table([floor.ServerOutcome("services/gunicorn", results=figures.http)])
    for name, seen in figures.landed.items():
        # wrk counts only the responses it read; requests still in flight when it stopped (at
        # most one per connection) are served afterwards and land too.
        extra = seen["entries"] - seen["expected"]
        print(
            f"{name}: {seen['entries']:,} stream entries for {seen['expected']:,} events in 202s "
            f"counted by wrk ({extra:+,} in flight when it stopped)"
            + ("" if extra >= 0 else "  <-- EVENTS LOST")
        )
    print(f"\n{'figure':<42} {'value':>12} {'target':>12} {'':>7}")
    print("-" * 76)
    for label, value, target, result in summary_rows(figures):
        print(f"{label:<42} {value:>12} {target:>12} {result:>7}")
    if figures.drain:
        d = figures.drain
        print(
            f"\ndrain: {d['inserted']:,} of {d['events']:,} events inserted in {d['seconds']} s "
            f"({d['subjects']:,} subjects); {d['left_in_stream']:,} left in the stream"
            + ("" if d["finished"] else " (time cap reached: --drain-max-seconds)")
        )


def write_json(path: Path, figures: Figures, meta: dict[str, Any]) -> None:
    payload = {
        **meta,
        "http": [asdict(r) for r in figures.http],
        "http_error": figures.http_error or None,
        "landed": figures.landed,
        "xadd_events_per_s": figures.xadd_events_per_s,
        "drain": figures.drain,
        "summary": [
            {"figure": label.strip(), "value": value, "target": target or None, "result": result}
            for label, value, target, result in summary_rows(figures)
        ],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="measured seconds per endpoint")
    parser.add_argument("--warmup", type=int, default=2, help="discarded seconds per endpoint")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds, endpoints alternating; the median is shown"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--xadd-seconds", type=float, default=3.0)
    parser.add_argument("--events", type=int, default=100_000, help="events to drain")
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument(
        "--drain-max-seconds",
        type=float,
        default=60.0,
        help="stop draining after this long and report the rate so far",
    )
    parser.add_argument("--profile-drain", type=Path, help="write a cProfile of the drain here")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-drain", action="store_true")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    args.load_generator = "wrk"
    if min(args.rounds, args.duration, args.connections, args.threads, args.events) < 1:
        parser.error("rounds, duration, connections, threads and events must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, floor.raise_on_sigterm)
    if not (floor.BIN / "gunicorn").exists():
        sys.exit(f"{floor.BIN / 'gunicorn'} missing: run with the venv's python")
    wrk = floor.ensure_wrk()
    if not wrk and not args.skip_http:
        sys.exit("wrk not found and could not be installed (apt-get install wrk)")
    import redis

    started = time.monotonic()
    token = secrets.token_hex(4)
    database = f"cms_bench_ingest_{token}"
    prefix = f"cms-bench-ingest-{token}"
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": floor.git_revision(),
        "connections": args.connections,
        "threads": args.threads,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "throttle_rates": UNTHROTTLED,
    }
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="cms-bench-ingest-") as tmp_name:
        tmp = Path(tmp_name)
        env = floor.services_env(tmp)
        admin_url = env["DATABASE_URL"]
        floor.check_reachable(admin_url)
        floor.check_reachable(env["REDIS_URL"])
        env.update(
            {
                "DATABASE_URL": with_database(admin_url, database),
                "CMS_CACHE_PREFIX": prefix,
                "CMS_THROTTLE_EVENTS": UNTHROTTLED,
                "CMS_THROTTLE_ANON": UNTHROTTLED,
            }
        )
        client = redis.Redis.from_url(env["REDIS_URL"], socket_timeout=30)
        stream = f"{prefix}:events"  # analytics.buffer.stream_key() for this prefix
        database_create(admin_url, database)
        try:
            print(f"[services] migrate {database}", flush=True)
            floor.migrate(env)
            if not args.skip_http:
                try:
                    figures.http, figures.landed = bench_http(env, wrk, tmp, args, client, stream)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    figures.http_error = str(exc)
                    print(f"[http] error: {exc}", flush=True)
            print("[xadd] redis-py pipelines of 100", flush=True)
            figures.xadd_events_per_s = round(bench_xadd(client, stream, args.xadd_seconds), 1)
            if not args.skip_drain:
                figures.drain = bench_drain(env, client, args, args.profile_drain)
        finally:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            removed = redis_forget(client, prefix)
            database_drop(admin_url, database)
            client.close()
            print(f"\ncleaned up: database {database} dropped, {removed} Redis keys removed")

    print_report(figures)
    meta["loadavg_after"] = os.getloadavg()
    meta["seconds"] = round(time.monotonic() - started, 1)
    print(
        f"\nload: wrk, {args.connections} connections, {args.threads} threads, {args.warmup}s "
        f"warm-up + {args.rounds} x {args.duration}s per endpoint; {meta['cpus']} CPUs; "
        f"{meta['seconds']} s in all"
    )
    floor.warn_if_noisy([floor.ServerOutcome("services/gunicorn", results=figures.http)])
    if args.json:
        write_json(args.json, figures, meta)
        print(f"wrote {args.json}")
    return 1 if figures.http_error else 0


if __name__ == "__main__":
    sys.exit(main())
