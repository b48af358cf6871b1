"""`GET|PUT /api/v1/sessions/<token>/state/`: cross-device session state (customers.sessions).

The token in the path is the only credential that matters: whoever holds it may read and write.
So the view reads header credentials only (for the right throttle bucket) and ignores the auth
cookie: an ambient cookie grants nothing here, and a page should not need a CSRF token to save
a cart. Responses are never cached by the browser or a proxy (`Cache-Control: no-store`).
"""

from __future__ import annotations

import re
from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cmsproject.auth import ApiKeyAuthentication, BearerJWTAuthentication
from cmsproject.errors import PROBLEM_CONTENT_TYPE, FieldError, ValidationError, problem_body
from customers.sessions import (
    SESSION_STATE_MAX_BYTES,
    SessionState,
    SessionStateConflict,
    session_state_get,
    session_state_set,
    session_token_checked,
)

PROBLEM = OpenApiResponse(description="application/problem+json")
IF_MATCH_VERSION = re.compile(r'"?(?P<version>[0-9]{1,18})"?')
IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    required=True,
    description='The version the new state was edited from: `3` or `"3"`; `0` starts a session.',
)


class SessionStateSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="0 until the first write, then 1, 2, ...")
    state = serializers.JSONField(help_text="A JSON object.")
    updated_at = serializers.DateTimeField(allow_null=True)


class SessionStateWriteSerializer(serializers.Serializer):
    # Describes the body for the schema; the view reads it itself (see SessionStateApi.put).
    state = serializers.JSONField(
        help_text=f"A JSON object of at most {SESSION_STATE_MAX_BYTES} bytes (compact JSON)."
    )


def _expected_version(request: Request) -> int | None:
    header = request.headers.get("If-Match")
    if header is None:
        return None
    found = IF_MATCH_VERSION.fullmatch(header.strip())
    if found is None:
        raise ValidationError(
            'If-Match must be the version you edited, like 3 or "3".',
            errors=[FieldError("If-Match", "invalid", 'A version number: 3 or "3".')],
        )
    return int(found["version"])


def _headers(session: SessionState) -> dict[str, str]:
    return {"ETag": f'"{session.version}"', "Cache-Control": "no-store"}


class SessionStateApi(APIView):
    authentication_classes = (ApiKeyAuthentication, BearerJWTAuthentication)
    permission_classes = (AllowAny,)

    @extend_schema(
        responses={200: SessionStateSerializer, 400: PROBLEM},
        description="The session's state. An unknown or expired token answers version 0 with "
        "an empty state, so a new device starts a session by writing with `If-Match: 0`.",
    )
    def get(self, request: Request, token: str) -> Response:
        session = session_state_get(token=token)
        return Response(session.as_dict(), headers=_headers(session))

    @extend_schema(
        parameters=[IF_MATCH],
        request=SessionStateWriteSerializer,
        responses={
            200: SessionStateSerializer,
            400: PROBLEM,
            409: OpenApiResponse(
                description="application/problem+json with the current `version`, `state` "
                "and `updated_at`: apply your change to them and write again."
            ),
            413: PROBLEM,
            428: PROBLEM,
        },
        description="Replaces the state if the session is still at the `If-Match` version, "
        "and sends `session.state` to the live topic `session:<token>`.",
    )
    def put(self, request: Request, token: str) -> Response:
        session_token_checked(token=token)  # first: a bad URL is the error to report
        # Not through the serializer: its JSONField re-encodes the value recursively, and the
        # service checks the state's type, depth and size without recursing.
        body = request.data if isinstance(request.data, dict) else {}
        if "state" not in body:
            raise ValidationError(
                'The body must be {"state": {...}}.',
                errors=[FieldError("state", "required", "The new state, a JSON object.")],
            )
        try:
            session = session_state_set(
                token=token, state=body["state"], expected_version=_expected_version(request)
            )
        except SessionStateConflict as conflict:
            return _conflict_response(conflict)
        return Response(session.as_dict(), headers=_headers(session))


def _conflict_response(conflict: SessionStateConflict) -> Response:
    body: dict[str, Any] = problem_body(
        409, conflict.detail, code=conflict.code, **conflict.current.as_dict()
    )
    return Response(
        body, status=409, content_type=PROBLEM_CONTENT_TYPE, headers=_headers(conflict.current)
    )


urlpatterns = [
    path("sessions/<str:token>/state/", SessionStateApi.as_view(), name="session-state"),
]
