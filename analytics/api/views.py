"""REST views of analytics: event ingestion, event types, a customer's interaction history."""

from __future__ import annotations

import codecs
import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ParseError, Throttled
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.json import strict_constant
from rest_framework.utils.mediatypes import media_type_matches, order_by_precedence
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
from analytics.services import Caller, event_accept_anonymous, event_type_save, events_accept
from cmsproject.auth import (
    ApiKeyAuthentication,
    StaffModelPermission,
    request_api_key,
)
from cmsproject.errors import (
    PROBLEM_CONTENT_TYPE,
    DomainError,
    FieldError,
    ValidationError,
    problem_body,
)
from cmsproject.fastpath import served_before_drf
from cmsproject.pagination import CursorPagination
from cmsproject.parsers import JSONParser
from cmsproject.throttling import (
    ApiKeyThrottle,
    EventsIngestThrottle,
    UserThrottle,
    anonymous_throttle_window,
)
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
            raise _invalid_event(result.rejected[0])
        body: dict[str, Any] = {"accepted": result.accepted}
        if self.batch:
            body["rejected"] = result.rejected
        return Response(body, status=status.HTTP_202_ACCEPTED)


def _invalid_event(rejected: dict[str, Any]) -> ValidationError:
    errors = [FieldError(**error) for error in rejected["errors"]]
    return ValidationError("The event is invalid; see errors.", errors=errors)


@extend_schema(
    request=EventIngestSerializer,
    responses={202: IngestResultSerializer, 400: PROBLEM, 403: PROBLEM, 503: PROBLEM},
)
class EventSingleIngestApi(EventIngestApi):
    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        """One anonymous event (no credentials at all, a JSON object in UTF-8) is what browsers
        send most: it is answered before DRF, its throttle count and its append in one Redis
        round trip. Everything else (tokens, keys, bodies DRF would refuse or negotiate
        otherwise) goes through DRF as usual, which answers it as it always has."""
        fast_path = AnonymousEventIngest(cls(**initkwargs))

        def answer(request: HttpRequest) -> HttpResponse | None:
            event = fast_path.event_of(request)
            return None if event is None else fast_path.respond(request, event)

        return served_before_drf(super().as_view(**initkwargs), methods=("POST",), answer=answer)

    def post(self, request: Request) -> Response:
        return super().post(request)


# What DRF's JSONParser calls (strict: no NaN or Infinity), without a decoder per request.
_json_decode = json.JSONDecoder(parse_constant=strict_constant).decode


class AnonymousEventIngest:
    """`POST /api/v1/events/` for an anonymous caller, outside DRF's request cycle
    (bench/README.md, "Single-event ingestion before DRF"), answering exactly as the DRF view
    would: the same throttle counter, service, status codes, problem documents and headers. It
    takes only requests DRF would parse as one JSON object and render as JSON; `event_of`
    returns None for the rest, which DRF then answers with its own 400, 406 or 415."""

    def __init__(self, view: APIView) -> None:
        self.renderers = tuple(view.renderer_classes)
        self.parses_json_only = tuple(view.parser_classes) == (JSONParser,)
        self.headers = view.default_response_headers  # Allow (and Vary when negotiating)
        self.accepted = JSONRenderer().render({"accepted": 1})

    def event_of(self, request: HttpRequest) -> dict[str, Any] | None:
        if not (self.parses_json_only and self._renders_json(request)):
            return None
        content_type = request.META.get("CONTENT_TYPE", "")
        if content_type != "application/json" and not media_type_matches(
            JSONParser.media_type, content_type
        ):
            return None
        if request.encoding and codecs.lookup(request.encoding).name != "utf-8":
            return None
        try:
            event = _json_decode(request.body.decode())
        except (ValueError, RequestDataTooBig, RecursionError):
            return None  # DRF answers it (a 400; 413 for a body over the limit)
        return event if isinstance(event, dict) else None

    def _renders_json(self, request: HttpRequest) -> bool:
        """DRF's content negotiation, reduced to: would it render this response as JSON?"""
        override = api_settings.URL_FORMAT_OVERRIDE
        if override and request.META.get("QUERY_STRING") and override in request.GET:
            return False
        accept = request.META.get("HTTP_ACCEPT", "*/*")
        if accept == "*/*":
            return self.renderers[0] is JSONRenderer
        for media_types in order_by_precedence([token.strip() for token in accept.split(",")]):
            for renderer in self.renderers:
                if any(media_type_matches(renderer.media_type, m) for m in media_types):
                    return renderer is JSONRenderer
        return False

    def respond(self, request: HttpRequest, event: dict[str, Any]) -> HttpResponse:
        budget = anonymous_throttle_window(request, EventsIngestThrottle)
        try:
            result = event_accept_anonymous(
                event=event, budget=budget, strict_types=settings.CMS_EVENTS_STRICT_TYPES
            )
            if result.rejected and not result.over_budget:
                raise _invalid_event(result.rejected[0])
        except DomainError as error:
            return self._problem(
                problem_body(int(error.status), error.detail, code=error.code, errors=error.errors)
            )
        if result.over_budget:
            assert budget is not None
            throttled = Throttled(wait=budget.retry_after)  # DRF's own wording of the detail
            response = self._problem(
                problem_body(429, str(throttled.detail), code=throttled.default_code)
            )
            response["Retry-After"] = str(throttled.wait)
            return response
        return self._response(self.accepted, status.HTTP_202_ACCEPTED, "application/json")

    def _problem(self, body: dict[str, Any]) -> HttpResponse:
        # Rendered as DRF renders them (compact UTF-8), so both paths answer byte for byte alike.
        return self._response(JSONRenderer().render(body), body["status"], PROBLEM_CONTENT_TYPE)

    def _response(self, content: bytes, status_code: int, content_type: str) -> HttpResponse:
        response = HttpResponse(content, status=status_code, content_type=content_type)
        for name, value in self.headers.items():
            response[name] = value
        return response


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
