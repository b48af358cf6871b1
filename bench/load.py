"""Whole-system load: a realistic mix against the services mode, worker and beat running.

The stack starts as production runs it: `python -m cmsproject.run` in services mode (migrate,
demo data, then honcho runs the Procfile: gunicorn for HTTP, uvicorn for WebSocket, a Celery
worker and beat) on a PostgreSQL database of its own (`bench_load_<random>`) and an empty Redis
database of its own (`--redis-db`, default 14), with the throttles raised so nothing is refused.

Then, for each user step (`--steps`, e.g. 20, 40, 80, ...), `locust --headless` runs
`bench/locustfile.py`: each user paced at `--user-rps`, 70 % `GET /api/v1/deliver/page/home/`
with an `X-Anonymous-Id` from a pool (a share of them VIP members, made so by real purchase
events), 20 % `POST /api/v1/events/` (a tenth of them `/events/batch/`), 10 % GraphQL. Meanwhile
500 idle WebSocket subscribers (a separate process: asyncio + websockets) listen to
`content:page:home`, and a staff user updates and publishes the home page every
`--publish-every` seconds through the REST API; each subscriber's receipt is timed.

After the last step: wait until the drain has emptied the event stream, then compare the ids
answered 202 with the ids in `analytics_event` (none lost, none extra) and the roll-ups with the
rows (nothing counted twice). A step passes when the reads' p95 is under `--target-p95-ms`, no
request failed and the load reached 90 % of the offered rate. The exit status is 1 when the
lowest step fails or an event is unaccounted for.

Run on demand (never by pytest): `.venv/bin/python bench/load.py`; see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import floor
import segments
from ingest import admin_connection, database_create, database_drop, with_database

HOST = floor.HOST
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
DELIVER_PATH = "/api/v1/deliver/page/home/"
CONTENT_PATH = "/api/v1/content/page/home/"
# What a storefront's home page asks GraphQL for: the personalized page and a product shelf.
GRAPHQL_QUERY = """
query Home {
  deliver(type: "page", slug: "home") { data meta }
  contentEntries(type: "product", first: 10) {
    items { id slug fields publishedAt }
    pageInfo { hasNextPage endCursor }
  }
}
"""
GRAPHQL_BODY = json.dumps({"query": GRAPHQL_QUERY, "operationName": "Home"})
TOPIC = "content:page:home"
UNTHROTTLED = "10000000/s"
READ_KINDS = ("delivery", "graphql")
KINDS = ("delivery", "graphql", "ingest", "ingest batch")
STAFF_USER = "bench-load"
NOISY_PCT = floor.NOISY_PCT


# --- processes and where the CPU went -------------------------------------------------------------


@dataclass
class Proc:
    ppid: int
    pgid: int
    comm: str
    cpu_s: float


def proc_table() -> dict[int, Proc]:
    table: dict[int, Proc] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue  # ended while we looked
        head, _, tail = raw.rpartition(")")
        fields = tail.split()
        table[int(stat.parent.name)] = Proc(
            ppid=int(fields[1]),
            pgid=int(fields[2]),
            comm=head.partition("(")[2],
            cpu_s=(int(fields[11]) + int(fields[12])) / floor.CLOCK_TICKS,
        )
    return table


def cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


class Stack:
    """`python -m cmsproject.run`, which becomes honcho; honcho starts each Procfile process in a
    session of its own, so the stack is several process groups, found by walking the tree."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log
        self.roles: dict[int, str] = {proc.pid: "honcho"}  # process group -> role

    def refresh(self, table: dict[int, Proc] | None = None) -> None:
        table = table or proc_table()
        children: dict[int, list[int]] = defaultdict(list)
        for pid, proc in table.items():
            children[proc.ppid].append(pid)
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            todo += children.get(pid, [])
            pgid = table[pid].pgid if pid in table else None
            if pgid is None or pgid in self.roles:
                continue
            line = cmdline(pid)
            if "gunicorn" in line:
                self.roles[pgid] = "web"
            elif "uvicorn" in line:
                self.roles[pgid] = "ws"
            elif "celery" in line and " beat" in line:
                self.roles[pgid] = "beat"
            elif "celery" in line and " worker" in line:
                self.roles[pgid] = "worker"

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.refresh()
        groups = list(self.roles)  # the sampler thread may still be adding to it
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not any(p.pgid in groups for p in proc_table().values()):
                break
            time.sleep(0.3)
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


@dataclass
class CpuSample:
    at: float  # wall clock, comparable with the Locust process's timestamps
    busy: float | None
    procs: dict[int, tuple[str, float]]  # pid -> role, CPU seconds so far
    own: float


class Sampler(threading.Thread):
    """Samples every second where the CPU went, so a step's figures cover exactly its measured
    window (after the ramp), which only the Locust process knows and reports afterwards."""

    def __init__(self, stack: Stack, database: str) -> None:
        super().__init__(name="cpu-sampler", daemon=True)
        self.stack, self.database = stack, database
        self.generators: dict[int, str] = {}  # process group -> "locust" or "ws clients"
        self.samples: list[CpuSample] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.samples.append(self.sample())
            self.stopping.wait(1.0)

    def sample(self) -> CpuSample:
        table = proc_table()
        self.stack.refresh(table)
        generators = self.generators
        procs: dict[int, tuple[str, float]] = {}
        for pid, proc in table.items():
            if proc.pgid in self.stack.roles:
                procs[pid] = (self.stack.roles[proc.pgid], proc.cpu_s)
            elif proc.pgid in generators:
                procs[pid] = (generators[proc.pgid], proc.cpu_s)
            elif proc.comm == "redis-server":
                procs[pid] = ("redis", proc.cpu_s)  # shared with whoever else uses this Redis
            elif proc.comm == "postgres" and f" {self.database} " in cmdline(pid):
                procs[pid] = ("postgres", proc.cpu_s)  # the backends serving our database
        own = resource.getrusage(resource.RUSAGE_SELF)
        return CpuSample(
            at=time.time(),
            busy=floor.machine_busy_seconds(),
            procs=procs,
            own=own.ru_utime + own.ru_stime,
        )

    def between(self, since: float, until: float) -> dict[str, float]:
        inside = [sample for sample in list(self.samples) if since <= sample.at <= until]
        return cpu_between(inside) if len(inside) >= 2 else {}

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)


CPU_COLUMNS = ("web", "ws", "worker", "postgres", "redis", "locust", "ws clients", "other")


def cpu_between(samples: list[CpuSample]) -> dict[str, float]:
    """Cores used per role over the samples' span; `other` as a share (%) of all CPUs: processes
    that are neither the stack, its PostgreSQL backends, Redis, nor the load generators.

    Processes come and go (PostgreSQL backends are reopened after `CONN_MAX_AGE`): each counts
    from its value in the first sample, or from zero if it started later, to the last sample it
    was seen in."""
    before, after = samples[0], samples[-1]
    seconds = after.at - before.at
    if seconds <= 0:
        return {}
    last: dict[int, tuple[str, float]] = {}
    for sample in samples:
        last.update(sample.procs)
    used: Counter[str] = Counter()
    for pid, (role, cpu_s) in last.items():
        used[role] += (cpu_s - before.procs.get(pid, (role, 0.0))[1]) / seconds
    cores = {
        "web": used.get("web", 0.0),
        "ws": used.get("ws", 0.0),
        "worker": used.get("worker", 0.0) + used.get("beat", 0.0),
        "honcho": used.get("honcho", 0.0),
        "postgres": used.get("postgres", 0.0),
        "redis": used.get("redis", 0.0),
        "locust": used.get("locust", 0.0),
        "ws clients": used.get("ws clients", 0.0),
        "bench": (after.own - before.own) / seconds,
    }
    if before.busy is not None and after.busy is not None:
        busy = (after.busy - before.busy) / seconds
        other = max(0.0, busy - sum(cores.values()))
        cores["other"] = 100 * other / (os.cpu_count() or 1)
    return cores


# --- HTTP -----------------------------------------------------------------------------------------


def call(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            raw = response.read()
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), int(exc.code)
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw[:200]


class Staff:
    """A staff login through the API; the access token lasts 5 minutes, so it is renewed."""

    def __init__(self, base: str, password: str) -> None:
        self.base, self.password = base, password
        self.token, self.fetched = "", 0.0

    def headers(self, fresh: bool = False) -> dict[str, str]:
        if fresh or not self.token or time.monotonic() - self.fetched > 240:
            status, body = call(
                "POST",
                self.base + "/api/v1/auth/token/",
                {"username": STAFF_USER, "password": self.password},
            )
            if status != 200:
                raise RuntimeError(f"staff login answered {status}: {body}")
            self.token, self.fetched = body["access"], time.monotonic()
        return {"Authorization": f"Bearer {self.token}"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, answer = call(method, self.base + path, body, self.headers())
        if status == 401:
            status, answer = call(method, self.base + path, body, self.headers(fresh=True))
        return status, answer


# --- the stack ------------------------------------------------------------------------------------


def stack_start(env: dict[str, str], tmp: Path) -> tuple[Stack, str, str]:
    port = segments.free_port_pair()
    run_env = {**env, "PORT": str(port), "WS_PORT": str(port + 1)}
    log = tmp / "run.log"
    print(f"[stack] python -m cmsproject.run (services) on {port} (HTTP) / {port + 1} (WS)")
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cmsproject.run", "--host", HOST, "--port", str(port)],
            cwd=floor.ROOT,
            env=run_env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = Stack(proc, log)
    base, ws_base = f"http://{HOST}:{port}", f"ws://{HOST}:{port + 1}"
    try:
        segments.wait_port(port, proc, log, timeout=300)  # migrate + demo data first
        segments.wait_port(port + 1, proc, log)
        floor.wait_ready(base + "/api/v1/health/", proc, log)
        stack.refresh()
    except BaseException:
        stack.stop()
        raise
    return stack, base, ws_base


def visitors_make(run: str, args: argparse.Namespace) -> dict[str, list[str]]:
    vips = [f"{run}-vip-{n}" for n in range(args.vips)]
    visitors = [f"{run}-v-{n}" for n in range(args.visitors)]
    return {"visitors": visitors, "vips": vips}


def vips_enrol(base: str, pool: dict[str, list[str]], run: str, timeout: float) -> list[str]:
    """Two purchases over $500 per VIP id through the public API, then wait until the worker's
    drain and re-evaluation put each in `vip` (so later re-evaluations keep them there)."""
    ids = []
    for vip in pool["vips"]:
        for n, amount in enumerate((300, 250)):
            event_id = f"{run}-setup-{vip}-{n}"
            body = {
                "id": event_id,
                "type": "purchase",
                "anonymousId": vip,
                "properties": {"amount": amount, "currency": "USD"},
            }
            status, answer = call("POST", base + "/api/v1/events/", body)
            if status != 202:
                raise RuntimeError(f"setup purchase answered {status}: {answer}")
            ids.append(event_id)
    waiting = set(pool["vips"])
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for vip in sorted(waiting):
            status, body = call("GET", base + DELIVER_PATH, headers={"X-Anonymous-Id": vip})
            if status == 200 and "vip" in (body.get("meta") or {}).get("segments", []):
                waiting.discard(vip)
        if waiting:
            time.sleep(1)
    if waiting:
        raise RuntimeError(f"{len(waiting)} VIP ids not in `vip` after {timeout:.0f}s")
    return ids


def preflight(base: str, pool: dict[str, list[str]]) -> None:
    vip, visitor = pool["vips"][0], pool["visitors"][0]
    status, body = call("GET", base + DELIVER_PATH, headers={"X-Anonymous-Id": visitor})
    if status != 200 or "vip" in body["meta"].get("segments", []):
        raise RuntimeError(f"delivery for a visitor answered {status}: {body}")
    status, body = call(
        "POST",
        base + "/graphql/",
        json.loads(GRAPHQL_BODY),
        headers={"X-Anonymous-Id": vip},
    )
    if status != 200 or body.get("errors"):
        raise RuntimeError(f"GraphQL answered {status}: {body}")
    data = body["data"]
    if "vip" not in data["deliver"]["meta"].get("segments", []):
        raise RuntimeError(f"GraphQL delivery not personalized: {data['deliver']['meta']}")
    if not data["contentEntries"]["items"]:
        raise RuntimeError("GraphQL contentEntries returned no products")


# --- the WebSocket subscribers (a process of their own) -------------------------------------------


async def subscribers_run(args: argparse.Namespace) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, WebSocketException

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    gate = asyncio.Semaphore(args.connect_concurrency)
    sockets: list[Any] = []
    received: dict[str, list[tuple[int, float]]] = defaultdict(list)  # title -> (socket, time)
    state: dict[str, Any] = {"subscribed": 0, "failed": [], "failed_ids": [], "closed": []}
    settled = asyncio.Event()

    def settle() -> None:
        if state["subscribed"] + len(state["failed"]) == args.count:
            settled.set()

    async def subscriber(n: int) -> None:
        try:
            async with gate:
                ws = await connect(
                    f"{args.url}/ws/v1/live?anonymous_id={args.prefix}-ws-{n}", open_timeout=30
                )
                await ws.send(json.dumps({"action": "subscribe", "topic": TOPIC}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if reply.get("type") != "subscribed":
                    raise RuntimeError(f"subscribe answered {reply}")
        except (OSError, TimeoutError, RuntimeError, WebSocketException) as exc:
            state["failed"].append(f"{type(exc).__name__}: {exc}")
            state["failed_ids"].append(n)
            settle()
            return
        sockets.append(ws)
        state["subscribed"] += 1
        settle()
        try:
            async for raw in ws:
                at = time.time()
                message = json.loads(raw)
                if message.get("topic") == TOPIC and message.get("type") == "content.updated":
                    title = ((message.get("data") or {}).get("fields") or {}).get("title")
                    received[str(title)].append((n, at))
        except ConnectionClosed as exc:
            if not stop.is_set():
                state["closed"].append((time.time(), n, f"{exc}"))

    tasks = [asyncio.create_task(subscriber(n)) for n in range(args.count)]
    await settled.wait()
    Path(args.ready).write_text(
        json.dumps({"subscribed": state["subscribed"], "failed": state["failed"][:20]})
    )
    await stop.wait()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in sockets)), 10)
    for task in tasks:
        task.cancel()
    Path(args.out).write_text(
        json.dumps(
            {
                "count": args.count,
                "subscribed": state["subscribed"],
                "failed": state["failed"],
                "failed_ids": state["failed_ids"],
                "closed": state["closed"],
                "received": received,
            }
        )
    )


def subscribers_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="load.py subscribers")
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--connect-concurrency", type=int, default=50)
    asyncio.run(subscribers_run(parser.parse_args(argv)))
    return 0


class Subscribers:
    def __init__(self, ws_base: str, count: int, run: str, out: Path) -> None:
        self.ready, self.out, self.log = out / "ws-ready.json", out / "ws-out.json", out / "ws.log"
        for stale in (self.ready, self.out):  # from an earlier run into the same --out
            stale.unlink(missing_ok=True)
        argv = [
            sys.executable, __file__, "subscribers", "--url", ws_base, "--count", str(count),
            "--prefix", run, "--ready", str(self.ready), "--out", str(self.out),
        ]  # fmt: skip
        with self.log.open("wb") as log_file:
            self.proc = subprocess.Popen(
                argv,
                cwd=floor.ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready.exists():
                return json.loads(self.ready.read_text())
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"WebSocket subscribers not ready:\n{floor.tail(self.log)}")

    def finish(self) -> dict[str, Any]:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        floor.stop(self.proc)
        if not self.out.exists():
            raise RuntimeError(f"WebSocket subscribers left no results:\n{floor.tail(self.log)}")
        return json.loads(self.out.read_text())


# --- the publisher --------------------------------------------------------------------------------


@dataclass
class Publish:
    title: str
    sent: float  # wall clock: the subscribers' process stamps receipts with the same clock
    answered: float
    status: int


class Publisher(threading.Thread):
    """Every `every` seconds a staff edit of the home page's title, then a publish; the publish
    request's start is the reference for the subscribers' receipt times."""

    def __init__(self, staff: Staff, every: float, run: str) -> None:
        super().__init__(name="publisher", daemon=True)
        self.staff, self.every, self.run_tag = staff, every, run
        self.stopping = threading.Event()
        self.published: list[Publish] = []
        self.failures: list[str] = []

    def run(self) -> None:
        started, n = time.monotonic(), 0
        while not self.stopping.wait(max(0.0, started + n * self.every - time.monotonic())):
            n += 1
            title = f"Home {self.run_tag} #{n}"
            try:
                status, body = self.staff.call("PATCH", CONTENT_PATH, {"fields": {"title": title}})
                if status != 200:
                    self.failures.append(f"PATCH {status}: {body}")
                    continue
                sent = time.time()
                status, body = self.staff.call("POST", CONTENT_PATH + "publish/", {})
                self.published.append(Publish(title, sent, time.time(), status))
                if status != 200:
                    self.failures.append(f"publish {status}: {body}")
            except (OSError, RuntimeError) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


# --- a step ---------------------------------------------------------------------------------------


@dataclass
class KindResult:
    requests: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]  # every request of the step, ramp included

    @property
    def errors(self) -> int:
        return sum(n for label, n in self.statuses.items() if label.startswith("error"))


@dataclass
class StepResult:
    users: int
    offered_rps: float
    started: float  # wall clock
    ended: float
    kinds: dict[str, KindResult] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    backlog_at_end: int = 0
    ids: dict[str, list[str]] = field(default_factory=dict)
    error: str = ""

    @property
    def rps(self) -> float:
        return sum(kind.rps for kind in self.kinds.values())

    @property
    def errors(self) -> int:
        return sum(kind.errors for kind in self.kinds.values())

    def read_p95(self) -> float:
        return max((self.kinds[k].p95_ms for k in READ_KINDS if k in self.kinds), default=0.0)

    def passed(self, target_p95_ms: float) -> bool:
        return (
            not self.error
            and all(k in self.kinds for k in READ_KINDS)
            and self.read_p95() < target_p95_ms
            and self.errors == 0
            and self.rps >= 0.9 * self.offered_rps
        )


def kind_result(latencies: list[float], statuses: dict[str, int], seconds: float) -> KindResult:
    ordered = sorted(latencies)
    return KindResult(
        requests=len(ordered),
        rps=len(ordered) / seconds if seconds else 0.0,
        p50_ms=floor.percentile(ordered, 50),
        p95_ms=floor.percentile(ordered, 95),
        p99_ms=floor.percentile(ordered, 99),
        max_ms=ordered[-1] if ordered else 0.0,
        statuses=dict(statuses),
    )


def step_run(
    users: int,
    args: argparse.Namespace,
    base: str,
    pool_file: Path,
    out: Path,
    run: str,
    sampler: Sampler,
    backlog: Any,
) -> StepResult:
    result_file = out / f"step-{users}.json"
    result_file.unlink(missing_ok=True)  # from an earlier run into the same --out
    env = {
        **os.environ,
        "LOAD_POOL": str(pool_file),
        "LOAD_OUT": str(result_file),
        "LOAD_SECONDS": str(args.ramp + args.duration),
        "LOAD_RUN": run,
        "LOAD_STEP": str(users),
        "LOAD_USER_RPS": str(args.user_rps),
        "LOAD_VIP_SHARE": str(args.vip_share),
        "LOAD_BATCH_SIZE": str(args.batch_size),
        "PYTHONPATH": str(LOCUSTFILE.parent),
    }
    run_time = args.ramp + args.duration + 30  # a safety net: the locustfile quits by itself
    argv = [
        str(floor.BIN / "locust"), "-f", str(LOCUSTFILE), "--headless", "--host", base,
        "-u", str(users), "-r", f"{users / max(args.ramp, 1):.2f}", "-t", f"{run_time}s",
        "--only-summary", "--loglevel", "INFO",
        "--exit-code-on-error", "0", "--csv", str(out / f"step-{users}"), "--reset-stats",
    ]  # fmt: skip
    step = StepResult(users, users * args.user_rps, time.time(), 0.0)
    with (out / f"step-{users}.log").open("wb") as log_file:
        proc = subprocess.Popen(
            argv, cwd=floor.ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        sampler.generators = {**sampler.generators, proc.pid: "locust"}
        try:
            proc.wait(timeout=run_time + 60)
        except subprocess.TimeoutExpired:
            step.error = "locust did not stop"
        finally:
            floor.stop(proc)
    step.ended = time.time()
    step.backlog_at_end = backlog()
    if not result_file.exists():
        step.error = (
            step.error or f"locust wrote no results:\n{floor.tail(out / f'step-{users}.log')}"
        )
        return step
    raw = json.loads(result_file.read_text())
    seconds = (raw["ended_at"] - raw["measured_from"]) if raw["measured_from"] else 0.0
    if raw["measured_from"]:  # from here on, the step is its measured window
        step.started, step.ended = raw["measured_from"], raw["ended_at"]
        step.cpu = sampler.between(step.started, step.ended)
    for kind in KINDS:
        if kind in raw["statuses"]:
            step.kinds[kind] = kind_result(
                raw["latencies_ms"].get(kind, []), raw["statuses"][kind], seconds
            )
    step.ids = raw["event_ids"]
    return step


# --- after the load: the WebSocket figures and every event accounted for --------------------------


def ws_figures(
    publishes: list[Publish], subscribers: dict[str, Any], since: float, until: float
) -> dict[str, Any]:
    chosen = [p for p in publishes if since <= p.sent < until and p.status == 200]
    closed = sorted(at for at, _n, _why in subscribers["closed"])
    closed_at = {n: at for at, n, _why in subscribers["closed"]}
    everyone = set(range(subscribers["count"]))
    subscribed = everyone - {int(n) for n in subscribers["failed_ids"]}
    latencies: list[float] = []
    shares: list[tuple[int, int]] = []
    firsts: list[float] = []  # per update: the first subscriber's and the last one's latency
    lasts: list[float] = []
    duplicates = missed_open = 0
    for publish in chosen:
        receipts = subscribers["received"].get(publish.title, [])
        sockets = {n for n, _at in receipts}
        duplicates += len(receipts) - len(sockets)
        alive = {n for n in subscribed if closed_at.get(n, float("inf")) >= publish.sent}
        shares.append((len(sockets & alive), len(alive)))
        # A socket open at the publish that never got it, and did not die afterwards either.
        missed_open += len({n for n in alive - sockets if n not in closed_at})
        these = sorted((at - publish.sent) * 1000 for _n, at in receipts)
        latencies += these
        if these:
            firsts.append(these[0])
            lasts.append(these[-1])
    ordered = sorted(latencies)
    return {
        "publishes": len(chosen),
        "received": sum(got for got, _ in shares),
        "expected": sum(alive for _, alive in shares),
        "worst": min((got for got, _ in shares), default=0),
        "p50_ms": floor.percentile(ordered, 50),
        "p95_ms": floor.percentile(ordered, 95),
        "max_ms": ordered[-1] if ordered else 0.0,
        "first_ms": statistics.median(firsts) if firsts else 0.0,
        "last_ms": statistics.median(lasts) if lasts else 0.0,
        "publish_ms": [round((p.answered - p.sent) * 1000, 1) for p in chosen],
        "duplicates": duplicates,
        "missed_by_open_sockets": missed_open,
        "closed": sum(1 for at in closed if since <= at < until),
    }


def drain_wait(backlog: Any, timeout: float) -> None:
    started = time.monotonic()
    while backlog() > 0:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the event stream still holds {backlog()} entries after {timeout}s")
        time.sleep(0.2)


def accounting(database_url: str, run: str, ids: dict[str, set[str]]) -> dict[str, Any]:
    """The ids answered 202 against the rows; roll-ups against the rows they summarize."""
    with admin_connection(database_url) as conn:
        stored = {
            row[0]
            for row in conn.execute(
                "SELECT id FROM analytics_event WHERE id LIKE %s", (f"{run}-%",)
            )
        }
        doubled = conn.execute(
            "SELECT count(*) FROM (SELECT id FROM analytics_event GROUP BY id "
            "HAVING count(*) > 1) AS d"
        ).fetchone()[0]
        rows = dict(conn.execute("SELECT type, count(*) FROM analytics_event GROUP BY type"))
        rollups = {
            interval: dict(
                conn.execute(
                    "SELECT event_type, sum(count) FROM analytics_eventrollup "
                    "WHERE interval = %s GROUP BY event_type",
                    (interval,),
                )
            )
            for interval in ("minute", "hour", "day")
        }
        daily = dict(
            conn.execute(
                "SELECT event_type, sum(count) FROM analytics_subjectdailyrollup "
                "GROUP BY event_type"
            )
        )
        dropped = conn.execute(
            "SELECT coalesce(sum(count), 0) FROM analytics_droppedevents"
        ).fetchone()[0]
    accepted = ids["accepted"]
    extra = stored - accepted
    rollup_mismatch = {
        name: {t: (int(counts.get(t, 0)), rows.get(t, 0)) for t in set(rows) | set(counts)
               if int(counts.get(t, 0)) != rows.get(t, 0)}
        for name, counts in [*rollups.items(), ("subject daily", daily)]
    }  # fmt: skip
    return {
        "accepted": len(accepted),
        "stored": len(stored),
        "lost": sorted(accepted - stored)[:20],
        "lost_count": len(accepted - stored),
        "extra_unknown": len(extra & ids["unknown"]),
        "extra_unexplained": sorted(extra - ids["unknown"])[:20],
        "refused": len(ids["refused"]),
        "refused_stored": len(stored & ids["refused"]),
        "unknown": len(ids["unknown"]),
        "doubled_rows": int(doubled),
        "rows_by_type": rows,
        "rollup_mismatch": {k: v for k, v in rollup_mismatch.items() if v},
        "dropped": int(dropped),
    }


def accounted(figures: dict[str, Any]) -> bool:
    return (
        figures["lost_count"] == 0
        and not figures["extra_unexplained"]
        and figures["refused_stored"] == 0
        and figures["doubled_rows"] == 0
        and not figures["rollup_mismatch"]
        and figures["dropped"] == 0
    )


def stack_errors(log: Path) -> dict[str, int]:
    """The last line of every traceback in honcho's log (`HH:MM:SS ws.1 | ...`), counted."""
    found: Counter[str] = Counter()
    in_traceback: dict[str, bool] = {}
    for line in log.read_text(errors="replace").splitlines():
        process, bar, text = line[9:].partition(" | ")
        if not bar:
            continue
        process = process.strip()
        if text.startswith("Traceback (most recent call last)"):
            in_traceback[process] = True
        elif in_traceback.get(process) and text[:1].strip() and ":" in text.split(" ")[0]:
            # The unindented `module.Error: message` line that ends a (chained) traceback.
            found[f"{process}: {text[:150]}"] += 1
            in_traceback[process] = False
    return dict(found.most_common())


# --- report ---------------------------------------------------------------------------------------


def fmt_statuses(statuses: dict[str, int]) -> str:
    errors = {k.removeprefix("error "): n for k, n in statuses.items() if k.startswith("error")}
    return ", ".join(f"{label} x{n}" for label, n in sorted(errors.items())) or "0"


def print_steps(
    steps: list[StepResult], args: argparse.Namespace, idle: dict[str, float] | None
) -> None:
    header = (
        f"{'users':>5} {'kind':<13}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}  errors"
    )
    print("\n" + header + "\n" + "-" * 78)
    for step in steps:
        if step.error:
            print(f"{step.users:>5} error: {step.error.splitlines()[0]}")
        for name, kind in step.kinds.items():
            print(
                f"{step.users:>5} {name:<13}{kind.rps:>8,.0f}{kind.p50_ms:>9.1f}"
                f"{kind.p95_ms:>9.1f}{kind.p99_ms:>9.1f}{kind.max_ms:>9.0f}  "
                f"{fmt_statuses(kind.statuses)}"
            )
        verdict = "ok" if step.passed(args.target_p95_ms) else "FAILED"
        print(
            f"{step.users:>5} {'all':<13}{step.rps:>8,.0f}  offered {step.offered_rps:,.0f}/s, "
            f"read p95 {step.read_p95():.1f} ms, errors {step.errors}, "
            f"stream backlog {step.backlog_at_end:,}: {verdict}"
        )
    print(
        "\nCPU per step, in cores (other: share of all CPUs used by anything else; "
        f"{os.cpu_count()} CPUs)"
    )
    print(f"{'users':>5} " + "".join(f"{c:>11}" for c in (*CPU_COLUMNS[:-1], "honcho", "other")))
    rows = [("idle", idle)] if idle else []
    for label, cpu in [*rows, *((str(step.users), step.cpu) for step in steps)]:
        cells = [f"{cpu.get(c, 0.0):>11.2f}" for c in (*CPU_COLUMNS[:-1], "honcho")]
        cells.append(f"{floor.fmt_pct(cpu.get('other')):>11}")
        print(f"{label:>5} " + "".join(cells))


def print_ws(ws: dict[str, dict[str, Any]], subscribers: dict[str, Any]) -> None:
    print(
        f"\nWebSocket: {subscribers['subscribed']} subscribed to {TOPIC} "
        f"({len(subscribers['failed'])} failed to connect, {len(subscribers['closed'])} "
        "closed during the run)"
    )
    print(
        f"{'during':>6} {'updates':>7} {'received/open':>14} {'worst':>6} {'closed':>6} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'first':>6} {'last':>6}  publish request ms"
    )
    for label, fig in ws.items():
        share = f"{fig['received']:,}/{fig['expected']:,}"
        print(
            f"{label:>6} {fig['publishes']:>7} {share:>14} {fig['worst']:>6} {fig['closed']:>6} "
            f"{fig['p50_ms']:>7.0f} {fig['p95_ms']:>7.0f} {fig['max_ms']:>7.0f} "
            f"{fig['first_ms']:>6.0f} {fig['last_ms']:>6.0f}  {fig['publish_ms']}"
        )
    print(
        "  (latency: receipt minus the start of the publish request; first/last: median over the "
        "updates of the first and the last subscriber's latency)"
    )
    missed = ws["all"]["expected"] - ws["all"]["received"] if "all" in ws else 0
    if missed:
        print(
            f"  {missed} receipts missing: {ws['all']['missed_by_open_sockets']} on sockets that "
            "stayed open, the rest on sockets that the server closed later"
        )


def print_accounting(figures: dict[str, Any], drain_s: float) -> None:
    print(
        f"\nEvents: {figures['accepted']:,} answered 202, {figures['stored']:,} of this run's ids "
        f"in analytics_event after the drain ({drain_s:.1f} s after the load); "
        f"lost {figures['lost_count']}, stored but never answered 202: "
        f"{figures['extra_unknown']} of {figures['unknown']} without an answer, "
        f"{len(figures['extra_unexplained'])} unexplained; refused {figures['refused']} "
        f"(stored {figures['refused_stored']}); duplicate rows {figures['doubled_rows']}; "
        f"dropped by the drain {figures['dropped']}"
    )
    if figures["rollup_mismatch"]:
        print(f"  roll-ups differ from the rows (roll-up, rows): {figures['rollup_mismatch']}")
    else:
        print("  roll-ups (minute, hour, day, per-subject day) equal the rows, per type")
    if figures["lost"] or figures["extra_unexplained"]:
        print(f"  lost: {figures['lost']}  unexplained: {figures['extra_unexplained']}")
    print(f"  accounted for: {'yes' if accounted(figures) else 'NO'}")


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="20,40,60,80,100,120,160", help="users, ascending")
    parser.add_argument("--duration", type=int, default=30, help="measured seconds per step")
    parser.add_argument("--ramp", type=int, default=3, help="spawning seconds before measuring")
    parser.add_argument("--user-rps", type=float, default=5.0, help="requests/s per user")
    parser.add_argument("--keep-going", action="store_true", help="run steps after a failure")
    parser.add_argument("--target-p95-ms", type=float, default=100.0)
    parser.add_argument("--visitors", type=int, default=2000, help="anonymous ids in the pool")
    parser.add_argument(
        "--vips", type=int, default=50, help="VIP ids besides them (made so by purchases)"
    )
    parser.add_argument("--vip-share", type=float, default=0.1, help="requests by VIP ids")
    parser.add_argument("--batch-size", type=int, default=20, help="events per batch request")
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--publish-every", type=float, default=10.0)
    parser.add_argument("--drain-timeout", type=float, default=180.0)
    parser.add_argument(
        "--idle", type=float, default=5.0, help="seconds of CPU sampling before the first step"
    )
    parser.add_argument("--redis-db", type=int, default=14, help="must be empty; flushed at end")
    parser.add_argument("--out", type=Path, help="logs and Locust CSVs (default: a temp dir, kept)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    args.step_users = [int(n) for n in args.steps.split(",") if n.strip()]
    if not args.step_users or args.step_users != sorted(args.step_users):
        parser.error("--steps: ascending user counts, e.g. 20,40,80")
    if args.vips < 1 or args.visitors < 1:
        parser.error("--vips and --visitors must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["subscribers"]:
        return subscribers_main(argv[1:])
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
    run = f"ld{secrets.token_hex(3)}"
    name = f"bench_load_{secrets.token_hex(4)}"
    out = args.out or Path(tempfile.mkdtemp(prefix="cms-bench-load-"))
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": floor.git_revision(),
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "database": name,
        "redis": redis_url,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    started = time.monotonic()
    database_create(admin_url, name)
    stack: Stack | None = None
    subscribers: Subscribers | None = None
    publisher: Publisher | None = None
    sampler: Sampler | None = None
    steps: list[StepResult] = []
    figures: dict[str, Any] = {}
    ok = False
    try:
        with tempfile.TemporaryDirectory(prefix="cms-bench-load-") as tmp_name:
            tmp = Path(tmp_name)
            password = secrets.token_urlsafe(12)
            env = floor.services_env(tmp)
            env.update(
                {
                    "DATABASE_URL": with_database(admin_url, name),
                    "REDIS_URL": redis_url,
                    "CMS_CACHE_PREFIX": name,
                    "SECRET_KEY": secrets.token_urlsafe(50),  # floor's "bench" is short for JWTs
                    "CMS_STATIC_ROOT": str(tmp / "static"),
                    "CMS_ADMIN_USER": STAFF_USER,
                    "CMS_ADMIN_PASSWORD": password,
                    **{
                        f"CMS_THROTTLE_{scope}": UNTHROTTLED
                        for scope in ("ANON", "USER", "API_KEY", "EVENTS", "LOGIN")
                    },
                }
            )
            Path(env["CMS_VAR_DIR"]).mkdir(parents=True, exist_ok=True)
            print(f"database {name}, redis {redis_url}, run {run}, output {out}", flush=True)
            stack, base, ws_base = stack_start(env, tmp)
            print(f"[stack] up after {time.monotonic() - started:.0f} s: {stack.roles}", flush=True)
            stream = f"{name}:events"

            def backlog() -> int:
                return int(redis_client.xlen(stream))

            pool = visitors_make(run, args)
            pool_file = out / "pool.json"
            pool_file.write_text(json.dumps(pool))
            began = time.monotonic()
            setup_ids = vips_enrol(base, pool, run, timeout=90)
            print(
                f"[setup] {len(pool['vips'])} VIP ids in `vip` after "
                f"{time.monotonic() - began:.1f} s ({len(setup_ids)} purchases)",
                flush=True,
            )
            preflight(base, pool)
            staff = Staff(base, password)
            staff.headers()
            subscribers = Subscribers(ws_base, args.subscribers, run, out)
            ready = subscribers.wait_ready(timeout=120)
            print(f"[ws] {ready['subscribed']} of {args.subscribers} subscribed", flush=True)
            publisher = Publisher(staff, args.publish_every, run)
            publisher.start()

            sampler = Sampler(stack, name)
            sampler.generators = {subscribers.proc.pid: "ws clients"}
            sampler.start()
            if args.idle:
                idle_from = time.time()
                time.sleep(args.idle + 1)
                figures["idle_cpu"] = sampler.between(idle_from, time.time())
                print(
                    f"[idle] {args.idle:g} s with the stack idle and the sockets open: other cpu "
                    f"{floor.fmt_pct(figures['idle_cpu'].get('other'))}",
                    flush=True,
                )
            for users in args.step_users:
                print(f"[step] {users} users x {args.user_rps:g} req/s", flush=True)
                step = step_run(users, args, base, pool_file, out, run, sampler, backlog)
                steps.append(step)
                read_p95, passed = step.read_p95(), step.passed(args.target_p95_ms)
                print(
                    f"[step] {users} users: {step.rps:,.0f} req/s of {step.offered_rps:,.0f}, "
                    f"read p95 {read_p95:.1f} ms, errors {step.errors}, other cpu "
                    f"{floor.fmt_pct(step.cpu.get('other'))}: {'ok' if passed else 'FAILED'}",
                    flush=True,
                )
                if not passed and not args.keep_going:
                    break
            load_ended = time.time()
            sampler.stop()
            publisher.stop()
            time.sleep(3)  # the last update's receipts
            ws_raw = subscribers.finish()
            subscribers = None
            drain_wait(backlog, args.drain_timeout)
            drain_s = time.time() - load_ended  # from the last request to an empty stream
            ids: dict[str, set[str]] = {
                "accepted": set(setup_ids),
                "refused": set(),
                "unknown": set(),
            }
            for step in steps:
                for outcome, values in step.ids.items():
                    ids[outcome].update(values)
            figures["accounting"] = accounting(with_database(admin_url, name), run, ids)
            figures["drain_s"] = drain_s
            ws: dict[str, dict[str, Any]] = {
                str(step.users): ws_figures(publisher.published, ws_raw, step.started, step.ended)
                for step in steps
            }
            ws["all"] = ws_figures(publisher.published, ws_raw, 0, load_ended + 1)
            figures["ws"] = ws
            figures["ws_subscribers"] = {
                "subscribed": ws_raw["subscribed"],
                "failed": ws_raw["failed"][:20],
                "closed": ws_raw["closed"][:20],
            }
            figures["publish_failures"] = publisher.failures
            print_steps(steps, args, figures.get("idle_cpu"))
            print_ws(ws, ws_raw)
            if publisher.failures:
                print(f"  publish failures: {publisher.failures[:5]}")
            print_accounting(figures["accounting"], drain_s)
            ok = steps[0].passed(args.target_p95_ms) and accounted(figures["accounting"])
            figures["stack_errors"] = stack_errors(stack.log)
            if figures["stack_errors"]:
                print(f"\nexceptions in the stack's log ({out / 'run.log'}), by process:")
                for line, count in figures["stack_errors"].items():
                    print(f"  {count:>4} x {line}")
            (out / "run.log").write_bytes(stack.log.read_bytes())
    except (KeyboardInterrupt, SystemExit):
        print("\ninterrupted: stopping every process, dropping the database", flush=True)
        raise
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if publisher is not None:
            publisher.stopping.set()
        if sampler is not None:
            sampler.stopping.set()
        if subscribers is not None:
            floor.stop(subscribers.proc)
        if stack is not None:
            stack.stop()
        database_drop(admin_url, name)
        redis_client.flushdb()
    summarize(steps, args, figures, meta, out, time.monotonic() - started)
    return 0 if ok else 1


def summarize(
    steps: list[StepResult],
    args: argparse.Namespace,
    figures: dict[str, Any],
    meta: dict[str, Any],
    out: Path,
    seconds: float,
) -> None:
    failing = next((s for s in steps if not s.passed(args.target_p95_ms)), None)
    below = steps[: steps.index(failing)] if failing else steps
    sustained = below[-1] if below else None
    print()
    if sustained:
        print(
            f"sustained: {sustained.users} users, {sustained.rps:,.0f} req/s "
            f"(read p95 {sustained.read_p95():.1f} ms < {args.target_p95_ms:.0f} ms, no errors)"
        )
    else:
        print(f"sustained: none (the lowest step, {args.step_users[0]} users, failed)")
    if failing:
        print(
            f"first failing step: {failing.users} users, {failing.rps:,.0f} req/s of "
            f"{failing.offered_rps:,.0f} offered, read p95 {failing.read_p95():.1f} ms, "
            f"errors {failing.errors}"
        )
    noisy = [s.users for s in steps if (s.cpu.get("other") or 0) > NOISY_PCT]
    if noisy:
        print(
            f"WARNING: other processes used more than {NOISY_PCT:.0f}% of the CPUs during the "
            f"steps of {noisy} users: those figures are noise-affected."
        )
    meta["loadavg_after"] = os.getloadavg()
    print(
        f"\n{args.duration}s per step after a {args.ramp}s ramp, {args.user_rps:g} req/s per user, "
        f"{os.cpu_count()} CPUs, load {meta['loadavg_after'][0]:.2f}, {seconds:.0f} s in all; "
        f"logs and Locust CSVs in {out}"
    )
    if args.json:
        payload = {
            **meta,
            "steps": [
                {
                    **asdict(s),
                    "ids": {k: len(v) for k, v in s.ids.items()},
                    "passed": s.passed(args.target_p95_ms),
                }
                for s in steps
            ],
            "sustained_users": sustained.users if sustained else None,
            **figures,
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
