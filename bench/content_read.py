"""Warm-cache content reads against a bare Django JSON view, served the same way, in one run.

For each server (embedded: uvicorn; services: gunicorn with 2 workers, PostgreSQL + Redis), the
demo content is loaded, then wrk drives, alternating round by round with 32 connections:
- `GET /bench/django/`: Django's JsonResponse behind the whole middleware stack (the floor);
- `GET /api/v1/content/page/home/`: an anonymous read of a published entry, warm in the cache
  (DRF view, authentication, the anonymous throttle, one cache read, no SQL).

Targets (issue 3): throughput ratio >= 0.5 of the floor, p95 < 100 ms, mean < 50 ms.
Run on demand (never by pytest): `.venv/bin/python bench/content_read.py`; see bench/README.md.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import floor

CONTENT_PATH = "/api/v1/content/page/home/"
VIEWS = {"django": floor.VIEWS["django"], "content": CONTENT_PATH}
TARGET_RATIO, TARGET_P95_MS, TARGET_MEAN_MS = 0.5, 100.0, 50.0
# High enough never to refuse the load: the throttle's cost is measured, its refusals are not.
UNTHROTTLED = "10000000/s"


def load_demo(env: dict[str, str]) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from content.demo import demo_load; print(demo_load())",
        ],
        cwd=floor.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"demo load failed:\n{(done.stdout + done.stderr)[-2000:]}")


def bench_server(
    spec: floor.ServerSpec, wrk: str | None, script: Path, tmp: Path, args: argparse.Namespace
) -> floor.ServerOutcome:
    outcome = floor.ServerOutcome(spec.label)
    log = tmp / f"{spec.label.replace('/', '-')}.log"
    print(f"[{spec.label}] starting", flush=True)
    with floor.running(spec, log) as (base, pgid):
        urls = {view: base + path for view, path in VIEWS.items()}
        for url in urls.values():
            floor.preflight(url, wrk, script, args)
        runs: dict[str, list[floor.LoadStats]] = {view: [] for view in urls}
        for round_no in range(1, args.rounds + 1):
            for view, url in urls.items():
                stats = floor.measure(url, pgid, wrk, script, args)
                runs[view].append(stats)
                print(f"[{spec.label}] round {round_no} {view}: {stats.rps:,.0f} req/s", flush=True)
        outcome.results = [
            floor.summarize(spec.label, view, view_runs) for view, view_runs in runs.items()
        ]
    outcome.log_tail = floor.tail(log)
    return outcome


def mean_ms(result: floor.ViewResult, connections: int) -> float:
    """Little's law: with a closed loop of N connections, mean latency = N / throughput."""
    return 1000.0 * connections / result.rps if result.rps else float("inf")


def report(outcomes: list[floor.ServerOutcome], args: argparse.Namespace) -> bool:
    ok = True
    print()
    print(
        f"{'server':<20}{'view':<10}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'mean ms':>9}{'errors':>8}"
    )
    for outcome in outcomes:
        if outcome.error:
            print(f"{outcome.label:<20}FAILED: {outcome.error}")
            ok = False
            continue
        by_view = {result.view: result for result in outcome.results}
        for result in outcome.results:
            errors = result.non_2xx + result.socket_errors
            print(
                f"{outcome.label:<20}{result.view:<10}{result.rps:>10,.0f}{result.p50_ms:>9.1f}"
                f"{result.p95_ms:>9.1f}{result.p99_ms:>9.1f}"
                f"{mean_ms(result, args.connections):>9.1f}{errors:>8}"
            )
        content, base = by_view["content"], by_view["django"]
        ratio = content.rps / base.rps if base.rps else 0.0
        checks = [
            ("ratio", ratio >= TARGET_RATIO, f"{ratio:.2f} (target >= {TARGET_RATIO})"),
            (
                "p95",
                content.p95_ms < TARGET_P95_MS,
                f"{content.p95_ms:.1f} ms (target < {TARGET_P95_MS:.0f})",
            ),
            (
                "mean",
                mean_ms(content, args.connections) < TARGET_MEAN_MS,
                f"{mean_ms(content, args.connections):.1f} ms (target < {TARGET_MEAN_MS:.0f})",
            ),
            (
                "errors",
                content.non_2xx + content.socket_errors == 0,
                str(content.non_2xx + content.socket_errors),
            ),
        ]
        for name, passed, text in checks:
            ok &= passed
            print(f"  {outcome.label} {name}: {text} {'ok' if passed else 'MISSED'}")
    return ok


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=("embedded", "services"), help="bench one mode only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, floor.raise_on_sigterm)
    wrk = floor.ensure_wrk()
    if not wrk:
        print("wrk unavailable: falling back to the asyncio+httpx load generator", flush=True)
    outcomes: list[floor.ServerOutcome] = []
    with tempfile.TemporaryDirectory(prefix="cms-bench-content-") as tmp_name:
        tmp = Path(tmp_name)
        script = tmp / "report.lua"
        script.write_text(floor.WRK_REPORT_LUA)
        specs = [spec for spec in floor.server_specs(tmp, False) if args.only in (None, spec.mode)]
        for spec in specs:
            spec.env["CMS_THROTTLE_ANON"] = UNTHROTTLED
        failed = floor.prepare(specs)
        for spec in specs:
            if spec.mode in failed:
                outcomes.append(floor.ServerOutcome(spec.label, error=failed[spec.mode]))
                continue
            try:
                load_demo(spec.env)
                outcomes.append(bench_server(spec, wrk, script, tmp, args))
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                outcomes.append(floor.ServerOutcome(spec.label, error=str(exc)))
    ok = report(outcomes, args)
    print(
        f"\nload: {args.connections} connections, {args.warmup}s warm-up + "
        f"{args.rounds} x {args.duration}s per view"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
