"""Net Promoter Score: % promoters (9-10) minus % detractors (0-6) of the answers in a range,
overall, per time bucket and per lifecycle stage of the respondents, with the comments'
sentiment. One formula for REST, GraphQL and the admin.

Feedback belongs to customers; this module reads it through `customers.feedback.feedback_scores`
and only groups and counts what that selector returns. Two SQL statements whatever the number
of answers (one grouped by bucket, one by stage); Python sees one row per bucket or stage, and
fills the buckets nobody answered in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from django.db.models import Count, DateTimeField, Q
from django.db.models.functions import Trunc
from django.utils import timezone

from cmsproject.errors import FieldError, ValidationError
from customers.feedback import SentimentLabel, feedback_scores
from customers.models import LifecycleStage

INTERVALS = ("day", "week", "month")
DEFAULT_INTERVAL = "day"
DEFAULT_RANGE = timedelta(days=30)
MAX_BUCKETS = 10_000
PROMOTER_FROM = 9  # 9 and 10
DETRACTOR_UP_TO = 6  # 0 to 6; 7 and 8 are passives
UNKNOWN_STAGE = "unknown"  # answers stored without a stage
STAGE_ORDER = tuple(LifecycleStage.values)  # visitor → lead → customer → repeat → churned


class NpsBucket(TypedDict):
    bucket: datetime  # start of the UTC day, ISO week (Monday) or month
    nps: float | None
    responses: int


class NpsStage(TypedDict):
    stage: str
    nps: float | None
    responses: int


class SentimentCounts(TypedDict):
    positive: int
    neutral: int
    negative: int
    pending: int  # comments the sentiment job has not read yet


class NpsReport(TypedDict):
    start: datetime
    end: datetime
    interval: str
    nps: float | None
    responses: int
    promoters: int
    passives: int
    detractors: int
    series: list[NpsBucket]
    by_stage: list[NpsStage]
    sentiment: SentimentCounts


def nps_score(*, promoters: int, detractors: int, responses: int) -> float | None:
    """% promoters - % detractors, to one decimal; None when nobody answered."""
    if not responses:
        return None
    return round((promoters - detractors) * 100 / responses, 1)


class UtcBucketStart(Trunc):
    """The start of the UTC day, ISO week or month holding a time. Django's Trunc calls back into
    Python once per row on SQLite; this stays in SQL there (`strftime` with date modifiers)."""

    SQLITE = {
        "day": "strftime('%%Y-%%m-%%d 00:00:00', {})",
        # Back six days, then forward to the next Monday (or stay on it): the week's Monday.
        "week": "strftime('%%Y-%%m-%%d 00:00:00', {}, '-6 days', 'weekday 1')",
        "month": "strftime('%%Y-%%m-01 00:00:00', {})",
    }

    def __init__(self, expression: str, kind: str) -> None:
        super().__init__(expression, kind, output_field=DateTimeField(), tzinfo=UTC)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        sql, params = compiler.compile(self.lhs)
        return self.SQLITE[self.kind].format(sql), params


def _counts() -> dict[str, Count]:
    return {
        "responses": Count("score"),
        "promoters": Count("score", filter=Q(score__gte=PROMOTER_FROM)),
        "detractors": Count("score", filter=Q(score__lte=DETRACTOR_UP_TO)),
    }


def _sentiment_counts() -> dict[str, Count]:
    return {
        "positive": Count("score", filter=Q(sentiment_label=SentimentLabel.POSITIVE)),
        "neutral": Count("score", filter=Q(sentiment_label=SentimentLabel.NEUTRAL)),
        "negative": Count("score", filter=Q(sentiment_label=SentimentLabel.NEGATIVE)),
        "pending": Count("score", filter=Q(scored_at__isnull=True)),
    }


def bucket_floor(moment: datetime, interval: str) -> datetime:
    """The start of the UTC bucket holding `moment` (as `UtcBucketStart` computes it in SQL)."""
    day = moment.astimezone(UTC).date()
    if interval == "week":
        day -= timedelta(days=day.weekday())
    elif interval == "month":
        day = day.replace(day=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def bucket_after(bucket: datetime, interval: str) -> datetime:
    """The start of the next bucket."""
    if interval == "day":
        return bucket + timedelta(days=1)
    if interval == "week":
        return bucket + timedelta(days=7)
    if bucket.month == 12:
        return bucket.replace(year=bucket.year + 1, month=1)
    return bucket.replace(month=bucket.month + 1)


def _checked_range(
    start: datetime | None, end: datetime | None, interval: str
) -> tuple[datetime, datetime]:
    if interval not in INTERVALS:
        raise ValidationError(
            "Unknown interval.",
            errors=[FieldError("interval", "invalid", "One of: day, week, month.")],
        )
    for attr, moment in (("start", start), ("end", end)):
        if moment is not None and timezone.is_naive(moment):
            raise ValidationError(
                "Times need a zone.", errors=[FieldError(attr, "invalid", "Add a zone, e.g. Z.")]
            )
    end = end or timezone.now()
    start = start or end - DEFAULT_RANGE
    if start >= end:
        raise ValidationError(
            "The range is empty.", errors=[FieldError("end", "invalid", "Must be after `start`.")]
        )
    # Counted, not built: a bucket list of a million days is refused before it is made.
    days = (end - bucket_floor(start, interval)) / timedelta(days=1)
    buckets = {"day": days, "week": days / 7, "month": days / 28}[interval]
    if buckets > MAX_BUCKETS:
        detail = f"At most {MAX_BUCKETS} {interval} buckets."
        raise ValidationError(
            "The range is too long for this interval.",
            errors=[
                FieldError("start", "too-many-buckets", detail),
                FieldError("end", "too-many-buckets", detail),
            ],
        )
    return start, end


def nps_report(
    *, start: datetime | None = None, end: datetime | None = None, interval: str = DEFAULT_INTERVAL
) -> NpsReport:
    """NPS of the answers given in [start, end) (default: the 30 days before now), per UTC
    `interval` bucket (every bucket present, null NPS where nobody answered) and per lifecycle
    stage of the respondents when they answered (stages with answers, in lifecycle order).

    Errors name `start`, `end` and `interval`, as the REST and GraphQL parameters do.
    """
    start, end = _checked_range(start, end, interval)
    rows = feedback_scores(start=start, end=end)

    per_bucket = {
        row["bucket"]: row
        for row in rows.annotate(bucket=UtcBucketStart("created_at", interval))
        .values("bucket")
        .annotate(**_counts(), **_sentiment_counts())
        .order_by("bucket")
    }
    per_stage = list(rows.values("journey_stage").annotate(**_counts()).order_by())

    series: list[NpsBucket] = []
    bucket = bucket_floor(start, interval)
    while bucket < end:
        counts = per_bucket.get(bucket)
        responses = counts["responses"] if counts else 0
        series.append(
            NpsBucket(
                bucket=bucket,
                nps=nps_score(**_score_counts(counts)) if counts else None,
                responses=responses,
            )
        )
        bucket = bucket_after(bucket, interval)

    totals = {
        name: sum(row[name] for row in per_bucket.values())
        for name in ("responses", "promoters", "detractors", *_sentiment_counts())
    }
    return NpsReport(
        start=start,
        end=end,
        interval=interval,
        nps=nps_score(**_score_counts(totals)),
        responses=totals["responses"],
        promoters=totals["promoters"],
        passives=totals["responses"] - totals["promoters"] - totals["detractors"],
        detractors=totals["detractors"],
        series=series,
        by_stage=_by_stage(per_stage),
        sentiment=SentimentCounts(
            positive=totals["positive"],
            neutral=totals["neutral"],
            negative=totals["negative"],
            pending=totals["pending"],
        ),
    )


def _score_counts(row: dict[str, Any]) -> dict[str, int]:
    return {name: row[name] for name in ("promoters", "detractors", "responses")}


def _by_stage(rows: list[dict[str, Any]]) -> list[NpsStage]:
    merged: dict[str, dict[str, int]] = {}
    for row in rows:  # one row per stored stage; "" and unknown values fold into "unknown"
        stage = row["journey_stage"] if row["journey_stage"] in STAGE_ORDER else UNKNOWN_STAGE
        counts = merged.setdefault(stage, {"promoters": 0, "detractors": 0, "responses": 0})
        for name in counts:
            counts[name] += row[name]
    order = {stage: index for index, stage in enumerate((*STAGE_ORDER, UNKNOWN_STAGE))}
    return [
        NpsStage(stage=stage, nps=nps_score(**counts), responses=counts["responses"])
        for stage, counts in sorted(merged.items(), key=lambda item: order[item[0]])
    ]
