"""Backup and restore: one archive holding the database, the media and a manifest.

    python -m cmsproject.backup dump [--dir backups/]          (make backup [BACKUP_DIR=...])
    python -m cmsproject.backup restore ARCHIVE [--force]      (make restore ARCHIVE=... [FORCE=1])

The archive, `cms-<UTC time>.tar.gz` (mode 0600: it holds personal data):
- `database/cms.dump`: `pg_dump --format=custom` of the database (services mode), or
  `database/cms.sqlite3`: a consistent copy made with SQLite's backup API (embedded mode);
- `media/...`: everything under MEDIA_ROOT, originals and renditions;
- `manifest.json`: creation time, mode, the applied migrations per app, the app's version and
  git revision, and every other member's size and sha256.

The database is dumped before the media is read: a media file is written before its row commits
(`content.media`), so every asset in the dump finds its file; a file uploaded meanwhile is an
orphan, which is harmless. Events still in the buffer (Redis, or `var/events/`) are not included.

A restore checks every member (names, types, sizes, checksums) while unpacking into a staging
directory, and refuses a target database or media directory that is not empty unless forced,
before it touches either. The restore target is TARGET_DATABASE_URL when set (read from the
environment so that no password reaches a command line), else the configured database. The
PostgreSQL tools get the password through PGPASSWORD, never as an argument.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import uuid
import zlib
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import IO, Any

import dj_database_url
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.db.utils import load_backend

BASE_DIR = Path(__file__).resolve().parent.parent
FORMAT = "cms-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_MAX_BYTES = 16 * 1024 * 1024
DATABASE_MEMBERS = {"services": "database/cms.dump", "embedded": "database/cms.sqlite3"}
MEDIA_DIR = "media"
CHUNK = 1024 * 1024
# Connection options a libpq tool takes from the environment rather than from its arguments.
LIBPQ_OPTIONS = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
}


class BackupError(Exception):
    """A backup or restore refused or failed; the message says why and what to do instead."""


# --- Backup ---------------------------------------------------------------------------------------
def backup_create(
    *,
    backup_dir: Path | str = "backups",
    database: str = DEFAULT_DB_ALIAS,
    media_root: Path | str | None = None,
) -> Path:
    """Write one archive of `database` and MEDIA_ROOT into `backup_dir`; return its path.

    The archive appears under its final name only once complete (written under a temporary name
    in the same directory, then renamed)."""
    backup_dir = Path(backup_dir)
    media_root = Path(media_root or settings.MEDIA_ROOT)
    if backup_dir.resolve().is_relative_to(media_root.resolve()):
        raise BackupError(
            f"Refusing to write backups into {backup_dir}: it is inside MEDIA_ROOT ({media_root}),"
            " so each backup would hold the ones before it. Choose another BACKUP_DIR."
        )
    connection = connections[database]
    mode = _mode_of(connection.settings_dict)
    created_at = datetime.now(UTC).replace(microsecond=0)
    migrations = _applied_migrations(database)
    backup_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(dir=backup_dir, prefix=".cms-backup-") as work:
        dump = Path(work) / "database"
        if mode == "services":
            _pg_dump(connection.settings_dict, dump)
        else:
            connection.ensure_connection()
            with closing(sqlite3.connect(dump)) as copy:
                connection.connection.backup(copy)

        partial = Path(work) / "archive.tar.gz"  # in a 0700 directory until it is 0600 itself
        with tarfile.open(partial, "w:gz") as archive:
            files = [_add_file(archive, dump, DATABASE_MEMBERS[mode])]
            for path in _media_files(media_root):
                name = f"{MEDIA_DIR}/{path.relative_to(media_root).as_posix()}"
                files.append(_add_file(archive, path, name))
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "created_at": created_at.isoformat(),
                "mode": mode,
                "database": {"vendor": connection.vendor, "file": DATABASE_MEMBERS[mode]},
                "migrations": migrations,
                "app": {"version": _app_version(), "git_revision": _git_revision()},
                "files": files,
            }
            _add_bytes(archive, MANIFEST, json.dumps(manifest, indent=2).encode())
        partial.chmod(0o600)
        final = _archive_name(backup_dir, created_at)
        os.replace(partial, final)
    return final


def _mode_of(database: Mapping[str, Any]) -> str:
    engine = database.get("ENGINE", "")
    if "postgresql" in engine:
        return "services"
    if "sqlite3" in engine:
        return "embedded"
    raise BackupError(f"Backups support PostgreSQL and SQLite only, not {engine}.")


def _applied_migrations(alias: str) -> dict[str, list[str]]:
    applied: dict[str, list[str]] = {}
    for app_label, name in sorted(MigrationRecorder(connections[alias]).applied_migrations()):
        applied.setdefault(app_label, []).append(name)
    return applied


def _app_version() -> str | None:
    try:
        return metadata.version("headless-cms")
    except metadata.PackageNotFoundError:
        return None


def _git_revision() -> str | None:
    git = shutil.which("git")
    if git is None or not (BASE_DIR / ".git").exists():
        return None
    try:
        result = subprocess.run(  # noqa: S603 - a fixed command, no input from outside
            [git, "-C", str(BASE_DIR), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (result.stdout.strip() or None) if result.returncode == 0 else None


def _media_files(media_root: Path) -> list[Path]:
    """Regular files under MEDIA_ROOT; symbolic links are not followed (uploads never make one)."""
    found = []
    for directory, subdirectories, names in os.walk(media_root):
        subdirectories.sort()
        for name in sorted(names):
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink():
                found.append(path)
    return found


class _HashingReader:
    """Hands tarfile the bytes it asks for and hashes exactly those: the manifest then describes
    what the archive holds even if the file changes while it is read."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(size)
        self.digest.update(chunk)
        return chunk


def _add_file(archive: tarfile.TarFile, path: Path, name: str) -> dict[str, Any]:
    stat = path.stat()
    info = _tar_info(name, stat.st_size, int(stat.st_mtime))
    with path.open("rb") as source:
        reader = _HashingReader(source)
        archive.addfile(info, reader)
    return {"path": name, "size": info.size, "sha256": reader.digest.hexdigest()}


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    archive.addfile(
        _tar_info(name, len(data), int(datetime.now(UTC).timestamp())), io.BytesIO(data)
    )


def _tar_info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    return info


def _archive_name(backup_dir: Path, created_at: datetime) -> Path:
    stem = f"cms-{created_at.strftime('%Y%m%dT%H%M%SZ')}"
    candidate, counter = backup_dir / f"{stem}.tar.gz", 1
    while candidate.exists():  # two backups within a second keep both
        counter += 1
        candidate = backup_dir / f"{stem}-{counter}.tar.gz"
    return candidate


# --- PostgreSQL tools -----------------------------------------------------------------------------
def _pg_tool(tool: str, database: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The tool's connection arguments and environment: never a password on the command line."""
    executable = shutil.which(tool)
    if executable is None:
        raise BackupError(
            f"{tool} is not installed: install the PostgreSQL client tools of the server's major "
            "version or newer (Debian: apt-get install postgresql-client)."
        )
    command = [executable, "--no-password"]
    for key, flag in (("HOST", "--host"), ("PORT", "--port"), ("USER", "--username")):
        if database.get(key):
            command += [flag, str(database[key])]
    env = dict(os.environ)
    if database.get("PASSWORD"):
        env["PGPASSWORD"] = str(database["PASSWORD"])
    for option, variable in LIBPQ_OPTIONS.items():
        if database.get("OPTIONS", {}).get(option):
            env[variable] = str(database["OPTIONS"][option])
    return command, env


def _pg_run(tool: str, database: Mapping[str, Any], arguments: list[str]) -> None:
    command, env = _pg_tool(tool, database)
    result = subprocess.run(  # noqa: S603 - our arguments; the password travels in PGPASSWORD
        [*command, *arguments], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BackupError(f"{tool} failed (exit {result.returncode}): {result.stderr.strip()}")


def _pg_dump(database: Mapping[str, Any], file: Path) -> None:
    _pg_run("pg_dump", database, ["--format=custom", "--file", str(file), database["NAME"]])


def _pg_connect(database: Mapping[str, Any], dbname: str) -> Any:
    import psycopg

    params: dict[str, Any] = {"dbname": dbname, "autocommit": True, "connect_timeout": 10}
    for key, param in (
        ("HOST", "host"),
        ("PORT", "port"),
        ("USER", "user"),
        ("PASSWORD", "password"),
    ):
        if database.get(key):
            params[param] = str(database[key])
    params.update(
        {key: value for key, value in database.get("OPTIONS", {}).items() if key in LIBPQ_OPTIONS}
    )
    return psycopg.connect(**params)


@contextmanager
def _pg_maintenance(database: Mapping[str, Any]) -> Iterator[Any]:
    """A connection to the server itself, for CREATE DATABASE and the catalog of databases."""
    import psycopg

    errors = []
    for dbname in ("postgres", "template1"):
        try:
            connection = _pg_connect(database, dbname)
        except psycopg.OperationalError as error:
            errors.append(str(error).strip())
            continue
        with connection:
            yield connection
        return
    raise BackupError(f"Cannot reach the PostgreSQL server of the target: {errors[-1]}")


def _pg_database_exists(database: Mapping[str, Any]) -> bool:
    with _pg_maintenance(database) as server:
        row = server.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [database["NAME"]]
        ).fetchone()
    return row is not None


def _pg_tables(database: Mapping[str, Any]) -> int:
    import psycopg

    try:
        target = _pg_connect(database, database["NAME"])
    except psycopg.Error as error:
        raise BackupError(f"Cannot connect to {_display(database)}: {error}") from None
    with closing(target):
        (count,) = target.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
            "AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'"
        ).fetchone()
    return count


def _pg_create(database: Mapping[str, Any]) -> None:
    import psycopg
    from psycopg import sql

    with _pg_maintenance(database) as server:
        # template0: nothing a site added to template1 can collide with the dump's objects.
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE template0")
        try:
            server.execute(statement.format(sql.Identifier(database["NAME"])))
        except psycopg.Error as error:
            raise BackupError(f"Cannot create {_display(database)}: {error}") from None


# --- Restore --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RestoreSummary:
    archive: Path
    manifest: dict[str, Any]
    database: str
    media_root: Path
    media_files: int
    counts: dict[str, int | None]
    pending_migrations: list[str]
    unknown_migrations: list[str]

    def lines(self) -> list[str]:
        app = self.manifest.get("app") or {}
        made_by = app.get("git_revision") or app.get("version") or "unknown version"
        counts = ", ".join(
            f"{name} {count if count is not None else '(no table)'}"
            for name, count in self.counts.items()
        )
        lines = [
            f"Restored {self.archive} ({self.manifest['mode']} mode, made "
            f"{self.manifest['created_at']} by {made_by})",
            f"  database    {self.database}",
            f"  media       {self.media_files} files into {self.media_root}",
            f"  contains    {counts}",
        ]
        if self.pending_migrations:
            lines.append(
                f"  migrations  {len(self.pending_migrations)} pending: "
                f"{', '.join(self.pending_migrations)}; run `python manage.py migrate` "
                "against this database"
            )
        else:
            lines.append("  migrations  up to date (migrate --check passes)")
        if self.unknown_migrations:
            lines.append(
                "  warning     the backup has migrations this code does not know (made by a newer "
                f"version?): {', '.join(self.unknown_migrations)}"
            )
        return lines


def backup_restore(
    *,
    archive: Path | str,
    target_database_url: str | None = None,
    media_root: Path | str | None = None,
    force: bool = False,
) -> RestoreSummary:
    """Restore an archive into a database (`target_database_url`, else the configured one) and a
    media directory (else MEDIA_ROOT). Both must be empty unless `force`: then the dump's objects
    replace the database's, and archive files overwrite media files of the same name.

    Nothing is touched until every member has been checked against the manifest."""
    archive = Path(archive)
    media_root = Path(media_root or settings.MEDIA_ROOT)
    target = _target_settings(target_database_url)
    target_mode = _mode_of(target)
    if target_mode == "embedded":
        _sqlite_file_required(target)
    staging_parent = media_root.parent if media_root.parent.is_dir() else None

    with tempfile.TemporaryDirectory(dir=staging_parent, prefix=".cms-restore-") as staging:
        staged = Path(staging)
        manifest = _archive_unpack(archive, staged)
        if manifest["mode"] != target_mode:
            raise BackupError(
                f"The archive was made in {manifest['mode']} mode; the target "
                f"{_display(target)} is a {target_mode}-mode database. Restore into the same kind."
            )
        if not force:
            _refuse_non_empty(target, media_root)
        database_file = staged / DATABASE_MEMBERS[target_mode]
        if target_mode == "services":
            _pg_restore(target, database_file, replace=force)
        else:
            _sqlite_restore(Path(target["NAME"]), database_file)
        media_files = _media_move(staged / MEDIA_DIR, media_root)

    with database_alias(target) as alias:
        pending, unknown = _migration_check(alias)
        counts = _counts(alias)
    return RestoreSummary(
        archive=archive,
        manifest=manifest,
        database=_display(target),
        media_root=media_root,
        media_files=media_files,
        counts=counts,
        pending_migrations=pending,
        unknown_migrations=unknown,
    )


def _target_settings(url: str | None) -> dict[str, Any]:
    if url:
        return dict(dj_database_url.parse(url))
    return dict(connections[DEFAULT_DB_ALIAS].settings_dict)


def _display(database: Mapping[str, Any]) -> str:
    if _mode_of(database) == "embedded":
        return str(database["NAME"])
    host = database.get("HOST") or "localhost"
    port = f":{database['PORT']}" if database.get("PORT") else ""
    user = f"{database['USER']}@" if database.get("USER") else ""
    return f"postgresql://{user}{host}{port}/{database['NAME']}"  # never the password


def _member_name(member: tarfile.TarInfo) -> str:
    """The member's normalized name, or a refusal: nothing may land outside the target."""
    raw = member.name
    path = PurePosixPath(raw)
    if (
        not raw
        or raw.startswith(("/", "\\"))
        or "\\" in raw
        or "\x00" in raw
        or ".." in path.parts
        or (path.parts and path.parts[0].endswith(":"))
    ):
        raise BackupError(
            f"Refusing archive member {raw!r}: an absolute path or '..' could write outside the "
            "target (path traversal). Nothing was restored."
        )
    if not member.isfile() and not member.isdir():
        raise BackupError(
            f"Refusing archive member {raw!r}: only regular files are restored, not links or "
            "devices. Nothing was restored."
        )
    name = path.as_posix()
    if name != MANIFEST and path.parts[0] not in {"database", MEDIA_DIR}:
        raise BackupError(f"Unexpected archive member {raw!r}. Nothing was restored.")
    return name


def _archive_unpack(archive: Path, staging: Path) -> dict[str, Any]:
    """Unpack into `staging` with every check; return the manifest. Writes nowhere else."""
    if not archive.is_file():
        raise BackupError(f"No archive at {archive}.")
    found: dict[str, tuple[int, str]] = {}
    manifest_data: bytes | None = None
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = _member_name(member)
                if member.isdir():
                    continue
                if name in found or (name == MANIFEST and manifest_data is not None):
                    raise BackupError(f"Archive member {name!r} appears twice. Nothing restored.")
                source = tar.extractfile(member)
                assert source is not None  # a regular file, checked above
                if name == MANIFEST:
                    manifest_data = source.read(MANIFEST_MAX_BYTES + 1)
                    continue
                found[name] = _unpack_member(source, staging / name)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise BackupError(f"{archive} is not a readable backup archive ({error}).") from None
    manifest = _manifest_checked(manifest_data)
    listed = {entry["path"]: (entry["size"], entry["sha256"]) for entry in manifest["files"]}
    missing, unexpected = sorted(listed.keys() - found.keys()), sorted(found.keys() - listed)
    if missing or unexpected:
        raise BackupError(
            f"The archive does not match its manifest (missing: {missing or 'none'}, not listed: "
            f"{unexpected or 'none'}). Nothing was restored."
        )
    damaged = sorted(name for name, expected in listed.items() if found[name] != tuple(expected))
    if damaged:
        raise BackupError(
            f"Checksum mismatch for {', '.join(damaged)}: the archive is damaged or was altered. "
            "Nothing was restored."
        )
    if DATABASE_MEMBERS[manifest["mode"]] not in listed:
        raise BackupError("The archive holds no database dump. Nothing was restored.")
    return manifest


def _unpack_member(source: IO[bytes], destination: Path) -> tuple[int, str]:
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with destination.open("xb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _manifest_checked(data: bytes | None) -> dict[str, Any]:
    if data is None:
        raise BackupError("The archive has no manifest.json: not a backup made by this tool.")
    if len(data) > MANIFEST_MAX_BYTES:
        raise BackupError("The archive's manifest.json is implausibly large. Nothing restored.")
    try:
        manifest = json.loads(data)
    except ValueError as error:
        raise BackupError(f"The archive's manifest.json is not JSON ({error}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("The archive's manifest.json is not a CMS backup manifest.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"Backup format version {manifest.get('format_version')!r} is not supported "
            f"(this code reads version {FORMAT_VERSION})."
        )
    files = manifest.get("files")
    if manifest.get("mode") not in DATABASE_MEMBERS or not isinstance(files, list):
        raise BackupError("The archive's manifest.json lacks its mode or its file list.")
    if not all(
        isinstance(entry, dict) and {"path", "size", "sha256"} <= entry.keys() for entry in files
    ):
        raise BackupError(
            "The archive's manifest.json has a file entry without path, size, sha256."
        )
    return manifest


def _refuse_non_empty(target: Mapping[str, Any], media_root: Path) -> None:
    force_hint = "Restore into a new, empty one, or pass --force (make restore FORCE=1)."
    if _mode_of(target) == "services":
        tables = _pg_tables(target) if _pg_database_exists(target) else 0
    else:
        tables = _sqlite_tables(Path(target["NAME"]))
    if tables:
        raise BackupError(
            f"The target database {_display(target)} is not empty ({tables} tables). {force_hint}"
        )
    if media_root.is_dir() and any(path.is_file() for path in media_root.rglob("*")):
        raise BackupError(f"The media directory {media_root} is not empty. {force_hint}")


def _sqlite_tables(path: Path) -> int:
    if not path.exists() or path.stat().st_size == 0:
        return 0
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            (count,) = db.execute(
                "SELECT count(*) FROM sqlite_master WHERE type='table'"
            ).fetchone()
    except sqlite3.DatabaseError as error:
        raise BackupError(
            f"The target {path} is not a readable SQLite database ({error})."
        ) from None
    return count


def _pg_restore(target: Mapping[str, Any], dump: Path, *, replace: bool) -> None:
    if not _pg_database_exists(target):
        _pg_create(target)
    arguments = ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]
    if replace:
        arguments += ["--clean", "--if-exists"]
    _pg_run("pg_restore", target, [*arguments, "--dbname", target["NAME"], str(dump)])


def _sqlite_file_required(target: Mapping[str, Any]) -> None:
    name = str(target.get("NAME") or "")
    if name in {"", ":memory:"} or name.startswith("file:"):
        raise BackupError(f"The target SQLite database must be a file, not {name!r}.")


def _sqlite_restore(path: Path, copy: Path) -> None:
    """Put the copy in place by a rename, and drop the old file's journals with it (a stale WAL
    replayed onto the restored file would corrupt it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    incoming = path.with_name(f".{path.name}.restoring")
    shutil.copyfile(copy, incoming)
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.replace(incoming, path)


def _media_move(staged: Path, media_root: Path) -> int:
    media_root.mkdir(parents=True, exist_ok=True)
    if not staged.is_dir():
        return 0
    moved = 0
    for source in sorted(path for path in staged.rglob("*") if path.is_file()):
        destination = media_root / source.relative_to(staged)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, destination)
        moved += 1
    return moved


@contextmanager
def database_alias(database: str | Mapping[str, Any]) -> Iterator[str]:
    """A Django connection alias for another database (a URL or a settings dict), for the block:
    `Entry.objects.using(alias)` then reads the restored database.

    The connection belongs to this thread and is not added to DATABASES, so nothing else (the
    request cycle's `connections.all()`, a test's database guard) ever sees it."""
    settings_dict = dict(dj_database_url.parse(database) if isinstance(database, str) else database)
    settings_dict["CONN_MAX_AGE"] = 0
    alias = f"restore_{uuid.uuid4().hex[:12]}"
    configured = connections.configure_settings(
        {DEFAULT_DB_ALIAS: dict(connections.settings[DEFAULT_DB_ALIAS]), alias: settings_dict}
    )[alias]
    wrapper = load_backend(configured["ENGINE"]).DatabaseWrapper(configured, alias)
    connections[alias] = wrapper
    try:
        yield alias
    finally:
        wrapper.close()
        del connections[alias]


def _migration_check(alias: str) -> tuple[list[str], list[str]]:
    """What `migrate --check` decides on: migrations still to apply. Also those applied in the
    restored database that this code lacks."""
    executor = MigrationExecutor(connections[alias])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    pending = [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]
    known = set(executor.loader.graph.nodes)
    unknown = sorted(
        f"{app}.{name}"
        for app, name in executor.loader.applied_migrations
        if (app, name) not in known
    )
    return pending, unknown


def _counts(alias: str) -> dict[str, int | None]:
    from analytics.models import Event
    from content.models import Entry, MediaAsset
    from customers.models import Customer

    tables = set(connections[alias].introspection.table_names())
    return {
        name: model.objects.using(alias).count() if model._meta.db_table in tables else None
        for name, model in (
            ("entries", Entry),
            ("customers", Customer),
            ("events", Event),
            ("media assets", MediaAsset),
        )
    }


# --- Command line ---------------------------------------------------------------------------------
def _setup_django() -> None:
    # An operations tool: the settings insist on these outside DEBUG; this process serves nothing
    # and signs nothing, so a throwaway key is enough when none is set.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cmsproject.settings")
    os.environ.setdefault("SECRET_KEY", f"backup-tool-not-served-{uuid.uuid4().hex}")
    os.environ.setdefault("ALLOWED_HOSTS", "localhost")
    import django

    django.setup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cmsproject.backup", description="Back up or restore the CMS."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    dump = commands.add_parser("dump", help="write one archive of the database and the media")
    dump.add_argument("--dir", type=Path, default=Path("backups"), help="default: backups/")
    restore = commands.add_parser(
        "restore",
        help="restore an archive into TARGET_DATABASE_URL (environment; default DATABASE_URL, "
        "or the embedded SQLite file) and MEDIA_ROOT",
    )
    restore.add_argument("archive", type=Path)
    restore.add_argument("--media-root", type=Path, default=None, help="default: MEDIA_ROOT")
    restore.add_argument(
        "--force", action="store_true", help="replace the content of a non-empty target"
    )
    args = parser.parse_args(argv)

    _setup_django()
    try:
        if args.command == "dump":
            path = backup_create(backup_dir=args.dir)
            print(f"Backup written: {path} ({path.stat().st_size:,} bytes)")
        else:
            summary = backup_restore(
                archive=args.archive,
                target_database_url=os.environ.get("TARGET_DATABASE_URL") or None,
                media_root=args.media_root,
                force=args.force,
            )
            print("\n".join(summary.lines()))
    except BackupError as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
