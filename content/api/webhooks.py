"""REST views of outgoing webhooks (staff with the WebhookEndpoint model permissions only).

Serializers check JSON types; `content.webhooks` checks meaning (http(s) URL, known events,
secret length) so the admin and the API accept exactly the same endpoints. A secret is shown in
full once, in the answer to the POST that created it; every other answer masks it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cmsproject.auth import StaffModelPermission
from cmsproject.pagination import CursorPagination
from content.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from content.webhooks import (
    ENDPOINT_FIELDS,
    webhook_deliveries_recent,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_get,
    webhook_endpoint_list,
    webhook_endpoint_update,
    webhook_events,
    webhook_secret_mask,
)

PROBLEM = OpenApiResponse(description="application/problem+json")


# --- Serializers ---------------------------------------------------------------------------------
class WebhookEndpointWriteSerializer(serializers.Serializer):
    url = serializers.CharField(trim_whitespace=False, help_text="http:// or https:// URL.")
    events = serializers.ListField(
        child=serializers.CharField(),
        help_text="Event names, e.g. `content.published`.",
    )
    secret = serializers.CharField(
        required=False,
        allow_null=True,
        trim_whitespace=False,
        help_text="At least 16 characters; omit it on creation to have one generated.",
    )
    name = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    is_active = serializers.BooleanField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(ENDPOINT_FIELDS))
        if unknown:
            raise serializers.ValidationError(
                {key: ["This field is not known."] for key in unknown}, code="unknown_field"
            )
        return attrs


class WebhookEndpointSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.CharField(), read_only=True)
    secret = serializers.SerializerMethodField(help_text="Masked: only its last 4 characters.")
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="Who created it."
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "name", "url", "events", "is_active", "secret", "created_by", "created_at"]
        read_only_fields = fields

    def get_secret(self, endpoint: WebhookEndpoint) -> str:
        return webhook_secret_mask(endpoint.secret)


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(help_text="The full secret. Shown once; store it now.")


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "status_code", "error", "duration_ms", "attempted_at"]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    delivery_id = serializers.CharField(
        source="idempotency_key",
        help_text="Sent as `X-Webhook-Delivery` and as the body's `id`; the same on every retry.",
    )
    data = serializers.JSONField(source="payload")
    log = WebhookAttemptSerializer(many=True, help_text="Every attempt, first to last.")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "delivery_id",
            "event",
            "status",
            "attempts",
            "next_attempt_at",
            "created_at",
            "data",
            "log",
        ]
        read_only_fields = fields


# --- Views ---------------------------------------------------------------------------------------
class WebhookAccess:
    permission_classes = (StaffModelPermission,)
    permission_model = WebhookEndpoint


class WebhookListApi(WebhookAccess, generics.ListAPIView):
    serializer_class = WebhookEndpointSerializer

    def get_queryset(self) -> Any:
        return webhook_endpoint_list()

    @extend_schema(
        request=WebhookEndpointWriteSerializer,
        responses={201: WebhookEndpointCreatedSerializer, 400: PROBLEM, 403: PROBLEM},
        description="Known events: " + ", ".join(f"`{name}`" for name in webhook_events()) + ".",
    )
    def post(self, request: Request) -> Response:
        body = WebhookEndpointWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint, _secret = webhook_endpoint_create(created_by=request.user, **body.validated_data)
        return Response(
            WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED
        )


class WebhookDetailApi(WebhookAccess, APIView):
    @extend_schema(responses={200: WebhookEndpointSerializer, 404: PROBLEM})
    def get(self, request: Request, pk: int) -> Response:
        return Response(WebhookEndpointSerializer(webhook_endpoint_get(endpoint_id=pk)).data)

    @extend_schema(
        request=WebhookEndpointWriteSerializer(partial=True),
        responses={200: WebhookEndpointSerializer, 400: PROBLEM, 404: PROBLEM},
    )
    def patch(self, request: Request, pk: int) -> Response:
        endpoint = webhook_endpoint_get(endpoint_id=pk)
        body = WebhookEndpointWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_update(endpoint=endpoint, data=body.validated_data)
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(responses={204: None, 404: PROBLEM})
    def delete(self, request: Request, pk: int) -> Response:
        webhook_endpoint_delete(endpoint=webhook_endpoint_get(endpoint_id=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliveryPagination(CursorPagination):
    page_size = 20


class WebhookDeliveryListApi(WebhookAccess, generics.ListAPIView):
    """The endpoint's recent deliveries, newest first, each with its attempts log."""

    serializer_class = WebhookDeliverySerializer
    pagination_class = DeliveryPagination

    def get_queryset(self) -> Any:
        endpoint = webhook_endpoint_get(endpoint_id=self.kwargs["pk"])
        return webhook_deliveries_recent(
            endpoint=endpoint, status=self.request.query_params.get("status")
        )

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "status", enum=WebhookDelivery.Status.values, description="Only this status."
            )
        ],
        responses={200: WebhookDeliverySerializer(many=True), 404: PROBLEM},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
