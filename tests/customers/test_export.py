"""Customer export: three formats that open in their usual readers, streamed in batches, allowed
to exporters and API keys with `customers:read`, audited; and the daily snapshot file."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext
from django.urls import resolve
from django.utils import timezone
from rest_framework.test import APIClient

from cmsproject.celery import app as celery_app
from cmsproject.models import AuditEntry
from cmsproject.roles import roles_sync
from cmsproject.services import api_key_create
from customers import export
from customers.export import COLUMNS, CustomerExportApi
from customers.models import AnonymousId, Consent, Customer
from customers.tasks import customers_export_snapshot_task
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/customers/export/"


def test_the_export_url_is_routed_to_the_export_view():
    # A `customers/<pk>/` route listed first would swallow it.
    assert resolve(URL).func.view_class is CustomerExportApi


@pytest.fixture
def exporter(db):
    roles_sync()
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name="Analyst"))
    return user


@pytest.fixture
def exporter_client(exporter) -> APIClient:
    client = APIClient()
    client.force_authenticate(exporter)
    return client


@pytest.fixture
def customers(db) -> list[Customer]:
    """Three customers, one with every column filled, text that needs quoting and escaping; and
    one erased customer, who is never exported."""
    full = Customer.objects.create(
        external_id="site-1",
        email="ada@example.com",
        name='Ada "The Countess", Lovelace',
        loyalty_tier="gold",
        lifecycle_stage="customer",
        last_seen=datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
        total_spend=Decimal("512.50"),
        attributes={"city": "Zürich", "newsletter": True, "note": "line one\nline two"},
        preferences={"language": "de"},
    )
    Consent.objects.create(customer=full, purpose="analytics", granted=True)
    Consent.objects.create(customer=full, purpose="sms", granted=False)
    AnonymousId.objects.create(customer=full, value="anon-a")
    AnonymousId.objects.create(customer=full, value="anon-b")
    bare = Customer.objects.create(external_id="site-2")
    third = Customer.objects.create(email="grace@example.com", name="Grace")
    Customer.objects.create(external_id=None, erased_at=timezone.now())
    return [full, bare, third]


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def _api_key_header(*scopes: str) -> dict[str, str]:
    _, raw = api_key_create(name="warehouse", scopes=list(scopes), created_by=None)
    return {"HTTP_AUTHORIZATION": f"Api-Key {raw}"}


# --- Formats --------------------------------------------------------------------------------------
def test_json_export_is_an_array_of_every_customer(exporter_client, customers):
    # given three customers (and one erased), when exported as JSON
    response = exporter_client.get(URL, {"format": "json"})

    # then json.loads reads an array with each of them, in id order, every column present
    assert response.status_code == 200
    rows = json.loads(_body(response))
    assert [row["id"] for row in rows] == sorted(c.pk for c in customers)
    full = next(row for row in rows if row["id"] == customers[0].pk)
    assert list(full) == list(COLUMNS)
    assert full["name"] == 'Ada "The Countess", Lovelace'
    assert full["total_spend"] == "512.50"
    assert datetime.fromisoformat(full["last_seen"]) == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert full["attributes"] == {
        "city": "Zürich",
        "newsletter": True,
        "note": "line one\nline two",
    }
    assert full["consents"] == {"analytics": True, "sms": False}
    assert full["anonymous_ids"] == ["anon-a", "anon-b"]


def test_json_is_the_default_format(exporter_client, customers):
    response = exporter_client.get(URL)

    assert response["Content-Type"] == "application/json"
    assert len(json.loads(_body(response))) == 3


def test_csv_export_has_a_header_and_one_row_per_customer(exporter_client, customers):
    # given three customers, when exported as CSV
    response = exporter_client.get(URL, {"format": "csv"})

    # then csv.DictReader reads the header and one row each; JSON columns hold JSON text
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    reader = csv.DictReader(io.StringIO(_body(response).decode()))
    rows = list(reader)
    assert reader.fieldnames == list(COLUMNS)
    assert [int(row["id"]) for row in rows] == sorted(c.pk for c in customers)
    full = next(row for row in rows if row["id"] == str(customers[0].pk))
    assert full["name"] == 'Ada "The Countess", Lovelace'
    assert full["total_spend"] == "512.50"
    assert json.loads(full["attributes"])["note"] == "line one\nline two"
    assert json.loads(full["consents"]) == {"analytics": True, "sms": False}
    assert json.loads(full["anonymous_ids"]) == ["anon-a", "anon-b"]
    bare = next(row for row in rows if row["id"] == str(customers[1].pk))
    assert (bare["email"], bare["last_seen"], bare["attributes"]) == ("", "", "{}")


def test_parquet_export_reads_back_with_pyarrow(exporter_client, customers):
    # given three customers, when exported as Parquet
    response = exporter_client.get(URL, {"format": "parquet"})

    # then pyarrow reads a table with each of them and typed columns
    assert response["Content-Type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(_body(response)))
    assert table.column_names == list(COLUMNS)
    rows = table.to_pylist()
    assert [row["id"] for row in rows] == sorted(c.pk for c in customers)
    full = rows[0]
    assert full["total_spend"] == Decimal("512.50")
    assert full["last_seen"] == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert json.loads(full["attributes"])["city"] == "Zürich"
    assert dict(full["consents"]) == {"analytics": True, "sms": False}
    assert full["anonymous_ids"] == ["anon-a", "anon-b"]
    assert rows[1]["email"] == "" and rows[1]["last_seen"] is None


def test_parquet_export_writes_one_row_group_per_batch(exporter_client, customers, monkeypatch):
    monkeypatch.setattr(export, "PARQUET_ROW_GROUP_SIZE", 2)

    response = exporter_client.get(URL, {"format": "parquet"})

    parquet = pq.ParquetFile(io.BytesIO(_body(response)))
    assert (parquet.num_row_groups, parquet.metadata.num_rows) == (2, 3)


@pytest.mark.parametrize("export_format", ["json", "csv", "parquet"])
def test_export_of_no_customers_still_opens_in_its_reader(exporter_client, export_format):
    body = _body(exporter_client.get(URL, {"format": export_format}))

    if export_format == "json":
        assert json.loads(body) == []
    elif export_format == "csv":
        reader = csv.DictReader(io.StringIO(body.decode()))
        assert (list(reader), reader.fieldnames) == ([], list(COLUMNS))
    else:
        assert pq.read_table(io.BytesIO(body)).num_rows == 0


def test_erased_customers_are_not_exported(exporter_client, customers):
    erased = Customer.objects.get(erased_at__isnull=False)

    rows = json.loads(_body(exporter_client.get(URL)))

    assert erased.pk not in {row["id"] for row in rows}


# --- Streaming ------------------------------------------------------------------------------------
def test_export_is_a_streamed_attachment_named_by_date(exporter_client, customers):
    response = exporter_client.get(URL, {"format": "csv"})

    assert isinstance(response, StreamingHttpResponse)
    today = timezone.now().date().isoformat()
    assert response["Content-Disposition"] == f"attachment; filename=customers-{today}.csv"
    assert response["Cache-Control"] == "private, no-store"


def test_export_reads_customers_one_batch_at_a_time(exporter_client, monkeypatch):
    # given 3,000 customers and batches of 100
    Customer.objects.bulk_create(
        [Customer(external_id=f"bulk-{n}", email=f"c{n}@example.com") for n in range(3000)],
        batch_size=500,
    )
    monkeypatch.setattr(export, "BATCH_SIZE", 100)
    response = exporter_client.get(URL, {"format": "csv"})
    chunks = iter(response.streaming_content)

    # when the first chunk is read
    with CaptureQueriesContext(connection) as queries:
        first = next(chunks)

    # then it holds the header and one batch, read with one cursor plus one query per relation,
    # and every customer still arrives by the end
    assert len(list(csv.reader(io.StringIO(first.decode())))) == 1 + 100
    assert len(queries) == 3
    rest = b"".join(chunks)
    assert len(list(csv.DictReader(io.StringIO((first + rest).decode())))) == 3000


@pytest.mark.django_db(transaction=True)
async def test_export_under_asgi_streams_an_async_iterator(asgi_export_setup):
    # given a server running Django under ASGI (where a sync iterator is drained into a list)
    headers = {"Authorization": asgi_export_setup}

    # when the export is requested
    response = await AsyncClient().get(URL, {"format": "csv"}, headers=headers)

    # then the response streams asynchronously and carries every customer
    assert response.status_code == 200
    assert response.is_async
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert len(list(csv.DictReader(io.StringIO(body.decode())))) == 250


@pytest.fixture
def asgi_export_setup(monkeypatch) -> str:
    monkeypatch.setattr(export, "BATCH_SIZE", 100)
    Customer.objects.bulk_create([Customer(external_id=f"asgi-{n}") for n in range(250)])
    _, raw = api_key_create(name="asgi", scopes=["customers:read"], created_by=None)
    return f"Api-Key {raw}"


# --- Permission, validation, audit ----------------------------------------------------------------
@pytest.mark.parametrize("role", ["Marketer", "Analyst"])
def test_roles_with_the_export_permission_may_export(role, customers):
    roles_sync()
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = APIClient()
    client.force_authenticate(user)

    assert client.get(URL).status_code == 200


def test_staff_without_the_export_permission_gets_403(staff_user, customers):
    client = APIClient()
    client.force_authenticate(staff_user)

    response = client.get(URL)

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"


def test_developer_role_cannot_export(customers):
    roles_sync()
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name="Developer"))
    client = APIClient()
    client.force_authenticate(user)

    assert client.get(URL).status_code == 403


def test_api_key_with_customers_read_may_export(customers):
    response = APIClient().get(URL, {"format": "csv"}, **_api_key_header("customers:read"))

    assert response.status_code == 200
    assert len(list(csv.DictReader(io.StringIO(_body(response).decode())))) == 3


def test_api_key_without_customers_read_gets_403(customers):
    response = APIClient().get(URL, **_api_key_header("events:write", "customers:write"))

    assert response.status_code == 403


def test_anonymous_caller_gets_401(customers):
    assert APIClient().get(URL).status_code == 401


def test_unknown_format_is_a_400_problem_naming_format(exporter_client, customers):
    response = exporter_client.get(URL, {"format": "xlsx"})

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert [error["attr"] for error in response.json()["errors"]] == ["format"]
    assert not AuditEntry.objects.filter(action="customers.export").exists()


def test_export_writes_an_audit_entry(exporter_client, exporter, customers):
    exporter_client.get(URL, {"format": "parquet"}, REMOTE_ADDR="203.0.113.9")

    entry = AuditEntry.objects.get(action="customers.export")
    assert (entry.actor, entry.details["format"], entry.ip) == (exporter, "parquet", "203.0.113.9")


def test_api_key_export_is_audited_under_the_key(customers):
    APIClient().get(URL, **_api_key_header("customers:read"))

    entry = AuditEntry.objects.get(action="customers.export")
    assert entry.actor is None and entry.actor_label.startswith("api-key:")


# --- Daily snapshot -------------------------------------------------------------------------------
@pytest.fixture
def export_dir(tmp_path, monkeypatch):
    directory = tmp_path / "exports"
    monkeypatch.setenv("CMS_EXPORT_DIR", str(directory))
    monkeypatch.delenv("CMS_EXPORT_FORMAT", raising=False)
    return directory


def test_snapshot_task_writes_todays_parquet_file(export_dir, customers):
    # when the daily task runs
    written = customers_export_snapshot_task.apply().get()

    # then today's file holds every customer and nothing else is left in the directory
    today = timezone.now().date().isoformat()
    assert written == str(export_dir / f"customers-{today}.parquet")
    assert [p.name for p in export_dir.iterdir()] == [f"customers-{today}.parquet"]
    assert pq.read_table(written).num_rows == 3
    assert (export_dir / f"customers-{today}.parquet").stat().st_mode & 0o077 == 0


def test_snapshot_task_twice_the_same_day_leaves_one_current_file(export_dir, customers):
    customers_export_snapshot_task.apply().get()
    Customer.objects.create(email="late@example.com")

    written = customers_export_snapshot_task.apply().get()

    assert len(list(export_dir.iterdir())) == 1
    assert pq.read_table(written).num_rows == 4


def test_snapshot_that_fails_midway_keeps_the_previous_file(export_dir, customers, monkeypatch):
    # given a snapshot already written today
    first = customers_export_snapshot_task.apply().get()
    before = (export_dir / first).read_bytes()

    # when the next run fails after its first batch (a full disk, a lost connection)
    real_batches = export.customers_export_batches

    def failing_batches(*, batch_size):
        yield from real_batches(batch_size=batch_size)
        raise OSError("disk full")

    monkeypatch.setattr(export, "customers_export_batches", failing_batches)
    with pytest.raises(OSError, match="disk full"):
        customers_export_snapshot_task.apply().get()

    # then the earlier file is untouched and no temporary file is left behind
    assert [p.name for p in export_dir.iterdir()] == [first.rsplit("/", 1)[-1]]
    assert (export_dir / first).read_bytes() == before


def test_snapshot_format_comes_from_the_environment(export_dir, customers, monkeypatch):
    monkeypatch.setenv("CMS_EXPORT_FORMAT", "csv")

    written = customers_export_snapshot_task.apply().get()

    assert written.endswith(".csv")
    with open(written, newline="", encoding="utf-8") as snapshot:
        assert len(list(csv.DictReader(snapshot))) == 3


def test_snapshot_is_audited(export_dir, customers):
    customers_export_snapshot_task.apply().get()

    entry = AuditEntry.objects.get(action="customers.export")
    assert entry.details["format"] == "parquet"
    assert entry.details["snapshot"].startswith("customers-")


def test_snapshot_runs_daily_at_0230_and_expires():
    entry = celery_app.conf.beat_schedule["customers-export-snapshot"]

    assert entry["task"] == "customers.tasks.customers_export_snapshot_task"
    assert (entry["schedule"].hour, entry["schedule"].minute) == ({2}, {30})
    assert entry["options"]["expires"] == 3600


def test_snapshots_older_than_the_retention_are_pruned(export_dir, customers, monkeypatch):
    # given snapshots from 40 and 10 days ago and an unrelated file
    monkeypatch.setenv("CMS_EXPORT_KEEP_DAYS", "30")
    export_dir.mkdir(parents=True)
    today = timezone.now().date()
    old = export_dir / f"customers-{(today - timedelta(days=40)).isoformat()}.parquet"
    recent = export_dir / f"customers-{(today - timedelta(days=10)).isoformat()}.csv"
    unrelated = export_dir / "notes.txt"
    for path in (old, recent, unrelated):
        path.write_text("x")

    # when the daily task runs
    customers_export_snapshot_task.apply().get()

    # then the old one is gone, the recent one and today's stay, the unrelated file is untouched
    names = sorted(p.name for p in export_dir.iterdir())
    assert names == sorted([recent.name, f"customers-{today.isoformat()}.parquet", "notes.txt"])


def test_csv_cells_that_a_spreadsheet_would_run_are_made_text(exporter_client):
    # given customers whose names a spreadsheet would read as formulas
    Customer.objects.create(email="a@example.com", name='=HYPERLINK("http://evil","x")')
    Customer.objects.create(email="b@example.com", name="@SUM(1+1)")
    Customer.objects.create(email="c@example.com", name="Plain - name")

    # when exported as CSV
    response = exporter_client.get(URL, {"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(_body(response).decode())))

    # then those cells start with an apostrophe and the others are as they were
    names = {row["email"]: row["name"] for row in rows}
    assert names["a@example.com"] == '\'=HYPERLINK("http://evil","x")'
    assert names["b@example.com"] == "'@SUM(1+1)"
    assert names["c@example.com"] == "Plain - name"
