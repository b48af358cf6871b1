"""The product as the services mode runs it, one process per role (Procfile): gunicorn for HTTP, a
Celery worker, Celery beat; plus `manage.py` commands, all with an environment of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.processes import (
    REPO,
    free_port,
    log_tail,
    process_start,
    process_stop,
    wait_for,
)

BIN = Path(sys.executable).parent


def service_env(
    *,
    database_url: str,
    redis_url: str,
    prefix: str,
    workdir: Path,
    claim_idle_ms: int,
    secret_key: str,
) -> dict[str, str]:
    """The caller's environment without any CMS_ setting, pointed at these services, with
    throttles out of the way and a short claim delay (the tests must not wait 30 s)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CMS_")}
    env.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CMS_CACHE_PREFIX": prefix,
            "CMS_VAR_DIR": str(workdir / "var"),
            "CMS_STATIC_MANIFEST": "0",
            "CMS_EVENTS_CLAIM_IDLE_MS": str(claim_idle_ms),
            "DEBUG": "0",
            "SECRET_KEY": secret_key,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SETTINGS_MODULE": "cmsproject.settings",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for scope in ("ANON", "USER", "API_KEY", "EVENTS", "LOGIN"):
        env[f"CMS_THROTTLE_{scope}"] = "100000/min"
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"manage.py {args[0]} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


def gunicorn_start(
    env: dict[str, str], log: Path, workers: int
) -> tuple[str, subprocess.Popen[bytes]]:
    """gunicorn on a free port, once its health check answers 200: (base URL, process)."""
    port = free_port()
    argv = [
        str(BIN / "gunicorn"), "cmsproject.wsgi:application", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--log-level", "warning",
    ]  # fmt: skip
    proc = process_start(argv, env, log)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited with {proc.returncode}:\n{log_tail(log)}")
        try:
            return httpx.get(f"{base}/api/v1/health/", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, 60, f"gunicorn at {base} to be healthy", poll=0.2)
    except BaseException:
        process_stop(proc)
        raise
    return base, proc


def celery_worker_start(
    env: dict[str, str], log: Path, *, queue: str, hostname: str
) -> subprocess.Popen[bytes]:
    """One solo-pool worker: its pid is the process that runs the tasks (and the stream consumer
    `<host>-<pid>`), so a test can kill it mid-task."""
    argv = [
        sys.executable, "-m", "celery", "-A", "cmsproject", "worker", "--pool", "solo",
        "--queues", queue, "--hostname", f"{hostname}@%h", "--loglevel", "INFO",
        "--without-heartbeat", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    return process_start(argv, env, log)


def celery_beat_start(env: dict[str, str], log: Path, *, schedule: Path) -> subprocess.Popen[bytes]:
    """The product's one beat schedule (`cmsproject.celery`), sending to the default queue."""
    argv = [
        sys.executable, "-m", "celery", "-A", "cmsproject", "beat", "--loglevel", "INFO",
        "--schedule", str(schedule),
    ]  # fmt: skip
    return process_start(argv, env, log)
