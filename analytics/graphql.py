"""GraphQL of analytics: the funnel and NPS reports (staff with `analytics.view_event`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import graphene

from analytics.nps import DEFAULT_INTERVAL, nps_report
from analytics.reports import funnel, window_parse
from cmsproject.errors import FieldError, Forbidden, ValidationError

DEFAULT_WINDOW = "7d"


class FunnelStep(graphene.ObjectType):
    step = graphene.String(required=True)
    count = graphene.Int(required=True)
    conversion_rate = graphene.Float(
        required=True, description="This step's count over the first step's."
    )


class NpsBucket(graphene.ObjectType):
    bucket = graphene.DateTime(required=True, description="Start of the UTC bucket.")
    nps = graphene.Float(description="Null when nobody answered.")
    responses = graphene.Int(required=True)


class NpsStage(graphene.ObjectType):
    stage = graphene.String(
        required=True, description="The respondents' lifecycle stage when they answered."
    )
    nps = graphene.Float()
    responses = graphene.Int(required=True)


class NpsSentiment(graphene.ObjectType):
    positive = graphene.Int(required=True)
    neutral = graphene.Int(required=True)
    negative = graphene.Int(required=True)
    pending = graphene.Int(required=True, description="Not read by the sentiment job yet.")


class Nps(graphene.ObjectType):
    nps = graphene.Float(description="% promoters - % detractors; null without answers.")
    responses = graphene.Int(required=True)
    promoters = graphene.Int(required=True)
    passives = graphene.Int(required=True)
    detractors = graphene.Int(required=True)
    series = graphene.List(graphene.NonNull(NpsBucket), required=True)
    by_stage = graphene.List(graphene.NonNull(NpsStage), required=True)
    sentiment = graphene.Field(NpsSentiment, required=True)
    start = graphene.DateTime(required=True)
    end = graphene.DateTime(required=True)
    interval = graphene.String(required=True)


def _require_report_reader(info: graphene.ResolveInfo) -> None:
    """The REST reports' rule (`StaffModelPermission` on Event, for reads), for resolvers."""
    user = getattr(info.context, "user", None)
    if not (user and user.is_authenticated and user.is_staff):
        raise Forbidden("Analytics reports are for staff.")
    if not user.has_perm("analytics.view_event"):
        raise Forbidden("Reading analytics reports needs the analytics view permission.")


class AnalyticsQueries(graphene.ObjectType):
    funnel = graphene.List(
        graphene.NonNull(FunnelStep),
        description="Ordered funnel. Give either `startEvent` and `endEvent`, or `steps`.",
        start_event=graphene.String(description="First step (with `endEvent`)."),
        end_event=graphene.String(description="Last step (with `startEvent`)."),
        steps=graphene.List(graphene.NonNull(graphene.String), description="1 to 10 steps."),
        window=graphene.String(description="30m, 24h, 7d... (default 7d)."),
        from_=graphene.DateTime(name="from", description="Entries from this time."),
        to=graphene.DateTime(description="Entries before this time."),
    )

    @staticmethod
    def resolve_funnel(
        root: Any,
        info: graphene.ResolveInfo,
        start_event: str | None = None,
        end_event: str | None = None,
        steps: list[str] | None = None,
        window: str | None = None,
        from_: datetime | None = None,
        to: datetime | None = None,
    ) -> list[Any]:
        _require_report_reader(info)
        pair_given = start_event is not None or end_event is not None
        if pair_given == (steps is not None) or (
            pair_given and (start_event is None or end_event is None)
        ):
            raise ValidationError(
                "Give either startEvent and endEvent, or steps.",
                errors=[
                    FieldError(
                        "steps", "invalid", "Exactly one form: startEvent+endEvent or steps."
                    )
                ],
            )
        chosen = steps if steps is not None else [start_event, end_event]
        return funnel(
            steps=list(chosen),
            window=window_parse(window or DEFAULT_WINDOW),
            start=from_,
            end=to,
        )

    nps = graphene.Field(
        Nps,
        description="Net Promoter Score of the answers in [start, end) (default: last 30 days).",
        start=graphene.DateTime(),
        end=graphene.DateTime(),
        interval=graphene.String(description="day, week or month (default day)."),
    )

    @staticmethod
    def resolve_nps(
        root: Any,
        info: graphene.ResolveInfo,
        start: datetime | None = None,
        end: datetime | None = None,
        interval: str | None = None,
    ) -> Any:
        _require_report_reader(info)
        return nps_report(start=start, end=end, interval=interval or DEFAULT_INTERVAL)
