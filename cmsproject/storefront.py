"""The demo storefront at `/`: a shop page built only on the public API, as a customer's site
would be, plus the one thing a shop's backend does for it: report purchases.

The page (templates/storefront/) fetches its content from `/api/v1/deliver/`, lists products from
`/api/v1/content/product/`, posts `page_view` events, and holds a WebSocket subscribed to
`customer:me` and its content topic: a segment change or a publish re-renders the page live.
Its cart is the state of a cross-device session (`/api/v1/sessions/<token>/state/`, live on
`session:<token>`); a "Continue on another device" link carries the token to another browser.

Purchases go through `POST /demo/purchase/`, which plays the shop backend: it prices the product
from the published catalogue (never from the browser) and posts the `purchase` event to the
public events API with an API key that stays on the server.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cmsproject.errors import FieldError, ServiceUnavailable, ValidationError
from cmsproject.models import ApiKey
from cmsproject.services import api_key_create
from content.selectors import live_response_cached

ANONYMOUS_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
DEMO_KEY_NAME = "demo storefront (server side)"


@require_GET
def storefront_page(request: HttpRequest) -> HttpResponse:
    return render(request, "storefront/index.html", {"ws_url": _ws_url(request)})


def _ws_url(request: HttpRequest) -> str:
    """Where the page opens its socket: `CMS_PUBLIC_WS_URL` when a proxy publishes it; in
    services mode the ASGI server's own port (WS_PORT); else this same server."""
    if settings.CMS_PUBLIC_WS_URL:
        return settings.CMS_PUBLIC_WS_URL
    scheme = "wss" if request.is_secure() else "ws"
    ws_port = os.environ.get("WS_PORT")
    if settings.SERVICES_MODE and ws_port:
        return f"{scheme}://{request.get_host().rsplit(':', 1)[0]}:{ws_port}/ws/v1/live"
    return f"{scheme}://{request.get_host()}/ws/v1/live"


def _demo_key_file() -> Path:
    return Path(settings.VAR_DIR) / "demo-api-key"


def demo_api_key() -> str:
    """The storefront backend's API key (`events:write`), created once and kept in var/ like the
    admin password: the browser never sees it."""
    path = _demo_key_file()
    if path.exists() and (stored := path.read_text().strip()):
        return stored
    _, key = api_key_create(name=DEMO_KEY_NAME, scopes=[ApiKey.Scope.EVENTS_WRITE], created_by=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
    temporary.touch(mode=0o600)
    temporary.write_text(key + "\n")
    temporary.replace(path)
    return key


class DemoPurchaseApi(APIView):
    """`POST /demo/purchase/ {"anonymousId", "product"}`: the shop backend reports a purchase."""

    permission_classes = (AllowAny,)
    authentication_classes = ()

    @extend_schema(exclude=True)
    def post(self, request: Request) -> Response:
        import re

        body = request.data if isinstance(request.data, dict) else {}
        anonymous_id, slug = body.get("anonymousId"), body.get("product")
        errors = []
        if not isinstance(anonymous_id, str) or not re.fullmatch(
            ANONYMOUS_ID_PATTERN, anonymous_id
        ):
            errors.append(FieldError("anonymousId", "invalid", "The browser's anonymous id."))
        if not isinstance(slug, str) or not slug:
            errors.append(FieldError("product", "required", "A product slug."))
        if errors:
            raise ValidationError("Invalid purchase.", errors=errors)
        product = _published_product(slug)
        event = {
            "type": "purchase",
            "anonymousId": anonymous_id,
            "properties": {
                "amount": product["fields"]["price"],
                "currency": product["fields"]["currency"],
                "product": product["slug"],
                "category": product["fields"].get("category", ""),
            },
        }
        _post_event(request, event)
        return Response({"purchased": product["slug"], "amount": event["properties"]["amount"]})


def _published_product(slug: str) -> dict[str, Any]:
    cached = live_response_cached(api_id="product", slug=slug, locale=settings.CMS_DEFAULT_LOCALE)
    if cached.status != 200:
        raise ValidationError(
            "No such product.", errors=[FieldError("product", "unknown", f"No product '{slug}'.")]
        )
    return json.loads(cached.body)


def _post_event(request: Request, event: dict[str, Any]) -> None:
    """Through the public events API, as any shop backend would (not a shortcut into our code)."""
    url = request.build_absolute_uri("/api/v1/events/")
    try:
        response = httpx.post(
            url,
            json=event,
            headers={"Authorization": f"Api-Key {demo_api_key()}"},
            timeout=5.0,
        )
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"The events API did not answer: {exc}") from exc
    if response.status_code != 202:
        raise ServiceUnavailable(f"The events API answered {response.status_code}.")
