"""Experiments: assignments in-process and over HTTP, and the statistics job on 1M exposures.

Everything runs in a PostgreSQL database of its own (`bench_experiments_<random>`, dropped at the
end) and an empty Redis database of its own (`--redis-db`, refused if not empty, flushed at the
end), with `DJANGO_SETTINGS_MODULE=cmsproject.settings` in services mode. Parts, in this order:

1. in-process: `unit_hash` alone, then `assignment_for` over running experiments with 2 and 3
   variants at traffic 1.0 and 0.5, for N distinct units (UUID-shaped anonymous ids); then the
   whole per-request selector path, `experiment_rules()` from the Django cache (local memory,
   then Redis) and `assignment_for`. Per-call µs and calls/s, the median of `--passes` passes.
2. HTTP: gunicorn (2 workers, services mode, throttles unlimited); wrk alternates
   `GET /bench/django/` (the floor) and `GET /api/v1/experiments/<key>/assignment/?unit=` round by
   round, both with the same Lua `request()` hook putting a fresh `unit` in every request's query
   string. Targets: req/s >= 0.5 x the floor, p95 < 50 ms. Then where the time goes: the same two
   views through Django's test client in this process, timed, then under cProfile.
3. statistics: a running experiment (2 variants, metric `purchase`, window 72 h) and M exposure
   events for ~M/2 units (anonymous ids and customers, variants from the real hash, some units
   exposed several times, a few to both variants), ~10 % of units converting inside the window
   and some only outside it, plus unrelated events and another experiment's exposures, written
   with `COPY`; `VACUUM ANALYZE`; then `experiment_results_compute` timed 3 times and its counts
   checked against what was generated; `EXPLAIN (ANALYZE, BUFFERS)` of the statement to a file.
   Target: < 10 s for 1M exposures.

Run on demand (never by pytest): `.venv/bin/python bench/experiments.py`; see bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import secrets
import signal
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import floor
from ingest import database_create, database_drop, with_database

UNTHROTTLED = "10000000/s"
TARGET_RATIO, TARGET_P95_MS = 0.5, 50.0
TARGET_STATS_S = 10.0  # for 1M exposures
STATS_TARGET_EXPOSURES = 1_000_000
WINDOW_HOURS = 72
# Running experiments for parts 1 and 2: (key, weights, traffic).
ASSIGNMENT_EXPERIMENTS = (
    ("bench-2v-full", (0.5, 0.5), 1.0),
    ("bench-2v-half", (0.5, 0.5), 0.5),
    ("bench-3v-full", (0.34, 0.33, 0.33), 1.0),
    ("bench-3v-half", (0.34, 0.33, 0.33), 0.5),
)
HTTP_EXPERIMENT = "bench-2v-full"
SHARE_SAMPLE = 50_000  # units whose split is checked against the weights (SE ~0.2 pp)
STATS_EXPERIMENT, OTHER_EXPERIMENT = "bench-stats", "bench-other"
ASSIGNMENT_PATH = "/api/v1/experiments/{key}/assignment/"
# Every request gets a unit of its own ("anon-<thread>-<n>"), so nothing keyed by URL or unit
# can be cached. The floor gets the same hook (its view ignores the query) so wrk's Lua cost is
# the same on both sides.
UNIT_LUA = """
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("prefix", string.format("anon-%s-%d-", "RUN", threads))
end
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "PATH" .. "?unit=" .. prefix .. counter)
end
"""
UNRELATED_TYPES = (
    ("page_view", 40),
    ("product_view", 30),
    ("add_to_cart", 12),
    ("cart_abandoned", 8),
    ("checkout_complete", 5),
    ("purchase", 5),  # only by subjects never exposed: must not count as conversions
)
EVENT_COLUMNS = "id, type, customer_id, anonymous_id, properties, timestamp, received_at"


def pct(values: list[float], p: float) -> float:
    return floor.percentile(sorted(values), p)


def anonymous_ids(rng: random.Random, count: int) -> list[str]:
    """UUID-shaped, as browsers' anonymous ids are (the hash costs per character)."""
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


# --- setup ----------------------------------------------------------------------------------------


def django_ready(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(floor.ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    from analytics.demo import demo_load

    print(f"  demo: {demo_load()}", flush=True)


def experiments_create() -> None:
    from experiments.services import experiment_create

    for key, weights, traffic in ASSIGNMENT_EXPERIMENTS:
        names = ("control", "treatment", "treatment-b")[: len(weights)]
        experiment_create(
            key=key,
            name=key,
            variants=[{"key": n, "weight": w} for n, w in zip(names, weights, strict=True)],
            traffic=traffic,
            metric_event="purchase",
            status="running",
        )


# --- 1. in-process assignments --------------------------------------------------------------------


def timed_passes(run: Any, units: list[str], passes: int) -> dict[str, float]:
    """Median pass of `run(units)`, as per-call µs and calls/s."""
    seconds = []
    for _ in range(passes):
        started = time.perf_counter()
        run(units)
        seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)
    return {
        "calls": len(units),
        "us_per_call": median / len(units) * 1e6,
        "calls_per_s": len(units) / median,
        "passes_us": [round(s / len(units) * 1e6, 2) for s in seconds],
    }


def bench_inprocess(args: argparse.Namespace) -> dict[str, Any]:
    from django.test import override_settings

    from experiments.bucketing import unit_hash
    from experiments.selectors import assignment_for, experiment_rules

    rng = random.Random(args.seed)
    units = anonymous_ids(rng, args.units)
    rules = experiment_rules()
    cases: dict[str, dict[str, Any]] = {}
    seed = rules[HTTP_EXPERIMENT].seed

    def hash_only(batch: list[str]) -> None:
        for unit in batch:
            unit_hash(seed, unit)

    cases["unit_hash"] = timed_passes(hash_only, units, args.passes)
    print(f"[inprocess] unit_hash: {cases['unit_hash']['us_per_call']:.2f} µs", flush=True)
    shares: dict[str, dict[str, float]] = {}
    for key, weights, traffic in ASSIGNMENT_EXPERIMENTS:
        rule = rules[key]

        def assign(batch: list[str], rule: Any = rule) -> None:
            for unit in batch:
                assignment_for(rule, unit=unit)

        name = f"assignment_for {len(weights)} variants, traffic {traffic}"
        cases[name] = timed_passes(assign, units, args.passes)
        print(f"[inprocess] {name}: {cases[name]['us_per_call']:.2f} µs", flush=True)
        # Sanity: the split over these units is the configured one (traffic, then weights).
        sample = units[:SHARE_SAMPLE]
        seen = Counter(assignment_for(rule, unit=unit).variant for unit in sample)
        shares[key] = {str(v): n / len(sample) for v, n in sorted(seen.items(), key=str)}
    off_by = []
    for key, weights, traffic in ASSIGNMENT_EXPERIMENTS:
        expected = dict(zip(rules[key].variants, (w * traffic for w in weights), strict=True))
        expected["None"] = 1 - traffic
        off_by += [abs(shares[key].get(v, 0.0) - share) for v, share in expected.items()]

    def selector_path(batch: list[str]) -> None:
        for unit in batch:
            assignment_for(experiment_rules()[HTTP_EXPERIMENT], unit=unit)

    locmem = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with override_settings(CACHES=locmem):
        experiment_rules()  # the one miss: read from the database and cached
        name = "experiment_rules() local memory + assignment_for"
        cases[name] = timed_passes(selector_path, units, args.passes)
        print(f"[inprocess] {name}: {cases[name]['us_per_call']:.2f} µs", flush=True)
    experiment_rules()
    redis_units = units[: args.redis_units]
    name = "experiment_rules() Redis + assignment_for"
    cases[name] = timed_passes(selector_path, redis_units, args.passes)
    print(f"[inprocess] {name}: {cases[name]['us_per_call']:.2f} µs", flush=True)
    return {
        "units": len(units),
        "unit_length": len(units[0]),
        "rules_cached": len(rules),
        "cases": cases,
        "shares": shares,
        "max_share_error": max(off_by),
    }


# --- 2. HTTP --------------------------------------------------------------------------------------


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return int(exc.code), None


def bench_http(
    env: dict[str, str], wrk: str, out: Path, args: argparse.Namespace
) -> dict[str, Any]:
    spec = floor.ServerSpec("services/gunicorn", "services", floor.gunicorn_argv(), env)
    paths = {
        "django": floor.VIEWS["django"],
        "assignment": ASSIGNMENT_PATH.format(key=HTTP_EXPERIMENT),
    }
    run = secrets.token_hex(3)
    scripts = {}
    for view, path in paths.items():
        scripts[view] = out / f"{view}.lua"
        scripts[view].write_text(
            UNIT_LUA.replace("PATH", path).replace("RUN", run) + floor.WRK_REPORT_LUA
        )
    runs: dict[str, list[floor.LoadStats]] = {view: [] for view in paths}
    log = out / "gunicorn.log"
    print("[http] starting gunicorn (2 workers, services mode)", flush=True)
    with floor.running(spec, log) as (base, pgid):
        status, body = get_json(base + paths["assignment"] + "?unit=bench-check")
        if status != 200 or not (body or {}).get("variant"):
            raise RuntimeError(f"assignment answered {status}: {body}")
        print(f"[http] {paths['assignment']}?unit=bench-check: {body}", flush=True)
        for view, path in paths.items():
            if args.warmup:
                floor.run_load(wrk, scripts[view], base + path, args, args.warmup)
        for round_no in range(1, args.rounds + 1):
            for view, path in paths.items():
                stats = floor.measure(base + path, pgid, wrk, scripts[view], args)
                runs[view].append(stats)
                print(
                    f"[http] round {round_no} {view}: {stats.rps:,.0f} req/s, "
                    f"p95 {stats.p95_ms:.1f} ms, srv cores {stats.server_cores}, "
                    f"other cpu {floor.fmt_pct(stats.other_cpu_pct)}",
                    flush=True,
                )
    tail = floor.tail(log)
    if tail.strip():
        print(f"[http] server log (last lines):\n{tail}")
    results = {view: floor.summarize(spec.label, view, stats) for view, stats in runs.items()}
    return {"results": results, "rounds": runs}


# Functions whose cumulative time splits a request: (label, file suffix, function name).
PROFILE_PARTS = (
    ("URL resolution", "django/core/handlers/base.py", "resolve_request"),
    ("DRF APIView.dispatch", "rest_framework/views.py", "dispatch"),
    ("  DRF initial(): auth + permissions + throttles", "rest_framework/views.py", "initial"),
    ("    authentication (3 classes)", "rest_framework/views.py", "perform_authentication"),
    ("    throttles (INCR pipeline to Redis)", "rest_framework/views.py", "check_throttles"),
    ("    content negotiation", "rest_framework/views.py", "perform_content_negotiation"),
    ("  AssignmentApi.get", "experiments/api.py", "get"),
    ("    experiment_rules() (cache GET + unpickle)", "experiments/selectors.py",
     "experiment_rules"),
    ("    assignment_for (hashing)", "experiments/selectors.py", "assignment_for"),
    ("  DRF finalize_response", "rest_framework/views.py", "finalize_response"),
    ("  response rendering (JSONRenderer)", "rest_framework/response.py", "rendered_content"),
    ("redis-py execute_command (all)", "redis/client.py", "execute_command"),
    ("redis-py pipeline execute", "redis/client.py", "execute"),
    ("  socket sendall (Redis commands)", "~", "<method 'sendall' of '_socket.socket' objects>"),
    ("  socket recv (Redis replies)", "~", "<method 'recv' of '_socket.socket' objects>"),
)  # fmt: skip


def profile_parts(stats: pstats.Stats, requests: int) -> dict[str, float]:
    """µs per request spent in each of PROFILE_PARTS (cumulative, profiler included)."""
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    parts = {"whole request (test client)": stats.total_tt / requests * 1e6}  # type: ignore[attr-defined]
    for label, suffix, name in PROFILE_PARTS:
        total = 0.0
        for (filename, _line, function), (_cc, _nc, _tt, cumulative, _callers) in table.items():
            if function == name and filename.endswith(suffix):
                total += cumulative
        parts[label] = total / requests * 1e6
    return parts


def bench_profile(out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The two views through Django's test client in this process: µs per request timed, then
    split by cProfile (which inflates Python code about twofold; read the shares, not the µs)."""
    from django.test import Client

    client = Client(HTTP_HOST=floor.HOST)
    rng = random.Random(args.seed + 2)
    urls = {
        "django": [floor.VIEWS["django"] + f"?unit={u}" for u in anonymous_ids(rng, 1)],
        "assignment": [
            ASSIGNMENT_PATH.format(key=HTTP_EXPERIMENT) + f"?unit={u}"
            for u in anonymous_ids(rng, args.profile_requests)
        ],
    }
    urls["django"] = urls["django"] * args.profile_requests
    for batch in urls.values():
        for url in batch[:200]:  # warm: imports, URL resolver, connections
            response = client.get(url)
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code} in-process")
    plain: dict[str, list[float]] = {view: [] for view in urls}
    for _ in range(3):  # alternate, as the HTTP rounds do
        for view, batch in urls.items():
            started = time.perf_counter()
            for url in batch:
                client.get(url)
            plain[view].append((time.perf_counter() - started) / len(batch) * 1e6)
    timed_us = {view: statistics.median(values) for view, values in plain.items()}
    print(
        f"[profile] in-process, no profiler: django {timed_us['django']:.0f} µs/request, "
        f"assignment {timed_us['assignment']:.0f} µs/request",
        flush=True,
    )
    parts: dict[str, dict[str, float]] = {}
    for view, batch in urls.items():
        profiler = cProfile.Profile()
        profiler.enable()
        for url in batch:
            client.get(url)
        profiler.disable()
        stats = pstats.Stats(profiler)
        parts[view] = profile_parts(stats, len(batch))
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(45)
        (out / f"profile-{view}.txt").write_text(text.getvalue())
        profiler.dump_stats(out / f"profile-{view}.prof")
    return {"requests": args.profile_requests, "timed_us": timed_us, "parts": parts}


# --- 3. statistics --------------------------------------------------------------------------------


class EventWriter:
    """Events straight into `analytics_event` by `COPY`, in chunks (the roll-ups are not what the
    statistics job reads, so the drain's writer and its roll-ups are skipped)."""

    def __init__(self, chunk: int) -> None:
        self.chunk, self.rows, self.written, self.seconds = chunk, [], 0, 0.0
        self.counter = 0

    def add(
        self, type_: str, customer_id: int | None, anonymous_id: str, props: str, at: datetime
    ) -> None:
        self.counter += 1
        self.rows.append((f"bench-{self.counter}", type_, customer_id, anonymous_id, props, at, at))
        if len(self.rows) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        from django.db import connection

        if not self.rows:
            return
        started = time.perf_counter()
        copy_sql = f"COPY analytics_event ({EVENT_COLUMNS}) FROM STDIN"
        with connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in self.rows:
                copy.write_row(row)
        self.seconds += time.perf_counter() - started
        self.written += len(self.rows)
        self.rows = []


def secondary_indexes_drop() -> list[tuple[str, str]]:
    """Drops the event table's indexes but its primary key, returning (name, definition) to
    rebuild them exactly as the migrations made them: building once after the load is several
    times faster than maintaining five B-trees row by row during it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = 'analytics_event'"
            " AND i.indexname NOT IN (SELECT conname FROM pg_constraint"
            " WHERE conrelid = 'analytics_event'::regclass)"
        )
        indexes = [(name, definition) for name, definition in cursor.fetchall()]
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
    return indexes


def indexes_rebuild(indexes: list[tuple[str, str]]) -> float:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for _name, definition in indexes:
            cursor.execute(definition)
        cursor.execute("RESET maintenance_work_mem")
    return time.perf_counter() - started


def stats_experiments_create(now: datetime) -> Any:
    from experiments.models import Experiment, ExperimentPhase
    from experiments.services import experiment_create

    variants = [{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}]
    for key in (STATS_EXPERIMENT, OTHER_EXPERIMENT):
        experiment_create(
            key=key,
            name=key,
            variants=variants,
            metric_event="purchase",
            metric_window_hours=WINDOW_HOURS,
            # No winner may be written back mid-benchmark: every run computes the same phase.
            min_runtime_hours=24 * 365 * 10,
            status="running",
        )
    start = now - timedelta(days=30)
    Experiment.objects.filter(key__in=[STATS_EXPERIMENT, OTHER_EXPERIMENT]).update(
        phase_started_at=start, started_at=start
    )
    ExperimentPhase.objects.filter(experiment__key__in=[STATS_EXPERIMENT, OTHER_EXPERIMENT]).update(
        started_at=start
    )
    return Experiment.objects.get(key=STATS_EXPERIMENT)


def stats_seed(args: argparse.Namespace, now: datetime, start: datetime) -> dict[str, Any]:
    """Writes every event and returns what the job must find: units per variant, converted units
    per variant, mixed units."""
    from customers.models import Customer
    from experiments.selectors import assignment_for, experiment_rules

    rng = random.Random(args.seed + 3)
    rules = experiment_rules()
    rule, other_rule = rules[STATS_EXPERIMENT], rules[OTHER_EXPERIMENT]
    unit_count = max(2, args.exposures // 2)
    customers = int(unit_count * args.customer_share)
    started = time.perf_counter()
    customer_ids: list[int] = []
    for first in range(0, customers, 10_000):
        made = Customer.objects.bulk_create(
            Customer(external_id=f"bench-customer-{n}", name=f"Bench {n}")
            for n in range(first, min(first + 10_000, customers))
        )
        customer_ids += [customer.pk for customer in made]
    print(f"[stats] {customers:,} customers in {time.perf_counter() - started:.1f} s", flush=True)
    # A unit: (hash unit, customer id or None, anonymous id or "").
    units: list[tuple[str, int | None, str]] = [
        (f"bench-customer-{n}", pk, "") for n, pk in enumerate(customer_ids)
    ]
    units += [(anon, None, anon) for anon in anonymous_ids(rng, unit_count - customers)]
    rng.shuffle(units)

    writer = EventWriter(args.copy_chunk)
    started = time.perf_counter()
    expected = {v: [0, 0] for v in rule.variants}
    mixed = 0
    exposure_props = {
        v: json.dumps({"experiment": STATS_EXPERIMENT, "variant": v, "source": "delivery"})
        for v in rule.variants
    }
    other_props = {
        v: json.dumps({"experiment": OTHER_EXPERIMENT, "variant": v, "source": "delivery"})
        for v in other_rule.variants
    }
    purchase_props = json.dumps({"amount": 25})
    window = timedelta(hours=WINDOW_HOURS)
    # First exposures in [start + 1 min, now - 4 days]: every window closes before now.
    span = (now - timedelta(days=4) - start - timedelta(minutes=1)).total_seconds()
    extra = args.exposures - len(units)  # repeat exposures, spread over random units
    repeats = Counter(rng.randrange(len(units)) for _ in range(max(0, extra)))
    mixed_every = max(1, round(1 / args.mixed_share)) if args.mixed_share else 0
    exposures_written = pre_phase = 0
    for index, (hash_unit, customer_id, anonymous_id) in enumerate(units):
        variant = assignment_for(rule, unit=hash_unit).variant
        first = start + timedelta(minutes=1, seconds=rng.random() * span)
        writer.add("experiment_exposure", customer_id, anonymous_id, exposure_props[variant], first)
        exposures_written += 1
        # Every mixed_every-th unit with a repeat sees the other variant in its first repeat
        # (e.g. a client SDK that disagreed with the server): the job leaves it out.
        repeat_count = repeats.get(index, 0)
        is_mixed = bool(mixed_every) and index % mixed_every == 0 and repeat_count > 0
        other_variant = rule.variants[1 - rule.variants.index(variant)]
        for repeat in range(repeat_count):
            shown = other_variant if is_mixed and repeat == 0 else variant
            later = first + timedelta(seconds=1 + rng.random() * 3 * 86400)
            writer.add(
                "experiment_exposure", customer_id, anonymous_id, exposure_props[shown], later
            )
            exposures_written += 1
        mixed += is_mixed
        counted = None if is_mixed else expected[variant]
        # Conversions: ~10 % inside the window (control 10 %, treatment 11 %), ~5 % only outside.
        draw = rng.random()
        rate = 0.10 if variant == rule.variants[0] else 0.11
        if draw < rate:
            at = first + timedelta(seconds=1 + rng.random() * (window.total_seconds() - 2))
            writer.add("purchase", customer_id, anonymous_id, purchase_props, at)
            if counted is not None:
                counted[1] += 1
        elif draw < rate + 0.05:
            if rng.random() < 0.5:  # before the first exposure
                at = first - timedelta(seconds=60 + rng.random() * 2 * 86400)
            else:  # after the window closed
                at = first + window + timedelta(seconds=60 + rng.random() * 86400)
            writer.add("purchase", customer_id, anonymous_id, purchase_props, at)
        if counted is not None:
            counted[0] += 1
        # A few exposures before the phase began (an earlier phase): outside [start, end).
        if rng.random() < 0.01:
            pre_phase += 1
            writer.add("experiment_exposure", customer_id, anonymous_id,
                       exposure_props[rule.variants[rng.randrange(2)]],
                       start - timedelta(seconds=1 + rng.random() * 86400))  # fmt: skip
        # Another experiment exposes a third of the same units.
        if index % 3 == 0 and args.other_exposures:
            other = assignment_for(other_rule, unit=hash_unit).variant
            writer.add("experiment_exposure", customer_id, anonymous_id, other_props[other],
                       start + timedelta(seconds=rng.random() * span))  # fmt: skip
        if index % 100_000 == 99_999:
            print(f"[stats] {index + 1:,} units, {writer.counter:,} events so far", flush=True)
    # The rest of the other experiment's exposures go to subjects never exposed to ours.
    other_left = max(0, args.other_exposures - (len(units) + 2) // 3)
    for anon in anonymous_ids(rng, other_left):
        other = assignment_for(other_rule, unit=anon).variant
        writer.add("experiment_exposure", None, anon, other_props[other],
                   start + timedelta(seconds=rng.random() * span))  # fmt: skip
    # Unrelated events: non-purchase types by anyone, purchases only by strangers.
    types = [name for name, weight in UNRELATED_TYPES for _ in range(weight)]
    strangers = anonymous_ids(rng, 50_000)
    page_props = json.dumps({"path": "/p/1"})
    for _ in range(args.unrelated):
        type_ = types[rng.randrange(len(types))]
        at = start - timedelta(days=30) + timedelta(seconds=rng.random() * 60 * 86400)
        if type_ == "purchase":
            writer.add(type_, None, strangers[rng.randrange(len(strangers))], purchase_props, at)
            continue
        _hash_unit, customer_id, anonymous_id = units[rng.randrange(len(units))]
        writer.add(type_, customer_id, anonymous_id, page_props, at)
    writer.flush()
    seconds = time.perf_counter() - started
    print(
        f"[stats] {writer.written:,} events written in {seconds:.1f} s "
        f"({writer.written / seconds:,.0f} events/s, COPY {writer.seconds:.1f} s)",
        flush=True,
    )
    return {
        "units": len(units),
        "customers": customers,
        "exposure_events": exposures_written,
        "events": writer.written,
        "seed_s": seconds,
        "expected": {v: {"exposures": e, "conversions": c} for v, (e, c) in expected.items()},
        "pre_phase_exposures": pre_phase,
        "mixed_units": mixed,
    }


def explain(out: Path, experiment: Any, name: str = "exposures") -> dict[str, Any]:
    from django.db import connection

    from analytics.reports import _exposures_sql

    sql, params = _exposures_sql(
        experiment=experiment.key,
        metric_event=experiment.metric_event,
        window=timedelta(hours=experiment.metric_window_hours),
        start=experiment.phase_started_at,
        end=None,
    )
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        statement = cursor.mogrify(sql, params) if hasattr(cursor, "mogrify") else sql
    path = out / f"explain-{name}.txt"
    path.write_text(f"{statement}\n\n{plan}\n")
    nodes = [line.strip() for line in plan.splitlines() if "event_exposure_experiment" in line]
    execution = next((line for line in plan.splitlines() if line.startswith("Execution Time")), "")
    return {
        "path": str(path),
        "index_used": bool(nodes),
        "index_nodes": nodes,
        "execution": execution,
        "execution_ms": float(execution.split()[2]) if execution else None,
        "nested_loops": plan.count("Nested Loop"),
        "hash_joins": plan.count("Hash Join"),
        "sorts_on_disk": plan.count("external merge"),
    }


# What the statement would cost with the planner better informed (expression statistics: the
# planner ignores a partial index's statistics, so `properties -> 'experiment' = ...` gets the
# default 0.5 % selectivity) or with more sort memory. Bench database only, after the timed runs.
WHAT_IF = (
    ("work_mem-64MB", ["SET work_mem = '64MB'"], []),
    (
        "expression-statistics",
        ["RESET work_mem"],
        [
            "CREATE STATISTICS bench_event_experiment ON (properties -> 'experiment') "
            "FROM analytics_event",
            "ANALYZE analytics_event",
        ],
    ),
    ("expression-statistics+work_mem-64MB", ["SET work_mem = '64MB'"], []),
)


def what_if(out: Path, experiment: Any) -> list[dict[str, Any]]:
    from django.db import connection

    plans = []
    try:
        for name, session, schema in WHAT_IF:
            with connection.cursor() as cursor:
                for statement in schema + session:
                    cursor.execute(statement)
            plan = explain(out, experiment, name)
            plans.append({"name": name, **plan})
            print(
                f"[what-if] {name}: {plan['execution']}, nested loops {plan['nested_loops']}, "
                f"hash joins {plan['hash_joins']}, sorts on disk {plan['sorts_on_disk']}",
                flush=True,
            )
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET work_mem")
    return plans


def bench_stats(out: Path, args: argparse.Namespace) -> dict[str, Any]:
    from django.db import connection
    from django.utils import timezone

    from experiments.models import Experiment
    from experiments.services import experiment_results_compute

    now = timezone.now()
    experiment = stats_experiments_create(now)
    indexes = [] if args.load_with_indexes else secondary_indexes_drop()
    rebuild_s = 0.0
    try:
        seeded = stats_seed(args, now, experiment.phase_started_at)
    finally:
        if indexes:
            rebuild_s = indexes_rebuild(indexes)
            print(f"[stats] {len(indexes)} indexes rebuilt in {rebuild_s:.1f} s", flush=True)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) analytics_event")  # as autovacuum would, before timing
        cursor.execute("SELECT count(*) FROM analytics_event")
        stored = cursor.fetchone()[0]
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('analytics_event'))")
        size = cursor.fetchone()[0]
    print(
        f"[stats] VACUUM ANALYZE {time.perf_counter() - started:.1f} s; "
        f"analytics_event: {stored:,} rows, {size} with indexes",
        flush=True,
    )
    runs: list[float] = []
    results: dict[str, Any] = {}
    for run_no in range(1, args.stats_runs + 1):
        experiment = Experiment.objects.get(key=STATS_EXPERIMENT)
        began = time.perf_counter()
        results = experiment_results_compute(experiment=experiment)
        runs.append(time.perf_counter() - began)
        print(f"[stats] run {run_no}: experiment_results_compute {runs[-1]:.2f} s", flush=True)
    found = {
        row["key"]: {"exposures": row["exposures"], "conversions": row["conversions"]}
        for row in results["variants"]
    }
    mismatches = []
    for variant, wanted in seeded["expected"].items():
        if found.get(variant) != wanted:
            mismatches.append(f"{variant}: found {found.get(variant)}, generated {wanted}")
    if results.get("mixed_units") != seeded["mixed_units"]:
        mismatches.append(
            f"mixed units: found {results.get('mixed_units')}, generated {seeded['mixed_units']}"
        )
    plan = explain(out, Experiment.objects.get(key=STATS_EXPERIMENT))
    print(
        f"[stats] EXPLAIN: {plan['execution']}; partial index event_exposure_experiment used: "
        f"{'yes' if plan['index_used'] else 'NO'} ({plan['path']})",
        flush=True,
    )
    for node in plan["index_nodes"]:
        print(f"[stats]   {node}", flush=True)
    what_ifs = what_if(out, Experiment.objects.get(key=STATS_EXPERIMENT)) if args.what_if else []
    return {
        **seeded,
        "stored": stored,
        "table_size": size,
        "index_rebuild_s": rebuild_s,
        "runs_s": runs,
        "median_s": statistics.median(runs),
        "found": found,
        "found_mixed_units": results.get("mixed_units"),
        "srm": results.get("srm"),
        "mismatches": mismatches,
        "explain": plan,
        "what_if": what_ifs,
    }


# --- report ---------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(figures: dict[str, Any], args: argparse.Namespace) -> bool:
    ok = True
    lines: list[tuple[str, str, str, bool | None]] = []
    if "inprocess" in figures:
        part = figures["inprocess"]
        print(
            f"\nin-process, {part['units']:,} distinct units ({part['unit_length']} characters), "
            f"{part['rules_cached']} experiments in the cached rules, median of {args.passes} "
            "passes"
        )
        print(f"{'call':<60}{'µs/call':>9}{'calls/s':>12}")
        for name, case in part["cases"].items():
            shown = f"{name} ({case['calls']:,} units)" if case["calls"] != part["units"] else name
            print(f"{shown:<60}{case['us_per_call']:>9.2f}{case['calls_per_s']:>12,.0f}")
        error = part["max_share_error"]
        lines.append(("split vs weights x traffic, worst", f"{error * 100:.2f} pp", "< 1 pp",
                      error < 0.01))  # fmt: skip
    if "http" in figures:
        results = figures["http"]["results"]
        print(
            f"\n{'view':<12}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'mean ms':>9}"
            f"{'errors':>8}{'µs CPU/req':>11}{'other cpu':>10}  rounds req/s"
        )
        for name, r in results.items():
            mean = 1000.0 * args.connections / r.rps if r.rps else float("inf")
            cpu = (r.server_cores or 0) / r.rps * 1e6 if r.rps else 0.0
            print(
                f"{name:<12}{r.rps:>9,.0f}{r.p50_ms:>9.1f}{r.p95_ms:>9.1f}{r.p99_ms:>9.1f}"
                f"{mean:>9.1f}{r.non_2xx + r.socket_errors:>8}{cpu:>11.0f}"
                f"{floor.fmt_pct(r.other_cpu_pct):>10}  {r.rounds_rps}"
            )
        base, assign = results["django"], results["assignment"]
        ratio = assign.rps / base.rps if base.rps else 0.0
        errors = assign.non_2xx + assign.socket_errors
        lines += [
            ("assignment / django req/s", f"{ratio:.2f}", f">= {TARGET_RATIO}",
             ratio >= TARGET_RATIO),
            ("assignment p95", f"{assign.p95_ms:.1f} ms", f"< {TARGET_P95_MS:.0f} ms",
             assign.p95_ms < TARGET_P95_MS),
            ("assignment errors", str(errors), "0", errors == 0),
        ]  # fmt: skip
    if "profile" in figures:
        prof = figures["profile"]
        print(
            f"\nin-process through Django's test client, {prof['requests']:,} requests per view: "
            f"django {prof['timed_us']['django']:.0f} µs/request, assignment "
            f"{prof['timed_us']['assignment']:.0f} µs/request (no profiler).\n"
            "Under cProfile (µs/request, profiler overhead included; compare shares):"
        )
        print(f"{'':<52}{'django':>9}{'assignment':>12}")
        for label in prof["parts"]["assignment"]:
            base_us = prof["parts"]["django"].get(label, 0.0)
            print(f"{label:<52}{base_us:>9.0f}{prof['parts']['assignment'][label]:>12.0f}")
    if "stats" in figures:
        part = figures["stats"]
        print(
            f"\nstatistics: {part['exposure_events']:,} exposure events for {part['units']:,} "
            f"units ({part['customers']:,} customers), {part['stored']:,} events in all "
            f"({part['table_size']}), written in {part['seed_s']:.0f} s"
            + (
                f" + indexes rebuilt in {part['index_rebuild_s']:.0f} s"
                if part["index_rebuild_s"]
                else " (indexes in place)"
            )
        )
        for variant, wanted in part["expected"].items():
            print(f"  {variant:<10} generated {wanted}  found {part['found'].get(variant)}")
        print(
            f"  mixed units generated {part['mixed_units']}, found {part['found_mixed_units']}; "
            f"SRM {part['srm']}"
        )
        target = TARGET_STATS_S * part["exposure_events"] / STATS_TARGET_EXPOSURES
        runs = " / ".join(f"{s:.2f}" for s in part["runs_s"])
        lines += [
            ("experiment_results_compute runs", f"{runs} s", "", None),
            ("experiment_results_compute median", f"{part['median_s']:.2f} s",
             f"< {target:.1f} s", part["median_s"] < target),
            ("counts equal what was generated", "yes" if not part["mismatches"] else "NO", "yes",
             not part["mismatches"]),
            ("partial index event_exposure_experiment used",
             "yes" if part["explain"]["index_used"] else "no", "", None),
            ("EXPLAIN ANALYZE of the statement", f"{part['explain']['execution_ms']:.0f} ms", "",
             None),
        ]  # fmt: skip
        lines += [
            (f"  what if: {plan['name']}", f"{plan['execution_ms']:.0f} ms", "", None)
            for plan in part["what_if"]
        ]
        for mismatch in part["mismatches"]:
            print(f"  MISMATCH {mismatch}")
    print()
    for name, value, target, passed in lines:
        if passed is not None:
            ok &= passed
        shown = verdict(passed) if passed is not None else ""
        print(f"{name:<46}{value:>22}  {target:<10}{shown}")
    return ok


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=200_000, help="part 1: distinct units")
    parser.add_argument(
        "--redis-units", type=int, default=20_000, help="part 1: units for the Redis path"
    )
    parser.add_argument("--passes", type=int, default=3, help="part 1: passes, median shown")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile-requests", type=int, default=3000)
    parser.add_argument("--exposures", type=int, default=1_000_000)
    parser.add_argument("--customer-share", type=float, default=0.2, help="of exposed units")
    parser.add_argument(
        "--mixed-share", type=float, default=0.002, help="units picked to see both variants"
    )
    parser.add_argument("--other-exposures", type=int, default=300_000)
    parser.add_argument("--unrelated", type=int, default=1_000_000)
    parser.add_argument("--copy-chunk", type=int, default=100_000)
    parser.add_argument("--stats-runs", type=int, default=3)
    parser.add_argument(
        "--load-with-indexes",
        action="store_true",
        help="keep the event indexes during the load (as the drain fills them; slower)",
    )
    parser.add_argument(
        "--what-if",
        action="store_true",
        help="after the timed runs: EXPLAIN again with work_mem 64MB and with statistics on "
        "properties -> 'experiment' (bench database only)",
    )
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--redis-db", type=int, default=12, help="must be empty; flushed at end")
    parser.add_argument("--out", type=Path, help="keep logs, profiles, EXPLAIN here")
    parser.add_argument("--skip-inprocess", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument("--skip-stats", action="store_true")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    args.load_generator = "wrk"
    if min(args.units, args.redis_units, args.passes, args.rounds, args.duration) < 1:
        parser.error("units, redis-units, passes, rounds and duration must be >= 1")
    if args.exposures < 2 or args.stats_runs < 1 or not 0 <= args.customer_share <= 1:
        parser.error("exposures >= 2, stats-runs >= 1, customer-share in [0, 1]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, floor.raise_on_sigterm)
    import redis

    admin_url = os.environ.get("BENCH_DATABASE_URL", floor.DEFAULT_DATABASE_URL)
    redis_url = with_database(
        os.environ.get("BENCH_REDIS_URL", floor.DEFAULT_REDIS_URL), str(args.redis_db)
    )
    floor.check_reachable(admin_url)
    floor.check_reachable(redis_url)
    redis_client = redis.Redis.from_url(redis_url)
    if redis_client.dbsize():
        sys.exit(f"{redis_url} is not empty: pick an unused --redis-db")
    wrk = None
    if not args.skip_http:
        wrk = floor.ensure_wrk()
        if not wrk:
            sys.exit("wrk not found and could not be installed: the HTTP part needs it")
    out = args.out or Path(tempfile.mkdtemp(prefix="cms-bench-experiments-"))
    out.mkdir(parents=True, exist_ok=True)
    name = f"bench_experiments_{secrets.token_hex(4)}"
    database_create(admin_url, name)
    figures: dict[str, Any] = {}
    started = time.monotonic()
    try:
        env = floor.services_env(out)
        env.update(
            {
                "DATABASE_URL": with_database(admin_url, name),
                "REDIS_URL": redis_url,
                "CMS_CACHE_PREFIX": name,
                "CMS_THROTTLE_ANON": UNTHROTTLED,
                "CMS_THROTTLE_USER": UNTHROTTLED,
            }
        )
        Path(env["CMS_VAR_DIR"]).mkdir(parents=True, exist_ok=True)
        print(f"database {name}, redis {redis_url}, output {out}", flush=True)
        django_ready(env)
        experiments_create()
        if not args.skip_inprocess:
            figures["inprocess"] = bench_inprocess(args)
        if not args.skip_http and wrk:
            figures["http"] = bench_http(env, wrk, out, args)
        if not args.skip_profile:
            figures["profile"] = bench_profile(out, args)
        if not args.skip_stats:
            figures["stats"] = bench_stats(out, args)
    finally:
        from django.db import connections

        connections.close_all()
        database_drop(admin_url, name)
        redis_client.flushdb()
    ok = report(figures, args)
    print(
        f"\n{time.monotonic() - started:.0f} s; wrk {args.connections} connections, "
        f"{args.threads} threads, {args.warmup}s warm-up + {args.rounds} x {args.duration}s per "
        f"view; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; files in {out}"
    )
    if args.json:
        http = figures.get("http")
        if http:
            http = {k: vars(v) for k, v in http["results"].items()}
        args.json.write_text(json.dumps({**figures, "http": http}, default=str, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
