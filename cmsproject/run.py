"""`make run`: prepare and serve the product in one command.

Embedded mode (no DATABASE_URL/REDIS_URL): one uvicorn process serves HTTP and WebSocket, and
the beat schedule runs in a thread. Services mode: honcho runs the Procfile (gunicorn for HTTP,
uvicorn for WebSocket, a Celery worker and beat) against PostgreSQL and Redis.

Before Django loads, it fills in what a newcomer cannot be expected to set: a secret key kept in
var/ and the allowed hosts for the address it serves on. Production sets both explicitly.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _default_environment(host: str) -> None:
    var_dir = Path(os.environ.setdefault("CMS_VAR_DIR", str(BASE_DIR / "var")))
    var_dir.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("SECRET_KEY"):
        key_file = var_dir / "secret-key"
        if not key_file.exists():
            key_file.touch(mode=0o600)
            key_file.write_text(secrets.token_urlsafe(50))
        os.environ["SECRET_KEY"] = key_file.read_text().strip()
    if not os.environ.get("ALLOWED_HOSTS"):
        hosts = {"localhost", "127.0.0.1", "[::1]", host}
        os.environ["ALLOWED_HOSTS"] = ",".join(sorted(hosts))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cmsproject.settings")


def _prepare() -> tuple[str, str]:
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    if not settings.DEBUG:
        call_command("collectstatic", interactive=False, verbosity=0)

    from cmsproject.demo import admin_ensure, demo_load_all

    login = admin_ensure()
    for line in demo_load_all(staff_password=login.password):
        print(f"  demo data  {line}")
    return login.username, login.password


def _banner(lines: list[str]) -> None:
    width = max(len(line) for line in lines) + 4
    print("+" + "-" * width + "+")
    for line in lines:
        print(f"|  {line.ljust(width - 2)}|")
    print("+" + "-" * width + "+", flush=True)


def _serve_embedded(host: str, port: int, login: tuple[str, str]) -> None:
    import uvicorn

    from cmsproject.scheduler import EmbeddedScheduler

    scheduler = EmbeddedScheduler()
    scheduler.start()
    base = f"http://{host}:{port}"
    _banner(
        [
            "Headless CMS - embedded mode (SQLite, in-process cache, channels and tasks)",
            f"admin      {base}/admin/   login: {login[0]} / {login[1]}",
            f"REST       {base}/api/v1/  (docs: {base}/api/v1/docs/)",
            f"GraphQL    {base}/graphql/",
            f"WebSocket  ws://{host}:{port}/ws/v1/live",
            "roles      marketer, developer, analyst use the same password",
        ]
    )
    uvicorn.run(
        "cmsproject.asgi:application",
        host=host,
        port=port,
        ws="websockets-sansio",
        lifespan="off",
        log_level=os.environ.get("LOG_LEVEL", "info").lower(),
        access_log=False,
    )
    scheduler.stop()


def _metrics_dir_fresh() -> str:
    """Services mode runs several processes: prometheus_client's multiprocess mode sums their
    files in one directory. Files of a previous run would be summed too: this run starts empty."""
    from django.conf import settings

    directory = Path(settings.PROMETHEUS_MULTIPROC_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # only prometheus_client's files, whatever the dir is
        stale.unlink()
    return str(directory)


def _serve_services(host: str, port: int, login: tuple[str, str]) -> None:
    ws_port = int(os.environ.get("WS_PORT") or port + 1)
    venv_bin = str(Path(sys.executable).parent)
    # The Procfile's gunicorn, uvicorn and celery are this environment's, activated or not.
    search_path = os.pathsep.join([venv_bin, os.environ.get("PATH", "")])
    env = {
        **os.environ,
        "HOST": host,
        "PORT": str(port),
        "WS_PORT": str(ws_port),
        "PATH": search_path,
        "PROMETHEUS_MULTIPROC_DIR": _metrics_dir_fresh(),
    }
    honcho = shutil.which("honcho", path=venv_bin) or "honcho"
    _banner(
        [
            "Headless CMS - services mode (PostgreSQL, Redis; honcho runs the Procfile)",
            f"web     gunicorn  http://{host}:{port}/  (admin, /api/v1/, /graphql/)",
            f"ws      uvicorn   ws://{host}:{ws_port}/ws/v1/live",
            "worker  celery worker (Redis broker)",
            "beat    celery beat (cmsproject/celery.py schedule)",
            f"admin login: {login[0]} / {login[1]}",
        ]
    )
    os.chdir(BASE_DIR)
    # Replace this process: honcho then owns the four processes and forwards signals to them.
    os.execve(honcho, [honcho, "start", "-f", str(BASE_DIR / "Procfile")], env)  # noqa: S606


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("HOST") or "127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    args = parser.parse_args(argv)

    started = time.monotonic()
    _default_environment(args.host)
    login = _prepare()
    print(f"  ready in {time.monotonic() - started:.1f}s", flush=True)

    from django.conf import settings

    if settings.SERVICES_MODE:
        _serve_services(args.host, args.port, login)
    else:
        _serve_embedded(args.host, args.port, login)


if __name__ == "__main__":
    main()
