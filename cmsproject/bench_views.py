"""The floor every benchmark compares against: the cheapest JSON Django and DRF can serve.

Mounted only when CMS_BENCH_VIEWS is on (see bench/README.md).
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

PAYLOAD = {"status": "ok", "items": [1, 2, 3]}


def bare_django_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(PAYLOAD)


class BareDrfApi(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = ()

    def get(self, request: Request) -> Response:
        return Response(PAYLOAD)
