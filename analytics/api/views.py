"""REST views of analytics: event ingestion, event types, a customer's interaction history."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication

from analytics.api.serializers import (
    EventBatchSerializer,
    EventIngestSerializer,
    EventSerializer,
    EventTypeSerializer,
    IngestResultSerializer,
)
from analytics.models import Event, EventType
from analytics.services import Caller, event_type_save, events_accept
from cmsproject.auth import ApiKeyAuthentication, StaffModelPermission, request_api_key
from cmsproject.errors import FieldError, ValidationError
from cmsproject.pagination import CursorPagination
from cmsproject.throttling import ApiKeyThrottle, EventsIngestThrottle, UserThrottle
from customers.selectors import customer_external_id_for_user, customer_get

PROBLEM = OpenApiResponse(description="application/problem+json")


class StatelessBearerAuthentication(JWTStatelessUserAuthentication):
    """The JWT's claims without a user lookup: ingestion makes no SQL query."""


class EventIngestApi(APIView):
    """Anyone may post events about an anonymous id; `userId` needs a customer JWT (its own id)
    or an API key with `events:write`."""

    authentication_classes = (StatelessBearerAuthentication, ApiKeyAuthentication)
    permission_classes = ()
    throttle_classes = (EventsIngestThrottle, UserThrottle, ApiKeyThrottle)
    audit_writes = False  # never a database write per request
    batch = False

    def _caller(self, request: Request) -> Caller:
        api_key = request_api_key(request)
        if api_key is not None:
            return Caller(may_name_any_user=api_key.has_scope("events:write"))
        if request.user and request.user.is_authenticated:
            return Caller(external_id=customer_external_id_for_user(user_id=request.user.pk))
        return Caller()

    def _events(self, request: Request) -> list[Any]:
        body = request.data
        if self.batch:
            if not isinstance(body, dict) or not isinstance(body.get("events"), list):
                raise ValidationError(
                    'Send {"events": [...]}.',
                    errors=[FieldError("events", "required", "A list of events.")],
                )
            return body["events"]
        if not isinstance(body, dict):
            raise ParseError("Send one event as a JSON object.")
        return [body]

    def post(self, request: Request) -> Response:
        result = events_accept(
            events=self._events(request),
            caller=self._caller(request),
            strict_types=settings.CMS_EVENTS_STRICT_TYPES,
        )
        if not self.batch and result.rejected:
            errors = [FieldError(**error) for error in result.rejected[0]["errors"]]
            raise ValidationError("The event is invalid; see errors.", errors=errors)
        body: dict[str, Any] = {"accepted": result.accepted}
        if self.batch:
            body["rejected"] = result.rejected
        return Response(body, status=status.HTTP_202_ACCEPTED)


@extend_schema(
    request=EventIngestSerializer,
    responses={202: IngestResultSerializer, 400: PROBLEM, 403: PROBLEM, 503: PROBLEM},
)
class EventSingleIngestApi(EventIngestApi):
    def post(self, request: Request) -> Response:
        return super().post(request)


@extend_schema(
    request=EventBatchSerializer,
    responses={202: IngestResultSerializer, 400: PROBLEM, 403: PROBLEM, 503: PROBLEM},
)
class EventBatchIngestApi(EventIngestApi):
    batch = True

    def post(self, request: Request) -> Response:
        return super().post(request)


class EventTypeListApi(generics.ListCreateAPIView):
    permission_classes = (StaffModelPermission,)
    permission_model = EventType
    queryset = EventType.objects.all()
    serializer_class = EventTypeSerializer

    def perform_create(self, serializer: EventTypeSerializer) -> None:
        serializer.instance = event_type_save(**_event_type_values(serializer))


class EventTypeDetailApi(generics.RetrieveUpdateAPIView):
    permission_classes = (StaffModelPermission,)
    permission_model = EventType
    queryset = EventType.objects.all()
    serializer_class = EventTypeSerializer
    lookup_field = "name"

    def perform_update(self, serializer: EventTypeSerializer) -> None:
        serializer.instance = event_type_save(
            event_type=serializer.instance, **_event_type_values(serializer)
        )


def _event_type_values(serializer: EventTypeSerializer) -> dict[str, Any]:
    values = dict(serializer.validated_data)
    if "journey_stage" in values:
        values["journey_stage"] = values["journey_stage"] or ""
    return values


class HistoryPagination(CursorPagination):
    ordering = ("-timestamp", "-id")


class CustomerEventsApi(generics.ListAPIView):
    """A customer's interaction history, newest first (anonymous history included once linked)."""

    permission_classes = (StaffModelPermission,)
    permission_model = Event
    serializer_class = EventSerializer
    pagination_class = HistoryPagination

    def get_queryset(self) -> Any:
        customer = customer_get(customer_id=self.kwargs["pk"])  # NotFound, also once erased
        return Event.objects.filter(customer_id=customer.pk)
