"""The drain: buffer entries → event rows → roll-ups → customer activity → the ingest hook.

One batch is one transaction. The buffer entries are acknowledged only after it commits, so a
worker killed mid-batch loses nothing (the entries are read again, by it or another consumer),
and rows are inserted by event id with conflicts ignored, so nothing is counted twice: roll-ups
are updated from exactly the rows this batch inserted.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncHour, TruncMinute
from django.utils import timezone

from analytics.buffer import Entry, EventBuffer, event_buffer
from analytics.models import DroppedEvents, Event, EventRollup, Interval, SubjectDailyRollup
from analytics.selectors import event_type_catalog, subject_event_counts
from analytics.signals import events_ingested
from cmsproject.realtime import publish
from customers.selectors import (
    customer_ids_erased,
    customer_ids_refusing,
    customers_by_anonymous_id,
)
from customers.services import (
    CustomerActivity,
    customers_ensure_external_ids,
    customers_record_activity,
)

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
INSERT_CHUNK = 500
PURCHASE = "purchase"
SPEND_PROPERTIES = ("amount", "revenue", "total")
MAX_DISTINCT_VALUES = 100  # per subject, day, type and property: enough for "≥ N distinct"


@dataclass(frozen=True)
class Row:
    id: str
    type: str
    customer_id: int | None
    anonymous_id: str
    properties: dict[str, Any]
    timestamp: datetime
    received_at: datetime

    @property
    def subject(self) -> str:
        return f"c:{self.customer_id}" if self.customer_id else f"a:{self.anonymous_id}"


@dataclass
class DrainReport:
    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    dropped: Counter = field(default_factory=Counter)

    def add(self, other: DrainReport) -> None:
        self.read += other.read
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.dropped.update(other.dropped)


def drain_until_empty(
    *, buffer: EventBuffer | None = None, max_seconds: float = 1.8, batch_size: int = BATCH_SIZE
) -> DrainReport:
    """Drain batches until the buffer is empty or the time is up (the next run continues)."""
    buffer = buffer or event_buffer()
    total = DrainReport()
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        report = drain_batch(buffer=buffer, batch_size=batch_size)
        total.add(report)
        if report.read < batch_size:
            break
    return total


def drain_batch(*, buffer: EventBuffer, batch_size: int = BATCH_SIZE) -> DrainReport:
    entries = buffer.read(count=batch_size)
    if not entries:
        return DrainReport()
    try:
        return _store(entries, buffer)
    except IntegrityError:
        # Another worker created the same roll-up row at the same moment. Nothing was
        # acknowledged: the entries are read again on the next pass.
        logger.warning("Drain batch conflicted with another worker; it will be retried")
        return DrainReport(read=len(entries))
    except DataError:
        # One event the database refuses must not hold the others back forever (the batch would
        # be read and refused again on every pass): store them one by one, drop what fails.
        logger.exception("Drain batch refused by the database; isolating the bad events")
        return _store_one_by_one(entries, buffer)


def _store(entries: list[Entry], buffer: EventBuffer) -> DrainReport:
    """One transaction: rows, roll-ups, customers; acknowledge and announce after commit."""
    report = DrainReport(read=len(entries))
    with transaction.atomic():
        rows, dropped = _rows_from(entries)
        inserted = _insert_new(rows)
        new_rows = [row for row in rows if row.id in inserted]
        report.inserted, report.dropped = len(new_rows), dropped
        report.duplicates = len(rows) - len(new_rows)
        if new_rows:
            new_subject_days = _update_subject_daily(new_rows)
            _update_event_rollups(new_rows, new_subject_days)
            record_customer_activity(new_rows)
        _count_dropped(dropped)
        entry_ids = [entry.entry_id for entry in entries]
        transaction.on_commit(lambda: buffer.ack(entry_ids))
        transaction.on_commit(lambda: _announce(new_rows))
    return report


def _store_one_by_one(entries: list[Entry], buffer: EventBuffer) -> DrainReport:
    total = DrainReport()
    for entry in entries:
        try:
            total.add(_store([entry], buffer))
        except DataError:
            logger.error("Dropping event entry %s: the database refuses it", entry.entry_id)
            with transaction.atomic():
                _count_dropped(Counter({"unstorable": 1}))
                transaction.on_commit(lambda entry_id=entry.entry_id: buffer.ack([entry_id]))
            total.read += 1
            total.dropped["unstorable"] += 1
    return total


def _parse_time(value: str) -> datetime:
    # Buckets and days are UTC: a client's +05:30 must land in the same hour as everyone's.
    return datetime.fromisoformat(value).astimezone(UTC)


def _rows_from(entries: list[Entry]) -> tuple[list[Row], Counter]:
    dropped: Counter = Counter()
    events = []
    for entry in entries:
        if entry.event is None:
            dropped["malformed"] += 1
        else:
            events.append(entry.event)
    user_ids = {event["userId"] for event in events if event.get("userId")}
    anonymous = {e["anonymousId"] for e in events if e.get("anonymousId") and not e.get("userId")}
    by_external = customers_ensure_external_ids(external_ids=user_ids)
    by_anonymous = customers_by_anonymous_id(values=anonymous)
    customer_of = {
        id(event): by_external[event["userId"]]
        if event.get("userId")
        else by_anonymous.get(event.get("anonymousId", ""))
        for event in events
    }
    known = {c for c in customer_of.values() if c}
    refusing = customer_ids_refusing(customer_ids=known, purpose="analytics")
    # Events still in the buffer when a customer was erased must not bring their history back.
    erased = customer_ids_erased(customer_ids=known)
    rows, seen = [], set()
    for event in events:
        customer_id = customer_of[id(event)]
        if customer_id in refusing:
            dropped["consent"] += 1
            continue
        if customer_id in erased:
            dropped["erased"] += 1
            continue
        if event["id"] in seen:
            continue
        seen.add(event["id"])
        try:
            rows.append(
                Row(
                    event["id"],
                    event["type"],
                    customer_id,
                    event.get("anonymousId") or "",
                    event.get("properties") or {},
                    _parse_time(event["timestamp"]),
                    _parse_time(event["receivedAt"]),
                )
            )
        except (KeyError, ValueError, TypeError):
            dropped["malformed"] += 1
    return rows, dropped


def _insert_new(rows: list[Row]) -> set[str]:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id: the ids that were not stored before."""
    if not rows:
        return set()
    ops, quote = connection.ops, connection.ops.quote_name
    json_value = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    columns = ", ".join(
        quote(c)
        for c in (
            "id",
            "type",
            "customer_id",
            "anonymous_id",
            "properties",
            "timestamp",
            "received_at",
        )
    )
    inserted: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start : start + INSERT_CHUNK]
            values = ", ".join([f"(%s, %s, %s, %s, {json_value}, %s, %s)"] * len(chunk))
            params: list[Any] = []
            for row in chunk:
                params += [
                    row.id,
                    row.type,
                    row.customer_id,
                    row.anonymous_id,
                    json.dumps(row.properties),
                    ops.adapt_datetimefield_value(row.timestamp),
                    ops.adapt_datetimefield_value(row.received_at),
                ]
            cursor.execute(
                f"INSERT INTO {quote(Event._meta.db_table)} ({columns}) VALUES {values} "  # noqa: S608 - only placeholders are interpolated
                f"ON CONFLICT ({quote('id')}) DO NOTHING RETURNING {quote('id')}",
                params,
            )
            inserted.update(found for (found,) in cursor.fetchall())
    return inserted


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _update_subject_daily(rows: list[Row]) -> Counter:
    """Merge the batch into the per-subject daily roll-ups; returns, per (type, day), how many
    subjects appear for the first time (exactly the day bucket's new unique subjects)."""
    catalog = event_type_catalog()
    delta: dict[tuple[str, date, str], dict[str, Any]] = {}
    for row in rows:
        key = (row.subject, row.timestamp.date(), row.type)
        item = delta.setdefault(
            key, {"customer_id": row.customer_id, "count": 0, "sums": Counter(), "distinct": {}}
        )
        item["count"] += 1
        for name, value in row.properties.items():
            if _numeric(value):
                item["sums"][name] += value
        info = catalog.get(row.type)
        for name in info.distinct_properties if info else ():
            value = row.properties.get(name)
            if isinstance(value, (str, int, float, bool)):
                item["distinct"].setdefault(name, set()).add(value)

    existing = {
        (r.subject, r.day, r.event_type): r
        for r in SubjectDailyRollup.objects.select_for_update().filter(
            subject__in={k[0] for k in delta},
            day__in={k[1] for k in delta},
            event_type__in={k[2] for k in delta},
        )
    }
    merged = []
    for key, item in delta.items():
        rollup = existing.get(key) or SubjectDailyRollup(
            subject=key[0], day=key[1], event_type=key[2], customer_id=item["customer_id"]
        )
        daily_rollup_add(rollup, count=item["count"], sums=item["sums"], distinct=item["distinct"])
        merged.append(rollup)
    # Rows that existed are locked above: one INSERT … ON CONFLICT DO UPDATE writes them all
    # (Django's bulk_update would build a CASE per row and column, the drain's main cost).
    SubjectDailyRollup.objects.bulk_create(
        [rollup for rollup in merged if rollup.pk is not None],
        update_conflicts=True,
        unique_fields=["subject", "day", "event_type"],
        update_fields=["count", "sums", "distinct"],
    )
    # New rows are plain inserts: if another worker created one meanwhile, the IntegrityError
    # retries the whole batch rather than letting one overwrite the other's counts.
    SubjectDailyRollup.objects.bulk_create([rollup for rollup in merged if rollup.pk is None])
    return Counter((key[2], key[1]) for key in delta if key not in existing)


def daily_rollup_add(
    rollup: SubjectDailyRollup,
    *,
    count: int,
    sums: dict[str, float],
    distinct: dict[str, Iterable[Any]],
) -> None:
    """Add counts, sums and distinct values into a daily roll-up (in memory; the caller saves).
    One rule for the drain and for linking an anonymous history to its customer."""
    rollup.count += count
    rollup.sums = {
        name: rollup.sums.get(name, 0) + sums.get(name, 0) for name in rollup.sums.keys() | sums
    }
    rollup.distinct = {
        name: sorted(set(rollup.distinct.get(name, [])) | set(distinct.get(name, ())), key=str)[
            :MAX_DISTINCT_VALUES
        ]
        for name in rollup.distinct.keys() | distinct
    }


BUCKET_WIDTH = {Interval.MINUTE: timedelta(minutes=1), Interval.HOUR: timedelta(hours=1)}
TRUNCATE = {Interval.MINUTE: TruncMinute, Interval.HOUR: TruncHour}


def _bucket_start(moment: datetime, interval: str) -> datetime:
    if interval == Interval.MINUTE:
        return moment.replace(second=0, microsecond=0)
    if interval == Interval.HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _update_event_rollups(rows: list[Row], new_subject_days: Counter) -> None:
    """Day buckets by increment: the batch's new rows are known exactly, and so are the subjects
    new to each day (their daily roll-up row did not exist). Minute and hour buckets are
    recounted from their events, which is exact for unique subjects and cheap for small buckets.
    """
    per_day = Counter((row.type, row.timestamp.date()) for row in rows)
    _rollups_add(
        [
            (event_type, Interval.DAY, _midnight(day), count, new_subject_days[(event_type, day)])
            for (event_type, day), count in per_day.items()
        ]
    )
    event_rollups_recount(
        occurrences=((row.type, row.timestamp) for row in rows),
        intervals=(Interval.MINUTE, Interval.HOUR),
    )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, dt_time.min, tzinfo=UTC)


def _rollups_add(increments: list[tuple[str, str, datetime, int, int]]) -> None:
    """INSERT … ON CONFLICT DO UPDATE adding to count and uniques, in one statement."""
    if not increments:
        return
    ops, quote = connection.ops, connection.ops.quote_name
    table = quote(EventRollup._meta.db_table)
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(increments))
    params: list[Any] = []
    for event_type, interval, bucket, count, uniques in increments:
        params += [event_type, interval, ops.adapt_datetimefield_value(bucket), count, uniques]
    count_col, uniques_col = quote("count"), quote("uniques")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({quote('event_type')}, {quote('interval')}, {quote('bucket')}, "  # noqa: S608 - only placeholders are interpolated
            f"{count_col}, {uniques_col}) VALUES {values} "
            f"ON CONFLICT ({quote('event_type')}, {quote('interval')}, {quote('bucket')}) "
            f"DO UPDATE SET {count_col} = {table}.{count_col} + excluded.{count_col}, "
            f"{uniques_col} = {table}.{uniques_col} + excluded.{uniques_col}",
            params,
        )


def event_rollups_recount(
    *, occurrences: Iterable[tuple[str, datetime]], intervals: Iterable[str] = Interval.values
) -> None:
    """Recount the buckets that these (type, time) occurrences fall in, from scratch.

    Minute and hour buckets from the events in them, day buckets from the per-subject daily
    roll-ups (one row per subject). Idempotent: linking an anonymous history to its customer
    (which changes unique counts) recounts rather than adds.
    """
    intervals = tuple(intervals)
    touched: dict[tuple[str, str], set[datetime]] = defaultdict(set)
    for event_type, moment in occurrences:
        for interval in intervals:
            touched[(event_type, interval)].add(_bucket_start(moment, interval))
    upserts = [
        EventRollup(
            event_type=event_type, interval=interval, bucket=bucket, count=count, uniques=uniques
        )
        for (event_type, interval), buckets in touched.items()
        for bucket, count, uniques in _recount(event_type, interval, buckets)
    ]
    EventRollup.objects.bulk_create(
        upserts,
        update_conflicts=True,
        unique_fields=["event_type", "interval", "bucket"],
        update_fields=["count", "uniques"],
    )


def _bucket_ranges(buckets: set[datetime], width: timedelta) -> Q:
    """The touched buckets as few time ranges (adjacent buckets merged): a batch of late events
    spread over a month must not scan the month between them."""
    ranges: list[list[datetime]] = []
    for start in sorted(buckets):
        if ranges and ranges[-1][1] == start:
            ranges[-1][1] = start + width
        else:
            ranges.append([start, start + width])
    condition = Q()
    for start, end in ranges:
        condition |= Q(timestamp__gte=start, timestamp__lt=end)
    return condition


def _recount(event_type: str, interval: str, buckets: set[datetime]) -> list[tuple]:
    if interval == Interval.DAY:
        days = (
            SubjectDailyRollup.objects.filter(
                event_type=event_type, day__in={b.date() for b in buckets}
            )
            .values("day")
            .annotate(total=Sum("count"), subjects=Count("id"))
        )
        return [(_midnight(d["day"]), d["total"], d["subjects"]) for d in days]
    counted = (
        Event.objects.filter(_bucket_ranges(buckets, BUCKET_WIDTH[interval]), type=event_type)
        .annotate(bucket=TRUNCATE[interval]("timestamp"))
        .values("bucket")
        .annotate(
            total=Count("id"),
            customers=Count("customer", distinct=True),
            anonymous=Count("anonymous_id", distinct=True, filter=Q(customer__isnull=True)),
        )
    )
    return [(c["bucket"], c["total"], c["customers"] + c["anonymous"]) for c in counted]


def _spend_of(row: Row) -> Decimal:
    for name in SPEND_PROPERTIES:
        value = row.properties.get(name)
        if _numeric(value):
            try:
                return Decimal(str(value))
            except InvalidOperation:
                return Decimal(0)
    return Decimal(0)


def record_customer_activity(rows: list[Row]) -> None:
    last_seen: dict[int, datetime] = {}
    spend: dict[int, Decimal] = defaultdict(Decimal)
    buyers: set[int] = set()
    for row in rows:
        if not row.customer_id:
            continue
        if row.customer_id not in last_seen or row.timestamp > last_seen[row.customer_id]:
            last_seen[row.customer_id] = row.timestamp
        if row.type == PURCHASE:
            spend[row.customer_id] += _spend_of(row)
            buyers.add(row.customer_id)
    purchases = subject_event_counts(customer_ids=sorted(buyers), event_type=PURCHASE)
    customers_record_activity(
        activity={
            customer_id: CustomerActivity(
                at, spend.get(customer_id, Decimal(0)), purchases.get(customer_id, 0)
            )
            for customer_id, at in last_seen.items()
        }
    )


def _count_dropped(dropped: Counter) -> None:
    today = timezone.now().date()
    for reason, count in dropped.items():
        updated = DroppedEvents.objects.filter(day=today, reason=reason).update(
            count=F("count") + count
        )
        if not updated:
            DroppedEvents.objects.create(day=today, reason=reason, count=count)


def _announce(rows: list[Row]) -> None:
    if not rows:
        return
    customer_ids = {row.customer_id for row in rows if row.customer_id}
    anonymous_ids = {row.anonymous_id for row in rows if not row.customer_id and row.anonymous_id}
    events_ingested.send(sender=Event, customer_ids=customer_ids, anonymous_ids=anonymous_ids)
    publish("analytics:live", "events.ingested", {"counts": dict(Counter(r.type for r in rows))})
