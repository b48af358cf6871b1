"""REST views of the analytics reports: funnel, time series, journey stages (staff only).

Each view parses its query parameters, lets `StaffModelPermission` require `analytics.view_event`,
calls one selector of `analytics.reports` and shapes the answer. A bad parameter is a 400
problem+json naming it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.models import Event, Interval
from analytics.reports import funnel, journeys, timeseries, window_parse
from cmsproject.auth import StaffModelPermission
from cmsproject.errors import FieldError, ValidationError

PROBLEM = OpenApiResponse(description="application/problem+json")
ERRORS = {400: PROBLEM, 401: PROBLEM, 403: PROBLEM}
DEFAULT_WINDOW = "7d"
# `+05:00` in an unencoded query string arrives as ` 05:00`: give the plus sign back.
SPACED_OFFSET = re.compile(r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)")


# --- Response shapes (documentation and output alike) -------------------------------------------
class FunnelStepSerializer(serializers.Serializer):
    step = serializers.CharField()
    count = serializers.IntegerField()
    conversionRate = serializers.FloatField(  # the contract's name
        source="conversion_rate", help_text="This step's count over the first step's."
    )


class FunnelSerializer(serializers.Serializer):
    steps = FunnelStepSerializer(many=True)


class TimeseriesBucketSerializer(serializers.Serializer):
    bucket = serializers.DateTimeField(help_text="Start of the UTC bucket.")
    count = serializers.IntegerField()
    uniques = serializers.IntegerField(help_text="Distinct customers or anonymous ids.")


class TimeseriesSerializer(serializers.Serializer):
    results = TimeseriesBucketSerializer(many=True)


class JourneyStageSerializer(serializers.Serializer):
    stage = serializers.ChoiceField(choices=["awareness", "consideration", "action"])
    count = serializers.IntegerField()
    uniques = serializers.IntegerField()
    drop_off = serializers.FloatField(
        allow_null=True,
        help_text="1 - uniques / the previous stage's uniques; null for the first stage.",
    )


class JourneysSerializer(serializers.Serializer):
    stages = JourneyStageSerializer(many=True)


# --- Parameters ---------------------------------------------------------------------------------
FROM = OpenApiParameter(
    "from", OpenApiTypes.DATETIME, description="Start (ISO 8601 with a zone, or a UTC date)."
)
TO = OpenApiParameter(
    "to", OpenApiTypes.DATETIME, description="End, excluded (ISO 8601 with a zone, or a UTC date)."
)


def moment_param(params: Any, attr: str) -> datetime | None:
    raw = params.get(attr)
    if raw is None or raw == "":
        return None
    raw = SPACED_OFFSET.sub(r"\1+\2", raw.strip())
    try:
        # A date first: Python reads `2026-11-20` as a datetime too, without a zone.
        day = parse_date(raw)
        if day is not None:
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            moment = parse_datetime(raw)
        if moment is not None and moment.tzinfo is not None:
            # In UTC: PostgreSQL refuses offsets past ±15:59 that Python takes (a 500), and an
            # instant with no UTC date (before year 1, after 9999) is no time we hold data for.
            moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValidationError(
            f"`{attr}` is not a time.",
            errors=[
                FieldError(
                    attr, "invalid", "ISO 8601 with a zone (2026-11-20T10:00:00Z) or a date."
                )
            ],
        )
    return moment


def _range(request: Request) -> dict[str, datetime | None]:
    return {
        "start": moment_param(request.query_params, "from"),
        "end": moment_param(request.query_params, "to"),
    }


def _required(request: Request, attr: str) -> str:
    value = request.query_params.get(attr, "").strip()
    if not value:
        raise ValidationError(
            f"`{attr}` is required.", errors=[FieldError(attr, "required", "This is required.")]
        )
    return value


class ReportApi(APIView):
    permission_classes = (StaffModelPermission,)
    permission_model = Event  # reading reports needs analytics.view_event


class FunnelApi(ReportApi):
    @extend_schema(
        summary="Ordered funnel",
        description="Subjects (customers, or anonymous ids) who did the steps in order, each "
        "within `window` of their first step, entering with a first step in [from, to).",
        parameters=[
            OpenApiParameter(
                "steps",
                str,
                required=True,
                description="Event types in order, comma-separated (1 to 10).",
            ),
            OpenApiParameter(
                "window", str, description="30m, 24h, 7d... (default 7d, at most 365d)."
            ),
            FROM,
            TO,
        ],
        responses={200: FunnelSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        steps = [step.strip() for step in _required(request, "steps").split(",")]
        window = window_parse(request.query_params.get("window") or DEFAULT_WINDOW)
        result = funnel(steps=steps, window=window, **_range(request))
        return Response(FunnelSerializer({"steps": result}).data)


class TimeseriesApi(ReportApi):
    @extend_schema(
        summary="Events per time bucket",
        description="From the roll-ups; every bucket in the range is present (zero when empty). "
        "Without `to` the range ends now; without `from` it covers 60 minutes, 48 hours or 30 "
        "days. At most 10,000 buckets.",
        parameters=[
            OpenApiParameter("event", str, required=True, description="An event type."),
            OpenApiParameter(
                "interval", str, enum=Interval.values, description="Bucket size (default day)."
            ),
            FROM,
            TO,
        ],
        responses={200: TimeseriesSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        result = timeseries(
            event=_required(request, "event"),
            interval=request.query_params.get("interval") or Interval.DAY,
            **_range(request),
        )
        return Response(TimeseriesSerializer({"results": result}).data)


class JourneysApi(ReportApi):
    @extend_schema(
        summary="Journey stages and drop-offs",
        description="Events and distinct subjects per stage (awareness, consideration, action) "
        "over the UTC days overlapping [from, to) (default: the last 30 days), from the daily "
        "roll-ups.",
        parameters=[FROM, TO],
        responses={200: JourneysSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        return Response(JourneysSerializer(journeys(**_range(request))).data)
