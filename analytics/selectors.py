"""Reads of analytics data, for this app's views and for other apps."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal, localcontext
from functools import lru_cache
from typing import Any

from django.core.cache import cache
from django.db.models import Expression, F, FloatField, IntegerField, Q, Sum
from jsonschema import Draft202012Validator

from analytics.models import Event, EventType, SubjectDailyRollup

CATALOG_CACHE_KEY = "analytics:event-type-catalog"
CATALOG_TTL_SECONDS = 300


@dataclass(frozen=True)
class EventTypeInfo:
    name: str
    schema: dict[str, Any] | None
    journey_stage: str
    distinct_properties: tuple[str, ...]


# Each process also keeps the catalog for a few seconds, sparing ingestion a Redis round trip per
# request; a changed event type reaches every process within that time.
LOCAL_CATALOG_SECONDS = 5.0
_local_catalog: tuple[float, dict[str, EventTypeInfo]] | None = None


def event_type_catalog() -> dict[str, EventTypeInfo]:
    """Every event type, from memory or the cache: ingestion reads it on every request and must
    not touch the database. Saving a type deletes the cached copies
    (`event_type_catalog_forget`)."""
    global _local_catalog
    now = time.monotonic()
    if _local_catalog is not None and now - _local_catalog[0] < LOCAL_CATALOG_SECONDS:
        return _local_catalog[1]
    catalog = _shared_event_type_catalog()
    _local_catalog = (now, catalog)
    return catalog


def _shared_event_type_catalog() -> dict[str, EventTypeInfo]:
    catalog = cache.get(CATALOG_CACHE_KEY)
    if catalog is None:
        catalog = {
            row.name: EventTypeInfo(
                row.name, row.schema, row.journey_stage, tuple(row.distinct_properties)
            )
            for row in EventType.objects.all()
        }
        cache.set(CATALOG_CACHE_KEY, catalog, CATALOG_TTL_SECONDS)
    return catalog


def event_type_catalog_forget() -> None:
    global _local_catalog
    _local_catalog = None
    cache.delete(CATALOG_CACHE_KEY)


@lru_cache(maxsize=512)
def _validator_for(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


def properties_validator(info: EventTypeInfo) -> Draft202012Validator | None:
    """A compiled validator per distinct schema, kept for the life of the process."""
    if not info.schema:
        return None
    return _validator_for(json.dumps(info.schema, sort_keys=True))


def subject_event_counts(*, customer_ids: list[int], event_type: str) -> dict[int, int]:
    """{customer id: events of this type on record}, from the daily roll-ups."""
    rows = (
        SubjectDailyRollup.objects.filter(customer_id__in=customer_ids, event_type=event_type)
        .values("customer_id")
        .annotate(total=Sum("count"))
    )
    return {row["customer_id"]: row["total"] for row in rows}


def customer_events_recent(*, customer_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """A customer's latest interactions, newest first, for their profile page."""
    from analytics.models import Event

    return list(
        Event.objects.filter(customer_id=customer_id)
        .order_by("-timestamp", "-id")
        .values("type", "timestamp", "properties")[:limit]
    )


# === Segment rules: event aggregates per subject (Python) and per customer (SQL) ================
# The segmentation app reads events only through this block (issue 5). Each aggregate of the
# criteria language is defined here twice, side by side, so the two definitions can be read
# against each other: in Python for one subject (the incremental evaluator), in SQL for every
# customer at once (the bulk compiler). A property test holds them to the same answers.
#
# - Window: `within_days` N is the last N calendar days in UTC, today (the day of `now`) included;
#   without it, all days up to today. Days after today never count, so an evaluation "as of now"
#   is reproducible. The daily roll-ups are bucketed by UTC day; raw events are read over the
#   same days: midnight (UTC) of the first day ≤ timestamp < midnight after today.
# - count, sum, distinct and last_seen_days read the per-subject daily roll-ups (small: one row
#   per subject, day and type). count: events; sum: the roll-ups' `sums` (JSON numbers only, as
#   the drain adds them); distinct: distinct values of a property the event type marks, united
#   over the window's days (each day keeps at most `rollups.MAX_DISTINCT_VALUES` per property);
#   last_seen_days: whole days from the latest day with such an event to today.
# - avg, min and max read raw events: the roll-ups keep only sums. Only properties whose value is
#   a JSON number count (not booleans, not numeric strings). Reading events keeps them exact
#   (nothing merged or capped) and needs no roll-up change; the read is bounded by the
#   (customer, timestamp) and (anonymous_id, timestamp) indexes and the window.
# - No events: count, sum and distinct are 0; avg, min, max and last_seen_days have no value
#   (None in Python, NULL in SQL), and a comparison with no value is false.
# - Numbers are exact decimals: Python converts each JSON number through its shortest repr
#   (0.1 stays 0.1), PostgreSQL works in `numeric`. SQLite works in doubles, so there, sums of
#   values that are not exact in binary may differ in the last bit at an exact boundary.
# - An average is compared without dividing (PostgreSQL and Python round a quotient
#   differently): `avg op v` holds iff Σ(x - v) op 0 over at least one value. Python returns
#   `Mean(total, count)`; SQL returns Σ(x - v) for the v it is given (`centered_on`).
# - Subjects: `c:<id>` reads rows and events whose customer is that customer (exactly what the
#   SQL correlates on); `a:<anonymous id>` reads that anonymous id's roll-ups and its events not
#   linked to a customer.
EVENT_AGGREGATES = ("count", "sum", "avg", "min", "max", "distinct", "last_seen_days")
RAW_EVENT_AGGREGATES = frozenset({"avg", "min", "max"})


@dataclass(frozen=True)
class EventAggregate:
    """One aggregate a segment rule reads: e.g. sum of `amount` over `purchase` in 90 days."""

    event_type: str
    aggregate: str
    property: str | None = None
    within_days: int | None = None

    def first_day(self, today: date) -> date | None:
        if self.within_days is None:
            return None
        return today - timedelta(days=self.within_days - 1)


@dataclass(frozen=True)
class Mean:
    """An average as its sum and count (count > 0): compared without a division."""

    total: Decimal
    count: int


def utc_today(now: datetime) -> date:
    if now.tzinfo is None:
        raise ValueError("`now` must be an aware datetime")
    return now.astimezone(UTC).date()


def json_decimal(value: Any) -> Decimal | None:
    """A JSON number as an exact decimal (a float through its shortest repr); None otherwise."""
    if type(value) is int:
        return Decimal(value)
    if type(value) is float:
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return value
    return None


def _distinct_key(value: Any) -> tuple[str, Any] | None:
    """Values as JSON compares them: 1 and 1.0 are one value, true and 1 are two."""
    if type(value) is bool:
        return ("boolean", value)
    if type(value) is str:
        return ("string", value)
    number = json_decimal(value)
    return None if number is None else ("number", number)


def _subject_filter(subject: str, *, events: bool) -> Q:
    kind, _, ident = subject.partition(":")
    if kind == "c" and ident.isdigit():
        return Q(customer_id=int(ident))
    if kind == "a" and ident:
        return Q(customer__isnull=True, anonymous_id=ident) if events else Q(subject=subject)
    raise ValueError(f"Not a subject: {subject!r} (expected c:<customer id> or a:<anonymous id>)")


def subject_event_aggregates(
    *, subject: str, wanted: Iterable[EventAggregate], now: datetime
) -> dict[EventAggregate, Any]:
    """The values of these aggregates for one subject, in at most two queries (its roll-ups, and
    its raw events when avg/min/max are wanted): int for count, distinct and last_seen_days,
    Decimal for sum, min and max, `Mean` for avg; None where there is no value."""
    wanted = set(wanted)
    if not wanted:
        return {}
    with localcontext(prec=200):  # exact, as PostgreSQL's numeric
        return _subject_event_aggregates(subject, wanted, utc_today(now))


def _subject_event_aggregates(
    subject: str, wanted: set[EventAggregate], today: date
) -> dict[EventAggregate, Any]:
    from_rollups = [w for w in wanted if w.aggregate not in RAW_EVENT_AGGREGATES]
    from_events = [w for w in wanted if w.aggregate in RAW_EVENT_AGGREGATES]
    found: dict[EventAggregate, Any] = {}
    if from_rollups:
        rows = SubjectDailyRollup.objects.filter(
            _subject_filter(subject, events=False),
            event_type__in={w.event_type for w in from_rollups},
            day__lte=today,
        )
        first_days = [w.first_day(today) for w in from_rollups]
        if None not in first_days:
            rows = rows.filter(day__gte=min(first_days))
        loaded = list(rows.values_list("event_type", "day", "count", "sums", "distinct"))
        for w in from_rollups:
            first = w.first_day(today)
            found[w] = _rollup_aggregate(
                w, [r for r in loaded if r[0] == w.event_type and (first is None or r[1] >= first)]
            )
            if w.aggregate == "last_seen_days" and found[w] is not None:
                found[w] = (today - found[w]).days
    if from_events:
        end = datetime.combine(today + timedelta(days=1), dt_time.min, tzinfo=UTC)
        starts = [_midnight_or_none(w.first_day(today)) for w in from_events]
        events = Event.objects.filter(
            _subject_filter(subject, events=True),
            type__in={w.event_type for w in from_events},
            timestamp__lt=end,
        )
        if None not in starts:
            events = events.filter(timestamp__gte=min(starts))
        loaded_events = list(events.values_list("type", "timestamp", "properties"))
        for w, start in zip(from_events, starts, strict=True):
            numbers = [
                number
                for kind, moment, properties in loaded_events
                if kind == w.event_type
                and (start is None or moment >= start)
                and isinstance(properties, dict)
                and (number := json_decimal(properties.get(w.property))) is not None
            ]
            found[w] = _event_aggregate(w, numbers)
    return found


def _midnight_or_none(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, dt_time.min, tzinfo=UTC)


def _rollup_aggregate(wanted: EventAggregate, rows: list[tuple]) -> Any:
    """count, sum, distinct, or the latest day (last_seen_days) of these daily roll-up rows."""
    if wanted.aggregate == "count":
        return sum(count for _type, _day, count, _sums, _distinct in rows)
    if wanted.aggregate == "sum":
        numbers = (json_decimal(sums.get(wanted.property)) for *_, sums, _distinct in rows)
        return sum((n for n in numbers if n is not None), Decimal(0))
    if wanted.aggregate == "distinct":
        keys = {
            _distinct_key(value)
            for *_, distinct in rows
            if isinstance(values := distinct.get(wanted.property), list)
            for value in values
        }
        return len(keys - {None})
    if wanted.aggregate == "last_seen_days":
        return max((day for _type, day, *_ in rows), default=None)
    raise ValueError(f"Not a roll-up aggregate: {wanted.aggregate!r}")


def _event_aggregate(wanted: EventAggregate, numbers: list[Decimal]) -> Any:
    if not numbers:
        return None
    if wanted.aggregate == "min":
        return min(numbers)
    if wanted.aggregate == "max":
        return max(numbers)
    if wanted.aggregate == "avg":
        return Mean(sum(numbers, Decimal(0)), len(numbers))
    raise ValueError(f"Not an event aggregate: {wanted.aggregate!r}")


class _CustomerEventsSql(Expression):
    """A scalar subquery over this app's tables for one customer of the outer query, whose id is
    `customer` (an expression of that query: F("pk") of a Customer queryset). Written per
    database in `as_sql`; its own tables' aliases cannot clash with Django's (`seg_` prefix)."""

    def __init__(self, wanted: EventAggregate, now: datetime, customer: Any, centered_on: Any):
        integral = wanted.aggregate in {"count", "distinct", "last_seen_days"}
        super().__init__(output_field=IntegerField() if integral else FloatField())
        self.wanted, self.today, self.centered_on = wanted, utc_today(now), centered_on
        self.customer = customer

    def get_source_expressions(self) -> list[Any]:
        return [self.customer]

    def set_source_expressions(self, exprs: list[Any]) -> None:
        (self.customer,) = exprs

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        customer, customer_params = compiler.compile(self.customer)
        if customer_params:
            raise ValueError("The customer must be a column of the outer query")
        wanted, q = self.wanted, connection.ops.quote_name
        pg = connection.vendor == "postgresql"
        if wanted.aggregate in RAW_EVENT_AGGREGATES:
            return self._raw_events_sql(connection, customer, pg)
        first = wanted.first_day(self.today)
        where = (
            f"seg_r.{q('customer_id')} = {customer} AND seg_r.{q('event_type')} = %s "
            f"AND seg_r.{q('day')} <= %s" + (f" AND seg_r.{q('day')} >= %s" if first else "")
        )
        at = connection.ops.adapt_datefield_value
        where_params = [wanted.event_type, at(self.today), *([at(first)] if first else [])]
        table = f"{q(SubjectDailyRollup._meta.db_table)} AS seg_r"
        if wanted.aggregate == "count":
            select, params = f"COALESCE(SUM(seg_r.{q('count')}), 0)", []
        elif wanted.aggregate == "sum":
            number, params = _sql_json_number(pg, f"seg_r.{q('sums')}", wanted.property)
            select = f"COALESCE(SUM({number}), 0)"
        elif wanted.aggregate == "last_seen_days":
            select = (
                f"CAST(%s AS date) - MAX(seg_r.{q('day')})"
                if pg
                else f"CAST(julianday(%s) - julianday(MAX(seg_r.{q('day')})) AS INTEGER)"
            )
            params = [at(self.today)]
        elif wanted.aggregate == "distinct":
            distinct = f"seg_r.{q('distinct')}"
            if pg:
                # jsonb equality is JSON's: 1 = 1.0, "1" ≠ 1, true ≠ 1.
                select = "COUNT(DISTINCT seg_e.value)"
                table += (
                    f" CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof({distinct} "
                    f"-> %s) = 'array' THEN {distinct} -> %s ELSE CAST('[]' AS jsonb) END) "
                    "AS seg_e(value)"
                )
                params = [wanted.property, wanted.property]
                where += " AND jsonb_typeof(seg_e.value) IN ('string', 'number', 'boolean')"
            else:
                # json_each gives SQL values (true is 1): tag strings and booleans apart from
                # numbers, which compare by value (1 = 1.0) as in JSON.
                select = (
                    "COUNT(DISTINCT CASE seg_e.type WHEN 'true' THEN 'b1' WHEN 'false' THEN 'b0' "
                    "WHEN 'text' THEN 's' || seg_e.value ELSE seg_e.value END)"
                )
                path = _sqlite_path(wanted.property)
                table += f", json_each({distinct}, %s) AS seg_e"
                params = [path]
                where += (
                    f" AND json_type({distinct}, %s) = 'array' "
                    "AND seg_e.type IN ('text', 'integer', 'real', 'true', 'false')"
                )
                where_params.append(path)
        else:
            raise ValueError(f"Unknown aggregate {wanted.aggregate!r}")
        sql = f"(SELECT {select} FROM {table} WHERE {where})"  # noqa: S608 - quoted names only
        return sql, [*params, *where_params]

    def _raw_events_sql(self, connection: Any, customer: str, pg: bool) -> tuple[str, list[Any]]:
        wanted, q = self.wanted, connection.ops.quote_name
        number, params = _sql_json_number(pg, f"seg_ev.{q('properties')}", wanted.property)
        if wanted.aggregate == "avg":
            select = f"SUM({number} - CAST(%s AS NUMERIC))"
            params.append(str(self.centered_on))
        else:
            select = f"{wanted.aggregate.upper()}({number})"
        at = connection.ops.adapt_datetimefield_value
        first = _midnight_or_none(wanted.first_day(self.today))
        end = datetime.combine(self.today + timedelta(days=1), dt_time.min, tzinfo=UTC)
        moment = f"seg_ev.{q('timestamp')}"
        where = (
            f"seg_ev.{q('customer_id')} = {customer} AND seg_ev.{q('type')} = %s AND {moment} < %s"
            + (f" AND {moment} >= %s" if first else "")
        )
        params += [wanted.event_type, at(end), *([at(first)] if first else [])]
        table = q(Event._meta.db_table)
        return f"(SELECT {select} FROM {table} AS seg_ev WHERE {where})", params  # noqa: S608


def _sqlite_path(key: str | None) -> str:
    # Property names are restricted by the criteria schema: no quote or backslash to escape.
    return f'$."{key}"'


def _sql_json_number(pg: bool, column: str, key: str | None) -> tuple[str, list[Any]]:
    """`column`'s `key` as an SQL number when it is a JSON number, else NULL."""
    if pg:
        return (
            f"CASE WHEN jsonb_typeof({column} -> %s) = 'number' "
            f"THEN CAST({column} ->> %s AS numeric) END",
            [key, key],
        )
    path = _sqlite_path(key)
    return (
        f"CASE WHEN json_type({column}, %s) IN ('integer', 'real') "
        f"THEN json_extract({column}, %s) END",
        [path, path],
    )


def customer_event_aggregate(
    *,
    wanted: EventAggregate,
    now: datetime,
    customer: Any = None,
    centered_on: Decimal = Decimal(0),
) -> Expression:
    """The aggregate for each customer of the outer query, as a correlated scalar subquery (the
    SQL twin of `subject_event_aggregates`): NULL where there is no value. `customer` is the
    outer query's customer id (default F("pk") of a Customer queryset). For avg it is
    Σ(x - centered_on), whose sign compares the average with `centered_on`."""
    return _CustomerEventsSql(
        wanted, now, F("pk") if customer is None else customer, Decimal(centered_on)
    )


# === end of the segment rules block ==============================================================
