"""Backup and restore (`cmsproject.backup`, `make backup` / `make restore`): a site with content,
customers, an event and an uploaded image is backed up and restored into a database and a media
directory that did not exist, then read back through a separate connection: same ids, same
payloads, same bytes. Damaged, hostile and misdirected restores are refused before they touch
anything.

Each round trip runs in the pass of its mode: SQLite files in the embedded pass, a new PostgreSQL
database (`restore_<random>`, dropped afterwards) with pg_dump/pg_restore in the services pass.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from analytics.models import Event
from analytics.services import Caller, events_accept
from cmsproject.backup import BackupError, backup_create, backup_restore, database_alias
from content.demo import demo_load
from content.media import media_upload
from content.models import Entry, EntryType, MediaAsset, Rendition, Revision
from customers.models import Customer
from customers.services import customer_create
from tests.content.media_factories import image_bytes

BASE_DIR = Path(__file__).resolve().parents[2]
ON_CI = os.environ.get("CI", "").lower() == "true"
MODES = [
    pytest.param("embedded", marks=pytest.mark.embedded, id="embedded"),
    pytest.param("services", marks=pytest.mark.services, id="services"),
]
COMPARED = [EntryType, Entry, Revision, MediaAsset, Rendition, Customer, Event]


# --- fixtures and helpers ------------------------------------------------------------------------
@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """The pass's mode; services mode needs the PostgreSQL client tools on this machine."""
    if request.param == "services":
        missing = [tool for tool in ("pg_dump", "pg_restore") if shutil.which(tool) is None]
        if missing:
            message = (
                f"{' and '.join(missing)} not found: backups in services mode need the PostgreSQL "
                "client tools (Debian: apt-get install postgresql-client)"
            )
            if ON_CI:
                pytest.fail(message)
            pytest.skip(message)
    return request.param


def _server_url(dbname: str) -> str:
    return urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{dbname}").geturl()


def database_exists(url: str) -> bool:
    import psycopg

    if url.startswith("sqlite"):
        return Path(dj_database_url.parse(url)["NAME"]).exists()
    with psycopg.connect(_server_url("postgres"), autocommit=True) as server:
        row = server.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [urlsplit(url).path.lstrip("/")]
        ).fetchone()
    return row is not None


@pytest.fixture
def fresh_target(mode: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a database that does not exist yet; a PostgreSQL one is dropped afterwards."""
    if mode == "embedded":
        yield f"sqlite:///{tmp_path / 'restored' / 'cms.sqlite3'}"
        return
    import psycopg
    from psycopg import sql

    name = f"restore_{uuid.uuid4().hex[:12]}"
    yield _server_url(name)
    with psycopg.connect(_server_url("postgres"), autocommit=True) as server:
        server.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@dataclass
class Site:
    media_root: Path
    asset: MediaAsset
    customers: list[Customer]


@pytest.fixture
def site(transactional_db, settings, tmp_path: Path, drain) -> Site:
    """Committed content (demo types and published entries), two customers, one stored event, and
    an uploaded image with its renditions, under a media root of its own."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CELERY_TASK_ALWAYS_EAGER = True  # renditions are made here, after the upload commits
    settings.CMS_EMBEDDED_TASKS_INLINE = True
    demo_load()
    customers = [
        customer_create(email="ada@example.com", name="Ada Lovelace", external_id="ada"),
        customer_create(email="alan@example.com", name="Alan Turing", external_id="alan"),
    ]
    accepted = events_accept(
        events=[{"id": "backup-e1", "type": "page_view", "userId": "ada", "properties": {"n": 1}}],
        caller=Caller(may_name_any_user=True),
    )
    assert not accepted.rejected
    drain()
    upload = SimpleUploadedFile("photo.png", image_bytes("PNG", (400, 200)), "image/png")
    asset = media_upload(upload=upload, alt="A gradient")
    asset.refresh_from_db()
    assert asset.status == MediaAsset.Status.READY and asset.renditions.exists()
    return Site(media_root=settings.MEDIA_ROOT, asset=asset, customers=customers)


def rows(alias: str = "default") -> dict[str, list[dict[str, Any]]]:
    return {
        model._meta.label: list(model.objects.using(alias).order_by("pk").values())
        for model in COMPARED
    }


def files_under(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def archive_members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {member.name: tar.extractfile(member).read() for member in tar if member.isfile()}


def archive_write(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def crafted_archive(path: Path, extra: tarfile.TarInfo, data: bytes = b"owned") -> Path:
    """A well-formed embedded-mode backup (its manifest lists every member with the right
    checksum) that also holds `extra`: only that member's name or type can get it refused."""
    members = {"database/cms.sqlite3": b"SQLite format 3\x00", "media/ok.txt": b"fine"}
    listed = {**members, extra.name: data}
    manifest = {
        "format": "cms-backup",
        "format_version": 1,
        "created_at": "2026-11-21T10:15:00+00:00",
        "mode": "embedded",
        "migrations": {},
        "files": [{"path": n, "size": len(d), "sha256": sha256(d)} for n, d in listed.items()],
    }
    return archive_write(
        path,
        [
            *((tarfile.TarInfo(name), content) for name, content in members.items()),
            (extra, data),
            (tarfile.TarInfo("manifest.json"), json.dumps(manifest).encode()),
        ],
    )


# --- backup ---------------------------------------------------------------------------------------
def test_a_backup_holds_the_database_the_media_and_a_manifest_of_checksums(
    site: Site, mode: str, tmp_path: Path
):
    archive = backup_create(backup_dir=tmp_path / "backups")

    assert re.fullmatch(r"cms-\d{8}T\d{6}Z\.tar\.gz", archive.name)
    assert archive.stat().st_mode & 0o777 == 0o600  # it holds personal data
    assert os.listdir(tmp_path / "backups") == [archive.name]  # no temporary left behind
    members = archive_members(archive)
    manifest = json.loads(members.pop("manifest.json"))
    database = {"services": "database/cms.dump", "embedded": "database/cms.sqlite3"}[mode]
    media = {f"media/{name}": data for name, data in files_under(site.media_root).items()}
    assert members.keys() == {database, *media}
    assert f"media/{site.asset.file.name}" in media
    assert all(members[name] == data for name, data in media.items())
    assert manifest["mode"] == mode
    assert manifest["files"] == [
        {"path": name, "size": len(data), "sha256": sha256(data)} for name, data in members.items()
    ]
    assert "0001_initial" in manifest["migrations"]["content"]
    assert manifest["app"]["version"]
    assert manifest["created_at"].endswith("+00:00")


def test_a_backup_is_never_written_inside_media_root(settings, tmp_path: Path):
    settings.MEDIA_ROOT = tmp_path / "media"

    with pytest.raises(BackupError, match="inside MEDIA_ROOT"):
        backup_create(backup_dir=tmp_path / "media" / "backups")

    assert not (tmp_path / "media").exists()


# --- restore --------------------------------------------------------------------------------------
def test_a_restore_into_a_fresh_database_finds_the_same_content_customers_and_media(
    site: Site, fresh_target: str, tmp_path: Path
):
    archive = backup_create(backup_dir=tmp_path / "backups")
    restored_media = tmp_path / "restored-media"

    summary = backup_restore(
        archive=archive, target_database_url=fresh_target, media_root=restored_media
    )

    with database_alias(fresh_target) as alias:
        assert rows(alias) == rows()
        restored_asset = MediaAsset.objects.using(alias).get(pk=site.asset.pk)
        assert {c.external_id for c in Customer.objects.using(alias)} == {"ada", "alan"}
        assert Entry.objects.using(alias).filter(live__isnull=False).exists()
    assert files_under(restored_media) == files_under(site.media_root)
    original = (restored_media / restored_asset.file.name).read_bytes()
    assert sha256(original) == site.asset.checksum
    assert summary.counts == {
        "entries": Entry.objects.count(),
        "customers": 2,
        "events": 1,
        "media assets": 1,
    }
    assert summary.pending_migrations == [] and summary.unknown_migrations == []
    assert summary.media_files == len(files_under(site.media_root))


def test_the_restore_command_prints_what_it_restored(site: Site, fresh_target: str, tmp_path):
    archive = backup_create(backup_dir=tmp_path / "backups")

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cmsproject.backup",
            "restore",
            str(archive),
            "--media-root",
            str(tmp_path / "restored-media"),
        ],
        env={**os.environ, "TARGET_DATABASE_URL": fresh_target},
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    entries = Entry.objects.count()
    assert f"entries {entries}, customers 2, events 1, media assets 1" in result.stdout
    assert "migrations  up to date" in result.stdout
    assert database_exists(fresh_target)


def test_a_tampered_archive_is_refused_and_changes_nothing(
    site: Site, fresh_target: str, tmp_path: Path
):
    archive = backup_create(backup_dir=tmp_path / "backups")
    with tarfile.open(archive, "r:gz") as tar:
        members = [(member, tar.extractfile(member).read()) for member in tar]
    altered = f"media/{site.asset.file.name}"
    tampered = archive_write(
        tmp_path / "tampered.tar.gz",
        [(info, b"not the photo" if info.name == altered else data) for info, data in members],
    )
    restored_media = tmp_path / "restored-media"

    with pytest.raises(BackupError, match=f"Checksum mismatch for {re.escape(altered)}"):
        backup_restore(
            archive=tampered, target_database_url=fresh_target, media_root=restored_media
        )

    assert not database_exists(fresh_target)
    assert not restored_media.exists()
    assert not list(tmp_path.glob(".cms-restore-*"))  # the staging directory is gone too


def test_restoring_into_a_database_that_is_not_empty_is_refused_without_force(
    site: Site, fresh_target: str, tmp_path: Path
):
    archive = backup_create(backup_dir=tmp_path / "backups")
    backup_restore(archive=archive, target_database_url=fresh_target, media_root=tmp_path / "m1")
    with database_alias(fresh_target) as alias:
        Customer.objects.using(alias).filter(external_id="ada").update(name="Changed since")

    with pytest.raises(BackupError, match="is not empty"):
        backup_restore(
            archive=archive, target_database_url=fresh_target, media_root=tmp_path / "m2"
        )

    with database_alias(fresh_target) as alias:
        assert Customer.objects.using(alias).get(external_id="ada").name == "Changed since"
    assert not (tmp_path / "m2").exists()


def test_force_replaces_the_content_of_a_database_that_is_not_empty(
    site: Site, fresh_target: str, tmp_path: Path
):
    archive = backup_create(backup_dir=tmp_path / "backups")
    media = tmp_path / "restored-media"
    backup_restore(archive=archive, target_database_url=fresh_target, media_root=media)
    with database_alias(fresh_target) as alias:
        Customer.objects.using(alias).filter(external_id="ada").update(name="Changed since")

    backup_restore(archive=archive, target_database_url=fresh_target, media_root=media, force=True)

    with database_alias(fresh_target) as alias:
        assert rows(alias) == rows()
    assert files_under(media) == files_under(site.media_root)


@pytest.mark.parametrize(
    "name",
    ["../evil.txt", "media/../../evil.txt", "{tmp}/evil.txt", "media\\..\\..\\evil.txt"],
    ids=["parent", "nested-parent", "absolute", "backslashes"],
)
def test_an_archive_member_that_would_escape_the_target_is_refused(tmp_path: Path, name: str):
    archive = crafted_archive(
        tmp_path / "hostile.tar.gz", tarfile.TarInfo(name.format(tmp=tmp_path))
    )
    target = tmp_path / "restored" / "cms.sqlite3"

    with pytest.raises(BackupError, match="path traversal"):
        backup_restore(
            archive=archive,
            target_database_url=f"sqlite:///{target}",
            media_root=tmp_path / "restored" / "media",
        )

    assert not list(tmp_path.parent.glob("evil.txt")) and not list(tmp_path.rglob("*evil*"))
    assert not (tmp_path / "restored").exists()


def test_an_archive_member_that_is_a_link_is_refused(tmp_path: Path):
    link = tarfile.TarInfo("media/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    archive = crafted_archive(tmp_path / "hostile.tar.gz", link, data=b"")

    with pytest.raises(BackupError, match="only regular files"):
        backup_restore(
            archive=archive,
            target_database_url=f"sqlite:///{tmp_path / 'restored.sqlite3'}",
            media_root=tmp_path / "media",
        )

    assert not (tmp_path / "media").exists() and not (tmp_path / "restored.sqlite3").exists()


def test_an_archive_from_the_other_mode_is_refused_before_any_connection(tmp_path: Path):
    archive = crafted_archive(tmp_path / "embedded.tar.gz", tarfile.TarInfo("media/b.txt"))

    with pytest.raises(BackupError, match="made in embedded mode"):
        backup_restore(
            archive=archive,
            target_database_url="postgres://nobody@127.0.0.1:1/unreachable",
            media_root=tmp_path / "media",
        )

    assert not (tmp_path / "media").exists()
