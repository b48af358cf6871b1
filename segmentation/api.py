"""REST views of segments (staff with the segment permissions): CRUD, members, preview, the
criteria's JSON Schema, static members and recompute on demand."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cmsproject.auth import StaffModelPermission
from cmsproject.celery import enqueue_on_commit
from cmsproject.errors import FieldError, NotFound, ValidationError
from cmsproject.pagination import CursorPagination, PageNumberPagination
from segmentation.models import SEGMENT_KEY_VALIDATOR, Segment, SegmentMembership
from segmentation.selectors import segment_preview
from segmentation.services import (
    segment_create,
    segment_delete,
    segment_update,
    static_members_add,
    static_members_from_csv,
    static_members_remove,
)

PROBLEM = OpenApiResponse(description="application/problem+json")


class SegmentSerializer(serializers.ModelSerializer):
    key = serializers.CharField(max_length=63, validators=[SEGMENT_KEY_VALIDATOR])
    rules = serializers.JSONField(required=False, default=dict)

    class Meta:
        model = Segment
        fields = [
            "key",
            "name",
            "description",
            "kind",
            "rules",
            "member_count",
            "evaluated_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["member_count", "evaluated_at", "created_at", "updated_at"]


class SegmentUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Segment.Kind.choices, required=False)
    rules = serializers.JSONField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(self.initial_data) - set(self.fields)
        if unknown:
            raise serializers.ValidationError(
                {key: "Unknown or read-only field." for key in unknown}
            )
        return attrs


class MemberSerializer(serializers.ModelSerializer):
    class Meta:
        model = SegmentMembership
        fields = ["subject", "customer", "entered_at", "exited_at"]


class CustomerIdsSerializer(serializers.Serializer):
    customer_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), max_length=10_000
    )


def segment_get(*, key: str) -> Segment:
    try:
        return Segment.objects.get(key=key)
    except Segment.DoesNotExist:
        raise NotFound(f"No segment '{key}'.") from None


class SegmentAccess:
    permission_classes = (StaffModelPermission,)
    permission_model = Segment


class SegmentListApi(SegmentAccess, APIView):
    pagination_class = PageNumberPagination  # also tells the OpenAPI document the list is paged

    @extend_schema(responses={200: SegmentSerializer(many=True)})
    def get(self, request: Request) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(Segment.objects.order_by("key"), request, view=self)
        return paginator.get_paginated_response(SegmentSerializer(page, many=True).data)

    @extend_schema(
        request=SegmentSerializer, responses={201: SegmentSerializer, 400: PROBLEM, 409: PROBLEM}
    )
    def post(self, request: Request) -> Response:
        body = SegmentSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        segment = segment_create(**body.validated_data)
        return Response(SegmentSerializer(segment).data, status=status.HTTP_201_CREATED)


class SegmentDetailApi(SegmentAccess, APIView):
    @extend_schema(responses={200: SegmentSerializer, 404: PROBLEM})
    def get(self, request: Request, key: str) -> Response:
        return Response(SegmentSerializer(segment_get(key=key)).data)

    @extend_schema(
        request=SegmentUpdateSerializer,
        responses={200: SegmentSerializer, 400: PROBLEM, 404: PROBLEM},
    )
    def patch(self, request: Request, key: str) -> Response:
        body = SegmentUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        segment = segment_update(segment=segment_get(key=key), **body.validated_data)
        return Response(SegmentSerializer(segment).data)

    @extend_schema(responses={204: None, 404: PROBLEM, 409: PROBLEM})
    def delete(self, request: Request, key: str) -> Response:
        segment_delete(segment=segment_get(key=key))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SegmentMembersApi(SegmentAccess, APIView):
    """Current members (cursor pages); static segments also take members by id."""

    pagination_class = CursorPagination  # also tells the OpenAPI document the list is paged

    @extend_schema(responses={200: MemberSerializer(many=True), 404: PROBLEM})
    def get(self, request: Request, key: str) -> Response:
        segment = segment_get(key=key)
        paginator = self.pagination_class()
        members = SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True)
        page = paginator.paginate_queryset(members, request, view=self)
        return paginator.get_paginated_response(MemberSerializer(page, many=True).data)

    @extend_schema(
        request=CustomerIdsSerializer,
        responses={200: OpenApiResponse(description="{changed}"), 409: PROBLEM},
    )
    def post(self, request: Request, key: str) -> Response:
        body = CustomerIdsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        changed = static_members_add(
            segment=segment_get(key=key), customer_ids=body.validated_data["customer_ids"]
        )
        return Response({"changed": changed})

    @extend_schema(
        request=CustomerIdsSerializer,
        responses={200: OpenApiResponse(description="{changed}"), 409: PROBLEM},
    )
    def delete(self, request: Request, key: str) -> Response:
        body = CustomerIdsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        changed = static_members_remove(
            segment=segment_get(key=key), customer_ids=body.validated_data["customer_ids"]
        )
        return Response({"changed": changed})


class SegmentMembersImportApi(SegmentAccess, APIView):
    parser_classes = (MultiPartParser,)

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "replace": {"type": "boolean"},
                },
            }
        },
        responses={
            200: OpenApiResponse(description="{matched, unknown, changed}"),
            400: PROBLEM,
            409: PROBLEM,
        },
    )
    def post(self, request: Request, key: str) -> Response:
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError(
                "Send a CSV file.", errors=[FieldError("file", "required", "A CSV file.")]
            )
        replace = str(request.data.get("replace", "")).lower() in ("1", "true", "yes", "on")
        return Response(
            static_members_from_csv(
                segment=segment_get(key=key), data=upload.read(), replace=replace
            )
        )


class PreviewPermission(StaffModelPermission):
    """Previewing reads customers: the segment view permission (a POST that changes nothing)."""

    perms_for_method = {**StaffModelPermission.perms_for_method, "POST": "view"}


class SegmentPreviewApi(APIView):
    """`POST /segments/preview/ {"rules"}`: how many customers match, and a sample."""

    permission_classes = (PreviewPermission,)
    permission_model = Segment

    @extend_schema(
        request={
            "application/json": {"type": "object", "properties": {"rules": {"type": "object"}}}
        },
        responses={200: OpenApiResponse(description="{count, sample}"), 400: PROBLEM, 403: PROBLEM},
    )
    def post(self, request: Request) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        return Response(segment_preview(rules=body.get("rules")))


class SegmentSchemaApi(APIView):
    permission_classes = (AllowAny,)

    @extend_schema(responses={200: OpenApiResponse(description="JSON Schema of the criteria")})
    def get(self, request: Request) -> Response:
        from segmentation.criteria import CRITERIA_SCHEMA

        return Response(CRITERIA_SCHEMA)


class RecomputePermission(StaffModelPermission):
    perms_for_method = {**StaffModelPermission.perms_for_method, "POST": "change"}


class SegmentRecomputeApi(APIView):
    permission_classes = (RecomputePermission,)
    permission_model = Segment

    @extend_schema(request=None, responses={202: None, 404: PROBLEM})
    def post(self, request: Request, key: str) -> Response:
        from segmentation.tasks import segment_recompute_task

        enqueue_on_commit(segment_recompute_task, segment_get(key=key).pk)
        return Response(status=status.HTTP_202_ACCEPTED)
