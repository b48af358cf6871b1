"""Export of every customer as JSON, CSV or Parquet: streamed over REST, and a daily snapshot file.

Memory stays flat however many customers there are: customers are read with a database iterator
(`values().iterator(chunk_size=...)`, a server-side cursor on PostgreSQL), in batches; each batch
fetches its consents and anonymous ids with one range query each, is encoded, handed on and
forgotten. A Parquet row group is one batch. Nothing ever holds the whole export.

Erased customers are skipped. An erased row has no personal data left to export, and a daily
snapshot without it is how copies downstream (which replace their data from the latest snapshot)
lose that person too; exporting the bare id would only keep a pseudonym alive outside our reach.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import date
from itertools import islice
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from cmsproject.audit import audit_record
from cmsproject.auth import HasApiKeyScope
from cmsproject.errors import FieldError, ValidationError
from cmsproject.models import ApiKey
from customers.models import AnonymousId, Consent, Customer

# Rows read and encoded at a time (one chunk of the response). Tests lower it to prove streaming.
BATCH_SIZE = 1000
# Parquet readers work per row group; 5,000 rows keeps groups useful yet small in memory.
PARQUET_ROW_GROUP_SIZE = 5000

CORE_COLUMNS = (
    "id",
    "external_id",
    "email",
    "name",
    "loyalty_tier",
    "lifecycle_stage",
    "last_seen",
    "total_spend",
    "attributes",
    "preferences",
)
COLUMNS = (*CORE_COLUMNS, "consents", "anonymous_ids", "created_at")

Row = dict[str, Any]


# --- Reading --------------------------------------------------------------------------------------
def customers_export_batches(*, batch_size: int) -> Iterator[list[Row]]:
    """Every customer not erased, in id order, as lists of at most `batch_size` rows."""
    rows = (
        Customer.objects.filter(erased_at__isnull=True)
        .order_by("id")
        .values(*CORE_COLUMNS, "created_at")
        .iterator(chunk_size=batch_size)
    )
    while batch := list(islice(rows, batch_size)):
        # A batch is ordered by id, so an id range (two parameters, the foreign key's index)
        # finds its consents and anonymous ids; `id IN (...)` would hit parameter limits.
        first, last = batch[0]["id"], batch[-1]["id"]
        consents: dict[int, dict[str, bool]] = defaultdict(dict)
        for customer_id, purpose, granted in Consent.objects.filter(
            customer_id__gte=first, customer_id__lte=last
        ).values_list("customer_id", "purpose", "granted"):
            consents[customer_id][purpose] = granted
        anonymous_ids: dict[int, list[str]] = defaultdict(list)
        for customer_id, value in (
            AnonymousId.objects.filter(customer_id__gte=first, customer_id__lte=last)
            .order_by("customer_id", "linked_at", "id")
            .values_list("customer_id", "value")
        ):
            anonymous_ids[customer_id].append(value)
        for row in batch:
            row["consents"] = consents.get(row["id"], {})
            row["anonymous_ids"] = anonymous_ids.get(row["id"], [])
        yield batch


# --- Encoding -------------------------------------------------------------------------------------
def _json_chunks(batches: Iterator[list[Row]]) -> Iterator[bytes]:
    # A JSON array written element by element: "[", rows joined by ",", "]".
    encoder = DjangoJSONEncoder(ensure_ascii=False, separators=(",", ":"))
    opened = False
    for batch in batches:
        lead = "," if opened else "["
        opened = True
        yield (lead + ",".join(encoder.encode(_ordered(row)) for row in batch)).encode()
    yield b"]" if opened else b"[]"


def _ordered(row: Row) -> Row:
    return {column: row[column] for column in COLUMNS}


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): a name
# like `=HYPERLINK(...)` typed by a customer must reach the marketer's Excel as text.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    elif value is None:
        return ""
    elif hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value  # OWASP's advice: the apostrophe makes the cell text in every sheet
    return value


def _csv_chunks(batches: Iterator[list[Row]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for batch in batches:
        writer.writerows([_csv_cell(row[column]) for column in COLUMNS] for row in batch)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():  # no customers: the header alone
        yield buffer.getvalue().encode()


class _DrainableSink(io.RawIOBase):
    """A write-only file for pyarrow that hands out what was written since the last drain.

    `tell()` must keep counting from the start of the file: the Parquet footer records each row
    group's offset from it. A BytesIO emptied between row groups would report wrong offsets.
    """

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        chunk = b"".join(self._parts)
        self._parts.clear()
        return chunk


def _parquet_chunks(batches: Iterator[list[Row]]) -> Iterator[bytes]:
    # Imported here: pyarrow is large, and only a Parquet export needs it (not every web process).
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("external_id", pa.string()),
            ("email", pa.string()),
            ("name", pa.string()),
            ("loyalty_tier", pa.string()),
            ("lifecycle_stage", pa.string()),
            ("last_seen", pa.timestamp("us", tz="UTC")),
            ("total_spend", pa.decimal128(14, 2)),
            # Free-form JSON has no fixed schema across customers: JSON text, as in the CSV.
            ("attributes", pa.string()),
            ("preferences", pa.string()),
            ("consents", pa.map_(pa.string(), pa.bool_())),
            ("anonymous_ids", pa.list_(pa.string())),
            ("created_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    sink = _DrainableSink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    try:
        for batch in batches:
            for row in batch:
                row["attributes"] = json.dumps(row["attributes"], ensure_ascii=False)
                row["preferences"] = json.dumps(row["preferences"], ensure_ascii=False)
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            yield sink.drain()
    finally:
        writer.close()
    yield sink.drain()  # the footer


@dataclass(frozen=True)
class ExportFormat:
    name: str
    content_type: str
    extension: str
    batch_size: Callable[[], int]
    encode: Callable[[Iterator[list[Row]]], Iterator[bytes]]


EXPORT_FORMATS: dict[str, ExportFormat] = {
    "json": ExportFormat("json", "application/json", "json", lambda: BATCH_SIZE, _json_chunks),
    "csv": ExportFormat("csv", "text/csv; charset=utf-8", "csv", lambda: BATCH_SIZE, _csv_chunks),
    "parquet": ExportFormat(
        "parquet",
        "application/vnd.apache.parquet",
        "parquet",
        lambda: PARQUET_ROW_GROUP_SIZE,
        _parquet_chunks,
    ),
}


def export_format_get(*, name: str) -> ExportFormat:
    try:
        return EXPORT_FORMATS[name]
    except KeyError:
        choices = ", ".join(EXPORT_FORMATS)
        raise ValidationError(
            f"Unknown export format {name!r}.",
            errors=[FieldError("format", "invalid-choice", f"Choose one of: {choices}.")],
        ) from None


def export_filename(*, export_format: ExportFormat, day: date) -> str:
    return f"customers-{day.isoformat()}.{export_format.extension}"


def export_keep_days() -> int:
    """How many daily snapshots to keep (`CMS_EXPORT_KEEP_DAYS`, 30): they hold personal data,
    so they must not pile up forever (and an erased customer leaves them within this window)."""
    return int(os.environ.get("CMS_EXPORT_KEEP_DAYS", 30))


def export_snapshots_prune(*, directory: Path, today: date, keep_days: int) -> list[Path]:
    """Delete snapshots dated `keep_days` or more before `today`; returns what was deleted.
    Only files named like our snapshots are touched."""
    removed = []
    for path in directory.glob("customers-*.*"):
        stem = path.name.removeprefix("customers-").split(".", 1)[0]
        try:
            day = date.fromisoformat(stem)
        except ValueError:
            continue
        if (today - day).days >= keep_days:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# --- Services -------------------------------------------------------------------------------------
def customers_export_stream(
    *,
    export_format: ExportFormat,
    actor: Any,
    request: HttpRequest | None = None,
    details: dict[str, Any] | None = None,
) -> Generator[bytes, None, None]:
    """Audit the export now, then return its bytes as a lazy generator: nothing is read until
    the first chunk is asked for. Not a generator itself, so the audit entry is written at once,
    before any personal data leaves, not whenever (or if ever) the caller starts reading."""
    audit_record(
        actor=actor,
        action="customers.export",
        object_type="customers.customer",
        details={"format": export_format.name, **(details or {})},
        request=request,
    )
    return _export_chunks(export_format=export_format)


def _export_chunks(*, export_format: ExportFormat) -> Generator[bytes, None, None]:
    batches = customers_export_batches(batch_size=export_format.batch_size())
    yield from export_format.encode(batches)


def export_directory() -> Path:
    """Where daily snapshots go: `CMS_EXPORT_DIR`, else `<VAR_DIR>/exports`."""
    configured = os.environ.get("CMS_EXPORT_DIR")
    return Path(configured) if configured else Path(settings.VAR_DIR) / "exports"


def export_snapshot_format() -> ExportFormat:
    """The daily snapshot's format: `CMS_EXPORT_FORMAT`, else Parquet. A typo fails the task
    loudly rather than silently writing some other format."""
    name = os.environ.get("CMS_EXPORT_FORMAT", "parquet").strip().lower()
    return export_format_get(name=name)


def customers_export_snapshot(*, directory: Path, export_format: ExportFormat, day: date) -> Path:
    """Write today's export to `<directory>/customers-<day>.<ext>`, replacing one written earlier
    the same day. Written to a temporary file in the same directory, then renamed: readers never
    see a half-written file, and a crash leaves yesterday's snapshot intact."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / export_filename(export_format=export_format, day=day)
    # mkstemp creates the file readable by its owner only: the snapshot holds personal data.
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in customers_export_stream(
                export_format=export_format,
                actor=None,
                details={"snapshot": target.name},
            ):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)  # make the rename itself survive a power cut
    return target


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --- REST -----------------------------------------------------------------------------------------
class CanExportCustomers(BasePermission):
    """Staff holding `customers.export_customer` (the Marketer and Analyst roles)."""

    message = "Exporting customers needs the `customers.export_customer` permission."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and user.is_staff
            and user.has_perm("customers.export_customer")
        )


class _IgnoreFormatQueryNegotiation(DefaultContentNegotiation):
    """DRF reads `?format=` as the response renderer and answers 404 for `csv`. Here it names
    the file format; responses that go through a renderer (errors) are always JSON."""

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        renderer = renderers[0]
        return renderer, renderer.media_type


async def _async_chunks(chunks: Generator[bytes, None, None]) -> AsyncIterator[bytes]:
    """Under ASGI Django drains a sync iterator into a list before sending (the whole export in
    memory). Stepping it here keeps the stream; `thread_sensitive` keeps every step on the
    request's thread, hence on the same database connection and cursor."""
    step = sync_to_async(next, thread_sensitive=True)
    done = object()
    try:
        while (chunk := await step(chunks, done)) is not done:
            yield chunk
    finally:
        # A client that disconnects mid-download must not leave the cursor open.
        await sync_to_async(chunks.close, thread_sensitive=True)()


class CustomerExportApi(APIView):
    """`GET /api/v1/customers/export/?format=json|csv|parquet`: every customer, streamed."""

    permission_classes = (CanExportCustomers | HasApiKeyScope,)
    required_scope = ApiKey.Scope.CUSTOMERS_READ
    content_negotiation_class = _IgnoreFormatQueryNegotiation

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format", str, enum=list(EXPORT_FORMATS), default="json", required=False
            )
        ],
        responses={
            (200, "application/json"): {"type": "array", "items": {"type": "object"}},
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY,
            400: OpenApiResponse(description="application/problem+json"),
            401: OpenApiResponse(description="application/problem+json"),
            403: OpenApiResponse(description="application/problem+json"),
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        export_format = export_format_get(name=request.query_params.get("format", "json"))
        chunks = customers_export_stream(
            export_format=export_format, actor=request.user, request=request._request
        )
        is_asgi = isinstance(request._request, ASGIRequest)
        response = StreamingHttpResponse(
            _async_chunks(chunks) if is_asgi else chunks,
            content_type=export_format.content_type,
        )
        filename = export_filename(export_format=export_format, day=timezone.now().date())
        response["Content-Disposition"] = f"attachment; filename={filename}"
        # Personal data: no shared cache may keep a copy.
        response["Cache-Control"] = "private, no-store"
        return response
