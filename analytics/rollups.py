"""A batch of events into the database, set-based: one statement per table per batch.

The batch's rows travel to the database once, into a temporary table of the connection (`COPY` in
PostgreSQL, one `executemany` in SQLite). Every write after that is one `INSERT … SELECT …
ON CONFLICT` statement reading that table, grouped in SQL; nothing stored is read back to be
merged in Python and nothing stored is rescanned, so a batch costs the same however large the
tables grow:

- raw events: `ON CONFLICT (id) DO NOTHING RETURNING id`, the ids stored for the first time (client
  ids are idempotency keys). The other rows leave the temporary table: only new rows are rolled up;
- per type, hour and subject (`SubjectHourlyRollup`): counts, and the minutes with events as a bit
  set. The upsert tells which rows it created (a subject new to the hour) and which minute bits it
  set (a subject new to the minute): exactly the buckets' new unique subjects;
- per subject, day and type (`SubjectDailyRollup`): counts, sums of numeric properties, distinct
  values of marked properties, merged with the stored ones in SQL. A row whose count is the count
  this write added was created by it: a subject new to the day;
- per type and minute/hour/day bucket (`EventRollup`): counts and new uniques, added in one upsert.

Concurrent drains stay exact: an upsert waits for another transaction's uncommitted row with the
same key, then adds to it; rows are written in key order, so two batches do not deadlock. The SQL
differs between PostgreSQL and SQLite only where their time and JSON functions do (`_DIALECTS`).
"""

# ruff: noqa: S608 - the SQL here is assembled from quoted names and fixed fragments; every value
# travels as a parameter or through COPY.
from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.db.models import Count, Sum

from analytics.models import Event, EventRollup, Interval, SubjectDailyRollup, SubjectHourlyRollup
from analytics.selectors import event_type_catalog

MAX_DISTINCT_VALUES = 100  # per subject, day, type and property: enough for "≥ N distinct"
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


class Row(NamedTuple):
    """One event as the drain stores it (times in UTC)."""

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


def is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float  # not bool, a subclass of int


# --- What differs between the databases ---------------------------------------------------------
@dataclass(frozen=True)
class _Dialect:
    """SQL fragments in each database's time and JSON functions. `{alias}` names a row source of
    JSON entries (`key`, `value`) or elements (`value`)."""

    # The staged batch: each event with its subject, UTC hour, minute bit (1 << minute), UTC day.
    batch: str
    entries: str  # a JSON object's entries as a row source, for UNION ALL
    join_entries: str  # {source}'s entries joined to each row of the query, as {alias}
    join_elements: str  # {source}'s array elements joined to each row, as {alias}
    kind: str  # the JSON type of {alias}'s value …
    number_kinds: str  # … for numbers (added up: sums)
    value_kinds: str  # … for strings, numbers and booleans (kept: distinct values)
    number: str  # a JSON number as an SQL number, to add up
    as_json: str  # {alias}'s value as JSON
    label: str  # {alias}'s value as Python's str() writes it: distinct values are kept in its order
    object_agg: str  # {key: value} of rows
    # {name: [item, …]}, per {keys}, of {ranked}: rows (keys…, name, item, label, n), n the rank
    # by label within the name.
    arrays: str
    empty: str  # {}
    # Only PostgreSQL can read an upsert's RETURNING rows in SQL (a data-modifying WITH): it
    # returns them grouped, SQLite one by one.
    grouped_returning: bool


_SUBJECT = (
    "CASE WHEN customer_id IS NOT NULL THEN 'c:' || customer_id ELSE 'a:' || anonymous_id END"
)

_DIALECTS = {
    "postgresql": _Dialect(
        batch=(
            f"SELECT type, customer_id, properties, {_SUBJECT} AS subject, "
            """date_trunc('hour', "timestamp", 'UTC') AS hour, CAST(1 AS bigint) << """
            """CAST(extract(minute FROM "timestamp" AT TIME ZONE 'UTC') AS integer) AS bit, """
            """CAST("timestamp" AT TIME ZONE 'UTC' AS date) AS day FROM {staging}"""
        ),
        entries="SELECT key, value FROM jsonb_each({source})",
        join_entries="CROSS JOIN LATERAL jsonb_each({source}) AS {alias}",
        join_elements="CROSS JOIN LATERAL jsonb_array_elements({source}) AS {alias}(value)",
        kind="jsonb_typeof({alias}.value)",
        number_kinds="('number')",
        value_kinds="('string', 'number', 'boolean')",
        number="CAST({value} AS numeric)",
        as_json="{alias}.value",
        label=(
            "CASE jsonb_typeof({alias}.value) WHEN 'boolean' THEN CASE WHEN {alias}.value = "
            "'true' THEN 'True' ELSE 'False' END ELSE {alias}.value #>> '{{}}' END COLLATE \"C\""
        ),
        object_agg="jsonb_object_agg",
        arrays=(
            "SELECT {keys}jsonb_object_agg(name, items) AS found FROM ("
            "SELECT {keys}name, jsonb_agg(item ORDER BY label) AS items FROM ({ranked}) AS ranked "
            "WHERE n <= {limit} GROUP BY {keys}name) AS per_name{group}"
        ),
        empty="CAST('{}' AS jsonb)",
        grouped_returning=True,
    ),
    "sqlite": _Dialect(
        # Django stores SQLite datetimes as UTC text, 'YYYY-MM-DD HH:MM:SS[.ffffff]'.
        batch=(
            f"SELECT type, customer_id, properties, {_SUBJECT} AS subject, "
            """strftime('%%Y-%%m-%%d %%H:00:00', "timestamp") AS hour, """
            """1 << CAST(strftime('%%M', "timestamp") AS INTEGER) AS bit, """
            """date("timestamp") AS day FROM {staging}"""
        ),
        entries="SELECT key, value FROM json_each({source})",
        join_entries=", json_each({source}) AS {alias}",
        join_elements=", json_each({source}) AS {alias}",
        kind="{alias}.type",
        number_kinds="('integer', 'real')",
        value_kinds="('text', 'integer', 'real', 'true', 'false')",
        number="{value}",
        # json_each gives SQL values (true is 1): each one is written back as JSON text.
        as_json=(
            "CASE {alias}.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
            "ELSE json_quote({alias}.value) END"
        ),
        label=(
            "CASE {alias}.type WHEN 'true' THEN 'True' WHEN 'false' THEN 'False' "
            "ELSE CAST({alias}.value AS TEXT) END"
        ),
        object_agg="json_group_object",
        # JSON text read from a subquery is plain text again: json() makes it an array again.
        arrays=(
            "SELECT {keys}json_group_object(name, json(items)) AS found FROM ("
            "SELECT {keys}name, '[' || group_concat(item, ',') || ']' AS items FROM ("
            "SELECT * FROM ({ranked}) WHERE n <= {limit} ORDER BY {keys}name, n) "
            "GROUP BY {keys}name){group}"
        ),
        empty="'{}'",
        grouped_returning=False,
    ),
}


def _dialect() -> _Dialect:
    return _DIALECTS[connection.vendor]


def _capped_arrays(sql: _Dialect, found: str, keys: tuple[str, ...] = ()) -> str:
    """A query of {name: [value, …]} (per `keys`) of `found`'s rows (keys…, name, item, label):
    distinct values in the order of their label, Python's str(), the first MAX_DISTINCT_VALUES
    kept. One rule for a batch's values and for merging them into the stored ones, and the rule of
    `daily_rollup_add`."""
    prefix = "".join(f"{key}, " for key in keys)
    ranked = (
        f"SELECT {prefix}name, item, label, row_number() OVER "
        f"(PARTITION BY {prefix}name ORDER BY label) AS n FROM ({found}) AS found"
    )
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    return sql.arrays.format(keys=prefix, ranked=ranked, limit=MAX_DISTINCT_VALUES, group=group)


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _columns(names: Iterable[str]) -> str:
    return ", ".join(_q(name) for name in names)


def _table(model: type) -> str:
    return _q(model._meta.db_table)


def _returned_hour(value: datetime | str) -> datetime:
    """A datetime as RETURNING gives it back: aware (PostgreSQL), naive UTC or text (SQLite)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _returned_day(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _datetime_param() -> Any:
    # psycopg sends datetimes as they are; SQLite keys must be Django's text form of them.
    if connection.vendor == "postgresql":
        return lambda value: value
    return connection.ops.adapt_datetimefield_value


def _distinct_list(values: set[Any]) -> list[Any]:
    return sorted(values, key=str)[:MAX_DISTINCT_VALUES]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, dt_time.min, tzinfo=UTC)


# --- The batch ----------------------------------------------------------------------------------
EVENT_COLUMNS = (
    "id",
    "type",
    "customer_id",
    "anonymous_id",
    "properties",
    "timestamp",
    "received_at",
)


def events_store(rows: list[Row]) -> set[str]:
    """Store the rows whose id is not stored yet, add exactly those to every roll-up, and return
    their ids. The rows' ids must be distinct (the drain drops repeats within a batch)."""
    if not rows:
        return set()
    # One transaction, the caller's if it has one: the staged rows live until its commit.
    with (
        transaction.atomic(savepoint=False),
        connection.cursor() as cursor,
        connection.wrap_database_errors,
    ):
        staging = _stage(cursor, rows)
        inserted = _events_insert(cursor, staging)
        if inserted and len(inserted) < len(rows):
            repeated = [row.id for row in rows if row.id not in inserted]
            cursor.execute(
                f"DELETE FROM {staging} WHERE {_q('id')} IN ({', '.join(['%s'] * len(repeated))})",
                repeated,
            )
        if inserted:
            batch = _dialect().batch.format(staging=staging)
            uniques = _subject_hours_add(cursor, batch)
            uniques.update(_subject_days_add(cursor, batch, {row.type for row in rows}))
            _rollups_add(cursor, _bucket_counts(cursor, batch), uniques)
    return inserted


def _stage(cursor: Any, rows: list[Row]) -> str:
    """The rows in this connection's temporary copy of the events table; returns its name.

    Created once per connection with the real table's column types; it holds one batch:
    PostgreSQL empties it at commit (a truncate: temporary tables are never vacuumed), SQLite
    before each fill."""
    staging = _q(f"{Event._meta.db_table}_staging")
    columns = _columns(EVENT_COLUMNS)
    select = f"SELECT {columns} FROM {_table(Event)}"
    dumps = json.dumps
    if connection.vendor == "postgresql":
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
            f"{select} WITH NO DATA"
        )
        with cursor.copy(f"COPY {staging} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(
                    (
                        row.id,
                        row.type,
                        row.customer_id,
                        row.anonymous_id,
                        dumps(row.properties),
                        row.timestamp,
                        row.received_at,
                    )
                )
        return staging
    at = connection.ops.adapt_datetimefield_value
    cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} AS {select} WHERE false")
    cursor.execute(f"DELETE FROM {staging}")
    cursor.executemany(
        f"INSERT INTO {staging} ({columns}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [
            (
                row.id,
                row.type,
                row.customer_id,
                row.anonymous_id,
                dumps(row.properties),
                at(row.timestamp),
                at(row.received_at),
            )
            for row in rows
        ],
    )
    return staging


def _events_insert(cursor: Any, staging: str) -> set[str]:
    columns, key = _columns(EVENT_COLUMNS), _q("id")
    # In key order, as every upsert here: two workers given the same entries (a claimed batch
    # whose first reader still runs) wait for each other instead of deadlocking.
    cursor.execute(
        f"INSERT INTO {_table(Event)} ({columns}) "
        f"SELECT {columns} FROM {staging} WHERE true ORDER BY {key} "
        f"ON CONFLICT ({key}) DO NOTHING RETURNING {key}"
    )
    return {found for (found,) in cursor.fetchall()}


def _returning(
    upsert: str, returned: dict[str, str], *, where: str = "", ctes: Iterable[str] = ()
) -> str:
    """The upsert (after the `ctes` it reads), returning `returned` (name: expression) and how
    many rows share those values: grouped in SQL where the database can (PostgreSQL, keeping the
    rows that match `where`), else one row each with a count of 1."""
    expressions = ", ".join(f"{expression} AS {name}" for name, expression in returned.items())
    ctes = list(ctes)
    if not _dialect().grouped_returning:
        prefix = f"WITH {', '.join(ctes)} " if ctes else ""
        return f"{prefix}{upsert} RETURNING {expressions}, 1"
    names = ", ".join(returned)
    condition = f" WHERE {where}" if where else ""
    ctes.append(f"written AS ({upsert} RETURNING {expressions})")
    return (
        f"WITH {', '.join(ctes)} SELECT {names}, count(*) FROM written{condition} GROUP BY {names}"
    )


def _subject_hours_add(cursor: Any, batch: str) -> Counter[tuple[str, str, datetime]]:
    """Upsert the per-subject hourly rows; returns the new unique subjects per minute and hour
    bucket: rows created (new to the hour), and minute bits set for the first time."""
    count, minutes, added = _q("count"), _q("minutes"), _q("minutes_added")
    key = _columns(("event_type", "hour", "subject"))
    bits = "CAST(sum(DISTINCT bit) AS bigint)"  # the OR of distinct powers of two
    upsert = (
        f"INSERT INTO {_table(SubjectHourlyRollup)} AS t ({key}, {count}, {minutes}, {added}) "
        f"SELECT type, hour, subject, count(*), {bits}, {bits} FROM ({batch}) AS b WHERE true "
        "GROUP BY type, hour, subject ORDER BY type, hour, subject "
        f"ON CONFLICT ({key}) DO UPDATE SET {count} = t.{count} + excluded.{count}, "
        f"{minutes} = t.{minutes} | excluded.{minutes}, "
        f"{added} = excluded.{minutes} & ~t.{minutes}"
    )
    # A stored row holds at least one minute: all of its bits were added by this write iff it is
    # new.
    returned = {
        "event_type": _q("event_type"),
        "hour": _q("hour"),
        "added": added,
        "created": f"{added} = {minutes}",
    }
    cursor.execute(_returning(upsert, returned), [])
    uniques: Counter[tuple[str, str, datetime]] = Counter()
    for event_type, stored_hour, bits_added, created, subjects in cursor.fetchall():
        hour = _returned_hour(stored_hour)
        if created:
            uniques[(event_type, Interval.HOUR, hour)] += subjects
        while bits_added:
            lowest = bits_added & -bits_added
            minute = hour + (lowest.bit_length() - 1) * MINUTE
            uniques[(event_type, Interval.MINUTE, minute)] += subjects
            bits_added ^= lowest
    return uniques


def _subject_days_add(
    cursor: Any, batch: str, event_types: set[str]
) -> Counter[tuple[str, str, datetime]]:
    """Upsert the per-subject daily rows; returns the new unique subjects per day bucket."""
    sql = _dialect()
    keys = ("subject", "day", "type")
    listed = ", ".join(keys)
    # Each property of each event, as p: numbers are added up, marked properties' values kept.
    properties = sql.join_entries.format(source="b.properties", alias="p")
    kind = sql.kind.format(alias="p")
    numbers = (
        f"SELECT {listed}, {sql.object_agg}(key, total) AS sums FROM ("
        f"SELECT b.subject, b.day, b.type, p.key, sum({sql.number.format(value='p.value')}) "
        f"AS total FROM batch AS b {properties} WHERE {kind} IN {sql.number_kinds} "
        f"GROUP BY b.subject, b.day, b.type, p.key) AS per_name GROUP BY {listed}"
    )
    ctes = [
        f"batch AS ({batch})",
        f"groups AS (SELECT {listed}, max(customer_id) AS customer_id, count(*) AS n "
        f"FROM batch GROUP BY {listed})",
        f"numbers AS ({numbers})",
    ]
    marked = sorted(
        (event_type, name)
        for event_type, info in event_type_catalog().items()
        if event_type in event_types
        for name in info.distinct_properties
    )
    seen = sql.empty
    if marked:
        found = (
            f"SELECT DISTINCT b.subject, b.day, b.type, p.key AS name, "
            f"{sql.as_json.format(alias='p')} AS item, {sql.label.format(alias='p')} AS label "
            f"FROM batch AS b {properties} "
            "JOIN marked AS m ON m.type = b.type AND m.name = p.key "
            f"WHERE {kind} IN {sql.value_kinds}"
        )
        values = ", ".join(["(%s, %s)"] * len(marked))
        ctes += [
            f"marked (type, name) AS (VALUES {values})",
            f"seen AS ({_capped_arrays(sql, found, keys)})",
        ]
        seen = f"coalesce(seen.found, {sql.empty})"
    count, added = _q("count"), _q("count_added")
    key = _columns(("subject", "day", "event_type"))
    columns = f"{key}, {_q('customer_id')}, {count}, {added}, {_q('sums')}, {_q('distinct')}"
    upsert = (
        f"INSERT INTO {_table(SubjectDailyRollup)} AS t ({columns}) "
        f"SELECT g.subject, g.day, g.type, g.customer_id, g.n, g.n, "
        f"coalesce(numbers.sums, {sql.empty}), {seen} FROM groups AS g "
        f"LEFT JOIN numbers USING ({listed}) "
        + (f"LEFT JOIN seen USING ({listed}) " if marked else "")
        + f"WHERE true ORDER BY g.subject, g.day, g.type ON CONFLICT ({key}) DO UPDATE SET "
        f"{count} = t.{count} + excluded.{count}, {added} = excluded.{count}, "
        f"{_json_merge(sql, 'sums')}, {_json_merge(sql, 'distinct')}"
    )
    # A stored row counts at least one event: it was created by this write iff its count is the
    # count this write added.
    returned = {"event_type": _q("event_type"), "day": _q("day"), "created": f"{count} = {added}"}
    params = [value for pair in marked for value in pair]
    cursor.execute(_returning(upsert, returned, where="created", ctes=ctes), params)
    uniques: Counter[tuple[str, str, datetime]] = Counter()
    for event_type, stored_day, is_new, subjects in cursor.fetchall():
        if is_new:
            uniques[(event_type, Interval.DAY, _midnight(_returned_day(stored_day)))] += subjects
    return uniques


def _json_merge(sql: _Dialect, column: str) -> str:
    """`column = ` the stored JSON merged with the batch's: numbers added per name, or values
    united per name (`_capped_arrays`). Written out only when both hold something: most writes
    add to an empty object, or add nothing."""
    col = _q(column)
    pairs = (
        f"({sql.entries.format(source=f't.{col}')} UNION ALL "
        f"{sql.entries.format(source=f'excluded.{col}')}) AS pairs"
    )
    if column == "sums":
        total = sql.number.format(value="value")
        merged = (
            f"(SELECT {sql.object_agg}(key, total) FROM (SELECT key, sum({total}) AS total "
            f"FROM {pairs} GROUP BY key) AS summed)"
        )
    else:
        found = (
            f"SELECT DISTINCT pairs.key AS name, {sql.as_json.format(alias='element')} AS item, "
            f"{sql.label.format(alias='element')} AS label FROM {pairs} "
            f"{sql.join_elements.format(source='pairs.value', alias='element')}"
        )
        merged = f"(SELECT found FROM ({_capped_arrays(sql, found)}) AS merged)"
    return (
        f"{col} = CASE WHEN excluded.{col} = {sql.empty} THEN t.{col} "
        f"WHEN t.{col} = {sql.empty} THEN excluded.{col} ELSE {merged} END"
    )


def _bucket_counts(cursor: Any, batch: str) -> Counter[tuple[str, str, datetime]]:
    """Events per (type, interval, bucket start)."""
    cursor.execute(
        f"SELECT type, hour, bit, count(*) FROM ({batch}) AS b GROUP BY type, hour, bit",
        [],
    )
    counts: Counter[tuple[str, str, datetime]] = Counter()
    for event_type, stored_hour, bit, events in cursor.fetchall():
        hour = _returned_hour(stored_hour)
        counts[(event_type, Interval.MINUTE, hour + (bit.bit_length() - 1) * MINUTE)] += events
        counts[(event_type, Interval.HOUR, hour)] += events
        counts[(event_type, Interval.DAY, hour.replace(hour=0))] += events
    return counts


def _rollups_add(
    cursor: Any,
    counts: Counter[tuple[str, str, datetime]],
    uniques: Counter[tuple[str, str, datetime]],
) -> None:
    """Add to each bucket's count and uniques, in one statement."""
    at = _datetime_param()
    params: list[Any] = []
    for event_type, interval, bucket in sorted(counts):
        key = (event_type, interval, bucket)
        params += [event_type, interval, at(bucket), counts[key], uniques[key]]
    count, unique = _q("count"), _q("uniques")
    key = _columns(("event_type", "interval", "bucket"))
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(counts))
    cursor.execute(
        f"INSERT INTO {_table(EventRollup)} AS t ({key}, {count}, {unique}) "
        f"VALUES {values} ON CONFLICT ({key}) DO UPDATE SET "
        f"{count} = t.{count} + excluded.{count}, {unique} = t.{unique} + excluded.{unique}",
        params,
    )


# --- Merging and recounting (identify) --------------------------------------------------------
def daily_rollup_add(
    rollup: SubjectDailyRollup,
    *,
    count: int,
    sums: dict[str, float],
    distinct: dict[str, Iterable[Any]],
) -> None:
    """Add counts, sums and distinct values into a daily roll-up (in memory; the caller saves).
    One rule for linking an anonymous history to its customer, and the rule the drain's SQL
    merge (`_MERGE_SQL`) follows."""
    rollup.count += count
    rollup.sums = {
        name: rollup.sums.get(name, 0) + sums.get(name, 0) for name in rollup.sums.keys() | sums
    }
    rollup.distinct = {
        name: _distinct_list(set(rollup.distinct.get(name, [])) | set(distinct.get(name, ())))
        for name in rollup.distinct.keys() | distinct
    }


def event_rollups_recount(
    *, occurrences: Iterable[tuple[str, datetime]], intervals: Iterable[str] = Interval.values
) -> None:
    """Recount the buckets that these (type, time) occurrences fall in, from scratch.

    Each touched hour's per-subject hourly rows are rebuilt from its events, and its minute and
    hour buckets counted from them; day buckets are counted from the per-subject daily roll-ups
    (one row per subject). In SQL, with the drain's own expressions for subjects and buckets.
    Idempotent: linking an anonymous history to its customer (which changes unique counts)
    recounts rather than adds.
    """
    intervals = set(intervals)
    hours: dict[str, set[datetime]] = defaultdict(set)
    for event_type, moment in occurrences:
        hours[event_type].add(moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0))
    upserts: list[EventRollup] = []
    with connection.cursor() as cursor:
        for event_type, touched in sorted(hours.items()):
            if intervals & {Interval.MINUTE, Interval.HOUR}:
                upserts += _hours_recount(cursor, event_type, touched, intervals)
            if Interval.DAY in intervals:
                upserts += _days_recount(event_type, {hour.date() for hour in touched})
    EventRollup.objects.bulk_create(
        upserts,
        update_conflicts=True,
        unique_fields=["event_type", "interval", "bucket"],
        update_fields=["count", "uniques"],
    )


def _hours_recount(
    cursor: Any, event_type: str, hours: set[datetime], intervals: set[str]
) -> list[EventRollup]:
    at = _datetime_param()
    # The touched hours as few time ranges (adjacent hours merged), read through the events'
    # (type, timestamp) index: late events spread over a month must not scan the month.
    ranges: list[list[datetime]] = []
    for start in sorted(hours):
        if ranges and ranges[-1][1] == start:
            ranges[-1][1] = start + HOUR
        else:
            ranges.append([start, start + HOUR])
    moment = _q("timestamp")
    within = " OR ".join([f"({moment} >= %s AND {moment} < %s)"] * len(ranges))
    stored = f"(SELECT * FROM {_table(Event)} WHERE {_q('type')} = %s AND ({within})) AS e"
    batch = _dialect().batch.format(staging=stored)
    params = [event_type, *(at(bound) for pair in ranges for bound in pair)]
    hourly, key = _table(SubjectHourlyRollup), _columns(("event_type", "hour", "subject"))
    cursor.execute(
        f"DELETE FROM {hourly} WHERE {_q('event_type')} = %s AND {_q('hour')} IN "
        f"({', '.join(['%s'] * len(hours))})",
        [event_type, *(at(hour) for hour in sorted(hours))],
    )
    bits = "CAST(sum(DISTINCT bit) AS bigint)"
    cursor.execute(
        f"INSERT INTO {hourly} ({key}, {_columns(('count', 'minutes', 'minutes_added'))}) "
        f"SELECT type, hour, subject, count(*), {bits}, {bits} FROM ({batch}) AS b "
        "GROUP BY type, hour, subject",
        params,
    )
    recounted = []
    if Interval.MINUTE in intervals:
        cursor.execute(
            f"SELECT hour, bit, count(*), count(DISTINCT subject) FROM ({batch}) AS b "
            "GROUP BY hour, bit",
            params,
        )
        recounted += [
            EventRollup(
                event_type=event_type,
                interval=Interval.MINUTE,
                bucket=_returned_hour(hour) + (bit.bit_length() - 1) * MINUTE,
                count=count,
                uniques=uniques,
            )
            for hour, bit, count, uniques in cursor.fetchall()
        ]
    if Interval.HOUR in intervals:
        cursor.execute(
            f"SELECT hour, count(*), count(DISTINCT subject) FROM ({batch}) AS b GROUP BY hour",
            params,
        )
        recounted += [
            EventRollup(
                event_type=event_type,
                interval=Interval.HOUR,
                bucket=_returned_hour(hour),
                count=count,
                uniques=uniques,
            )
            for hour, count, uniques in cursor.fetchall()
        ]
    return recounted


def _days_recount(event_type: str, days: set[date]) -> list[EventRollup]:
    counted = (
        SubjectDailyRollup.objects.filter(event_type=event_type, day__in=days)
        .values("day")
        .annotate(total=Sum("count"), subjects=Count("id"))
        .order_by()
    )
    return [
        EventRollup(
            event_type=event_type,
            interval=Interval.DAY,
            bucket=_midnight(row["day"]),
            count=row["total"],
            uniques=row["subjects"],
        )
        for row in counted
    ]


def subject_hourly_rollups_prune(*, now: datetime, max_age: timedelta) -> int:
    """Delete per-subject hourly rows no event can still reach: the drain refuses events older
    than `max_age`, so those hours' unique counts are final. One day of slack covers the clock
    skew between the ingest check and this job. Returns how many rows went."""
    cutoff = now - max_age - timedelta(days=1)
    deleted, _ = SubjectHourlyRollup.objects.filter(hour__lt=cutoff).delete()
    return deleted
