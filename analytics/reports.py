"""Reports for dashboards: funnels, time series and journey stages.

Time series and journeys read roll-ups only (DESIGN: dashboards read roll-ups, never raw events).
Funnels are the one exception: whether a subject did B *after* A, within a window of their first
A, is an ordering question per subject that no count per bucket or per day can answer, so they
read raw events, in one SQL query on the `event_type_time` index (see `funnel`).

A subject is a customer, or an anonymous id for events not (yet) linked to one: the same key the
per-subject roll-ups use. Errors name the REST parameter that carries the bad value, so REST,
GraphQL and the admin report the same thing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from django.db import connection
from django.db.models import (
    Case,
    Count,
    DateTimeField,
    ExpressionWrapper,
    F,
    Min,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.utils import timezone

from analytics.models import Event, EventRollup, Interval, JourneyStage, SubjectDailyRollup
from analytics.selectors import event_type_catalog
from cmsproject.errors import FieldError, ValidationError

MAX_STEPS = 10
MAX_WINDOW = timedelta(days=365)
MAX_BUCKETS = 10_000
EVENT_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")  # as ingestion accepts them
WINDOW = re.compile(r"(\d{1,6})([mhd])")
WINDOW_UNITS = {"m": "minutes", "h": "hours", "d": "days"}

BUCKET_WIDTH = {
    Interval.MINUTE: timedelta(minutes=1),
    Interval.HOUR: timedelta(hours=1),
    Interval.DAY: timedelta(days=1),
}
# A range left open gets this many buckets, ending now.
DEFAULT_BUCKETS = {Interval.MINUTE: 60, Interval.HOUR: 48, Interval.DAY: 30}
DEFAULT_JOURNEY_RANGE = timedelta(days=30)
JOURNEY_STAGES = tuple(JourneyStage.values)  # awareness → consideration → action


# --- Parameters shared by every caller --------------------------------------------------------
def window_parse(value: str) -> timedelta:
    """`30m`, `24h`, `7d` → a timedelta; anything else is a 400 naming `window`."""
    match = WINDOW.fullmatch(value.strip()) if isinstance(value, str) else None
    window = timedelta(**{WINDOW_UNITS[match[2]]: int(match[1])}) if match else None
    if window is None or not timedelta(0) < window <= MAX_WINDOW:
        raise ValidationError(
            "The funnel window is invalid.",
            errors=[
                FieldError(
                    "window",
                    "invalid",
                    "A number and a unit, m, h or d (e.g. 30m, 24h, 7d), at most 365d.",
                )
            ],
        )
    return window


def _check_range(start: datetime | None, end: datetime | None) -> None:
    for attr, moment in (("from", start), ("to", end)):
        if moment is not None and timezone.is_naive(moment):
            raise ValidationError(
                "Times need a zone.", errors=[FieldError(attr, "invalid", "Add a zone, e.g. Z.")]
            )
    if start is not None and end is not None and start >= end:
        raise ValidationError(
            "The range is empty.", errors=[FieldError("to", "invalid", "Must be after `from`.")]
        )


def _check_event_name(attr: str, name: object) -> None:
    if not isinstance(name, str) or not EVENT_NAME.fullmatch(name):
        raise ValidationError(
            "An event type name is invalid.",
            errors=[FieldError(attr, "invalid", "1-100 characters: letters, digits, _ -")],
        )


# --- Funnels ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FunnelStep:
    step: str
    count: int
    conversion_rate: float  # this step's count over the first step's (0 when nobody entered)


def funnel(
    *,
    steps: list[str],
    window: timedelta,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[FunnelStep]:
    """How many subjects did `steps` in this order, each within `window` of their first step.

    A subject enters with its first `steps[0]` event in [start, end) (an open end is unbounded)
    at t1. Step k is then the earliest `steps[k]` event strictly after step k-1's and before
    t1 + window; later steps may fall after `end`. Taking the earliest occurrence each time is
    exact: an earlier match never rules out a later step that a later match would allow.
    Events that belong to nobody (erased: no customer, no anonymous id) are left out.
    """
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
        raise ValidationError(
            "A funnel needs steps.",
            errors=[FieldError("steps", "invalid", f"1 to {MAX_STEPS} event types, in order.")],
        )
    for index, step in enumerate(steps):
        _check_event_name(f"steps[{index}]", step)
    if not timedelta(0) < window <= MAX_WINDOW:
        raise ValidationError(
            "The funnel window is invalid.",
            errors=[FieldError("window", "invalid", "More than 0 and at most 365 days.")],
        )
    _check_range(start, end)

    sql, params = _funnel_sql(steps=steps, window=window, start=start, end=end)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        counts = [int(count) for count in cursor.fetchone()]
    entered = counts[0]
    return [
        FunnelStep(step=step, count=count, conversion_rate=count / entered if entered else 0.0)
        for step, count in zip(steps, counts, strict=True)
    ]


def _funnel_sql(
    *, steps: list[str], window: timedelta, start: datetime | None, end: datetime | None
) -> tuple[str, list[object]]:
    """One statement, two chains of CTEs: one for customers (keyed by `customer_id`), one for
    anonymous ids of events with no customer (keyed by `anonymous_id`). Each CTE joins the
    subjects still in the funnel to the next step's events, read by an index range scan on
    (type, timestamp); a plain column key lets the planner hash-join (or walk the subject's
    index) instead of sorting every event on a computed key. The answer is one sum per step.
    Nothing is streamed to Python: memory does not grow with the events.

    The entry CTEs are built by the ORM, which writes `MIN(timestamp) + window` for the backend
    (an interval on PostgreSQL, Django's date function on SQLite); the later CTEs only compare
    timestamps, which both backends do natively.
    """
    quote, adapt = connection.ops.quote_name, connection.ops.adapt_datetimefield_value
    names = {
        "table": quote(Event._meta.db_table),
        "ts": f"e.{quote('timestamp')}",
        "type": f"e.{quote('type')}",
        "customer": f"e.{quote('customer_id')}",
        "anonymous": f"e.{quote('anonymous_id')}",
    }
    ctes: list[str] = []
    params: list[object] = []
    for chain, key, subjects in (
        ("c", "customer_id", Q(customer__isnull=False)),
        ("a", "anonymous_id", Q(customer__isnull=True) & ~Q(anonymous_id="")),
    ):
        entry_sql, entry_params = _funnel_entries(
            subjects=subjects, key=key, step=steps[0], window=window, start=start, end=end
        )
        ctes.append(f"{chain}0 AS ({entry_sql})")
        params += entry_params
        for index, step in enumerate(steps[1:], start=1):
            # Redundant with the per-subject bounds, but sargable: the index range scan reads
            # only the dates that can match at all.
            bounds = ""
            if start is not None:
                bounds += FUNNEL_AFTER.format(**names)
            if end is not None:
                bounds += FUNNEL_BEFORE.format(**names)
            ctes.append(
                FUNNEL_STEP.format(
                    name=f"{chain}{index}",
                    previous=f"{chain}{index - 1}",
                    join=FUNNEL_JOIN[chain].format(**names),
                    bounds=bounds,
                    **names,
                )
            )
            params.append(step)
            if start is not None:
                params.append(adapt(start))
            if end is not None:
                params.append(adapt(end + window))
    counts = ", ".join(FUNNEL_COUNT.format(index=index) for index in range(len(steps)))
    return "WITH " + ", ".join(ctes) + " SELECT " + counts, params


def _funnel_entries(
    *,
    subjects: Q,
    key: str,
    step: str,
    window: timedelta,
    start: datetime | None,
    end: datetime | None,
) -> tuple[str, tuple[object, ...]]:
    """(subject, t, deadline): each subject's first `step` in [start, end), plus the window."""
    entries = Event.objects.filter(subjects, type=step)
    if start is not None:
        entries = entries.filter(timestamp__gte=start)
    if end is not None:
        entries = entries.filter(timestamp__lt=end)
    entries = (
        entries.values(subject=F(key))
        .annotate(
            t=Min("timestamp"),
            deadline=ExpressionWrapper(
                Min("timestamp") + Value(window), output_field=DateTimeField()
            ),
        )
        .order_by()
    )
    return entries.query.sql_with_params()


# Only identifiers are formatted into these (quoted names, CTE names); values are parameters.
FUNNEL_STEP = (
    "{name} AS (SELECT f.subject, f.deadline, MIN({ts}) AS t"
    " FROM {previous} f JOIN {table} e ON {join}"
    " WHERE {type} = %s AND {ts} > f.t AND {ts} < f.deadline{bounds}"
    " GROUP BY f.subject, f.deadline)"
)
FUNNEL_JOIN = {
    "c": "{customer} = f.subject",
    "a": "{anonymous} = f.subject AND {customer} IS NULL",
}
FUNNEL_AFTER = " AND {ts} > %s"
FUNNEL_BEFORE = " AND {ts} < %s"
FUNNEL_COUNT = "(SELECT COUNT(*) FROM c{index}) + (SELECT COUNT(*) FROM a{index})"


# --- Time series ----------------------------------------------------------------------------
class TimeseriesBucket(TypedDict):
    bucket: datetime
    count: int
    uniques: int


def bucket_floor(moment: datetime, interval: str) -> datetime:
    """The start of the UTC bucket holding `moment` (the drain buckets in UTC)."""
    moment = moment.astimezone(UTC)
    if interval == Interval.MINUTE:
        return moment.replace(second=0, microsecond=0)
    if interval == Interval.HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def timeseries(
    *,
    event: str,
    interval: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[TimeseriesBucket]:
    """Events of one type per bucket, from `start`'s bucket up to `end` (excluded), every bucket
    present (zero when nothing happened). Read from `EventRollup` only. An open end is now; an
    open start is a default number of buckets before the end."""
    _check_event_name("event", event)
    if interval not in BUCKET_WIDTH:
        raise ValidationError(
            "Unknown interval.",
            errors=[FieldError("interval", "invalid", "One of: minute, hour, day.")],
        )
    _check_range(start, end)
    width = BUCKET_WIDTH[interval]
    end = end or timezone.now()
    start = start or bucket_floor(end, interval) - (DEFAULT_BUCKETS[interval] - 1) * width
    _check_range(start, end)
    first = bucket_floor(start, interval)
    buckets = math.ceil((end - first) / width)
    if buckets > MAX_BUCKETS:
        detail = f"The range holds {buckets} {interval} buckets; at most {MAX_BUCKETS}."
        raise ValidationError(
            "The range is too long for this interval.",
            errors=[
                FieldError("from", "too-many-buckets", detail),
                FieldError("to", "too-many-buckets", detail),
            ],
        )
    stored = {
        bucket: (count, uniques)
        for bucket, count, uniques in EventRollup.objects.filter(
            event_type=event, interval=interval, bucket__gte=first, bucket__lt=end
        ).values_list("bucket", "count", "uniques")
    }
    series: list[TimeseriesBucket] = []
    for offset in range(buckets):
        bucket = first + offset * width
        count, uniques = stored.get(bucket, (0, 0))
        series.append(TimeseriesBucket(bucket=bucket, count=count, uniques=uniques))
    return series


# --- Journeys ---------------------------------------------------------------------------------
class JourneyStageReport(TypedDict):
    stage: str
    count: int
    uniques: int
    drop_off: float | None  # share of the previous stage's subjects not seen here; None first


class JourneyReport(TypedDict):
    stages: list[JourneyStageReport]


def journeys(*, start: datetime | None = None, end: datetime | None = None) -> JourneyReport:
    """Events and distinct subjects per journey stage (awareness → consideration → action, from
    each event type's `journey_stage`), and the drop-off from one stage to the next.

    Read from the per-subject daily roll-ups, one query; the days counted are the UTC days that
    overlap [start, end). Drop-off is 1 - uniques / previous stage's uniques: negative when a
    later stage reaches more subjects (people who skipped a stage), 0 when the previous is 0.
    """
    _check_range(start, end)
    end = end or timezone.now()
    start = start or end - DEFAULT_JOURNEY_RANGE
    _check_range(start, end)
    first_day = start.astimezone(UTC).date()
    last_day = (end - timedelta(microseconds=1)).astimezone(UTC).date()

    types_by_stage: dict[str, list[str]] = {stage: [] for stage in JOURNEY_STAGES}
    for info in event_type_catalog().values():
        if info.journey_stage in types_by_stage:
            types_by_stage[info.journey_stage].append(info.name)
    staged = [(stage, names) for stage, names in types_by_stage.items() if names]
    totals: dict[str, tuple[int, int]] = {}
    if staged:
        rows = (
            SubjectDailyRollup.objects.filter(
                Q(event_type__in=[name for _, names in staged for name in names]),
                day__gte=first_day,
                day__lte=last_day,
            )
            .annotate(
                stage=Case(
                    *(When(event_type__in=names, then=Value(stage)) for stage, names in staged)
                )
            )
            .values("stage")
            .annotate(events=Sum("count"), subjects=Count("subject", distinct=True))
            .order_by()
        )
        totals = {row["stage"]: (row["events"], row["subjects"]) for row in rows}

    stages: list[JourneyStageReport] = []
    previous: int | None = None
    for stage in JOURNEY_STAGES:
        count, uniques = totals.get(stage, (0, 0))
        drop_off = None
        if previous is not None:
            drop_off = round(1 - uniques / previous, 4) if previous else 0.0
        stages.append(
            JourneyStageReport(stage=stage, count=count, uniques=uniques, drop_off=drop_off)
        )
        previous = uniques
    return JourneyReport(stages=stages)


# --- Experiment exposures and conversions ---------------------------------------------------------
EXPOSURE_EVENT = "experiment_exposure"


@dataclass(frozen=True)
class VariantUnits:
    variant: str
    exposures: int  # units whose exposures in the period all name this variant
    conversions: int  # of those, units with the metric event within the window after the first


@dataclass(frozen=True)
class ExposureReport:
    variants: list[VariantUnits]
    mixed_units: int  # units exposed to more than one variant: left out, as GrowthBook does


def experiment_exposures(
    *,
    experiment: str,
    metric_event: str,
    window: timedelta,
    start: datetime,
    end: datetime | None = None,
) -> ExposureReport:
    """Units exposed to `experiment` in [start, end) by variant, and how many converted.

    A unit is a subject as in the funnel (a customer, or an anonymous id not linked to one); it
    counts once, from its first exposure t, whatever the number of exposure events (server-side
    from delivery and client-side from an SDK may both arrive). It converted when it has a
    `metric_event` at or after t and no later than t + window. One statement, a customer chain
    and an anonymous chain as in `funnel`, so nothing per unit reaches Python.
    """
    sql, params = _exposures_sql(
        experiment=experiment, metric_event=metric_event, window=window, start=start, end=end
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    counts: dict[str, list[int]] = {}
    mixed = 0
    for variant, variants_seen, exposures, conversions in rows:
        if variants_seen > 1:
            mixed += int(exposures)
            continue
        totals = counts.setdefault(variant, [0, 0])
        totals[0] += int(exposures)
        totals[1] += int(conversions or 0)
    return ExposureReport(
        variants=[VariantUnits(key, *totals) for key, totals in sorted(counts.items())],
        mixed_units=mixed,
    )


def _exposures_sql(
    *,
    experiment: str,
    metric_event: str,
    window: timedelta,
    start: datetime,
    end: datetime | None,
) -> tuple[str, list[object]]:
    quote = connection.ops.quote_name
    names = {
        "table": quote(Event._meta.db_table),
        "ts": f"e.{quote('timestamp')}",
        "type": f"e.{quote('type')}",
        "customer": f"e.{quote('customer_id')}",
        "anonymous": f"e.{quote('anonymous_id')}",
    }
    ctes: list[str] = []
    params: list[object] = []
    for chain, key, subjects in (
        ("c", "customer_id", Q(customer__isnull=False)),
        ("a", "anonymous_id", Q(customer__isnull=True) & ~Q(anonymous_id="")),
    ):
        exposed = Event.objects.filter(
            subjects, type=EXPOSURE_EVENT, timestamp__gte=start, properties__experiment=experiment
        )
        if end is not None:
            exposed = exposed.filter(timestamp__lt=end)
        exposed = (
            exposed.values(subject=F(key))
            .annotate(
                t=Min("timestamp"),
                deadline=ExpressionWrapper(
                    Min("timestamp") + Value(window), output_field=DateTimeField()
                ),
                variant=Min(KT("properties__variant")),
                variants_seen=Count(KT("properties__variant"), distinct=True),
            )
            .order_by()
        )
        exposed_sql, exposed_params = exposed.query.sql_with_params()
        ctes.append(f"{chain}x AS ({exposed_sql})")
        params += exposed_params
        ctes.append(
            EXPOSURE_CONVERTED.format(
                name=f"{chain}v",
                exposed=f"{chain}x",
                join=FUNNEL_JOIN[chain].format(**names),
                **names,
            )
        )
        params.append(metric_event)
    selects = " UNION ALL ".join(EXPOSURE_COUNT.format(chain=chain) for chain in ("c", "a"))
    return "WITH " + ", ".join(ctes) + " " + selects, params


EXPOSURE_CONVERTED = (
    "{name} AS (SELECT DISTINCT f.subject FROM {exposed} f JOIN {table} e ON {join}"
    " WHERE {type} = %s AND {ts} >= f.t AND {ts} <= f.deadline)"
)
EXPOSURE_COUNT = (
    "SELECT x.variant, x.variants_seen, COUNT(*), COUNT(v.subject)"
    " FROM {chain}x x LEFT JOIN {chain}v v ON v.subject = x.subject"
    " GROUP BY x.variant, x.variants_seen"
)
