"""GraphQL of segments: `segments` for staff who may view them (the same rule as REST)."""

from __future__ import annotations

from typing import Any

import graphene
from graphene.types.generic import GenericScalar

from cmsproject.errors import Forbidden
from segmentation.models import Segment
from segmentation.selectors import segments_list


class SegmentNode(graphene.ObjectType):
    class Meta:
        name = "Segment"

    key = graphene.String(required=True)
    name = graphene.String(required=True)
    kind = graphene.String(required=True)
    rules = GenericScalar(required=True)
    member_count = graphene.Int(required=True)
    evaluated_at = graphene.DateTime()


class SegmentationQueries(graphene.ObjectType):
    segments = graphene.List(
        graphene.NonNull(SegmentNode),
        required=True,
        description="Every segment, by name (staff with the segment view permission).",
    )

    @staticmethod
    def resolve_segments(root: Any, info: graphene.ResolveInfo) -> list[Segment]:
        user = getattr(info.context, "user", None)
        if not (user and user.is_authenticated and user.is_staff):
            raise Forbidden("Reading segments needs staff permission.")
        if not user.has_perm("segmentation.view_segment"):
            raise Forbidden("Reading segments needs the segment view permission.")
        return list(segments_list())
