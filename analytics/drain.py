"""The drain: buffer entries → event rows → roll-ups → customer activity → the ingest hook.

One batch is one transaction. The buffer entries are acknowledged only after it commits, so a
worker killed mid-batch loses nothing (the entries are read again, by it or another consumer),
and rows are inserted by event id with conflicts ignored, so nothing is counted twice: roll-ups
are updated from exactly the rows this batch inserted. The statements themselves are set-based,
one per table per batch (`analytics.rollups`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from analytics.buffer import Entry, EventBuffer, event_buffer
from analytics.models import DroppedEvents, Event
from analytics.rollups import (
    Row,
    daily_rollup_add,
    event_rollups_recount,
    events_store,
    is_number,
)
from analytics.selectors import subject_event_counts
from analytics.signals import events_ingested
from cmsproject.realtime import publish
from customers.models import Customer
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

# The drain, and what identify (`analytics.services.events_link_anonymous`) merges and recounts
# with.
__all__ = [
    "DrainReport",
    "Row",
    "daily_rollup_add",
    "drain_batch",
    "drain_until_empty",
    "event_rollups_recount",
    "record_customer_activity",
]

logger = logging.getLogger(__name__)

# One transaction per batch: 5,000 events take about half a second in services mode, well inside
# the 2 s between drain runs and the 30 s after which another consumer claims pending entries.
BATCH_SIZE = 5000
PURCHASE = "purchase"
SPEND_PROPERTIES = ("amount", "revenue", "total")


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
        return _store_isolating(entries, buffer)
    except IntegrityError:
        # E.g. a profile deleted while its events were stored. Nothing was acknowledged: the
        # entries are read again on the next pass.
        logger.warning("Drain batch conflicted with another writer; it will be retried")
        return DrainReport(read=len(entries))


def _store_isolating(entries: list[Entry], buffer: EventBuffer) -> DrainReport:
    """Store the entries; if the database refuses one (a DataError), store each half apart, down
    to the one entry it refuses, which is dropped and counted: one bad event must not hold the
    others back forever (the batch would be read and refused again on every pass), and halving
    finds it in a few attempts where one transaction per entry would take minutes."""
    try:
        return _store(entries, buffer)
    except DataError:
        if len(entries) > 1:
            logger.warning("The database refused one of %s events; isolating it", len(entries))
            middle = len(entries) // 2
            report = _store_isolating(entries[:middle], buffer)
            report.add(_store_isolating(entries[middle:], buffer))
            return report
        logger.exception("Dropping event entry %s: the database refuses it", entries[0].entry_id)
        with transaction.atomic():
            _count_dropped(Counter({"unstorable": 1}))
            transaction.on_commit(lambda entry_id=entries[0].entry_id: buffer.ack([entry_id]))
        return DrainReport(read=1, dropped=Counter({"unstorable": 1}))


def _store(entries: list[Entry], buffer: EventBuffer) -> DrainReport:
    """One transaction: rows, roll-ups, customers; acknowledge and announce after commit."""
    report = DrainReport(read=len(entries))
    with transaction.atomic():
        rows, dropped = _rows_from(entries)
        inserted = events_store(rows)
        new_rows = [row for row in rows if row.id in inserted]
        report.inserted, report.dropped = len(new_rows), dropped
        report.duplicates = len(rows) - len(new_rows)
        record_customer_activity(new_rows)
        _count_dropped(dropped)
        entry_ids = [entry.entry_id for entry in entries]
        # Robust: if Redis fails between the commit and the acknowledgement, the rows are stored
        # and must still be announced (the ingest hook runs only for newly inserted rows); the
        # entries stay pending and their next read inserts nothing.
        transaction.on_commit(lambda: buffer.ack(entry_ids), robust=True)
        transaction.on_commit(lambda: _announce(new_rows))
    return report


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
        properties = event.get("properties") or {}
        try:
            if not isinstance(properties, dict):
                raise TypeError("properties must be an object")
            rows.append(
                Row(
                    event["id"],
                    event["type"],
                    customer_id,
                    event.get("anonymousId") or "",
                    properties,
                    _parse_time(event["timestamp"]),
                    _parse_time(event["receivedAt"]),
                )
            )
        except (KeyError, ValueError, TypeError):
            dropped["malformed"] += 1
    return rows, dropped


def _spend_of(row: Row) -> Decimal:
    for name in SPEND_PROPERTIES:
        value = row.properties.get(name)
        if is_number(value):
            try:
                return Decimal(str(value))
            except InvalidOperation:
                return Decimal(0)
    return Decimal(0)


def record_customer_activity(rows: list[Row]) -> None:
    """Customers' last seen, spend and lifecycle stage after these events.

    Only purchases change spend and stage: their buyers (a few per batch) go through
    `customers_record_activity`, the one rule for all three. Everyone else's last seen only moves
    forward, which one UPDATE does for the whole batch (the same rule, set-based: a service that
    loads and saves a thousand profiles was a fifth of the drain)."""
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
    if not last_seen:
        return
    _customers_lock(sorted(last_seen))
    purchases = subject_event_counts(customer_ids=sorted(buyers), event_type=PURCHASE)
    customers_record_activity(
        activity={
            customer_id: CustomerActivity(
                last_seen[customer_id], spend[customer_id], purchases.get(customer_id, 0)
            )
            for customer_id in sorted(buyers)
        }
    )
    _customers_seen({c: at for c, at in last_seen.items() if c not in buyers})


def _customers_lock(customer_ids: list[int]) -> None:
    """Lock the batch's customers at once, in id order: two drains that share customers then
    wait for each other instead of deadlocking over the two writes that follow."""
    if not connection.features.has_select_for_update:
        return  # SQLite: one writer at a time anyway
    table, key = connection.ops.quote_name(Customer._meta.db_table), connection.ops.quote_name("id")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {key} FROM {table} WHERE {key} = ANY(%s) ORDER BY {key} FOR UPDATE",  # noqa: S608
            [customer_ids],
        )


def _customers_seen(last_seen: dict[int, datetime]) -> None:
    """`last_seen` moves forward to these times, never back."""
    if not last_seen:
        return
    quote = connection.ops.quote_name
    table, key, column = quote(Customer._meta.db_table), quote("id"), quote("last_seen")
    at = connection.ops.adapt_datetimefield_value
    params: list[Any] = []
    for customer_id, moment in sorted(last_seen.items()):
        params += [customer_id, at(moment)]
    values = ", ".join(["(%s, %s)"] * len(last_seen))
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH seen (id, at) AS (VALUES {values}) "  # noqa: S608 - placeholders only
            f"UPDATE {table} AS c SET {column} = seen.at FROM seen "
            f"WHERE c.{key} = seen.id AND (c.{column} IS NULL OR c.{column} < seen.at)",
            params,
        )


def _count_dropped(dropped: Counter) -> None:
    """Add to today's count per reason, in one upsert (two workers may count at once)."""
    if not dropped:
        return
    quote = connection.ops.quote_name
    table, count = quote(DroppedEvents._meta.db_table), quote("count")
    key = f"{quote('day')}, {quote('reason')}"
    today = connection.ops.adapt_datefield_value(timezone.now().date())
    params: list[Any] = []
    for reason, n in sorted(dropped.items()):
        params += [today, reason, n]
    values = ", ".join(["(%s, %s, %s)"] * len(dropped))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} AS t ({key}, {count}) VALUES {values} "  # noqa: S608
            f"ON CONFLICT ({key}) DO UPDATE SET {count} = t.{count} + excluded.{count}",
            params,
        )


def _announce(rows: list[Row]) -> None:
    if not rows:
        return
    customer_ids = {row.customer_id for row in rows if row.customer_id}
    anonymous_ids = {row.anonymous_id for row in rows if not row.customer_id and row.anonymous_id}
    events_ingested.send(sender=Event, customer_ids=customer_ids, anonymous_ids=anonymous_ids)
    publish("analytics:live", "events.ingested", {"counts": dict(Counter(r.type for r in rows))})
