"""The floor benchmark: the cheapest JSON Django and DRF can serve, as each mode serves HTTP.

Starts real servers (uvicorn in embedded mode, gunicorn in services mode, optionally uvicorn in
services mode) on free loopback ports, drives `GET /bench/django/` and `GET /bench/drf/` with wrk
and prints requests/s and latency percentiles. Every later benchmark reports itself against these
figures measured in the same run, because this machine is noisy (see bench/README.md).

Run on demand with `make bench`; never part of the pytest suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Not resolved: the venv's bin/python is a symlink and its siblings are the venv's tools.
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"  # load is only ever aimed at loopback
VIEWS = {"django": "/bench/django/", "drf": "/bench/drf/"}
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
MARKER = "BENCH_JSON "

# wrk's own summary has no p95 and rounds to two digits; a done() hook prints exact figures
# (microseconds) on one line we can parse. No response() hook: it would make wrk build a Lua
# table per response and the client, not the server, would become the bottleneck.
WRK_REPORT_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,'
    .. '"mean_us":%.1f}\\n',
    "MARKER", summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
end
""".replace("MARKER", MARKER)


@dataclass
class LoadStats:
    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int  # wrk: responses with status >= 400 (its only status counter)
    socket_errors: int  # connect/read/write errors and timeouts
    other_cpu_pct: float | None = None  # CPU used by neither the server nor the load generator
    server_cores: float | None = None  # CPU the server used, in cores: ~1.0 = one saturated process

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class ServerSpec:
    label: str  # e.g. "embedded/uvicorn"
    mode: str
    argv: list[str]  # "{port}" is filled in at start
    env: dict[str, str]


@dataclass
class ViewResult:
    server: str
    view: str
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    other_cpu_pct: float | None
    server_cores: float | None
    rounds_rps: list[float]


@dataclass
class ServerOutcome:
    label: str
    results: list[ViewResult] = field(default_factory=list)
    error: str = ""
    log_tail: str = ""


# --- servers --------------------------------------------------------------------------------------


def free_port() -> int:
    # Small race between close and the server's bind; acceptable on a quiet loopback.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def base_env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        {
            "SECRET_KEY": "bench",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CMS_BENCH_VIEWS": "1",
            "DEBUG": "0",
            "CMS_STATIC_MANIFEST": "0",
            "DJANGO_SETTINGS_MODULE": "cmsproject.settings",
            "CMS_VAR_DIR": str(var_dir),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def embedded_env(tmp: Path) -> dict[str, str]:
    env = base_env(tmp / "embedded-var")
    env["CMS_SQLITE_PATH"] = str(tmp / "embedded.sqlite3")
    return env


def services_env(tmp: Path) -> dict[str, str]:
    env = base_env(tmp / "services-var")
    env["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    return env


def uvicorn_argv() -> list[str]:
    return [
        str(BIN / "uvicorn"), "cmsproject.asgi:application", "--host", HOST, "--port", "{port}",
        "--ws", "websockets-sansio", "--lifespan", "off", "--no-access-log",
        "--log-level", "warning",
    ]  # fmt: skip


def gunicorn_argv() -> list[str]:
    return [
        str(BIN / "gunicorn"), "cmsproject.wsgi:application", "--bind", f"{HOST}:{{port}}",
        "--workers", os.environ.get("WEB_CONCURRENCY", "3"), "--log-level", "warning",
    ]  # fmt: skip


def check_reachable(url: str) -> None:
    """Fail fast with a clear message if PostgreSQL or Redis is not listening."""
    parts = urllib.parse.urlsplit(url)
    default_port = {"redis": 6379}.get(parts.scheme, 5432)
    address = (parts.hostname or HOST, parts.port or default_port)
    try:
        socket.create_connection(address, timeout=2).close()
    except OSError as exc:
        raise RuntimeError(
            f"{parts.scheme} at {address[0]}:{address[1]} unreachable: {exc}"
        ) from exc


def migrate(env: dict[str, str]) -> None:
    Path(env["CMS_VAR_DIR"]).mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{(done.stdout + done.stderr)[-2000:]}")


def fetch_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{tail(log)}")
        try:
            if fetch_status(url) == 200:
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout:.0f}s:\n{tail(log)}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    # The server leads its own session, so its group holds every worker it forked and nothing else.
    with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    # Whatever ignored SIGTERM, or a worker that outlived its master, goes now.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@contextlib.contextmanager
def running(spec: ServerSpec, log: Path) -> Iterator[tuple[str, int]]:
    """Yields the base URL and the process group holding the server and its workers."""
    port = free_port()
    argv = [arg.replace("{port}", str(port)) for arg in spec.argv]
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=spec.env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://{HOST}:{port}"
        wait_ready(base + VIEWS["django"], proc, log)
        yield base, proc.pid
    finally:
        stop(proc)


def tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- noise accounting -----------------------------------------------------------------------------
# The machine is shared (other test runs, builds), so each measured run also reports how much CPU
# went to processes that are neither the server nor the load generator. Linux /proc only.

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class CpuSnapshot:
    at: float
    machine_busy: float | None  # CPU seconds all CPUs spent busy since boot
    server: float  # CPU seconds of the server's process group
    ours: float  # CPU seconds of this script and its reaped children (wrk)


def machine_busy_seconds() -> float | None:
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields)
    # Steal counts as noise too: it is time the hypervisor gave to someone else.
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def group_cpu_seconds(pgid: int) -> float:
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # After the ")" closing the command name: state, ppid, pgrp, ... utime, stime.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def cpu_snapshot(pgid: int) -> CpuSnapshot:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSnapshot(
        at=time.monotonic(),
        machine_busy=machine_busy_seconds(),
        server=group_cpu_seconds(pgid),
        ours=own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime,
    )


def other_cpu_pct(before: CpuSnapshot, after: CpuSnapshot) -> float | None:
    if before.machine_busy is None or after.machine_busy is None:
        return None
    capacity = (after.at - before.at) * (os.cpu_count() or 1)
    other = (after.machine_busy - before.machine_busy) - (after.server - before.server)
    other -= after.ours - before.ours
    return round(max(0.0, 100 * other / capacity), 1) if capacity else None


# --- load generators ------------------------------------------------------------------------------


def ensure_wrk() -> str | None:
    """Debian's wrk; installed on the fly when we are root, else the httpx fallback is used."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("wrk missing: apt-get install -y wrk", flush=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True, timeout=300, check=False
    )
    return shutil.which("wrk")


def run_wrk(wrk: str, script: Path, url: str, args: argparse.Namespace, seconds: int) -> LoadStats:
    argv = [
        wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency",
        "-s", str(script), url,
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(MARKER)), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    raw = json.loads(line.removeprefix(MARKER))
    return LoadStats(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1e3,
        p95_ms=raw["p95_us"] / 1e3,
        p99_ms=raw["p99_us"] / 1e3,
        max_ms=raw["max_us"] / 1e3,
        non_2xx=raw["status"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
    )


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


async def _httpx_load(url: str, connections: int, seconds: int) -> LoadStats:
    import httpx  # dev dependency; only needed when wrk is unavailable

    latencies: list[float] = []
    counts = {"non_2xx": 0, "errors": 0}
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    async def worker(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                response = await client.get(url)
            except httpx.HTTPError:
                counts["errors"] += 1
                continue
            latencies.append(time.perf_counter() - started)
            if not 200 <= response.status_code < 300:
                counts["non_2xx"] += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=5.0) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return LoadStats(
        requests=len(ordered),
        seconds=elapsed,
        p50_ms=percentile(ordered, 50) * 1e3,
        p95_ms=percentile(ordered, 95) * 1e3,
        p99_ms=percentile(ordered, 99) * 1e3,
        max_ms=(ordered[-1] if ordered else 0.0) * 1e3,
        non_2xx=counts["non_2xx"],
        socket_errors=counts["errors"],
    )


def run_load(
    wrk: str | None, script: Path, url: str, args: argparse.Namespace, secs: int
) -> LoadStats:
    if wrk:
        return run_wrk(wrk, script, url, args, secs)
    return asyncio.run(_httpx_load(url, args.connections, secs))


# --- the benchmark --------------------------------------------------------------------------------


def preflight(url: str, wrk: str | None, script: Path, args: argparse.Namespace) -> None:
    status = fetch_status(url)
    if status != 200:
        raise RuntimeError(f"{url} answered {status} before load")
    if args.warmup:
        # Discarded: first requests pay lazy imports, URL resolver caches, pool connections.
        run_load(wrk, script, url, args, args.warmup)


def measure(
    url: str, pgid: int, wrk: str | None, script: Path, args: argparse.Namespace
) -> LoadStats:
    before = cpu_snapshot(pgid)
    stats = run_load(wrk, script, url, args, args.duration)
    after = cpu_snapshot(pgid)
    stats.other_cpu_pct = other_cpu_pct(before, after)
    stats.server_cores = round((after.server - before.server) / (after.at - before.at), 2)
    return stats


def summarize(server: str, view: str, runs: list[LoadStats]) -> ViewResult:
    """The median round by req/s; errors are summed over every round so none goes unseen."""
    median = sorted(runs, key=lambda run: run.rps)[len(runs) // 2]
    return ViewResult(
        server=server,
        view=view,
        rps=round(median.rps, 1),
        p50_ms=round(median.p50_ms, 3),
        p95_ms=round(median.p95_ms, 3),
        p99_ms=round(median.p99_ms, 3),
        max_ms=round(median.max_ms, 3),
        requests=median.requests,
        non_2xx=sum(run.non_2xx for run in runs),
        socket_errors=sum(run.socket_errors for run in runs),
        other_cpu_pct=median.other_cpu_pct,
        server_cores=median.server_cores,
        rounds_rps=[round(run.rps, 1) for run in runs],
    )


def bench_server(
    spec: ServerSpec, wrk: str | None, script: Path, tmp: Path, args: argparse.Namespace
) -> ServerOutcome:
    outcome = ServerOutcome(spec.label)
    log = tmp / f"{spec.label.replace('/', '-')}.log"
    print(f"[{spec.label}] starting", flush=True)
    with running(spec, log) as (base, pgid):
        urls = {view: base + path for view, path in VIEWS.items()}
        for url in urls.values():
            preflight(url, wrk, script, args)
        runs: dict[str, list[LoadStats]] = {view: [] for view in urls}
        # Views alternate round by round so a burst of outside load hits both, not one.
        for round_no in range(1, args.rounds + 1):
            for view, url in urls.items():
                stats = measure(url, pgid, wrk, script, args)
                runs[view].append(stats)
                print(f"[{spec.label}] round {round_no} {view}: {stats.rps:,.0f} req/s", flush=True)
        outcome.results = [
            summarize(spec.label, view, view_runs) for view, view_runs in runs.items()
        ]
    outcome.log_tail = tail(log)
    return outcome


def server_specs(tmp: Path, with_uvicorn_services: bool) -> list[ServerSpec]:
    specs = [
        ServerSpec("embedded/uvicorn", "embedded", uvicorn_argv(), embedded_env(tmp)),
        ServerSpec("services/gunicorn", "services", gunicorn_argv(), services_env(tmp)),
    ]
    if with_uvicorn_services:
        specs.append(ServerSpec("services/uvicorn", "services", uvicorn_argv(), services_env(tmp)))
    return specs


def prepare(specs: list[ServerSpec]) -> dict[str, str]:
    """Migrate each mode's database once; returns the modes that could not be prepared."""
    failed: dict[str, str] = {}
    for mode in dict.fromkeys(spec.mode for spec in specs):
        env = next(spec.env for spec in specs if spec.mode == mode)
        try:
            if mode == "services":
                check_reachable(env["DATABASE_URL"])
                check_reachable(env["REDIS_URL"])
            print(f"[{mode}] migrate", flush=True)
            migrate(env)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            failed[mode] = str(exc)
    return failed


def drf_ratio(results: list[ViewResult]) -> float | None:
    by_view = {r.view: r.rps for r in results}
    if by_view.get("django") and "drf" in by_view:
        return by_view["drf"] / by_view["django"]
    return None


NOISY_PCT = 15.0  # other processes' CPU share above which a run is flagged (idle baseline ~5-10%)


def fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}%"


def print_table(outcomes: list[ServerOutcome]) -> None:
    header = (
        f"{'server':<18} {'view':<7} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'non-2xx':>8} {'sock err':>8} {'drf/django':>10} {'srv cores':>9} {'other cpu':>9}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for outcome in outcomes:
        if outcome.error:
            print(f"{outcome.label:<18} skipped: {outcome.error.splitlines()[0]}")
            continue
        ratio = drf_ratio(outcome.results)
        for r in outcome.results:
            shown = f"{ratio:.2f}" if r.view == "drf" and ratio is not None else ""
            print(
                f"{r.server:<18} {r.view:<7} {r.rps:>9,.0f} {r.p50_ms:>8.2f} {r.p95_ms:>8.2f} "
                f"{r.p99_ms:>8.2f} {r.non_2xx:>8} {r.socket_errors:>8} {shown:>10} "
                f"{r.server_cores or 0:>9.2f} {fmt_pct(r.other_cpu_pct):>9}"
            )


def warn_if_noisy(outcomes: list[ServerOutcome]) -> None:
    noisy = [
        f"{r.server} {r.view} ({r.other_cpu_pct:.0f}%)"
        for o in outcomes
        for r in o.results
        if r.other_cpu_pct is not None and r.other_cpu_pct > NOISY_PCT
    ]
    if noisy:
        print(
            f"\nWARNING: other processes used more than {NOISY_PCT:.0f}% of the CPUs during: "
            + ", ".join(noisy)
            + ". Compare only within one run, or re-run on a quiet machine."
        )


def git_revision() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def write_json(path: Path, outcomes: list[ServerOutcome], meta: dict[str, object]) -> None:
    payload = {
        **meta,
        "servers": [
            {
                "server": o.label,
                "error": o.error or None,
                "drf_to_django_rps": drf_ratio(o.results),
                "results": [asdict(r) for r in o.results],
            }
            for o in outcomes
        ],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per view")
    parser.add_argument("--warmup", type=int, default=3, help="discarded seconds per view")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measured runs per view, alternating views; the median round is reported",
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--with-uvicorn-services",
        action="store_true",
        help="also serve the services mode with uvicorn (DESIGN.md's ASGI-vs-WSGI gap)",
    )
    parser.add_argument(
        "--load-generator",
        choices=("auto", "wrk", "httpx"),
        default="auto",
        help="auto: wrk if present or installable, else the slower asyncio+httpx fallback",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if min(args.rounds, args.duration, args.connections, args.threads) < 1 or args.warmup < 0:
        parser.error("rounds, duration, connections and threads must be >= 1; warmup >= 0")
    return args


def raise_on_sigterm(signum: int, frame: object) -> None:
    # Turn SIGTERM into an exception so the finally blocks stop every server we started.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_on_sigterm)
    for tool in ("uvicorn", "gunicorn"):
        if not (BIN / tool).exists():
            sys.exit(f"{BIN / tool} missing: run with the venv's python after `make install`")
    wrk = None if args.load_generator == "httpx" else ensure_wrk()
    if args.load_generator == "wrk" and not wrk:
        sys.exit("wrk not found and could not be installed (apt-get install wrk)")
    if not wrk:
        print("wrk unavailable: falling back to the asyncio+httpx load generator", flush=True)

    meta: dict[str, object] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_revision(),
        "load_generator": "wrk" if wrk else "httpx",
        "connections": args.connections,
        "threads": args.threads if wrk else None,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    outcomes: list[ServerOutcome] = []
    with tempfile.TemporaryDirectory(prefix="cms-bench-") as tmp_name:
        tmp = Path(tmp_name)
        script = tmp / "report.lua"
        script.write_text(WRK_REPORT_LUA)
        specs = server_specs(tmp, args.with_uvicorn_services)
        failed = prepare(specs)
        for spec in specs:
            if spec.mode in failed:
                outcomes.append(ServerOutcome(spec.label, error=failed[spec.mode]))
                continue
            try:
                outcomes.append(bench_server(spec, wrk, script, tmp, args))
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                outcomes.append(ServerOutcome(spec.label, error=str(exc)))

    print_table(outcomes)
    threads = f"{args.threads} threads" if wrk else "1 event loop"
    print(
        f"\nload: {meta['load_generator']}, {args.connections} connections, {threads}, "
        f"{args.warmup}s warm-up + {args.rounds} x {args.duration}s per view, {meta['cpus']} CPUs"
    )
    warn_if_noisy(outcomes)
    report_oddities(outcomes)
    meta["loadavg_after"] = os.getloadavg()
    if args.json:
        write_json(args.json, outcomes, meta)
        print(f"wrote {args.json}")
    return 1 if any(o.error for o in outcomes) else 0


def report_oddities(outcomes: list[ServerOutcome]) -> None:
    for outcome in outcomes:
        if outcome.error:
            print(f"\n[{outcome.label}] error:\n{outcome.error}")
        if outcome.log_tail.strip():
            print(f"\n[{outcome.label}] server log (last lines):\n{outcome.log_tail}")


if __name__ == "__main__":
    sys.exit(main())
