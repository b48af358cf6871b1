"""GraphQL of analytics: the funnel report (staff with `analytics.view_event`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import graphene

from analytics.reports import funnel, window_parse
from cmsproject.errors import FieldError, Forbidden, ValidationError

DEFAULT_WINDOW = "7d"


class FunnelStep(graphene.ObjectType):
    step = graphene.String(required=True)
    count = graphene.Int(required=True)
    conversion_rate = graphene.Float(
        required=True, description="This step's count over the first step's."
    )


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
