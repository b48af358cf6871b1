"""Segments: bulk recompute, incremental evaluation, personalized delivery, event to socket.

Everything runs in a PostgreSQL database of its own (`bench_segments_<random>`, dropped at the
end) and an empty Redis database of its own (flushed at the end). Parts, in this order:

1. delivery (HTTP): gunicorn (2 workers, services mode) serves `GET /bench/django/` (the floor)
   and `GET /api/v1/deliver/page/home/` with `X-Anonymous-Id` of a VIP member, so the
   personalized path runs; wrk alternates them round by round at 32 connections.
   Targets: req/s >= 0.4 x the floor, p95 < 100 ms, mean < 50 ms.
2. event to socket: `python -m cmsproject.run` in services mode (gunicorn, uvicorn for the
   socket, a Celery worker and beat, as `make run` starts them). For each fresh anonymous id: a
   socket subscribes `customer:me`, two purchase events summing over 500 are POSTed to
   `/api/v1/events/`, and the time until `segments.changed` (entering `vip`) arrives is recorded.
   Target: median < 1 s.
3. bulk: N customers and M events (written by the drain's own writer, `events_store`, in large
   batches) and 5 dynamic segments, then `segment_recompute` of each, timed, in this process.
   Target: < 30 s for the 5 (100k customers, 2M events).
4. incremental: `subjects_reevaluate` of one customer at a time, for a sample of customers.
   Target: p95 < 20 ms.

Run on demand (never by pytest): `.venv/bin/python bench/segments.py`; see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import floor
from ingest import database_create, database_drop, with_database

DELIVER_PATH = "/api/v1/deliver/page/home/"
VIP_ANONYMOUS_ID = "bench-vip-visitor"
UNTHROTTLED = "10000000/s"
TARGET_BULK_S = 30.0
TARGET_INCREMENTAL_P95_MS = 20.0
TARGET_RATIO, TARGET_P95_MS, TARGET_MEAN_MS = 0.4, 100.0, 50.0
TARGET_SOCKET_MEDIAN_S = 1.0
HEADER_LUA = """
wrk.headers["X-Anonymous-Id"] = "ANON"
"""
# The demo's three dynamic segments (vip, gold_or_platinum, browsers) and two more.
EXTRA_SEGMENTS = [
    {
        "key": "frequent_buyers",
        "name": "Frequent buyers",
        "rules": {
            "event": "purchase",
            "aggregate": "count",
            "within_days": 30,
            "op": "gte",
            "value": 3,
        },
    },
    {
        "key": "keen_viewers_not_gold",
        "name": "Keen viewers, not gold",
        "rules": {
            "all": [
                {
                    "event": "product_view",
                    "aggregate": "count",
                    "within_days": 30,
                    "op": "gte",
                    "value": 5,
                },
                {"not": {"attribute": "loyalty_tier", "op": "in", "value": ["gold", "platinum"]}},
            ]
        },
    },
]
EVENT_MIX = (
    ("page_view", 40),
    ("product_view", 30),
    ("add_to_cart", 12),
    ("purchase", 10),
    ("cart_abandoned", 8),
)
CATEGORIES = ("shoes", "shirts", "bags", "hats", "socks")


def pct(values: list[float], p: float) -> float:
    return floor.percentile(sorted(values), p)


# --- setup ----------------------------------------------------------------------------------------


def django_ready(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    from analytics.demo import demo_load as analytics_demo
    from content.demo import demo_load as content_demo
    from segmentation.demo import demo_load as segmentation_demo

    for loaded in (analytics_demo(), content_demo(), segmentation_demo()):
        print(f"  demo: {loaded}", flush=True)


def vip_member_add(anonymous_id: str) -> None:
    from django.utils import timezone

    from segmentation.models import Segment, SegmentMembership

    SegmentMembership.objects.get_or_create(
        segment=Segment.objects.get(key="vip"),
        subject=f"a:{anonymous_id}",
        exited_at=None,
        defaults={"entered_at": timezone.now()},
    )


# --- 1. delivery ----------------------------------------------------------------------------------


def get_json(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return int(exc.code), None


def bench_delivery(
    env: dict[str, str], wrk: str | None, tmp: Path, args: argparse.Namespace
) -> dict[str, Any]:
    vip_member_add(VIP_ANONYMOUS_ID)
    spec = floor.ServerSpec("services/gunicorn", "services", floor.gunicorn_argv(), env)
    scripts = {"django": tmp / "django.lua", "deliver": tmp / "deliver.lua"}
    scripts["django"].write_text(floor.WRK_REPORT_LUA)
    scripts["deliver"].write_text(
        HEADER_LUA.replace("ANON", VIP_ANONYMOUS_ID) + floor.WRK_REPORT_LUA
    )
    paths = {"django": floor.VIEWS["django"], "deliver": DELIVER_PATH}
    runs: dict[str, list[floor.LoadStats]] = {view: [] for view in paths}
    log = tmp / "gunicorn.log"
    print("[delivery] starting gunicorn", flush=True)
    with floor.running(spec, log) as (base, pgid):
        status, body = get_json(base + DELIVER_PATH, {"X-Anonymous-Id": VIP_ANONYMOUS_ID})
        segments = ((body or {}).get("meta") or {}).get("segments")
        if status != 200 or "vip" not in (segments or []):
            raise RuntimeError(f"delivery answered {status}, segments {segments}: not personalized")
        print(f"[delivery] {DELIVER_PATH} for {VIP_ANONYMOUS_ID}: segments {segments}", flush=True)
        for view, path in paths.items():
            if args.warmup:
                floor.run_load(wrk, scripts[view], base + path, args, args.warmup)
        for round_no in range(1, args.rounds + 1):
            for view, path in paths.items():
                stats = floor.measure(base + path, pgid, wrk, scripts[view], args)
                runs[view].append(stats)
                print(
                    f"[delivery] round {round_no} {view}: {stats.rps:,.0f} req/s, "
                    f"p95 {stats.p95_ms:.1f} ms, other cpu {floor.fmt_pct(stats.other_cpu_pct)}",
                    flush=True,
                )
    tail = floor.tail(log)
    if tail.strip():
        print(f"[delivery] server log (last lines):\n{tail}")
    results = {view: floor.summarize(spec.label, view, stats) for view, stats in runs.items()}
    return {"results": results, "rounds": runs}


# --- 2. event to socket ---------------------------------------------------------------------------


def free_port_pair() -> int:
    while True:
        port = floor.free_port()
        with socket.socket() as probe:
            try:
                probe.bind((floor.HOST, port + 1))
            except OSError:
                continue
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"run exited with {proc.returncode}:\n{floor.tail(log)}")
        try:
            socket.create_connection((floor.HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"port {port} not open after {timeout:.0f}s:\n{floor.tail(log)}")


def post_event(base: str, anonymous_id: str, amount: int, n: int) -> int:
    body = json.dumps(
        {
            "id": f"{anonymous_id}-{n}",
            "type": "purchase",
            "anonymousId": anonymous_id,
            "properties": {"amount": amount},
        }
    ).encode()
    request = urllib.request.Request(
        base + "/api/v1/events/",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def one_socket_trip(base: str, ws_base: str, anonymous_id: str, timeout: float) -> float:
    from websockets.sync.client import connect

    with connect(f"{ws_base}/ws/v1/live?anonymous_id={anonymous_id}", open_timeout=10) as ws:
        ws.send(json.dumps({"action": "subscribe", "topic": "customer:me"}))
        reply = json.loads(ws.recv(timeout=10))
        if reply.get("type") != "subscribed":
            raise RuntimeError(f"subscribe answered {reply}")
        started = time.perf_counter()
        for n, amount in enumerate((300, 250)):
            status = post_event(base, anonymous_id, amount, n)
            if status != 202:
                raise RuntimeError(f"POST /api/v1/events/ answered {status}")
        deadline = started + timeout
        while (left := deadline - time.perf_counter()) > 0:
            message = json.loads(ws.recv(timeout=left))
            data = message.get("data") or message
            if message.get("type") == "segments.changed" and "vip" in (data.get("entered") or []):
                return time.perf_counter() - started
    raise TimeoutError(f"no segments.changed for {anonymous_id} within {timeout:.0f}s")


def bench_socket(env: dict[str, str], tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    from websockets.exceptions import WebSocketException

    port = free_port_pair()
    run_env = {**env, "WS_PORT": str(port + 1), "CMS_STATIC_ROOT": str(tmp / "static")}
    log = tmp / "run.log"
    print(f"[socket] starting python -m cmsproject.run (services) on {port}/{port + 1}", flush=True)
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cmsproject.run", "--host", floor.HOST, "--port", str(port)],
            cwd=floor.ROOT,
            env=run_env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    latencies: list[float] = []
    failures: list[str] = []
    try:
        wait_port(port, proc, log)
        wait_port(port + 1, proc, log)
        base, ws_base = f"http://{floor.HOST}:{port}", f"ws://{floor.HOST}:{port + 1}"
        floor.wait_ready(base + floor.VIEWS["django"], proc, log)
        time.sleep(args.socket_settle)  # worker and beat up; the demo's recompute tasks done
        rng = random.Random(args.seed)
        for n in range(args.socket_trips):
            # Back to back, each trip would start right after the drain that ended the previous
            # one and always wait a whole beat period: a random pause samples every phase.
            time.sleep(rng.uniform(0, args.drain_period))
            anonymous_id = f"bench-sock-{secrets.token_hex(4)}-{n}"
            try:
                seconds = one_socket_trip(base, ws_base, anonymous_id, args.socket_timeout)
            except (RuntimeError, TimeoutError, OSError, WebSocketException) as exc:
                failures.append(f"{anonymous_id}: {exc}")
                print(f"[socket] {n + 1}: FAILED {exc}", flush=True)
                continue
            latencies.append(seconds)
            print(f"[socket] {n + 1}: segments.changed after {seconds * 1000:.0f} ms", flush=True)
    finally:
        floor.stop(proc)
    if failures:
        print(f"[socket] log (last lines):\n{floor.tail(log, 30)}")
    return {"latencies_s": latencies, "failures": failures}


# --- 3. bulk --------------------------------------------------------------------------------------


def seed(args: argparse.Namespace, now: datetime) -> dict[str, float]:
    from django.db import transaction

    from analytics.rollups import Row, events_store
    from customers.models import Customer, LoyaltyTier

    rng = random.Random(args.seed)
    tiers = [tier.value for tier in LoyaltyTier]
    started = time.perf_counter()
    first_id = None
    for start in range(0, args.customers, 10_000):
        made = Customer.objects.bulk_create(
            Customer(
                external_id=f"bench-{n}",
                name=f"Bench {n}",
                loyalty_tier=tiers[rng.randrange(len(tiers))],
            )
            for n in range(start, min(start + 10_000, args.customers))
        )
        first_id = first_id or made[0].pk
    customers_s = time.perf_counter() - started
    customer_ids = list(range(first_id, first_id + args.customers))
    print(f"[bulk] {args.customers:,} customers in {customers_s:.1f} s", flush=True)

    types = [name for name, weight in EVENT_MIX for _ in range(weight)]
    span = timedelta(days=args.days).total_seconds()
    started = time.perf_counter()
    stored = 0
    for start in range(0, args.events, args.batch):
        rows = []
        for n in range(start, min(start + args.batch, args.events)):
            type_ = types[rng.randrange(len(types))]
            at = now - timedelta(seconds=rng.random() * span)
            properties: dict[str, Any] = {}
            if type_ == "purchase":
                properties["amount"] = rng.randrange(5, 400)
            elif type_ == "product_view":
                properties = {"category": rng.choice(CATEGORIES), "price": rng.randrange(5, 200)}
            rows.append(Row(f"seed-{n}", type_, rng.choice(customer_ids), "", properties, at, at))
        with transaction.atomic():
            stored += len(events_store(rows))
        elapsed = time.perf_counter() - started
        if (start // args.batch) % 10 == 9 or stored == args.events:
            print(
                f"[bulk] {stored:,} events stored in {elapsed:.0f} s "
                f"({stored / elapsed:,.0f} events/s)",
                flush=True,
            )
    return {"customers_s": customers_s, "events_s": time.perf_counter() - started}


def bench_bulk(args: argparse.Namespace) -> dict[str, Any]:
    from django.db import connection
    from django.utils import timezone

    from segmentation.models import Segment
    from segmentation.services import _in_dependency_order, segment_create, segment_recompute

    now = timezone.now()
    seeding = seed(args, now)
    for values in EXTRA_SEGMENTS:
        if not Segment.objects.filter(key=values["key"]).exists():
            segment_create(**values)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    segments = _in_dependency_order()
    print(f"[bulk] dynamic segments: {', '.join(s.key for s in segments)}", flush=True)
    passes = []
    for pass_no in range(1, args.bulk_passes + 1):
        per_segment: dict[str, tuple[float, int]] = {}
        started = time.perf_counter()
        for segment in segments:
            began = time.perf_counter()
            changed = segment_recompute(segment_id=segment.pk, now=now)
            per_segment[segment.key] = (time.perf_counter() - began, changed)
        total = time.perf_counter() - started
        members = dict(Segment.objects.values_list("key", "member_count"))
        print(
            f"[bulk] pass {pass_no}: {total:.2f} s  "
            + "  ".join(
                f"{key} {s:.2f}s/{changed:+,} ({members[key]:,})"
                for key, (s, changed) in per_segment.items()
            ),
            flush=True,
        )
        passes.append({"total_s": total, "per_segment": per_segment, "members": members})
    return {"seeding": seeding, "passes": passes}


# --- 4. incremental -------------------------------------------------------------------------------


def bench_incremental(args: argparse.Namespace) -> dict[str, Any]:
    from customers.models import Customer
    from segmentation.services import subjects_reevaluate

    ids = list(
        Customer.objects.filter(external_id__startswith="bench-").values_list("pk", flat=True)
    )
    rng = random.Random(args.seed + 1)
    sample = rng.sample(ids, min(args.incremental_samples, len(ids)))
    subjects_reevaluate(subjects=[f"c:{sample[0]}"])  # first call pays imports and caches
    timings: list[float] = []
    for customer_id in sample:
        started = time.perf_counter()
        subjects_reevaluate(subjects=[f"c:{customer_id}"])
        timings.append((time.perf_counter() - started) * 1000)
    print(
        f"[incremental] {len(timings)} customers: p50 {pct(timings, 50):.2f} ms, "
        f"p95 {pct(timings, 95):.2f} ms, max {max(timings):.2f} ms",
        flush=True,
    )
    return {"ms": timings}


# --- report ---------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(figures: dict[str, Any], args: argparse.Namespace) -> bool:
    ok = True
    lines = []
    if "delivery" in figures:
        results = figures["delivery"]["results"]
        base, deliver = results["django"], results["deliver"]
        print(f"\n{'view':<10}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
              f"{'mean ms':>9}{'errors':>8}{'other cpu':>10}")  # fmt: skip
        for name, r in results.items():
            mean = 1000.0 * args.connections / r.rps if r.rps else float("inf")
            print(
                f"{name:<10}{r.rps:>10,.0f}{r.p50_ms:>9.1f}{r.p95_ms:>9.1f}{r.p99_ms:>9.1f}"
                f"{mean:>9.1f}{r.non_2xx + r.socket_errors:>8}{floor.fmt_pct(r.other_cpu_pct):>10}"
            )
        ratio = deliver.rps / base.rps if base.rps else 0.0
        mean = 1000.0 * args.connections / deliver.rps if deliver.rps else float("inf")
        errors = deliver.non_2xx + deliver.socket_errors
        lines += [
            ("delivery / django req/s", f"{ratio:.2f}", f">= {TARGET_RATIO}",
             ratio >= TARGET_RATIO),
            ("delivery p95", f"{deliver.p95_ms:.1f} ms", f"< {TARGET_P95_MS:.0f} ms",
             deliver.p95_ms < TARGET_P95_MS),
            ("delivery mean (32 / req/s)", f"{mean:.1f} ms", f"< {TARGET_MEAN_MS:.0f} ms",
             mean < TARGET_MEAN_MS),
            ("delivery errors", str(errors), "0", errors == 0),
        ]  # fmt: skip
    if "socket" in figures:
        seconds = figures["socket"]["latencies_s"]
        failures = len(figures["socket"]["failures"])
        if seconds:
            median = statistics.median(seconds)
            lines += [
                ("event -> segments.changed median", f"{median * 1000:.0f} ms",
                 f"< {TARGET_SOCKET_MEDIAN_S * 1000:.0f} ms", median < TARGET_SOCKET_MEDIAN_S),
                ("event -> segments.changed p95 / max",
                 f"{pct(seconds, 95) * 1000:.0f} / {max(seconds) * 1000:.0f} ms", "", True),
            ]  # fmt: skip
        lines.append(("socket trips failed", f"{failures} of {args.socket_trips}", "0",
                      failures == 0))  # fmt: skip
    if "bulk" in figures:
        for n, one in enumerate(figures["bulk"]["passes"], 1):
            lines.append(
                (f"bulk 5 segments, pass {n}", f"{one['total_s']:.2f} s",
                 f"< {TARGET_BULK_S:.0f} s", one["total_s"] < TARGET_BULK_S)
            )  # fmt: skip
    if "incremental" in figures:
        ms = figures["incremental"]["ms"]
        lines += [
            ("incremental one customer p95", f"{pct(ms, 95):.2f} ms",
             f"< {TARGET_INCREMENTAL_P95_MS:.0f} ms", pct(ms, 95) < TARGET_INCREMENTAL_P95_MS),
            ("incremental p50 / max", f"{pct(ms, 50):.2f} / {max(ms):.2f} ms", "", True),
        ]  # fmt: skip
    print()
    for name, value, target, passed in lines:
        ok &= passed
        shown = verdict(passed) if target else ""
        print(f"{name:<40}{value:>18}  {target:<10}{shown}")
    return ok


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=120, help="events spread over this many days")
    parser.add_argument("--batch", type=int, default=20_000, help="events per events_store call")
    parser.add_argument("--bulk-passes", type=int, default=2, help="first from empty, then again")
    parser.add_argument("--incremental-samples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--socket-trips", type=int, default=20)
    parser.add_argument("--socket-timeout", type=float, default=15.0)
    parser.add_argument("--socket-settle", type=float, default=5.0)
    parser.add_argument(
        "--drain-period", type=float, default=2.0, help="beat's drain period: random pause range"
    )
    parser.add_argument("--redis-db", type=int, default=11, help="must be empty; flushed at end")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-socket", action="store_true")
    parser.add_argument("--skip-bulk", action="store_true", help="also skips incremental")
    parser.add_argument("--skip-incremental", action="store_true")
    parser.add_argument("--json", type=Path, help="write every figure here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, floor.raise_on_sigterm)
    import redis

    admin_url = os.environ.get("BENCH_DATABASE_URL", floor.DEFAULT_DATABASE_URL)
    redis_url = with_database(
        os.environ.get("BENCH_REDIS_URL", floor.DEFAULT_REDIS_URL), str(args.redis_db)
    )
    redis_client = redis.Redis.from_url(redis_url)
    if redis_client.dbsize():
        sys.exit(f"{redis_url} is not empty: pick an unused --redis-db")
    wrk = None if args.skip_http else floor.ensure_wrk()
    name = f"bench_segments_{secrets.token_hex(4)}"
    database_create(admin_url, name)
    figures: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="cms-bench-segments-") as tmp_name:
            tmp = Path(tmp_name)
            env = floor.services_env(tmp)
            env.update(
                {
                    "DATABASE_URL": with_database(admin_url, name),
                    "REDIS_URL": redis_url,
                    "CMS_CACHE_PREFIX": name,
                    "CMS_THROTTLE_ANON": UNTHROTTLED,
                    "CMS_THROTTLE_USER": UNTHROTTLED,
                    "CMS_THROTTLE_EVENTS": UNTHROTTLED,
                }
            )
            Path(env["CMS_VAR_DIR"]).mkdir(parents=True, exist_ok=True)
            print(f"database {name}, redis {redis_url}", flush=True)
            django_ready(env)
            if not args.skip_http:
                figures["delivery"] = bench_delivery(env, wrk, tmp, args)
            if not args.skip_socket:
                figures["socket"] = bench_socket(env, tmp, args)
            if not args.skip_bulk:
                figures["bulk"] = bench_bulk(args)
                if not args.skip_incremental:
                    figures["incremental"] = bench_incremental(args)
    finally:
        from django.db import connections

        connections.close_all()
        database_drop(admin_url, name)
        redis_client.flushdb()
    ok = report(figures, args)
    print(
        f"\n{args.customers:,} customers, {args.events:,} events over {args.days} days; "
        f"wrk {args.connections} connections, {args.warmup}s warm-up + {args.rounds} x "
        f"{args.duration}s per view; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    if args.json:
        delivery = figures.get("delivery")
        if delivery:
            delivery = {k: vars(v) for k, v in delivery["results"].items()}
        args.json.write_text(
            json.dumps({**figures, "delivery": delivery}, default=str, indent=2) + "\n"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
