"""`GET /api/v1/analytics/nps/`: Net Promoter Score over a range, per bucket and per lifecycle
stage (staff with `analytics.view_event`, like the other reports). Included by the root URLconf
under `api/v1/`."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from analytics.api.reports import ERRORS, ReportApi, moment_param
from analytics.nps import DEFAULT_INTERVAL, INTERVALS, nps_report


class NpsBucketSerializer(serializers.Serializer):
    bucket = serializers.DateTimeField(help_text="Start of the UTC day, ISO week or month.")
    nps = serializers.FloatField(allow_null=True, help_text="Null when nobody answered.")
    responses = serializers.IntegerField()


class NpsStageSerializer(serializers.Serializer):
    stage = serializers.CharField(
        help_text="The respondents' lifecycle stage when they answered (`unknown` if not kept)."
    )
    nps = serializers.FloatField(allow_null=True)
    responses = serializers.IntegerField()


class NpsSentimentSerializer(serializers.Serializer):
    positive = serializers.IntegerField()
    neutral = serializers.IntegerField()
    negative = serializers.IntegerField()
    pending = serializers.IntegerField(help_text="Answers the sentiment job has not read yet.")


class NpsSerializer(serializers.Serializer):
    nps = serializers.FloatField(
        allow_null=True,
        help_text="% promoters (9-10) - % detractors (0-6), one decimal; null without answers.",
    )
    responses = serializers.IntegerField()
    promoters = serializers.IntegerField()
    passives = serializers.IntegerField()
    detractors = serializers.IntegerField()
    series = NpsBucketSerializer(many=True)
    by_stage = NpsStageSerializer(many=True)
    sentiment = NpsSentimentSerializer()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    interval = serializers.ChoiceField(choices=INTERVALS)


def _moment_param(request: Request, name: str, alias: str) -> Any:
    """`start`/`end`, or `from`/`to` as the other reports spell them; errors name the one sent."""
    attr = name if name in request.query_params or alias not in request.query_params else alias
    return moment_param(request.query_params, attr)


class NpsApi(ReportApi):
    @extend_schema(
        summary="Net Promoter Score",
        description="Answers given in [start, end) (default: the last 30 days), overall, per UTC "
        "bucket (every bucket present) and per lifecycle stage of the respondents when they "
        "answered, with the comments' sentiment.",
        parameters=[
            OpenApiParameter(
                "start",
                OpenApiTypes.DATETIME,
                description="Start (ISO 8601 with a zone, or a UTC date); `from` also works.",
            ),
            OpenApiParameter(
                "end",
                OpenApiTypes.DATETIME,
                description="End, excluded (ISO 8601 with a zone, or a UTC date); `to` also works.",
            ),
            OpenApiParameter(
                "interval", str, enum=INTERVALS, description=f"Bucket size ({DEFAULT_INTERVAL})."
            ),
        ],
        responses={200: NpsSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        report = nps_report(
            start=_moment_param(request, "start", "from"),
            end=_moment_param(request, "end", "to"),
            interval=request.query_params.get("interval") or DEFAULT_INTERVAL,
        )
        return Response(NpsSerializer(report).data)


urlpatterns: list[Any] = [
    path("analytics/nps/", NpsApi.as_view(), name="analytics-nps"),
]
