"""`POST /api/v1/feedback/`: anyone may answer; who they are decides whose answer it is (see
`customers.feedback`). Throttled by the default throttles (per IP, user or API key)."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cmsproject.auth import request_api_key
from cmsproject.models import ApiKey
from customers.feedback import (
    ANONYMOUS_ID_HEADER,
    MAX_COMMENT_CHARS,
    MAX_CONTEXT_BYTES,
    FeedbackCaller,
    feedback_create,
)
from customers.models import Feedback
from customers.selectors import customer_for_user

PROBLEM = OpenApiResponse(description="application/problem+json")


class FeedbackCreateSerializer(serializers.Serializer):
    """One answer. `score` must be a JSON integer: `"9"`, `9.0` and `true` are refused. Unknown
    fields are refused too."""

    # Documentation: `customers.feedback.feedback_create` checks the body, for every caller.
    score = serializers.IntegerField(min_value=0, max_value=10)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=MAX_COMMENT_CHARS)
    context = serializers.DictField(
        required=False,
        help_text=f"Where it was given (page, order...): a JSON object, at most "
        f"{MAX_CONTEXT_BYTES} bytes.",
    )
    anonymousId = serializers.CharField(
        required=False,
        help_text=f"The browser's anonymous id (or the `{ANONYMOUS_ID_HEADER}` header).",
    )
    userId = serializers.CharField(
        required=False,
        help_text="Whose answer this is: a customer token's own, or any for an API key with "
        "`customers:write`.",
    )


class FeedbackSerializer(serializers.ModelSerializer):
    sentiment = serializers.FloatField(
        read_only=True, allow_null=True, help_text="Added later by a worker (VADER, -1 to 1)."
    )

    class Meta:
        model = Feedback
        fields = ["id", "score", "comment", "context", "created_at", "sentiment"]
        read_only_fields = fields


class FeedbackCreateApi(APIView):
    permission_classes = ()  # anyone: a customer, a site's backend, an anonymous visitor
    # An answer is no staff action, and the row itself says who answered and when.
    audit_writes = False

    @extend_schema(
        summary="Answer the NPS question",
        request=FeedbackCreateSerializer,
        parameters=[
            OpenApiParameter(
                ANONYMOUS_ID_HEADER,
                str,
                OpenApiParameter.HEADER,
                description="The anonymous visitor's id (instead of `anonymousId`).",
            )
        ],
        responses={201: FeedbackSerializer, 400: PROBLEM, 401: PROBLEM, 403: PROBLEM},
    )
    def post(self, request: Request) -> Response:
        feedback = feedback_create(
            body=request.data,
            caller=self._caller(request),
            anonymous_id_header=request.headers.get(ANONYMOUS_ID_HEADER),
        )
        return Response(FeedbackSerializer(feedback).data, status=status.HTTP_201_CREATED)

    @staticmethod
    def _caller(request: Request) -> FeedbackCaller:
        api_key = request_api_key(request)
        if api_key is not None:
            return FeedbackCaller(
                may_name_customers=api_key.has_scope(ApiKey.Scope.CUSTOMERS_WRITE)
            )
        return FeedbackCaller(customer=customer_for_user(user=request.user))


urlpatterns: list[Any] = [
    path("feedback/", FeedbackCreateApi.as_view(), name="feedback-create"),
]
