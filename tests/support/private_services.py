"""A PostgreSQL cluster and a Redis server that belong to one test, which may stop, kill and start
them without disturbing any other test run or developer server.

Both listen on 127.0.0.1 at a free port. The cluster lives in a throwaway directory (initdb,
trust authentication) and runs as the `postgres` account when the tests run as root, as
PostgreSQL refuses root. Redis keeps nothing on disk (`--save "" --appendonly no`), so a restarted
server is empty, as after a crash without persistence.

Tests that need them fail under CI when the binaries are missing (CI=true: a missing server is a
broken machine, not a reason to skip) and are skipped elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import free_port, port_open, process_start, process_stop, wait_for

ON_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ACCOUNT = "postgres"
# Speed over durability: a test cluster needs no fsync. A clean stop still writes everything.
POSTGRES_OPTIONS = "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"


def _missing(what: str) -> None:
    message = f"{what} is not installed; the fault tests start servers of their own"
    if ON_CI:
        pytest.fail(message)
    pytest.skip(message)


def postgres_bindir() -> Path:
    """The newest PostgreSQL server binaries (Debian's /usr/lib/postgresql/<version>/bin)."""
    found = [
        path
        for path in Path("/usr/lib/postgresql").glob("*/bin")
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file()
    ]
    if not found:
        pg_config = shutil.which("pg_config")
        if pg_config:
            bindir = Path(subprocess.check_output([pg_config, "--bindir"], text=True).strip())
            if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
                return bindir
        _missing("PostgreSQL (initdb, pg_ctl)")
    return max(found, key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0)


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server")
    return binary


@dataclass
class PrivatePostgres:
    """`initdb` in a temporary directory, then `pg_ctl start/stop/restart` on a free port."""

    bindir: Path
    root: Path
    port: int
    runs_as: dict[str, Any] = field(default_factory=dict)  # subprocess user/group when root

    @classmethod
    def create(cls) -> PrivatePostgres:
        bindir = postgres_bindir()
        root = Path(tempfile.mkdtemp(prefix="cms-pg-"))  # short: the socket path must fit
        runs_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam(POSTGRES_ACCOUNT)
            except KeyError:
                shutil.rmtree(root, ignore_errors=True)
                _missing(f"the {POSTGRES_ACCOUNT!r} account (PostgreSQL refuses to run as root)")
            os.chown(root, account.pw_uid, account.pw_gid)
            runs_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        cluster = cls(bindir, root, free_port(), runs_as)
        try:
            cluster._run("initdb", "-D", str(cluster.data), "-A", "trust", "-U", "postgres", "-N")
        except BaseException:
            cluster.remove()
            raise
        return cluster

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bindir / tool), *args],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=60,
            check=False,
            start_new_session=True,  # the postmaster it starts leaves the test's process group
            **self.runs_as,
        )
        output = done.stdout.decode(errors="replace")
        assert done.returncode == 0, f"{tool} {' '.join(args)} failed:\n{output}\n{self._log()}"

    def _log(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def _ctl(self, action: str, *args: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 {POSTGRES_OPTIONS}"
        self._run("pg_ctl", action, "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "30", *args)  # fmt: skip

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self._ctl("restart", "-m", mode)

    def create_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def remove(self) -> None:
        """Stop the cluster whatever its state and delete its directory."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(Exception):
                self.stop("immediate")
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)  # if stop failed
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class PrivateRedis:
    """`redis-server` without persistence on a free port; `stop` then `start` is an empty Redis
    at the same address."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        argv = [
            redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no",
        ]  # fmt: skip
        self.proc = process_start(
            argv, dict(os.environ), self.workdir / "redis.log", cwd=self.workdir
        )
        wait_for(self._answers, 10, f"redis-server on port {self.port}", poll=0.02)

    def _answers(self) -> bool:
        import redis

        if self.proc is not None and self.proc.poll() is not None:
            pytest.fail(f"redis-server exited with {self.proc.returncode}")
        if not port_open(self.port):
            return False
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:  # still loading
            return False
        finally:
            client.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server (SIGKILL: as a crash) and wait until its port is closed."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)
        self.proc.wait(timeout=10)
        self.proc = None
        deadline = time.monotonic() + 5
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def remove(self) -> None:
        if self.proc is not None:
            process_stop(self.proc)
            self.proc = None
