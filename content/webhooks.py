"""Outgoing webhooks: the event registry, endpoints, dispatch, and signed delivery with retries.

- **Events** are declared once in a registry. This module registers the content events; another
  app registers its own (`segment.entered`, `order.created`, ...) with `webhook_event_register`
  from its `AppConfig.ready()`, and endpoints may then subscribe to them.
- **Dispatch** (`webhooks_dispatch`) runs inside the caller's transaction: it writes one
  `WebhookDelivery` per subscribed endpoint (idempotent per key) and enqueues the sends after
  commit, so a rolled-back change is never announced.
- **Delivery** (`webhook_attempt`) claims a due delivery, POSTs it outside any transaction,
  logs the attempt and either finishes it or schedules the next try with exponential backoff.
  A retry re-serializes the stored payload deterministically, so receivers get the same bytes
  (and the same `X-Webhook-Delivery` id to dedupe on) every time.
- **Retries** wait in the database (`next_attempt_at`); `webhooks_retry_due` (beat, every 5 s)
  sends those that are due, which also recovers a send whose task was lost.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import re
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from cmsproject.errors import Conflict, FieldError, NotFound, ValidationError
from content.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent

logger = logging.getLogger(__name__)

USER_AGENT = "headless-cms-webhooks/1"
PING_EVENT = "webhook.ping"  # sent on request from the admin; no endpoint subscribes to it
SECRET_MIN_LENGTH = 16
SECRET_MAX_LENGTH = WebhookEndpoint._meta.get_field("secret").max_length
URL_MAX_LENGTH = WebhookEndpoint._meta.get_field("url").max_length
NAME_MAX_LENGTH = WebhookEndpoint._meta.get_field("name").max_length
ERROR_MAX_LENGTH = WebhookAttempt._meta.get_field("error").max_length
RETRY_DUE_BATCH = 100  # deliveries sent per run of webhooks_retry_due (beat runs it every 5 s)
BACKOFF_CAP = timedelta(hours=6)  # a long MAX_ATTEMPTS must not push a retry out by weeks
BACKOFF_JITTER = 0.1  # up to +10%, so endpoints that failed together do not retry in lockstep
# While a send is in flight its next_attempt_at is pushed out by this much beyond the timeout, so
# a duplicate task or the beat sweep skips it; if the worker dies mid-send, the sweep retries it.
IN_FLIGHT_MARGIN = timedelta(seconds=30)
ENDPOINT_FIELDS = ("name", "url", "events", "secret", "is_active")


# --- The event registry --------------------------------------------------------------------------
_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_events: dict[str, str] = {}


def webhook_event_register(name: str, description: str) -> None:
    """Make `name` (`<noun>.<verb>`) an event endpoints can subscribe to. Registering a name
    again only updates its description, so an app's `ready()` may run twice."""
    if not _EVENT_NAME.match(name) or name == PING_EVENT:
        raise ValueError(f"{name!r} is not a valid webhook event name (e.g. `content.published`).")
    _events[name] = description


def webhook_events() -> dict[str, str]:
    """Every event endpoints can subscribe to: {name: description}, in registration order."""
    return dict(_events)


for _event in WebhookEvent:
    webhook_event_register(_event.value, str(_event.label))


# --- Endpoints -----------------------------------------------------------------------------------
def webhook_secret_generate() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def webhook_secret_mask(secret: str) -> str:
    """What responses and the admin show instead of a secret: enough to tell two apart."""
    return f"********{secret[-4:]}" if len(secret) >= SECRET_MIN_LENGTH else "********"


def _url_errors(url: Any) -> list[FieldError]:
    if not isinstance(url, str) or not url:
        return [FieldError("url", "required", "A URL is required.")]
    if len(url) > URL_MAX_LENGTH:
        return [FieldError("url", "max_length", f"At most {URL_MAX_LENGTH} characters.")]
    if any(char.isspace() or not char.isprintable() for char in url):
        return [FieldError("url", "invalid", "The URL contains spaces or control characters.")]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        return [FieldError("url", "invalid", "This is not a valid URL.")]
    if parts.scheme not in ("http", "https"):
        return [FieldError("url", "invalid_scheme", "The URL must start with http:// or https://.")]
    if not parts.hostname:
        return [FieldError("url", "invalid", "The URL has no host.")]
    return []


def _events_errors(events: Any) -> list[FieldError]:
    if not isinstance(events, list) or not all(isinstance(event, str) for event in events):
        return [FieldError("events", "invalid", "A list of event names is required.")]
    if not events:
        return [FieldError("events", "empty", "Subscribe to at least one event.")]
    known = webhook_events()
    return [
        FieldError(
            f"events[{index}]",
            "unknown_event",
            f"Unknown event {event!r}; known events: {', '.join(known)}.",
        )
        for index, event in enumerate(events)
        if event not in known
    ]


def _secret_errors(secret: Any) -> list[FieldError]:
    if not isinstance(secret, str):
        return [FieldError("secret", "invalid", "The secret must be a string.")]
    if not SECRET_MIN_LENGTH <= len(secret) <= SECRET_MAX_LENGTH:
        return [
            FieldError(
                "secret",
                "length",
                f"The secret must be {SECRET_MIN_LENGTH} to {SECRET_MAX_LENGTH} characters.",
            )
        ]
    if any(char.isspace() or not char.isprintable() for char in secret):
        return [
            FieldError("secret", "invalid", "The secret contains spaces or control characters.")
        ]
    return []


def webhook_endpoint_clean(*, data: Mapping[str, Any], partial: bool = False) -> dict[str, Any]:
    """The endpoint fields of `data`, checked and normalized (events deduplicated), or a
    ValidationError naming every bad field. `partial`: only the fields given are checked. A
    missing or null secret on creation is fine (one is generated)."""
    errors: list[FieldError] = []
    unknown = sorted(set(data) - set(ENDPOINT_FIELDS))
    errors += [FieldError(key, "unknown_field", "This field is not known.") for key in unknown]
    cleaned: dict[str, Any] = {}
    if "url" in data or not partial:
        errors += _url_errors(data.get("url"))
        cleaned["url"] = data.get("url")
    if "events" in data or not partial:
        events = data.get("events")
        found = _events_errors(events)
        errors += found
        cleaned["events"] = list(dict.fromkeys(events)) if not found else events
    if data.get("secret") is not None:
        errors += _secret_errors(data["secret"])
        cleaned["secret"] = data["secret"]
    elif "secret" in data and partial:
        errors.append(FieldError("secret", "null", "Send a new secret, or leave the field out."))
    if "name" in data:
        name = data["name"] if data["name"] is not None else ""
        if not isinstance(name, str) or len(name) > NAME_MAX_LENGTH:
            errors.append(FieldError("name", "invalid", f"At most {NAME_MAX_LENGTH} characters."))
        cleaned["name"] = name
    if "is_active" in data:
        if not isinstance(data["is_active"], bool):
            errors.append(FieldError("is_active", "invalid", "Must be true or false."))
        cleaned["is_active"] = data["is_active"]
    if errors:
        raise ValidationError("The webhook endpoint has invalid fields; see errors.", errors=errors)
    return cleaned


def webhook_endpoint_create(
    *,
    url: str,
    events: list[str],
    secret: str | None = None,
    name: str = "",
    is_active: bool = True,
    created_by: Any = None,
) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint; returns it and its secret (generated when none is given), which the
    caller shows once: nothing shows it again."""
    cleaned = webhook_endpoint_clean(
        data={"url": url, "events": events, "secret": secret, "name": name, "is_active": is_active}
    )
    cleaned["secret"] = cleaned.get("secret") or webhook_secret_generate()
    user = created_by if getattr(created_by, "pk", None) is not None else None
    endpoint = WebhookEndpoint.objects.create(created_by=user, **cleaned)
    return endpoint, endpoint.secret


def webhook_endpoint_update(
    *, endpoint: WebhookEndpoint, data: Mapping[str, Any]
) -> WebhookEndpoint:
    """Change the fields given. A new secret signs every send from now on, retries included."""
    cleaned = webhook_endpoint_clean(data=data, partial=True)
    for field, value in cleaned.items():
        setattr(endpoint, field, value)
    if cleaned:
        endpoint.save(update_fields=list(cleaned))
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint with its deliveries and their log."""
    endpoint.delete()


def webhook_endpoint_list() -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.select_related("created_by").order_by("-created_at", "-pk")


def webhook_endpoint_get(*, endpoint_id: int) -> WebhookEndpoint:
    endpoint = webhook_endpoint_list().filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound(f"No webhook endpoint has the id {endpoint_id}.")
    return endpoint


def webhook_deliveries_recent(
    *, endpoint: WebhookEndpoint, status: str | None = None
) -> QuerySet[WebhookDelivery]:
    """The endpoint's deliveries, newest first, each with its attempts log (two queries)."""
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint)
    if status is not None:
        if status not in WebhookDelivery.Status.values:
            raise ValidationError(
                "Unknown delivery status.",
                errors=[
                    FieldError(
                        "status",
                        "invalid_choice",
                        f"One of: {', '.join(WebhookDelivery.Status.values)}.",
                    )
                ],
            )
        deliveries = deliveries.filter(status=status)
    return deliveries.prefetch_related(
        Prefetch("log", queryset=WebhookAttempt.objects.order_by("number"))
    ).order_by("-created_at", "-pk")


# --- Dispatch ------------------------------------------------------------------------------------
def _delivery_key(endpoint_id: int, key: str) -> str:
    return hashlib.sha256(f"{endpoint_id}:{key}".encode()).hexdigest()


def _json_safe(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Datetimes, decimals and UUIDs as the API writes them, so the stored payload is plain JSON."""
    return json.loads(json.dumps(payload, cls=DjangoJSONEncoder))


def webhook_endpoints_for(*, event: str) -> list[WebhookEndpoint]:
    """The active endpoints subscribed to `event` (one query): a caller announcing many
    occurrences at once reads them once and passes them to `webhooks_dispatch`."""
    if event not in _events:
        raise ValueError(f"{event!r} is not a registered webhook event.")
    return [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(is_active=True).only("pk", "events")
        if event in endpoint.events  # in Python: SQLite has no JSON containment lookup
    ]


def webhooks_dispatch(
    *,
    event: str,
    payload: Mapping[str, Any],
    key: str,
    endpoints: list[WebhookEndpoint] | None = None,
) -> None:
    """Announce `event` to every active endpoint subscribed to it. Call it inside the transaction
    of the change: deliveries are written there and sent after commit. `key` identifies the
    occurrence (e.g. `entry:42:published:rev7`): dispatching the same key again sends nothing.
    `endpoints`: what `webhook_endpoints_for(event=)` returned, when announcing many at once."""
    if endpoints is None:
        endpoints = webhook_endpoints_for(event=event)
    if not endpoints:
        return
    _deliveries_create(endpoints=endpoints, event=event, payload=_json_safe(payload), key=key)


def _deliveries_create(
    *, endpoints: Iterable[WebhookEndpoint], event: str, payload: dict[str, Any], key: str
) -> list[int]:
    """Write the deliveries that do not exist yet and enqueue them; returns their ids."""
    from cmsproject.celery import enqueue_on_commit
    from content.tasks import webhook_deliver_task

    keys = {_delivery_key(endpoint.pk, key): endpoint for endpoint in endpoints}
    if not keys:
        return []
    existing = set(
        WebhookDelivery.objects.filter(idempotency_key__in=keys).values_list(
            "idempotency_key", flat=True
        )
    )
    now = timezone.now()
    # Due at once: if the task is lost (a worker dies, the broker is down), the sweep sends it.
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                endpoint=endpoint,
                event=event,
                payload=payload,
                idempotency_key=delivery_key,
                next_attempt_at=now,
            )
            for delivery_key, endpoint in keys.items()
            if delivery_key not in existing
        ],
        ignore_conflicts=True,  # the same key dispatched at the same moment elsewhere
    )
    created = list(
        WebhookDelivery.objects.filter(idempotency_key__in=set(keys) - existing)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for delivery_id in created:
        enqueue_on_commit(webhook_deliver_task, delivery_id)
    return created


def webhook_endpoint_ping(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Send a `webhook.ping` to one endpoint (whatever it subscribes to), logged like any other
    delivery, so a developer can check their receiver and its signature check."""
    occurrence = uuid.uuid4().hex
    created = _deliveries_create(
        endpoints=[endpoint],
        event=PING_EVENT,
        payload={"endpoint": endpoint.pk, "message": "Ping from the CMS."},
        key=f"ping:{occurrence}",
    )
    return WebhookDelivery.objects.get(pk=created[0])


# --- Delivery ------------------------------------------------------------------------------------
def webhook_body(*, delivery: WebhookDelivery) -> bytes:
    """The request body: the same bytes for every attempt of a delivery (keys sorted, compact, so
    a database that reorders JSON keys, as PostgreSQL's jsonb does, changes nothing)."""
    document = {
        "id": delivery.idempotency_key,
        "event": delivery.event,
        "created_at": delivery.created_at,
        "data": delivery.payload,
    }
    return json.dumps(
        document, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def webhook_signature(*, secret: str, body: bytes) -> str:
    """The `X-Signature` header: `sha256=<hex HMAC-SHA256 of the body, keyed with the secret>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_backoff(*, attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed try: the base, doubling, plus jitter."""
    base = float(settings.CMS_WEBHOOK_BACKOFF_SECONDS) * 2 ** max(attempts - 1, 0)
    delay = timedelta(seconds=base * (1 + random.uniform(0, BACKOFF_JITTER)))
    return min(delay, BACKOFF_CAP)


def _claim(delivery_id: int, now: datetime) -> tuple[WebhookDelivery, int] | None:
    """Take a due, pending delivery for one send; None if it is not ours to send now."""
    timeout = float(settings.CMS_WEBHOOK_TIMEOUT_SECONDS)
    with transaction.atomic():
        delivery = (
            # Only the delivery's row: locking the endpoint too would make parallel sends to one
            # endpoint skip each other. SQLite ignores the whole clause.
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING)
            .first()
        )
        if delivery is None or (delivery.next_attempt_at and delivery.next_attempt_at > now):
            return None
        number = delivery.attempts + 1
        # Compare-and-set on `attempts`: on SQLite, which takes no row lock, two workers may read
        # the same row; only one moves it on. The lease keeps duplicates away while we send.
        claimed = WebhookDelivery.objects.filter(
            pk=delivery_id, status=WebhookDelivery.Status.PENDING, attempts=delivery.attempts
        ).update(
            attempts=number,
            next_attempt_at=now + timedelta(seconds=timeout) + IN_FLIGHT_MARGIN,
        )
        if not claimed:
            return None
    return delivery, number


def _post(delivery: WebhookDelivery, number: int) -> tuple[int | None, str]:
    """POST the delivery once; (status code or None, error text)."""
    endpoint = delivery.endpoint
    body = webhook_body(delivery=delivery)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Signature": webhook_signature(secret=endpoint.secret, body=body),
        "X-Webhook-Event": delivery.event,
        "X-Webhook-Delivery": delivery.idempotency_key,
        "X-Webhook-Attempt": str(number),
    }
    timeout = float(settings.CMS_WEBHOOK_TIMEOUT_SECONDS)
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False) as client,
            client.stream("POST", endpoint.url, content=body, headers=headers) as response,
        ):
            if response.is_success:
                return response.status_code, ""
            # A little of the answer helps whoever reads the log; never the whole of it.
            excerpt = b""
            for chunk in response.iter_bytes():
                excerpt += chunk
                if len(excerpt) >= 200:
                    break
            text = excerpt[:200].decode(errors="replace").strip()
            return response.status_code, f"HTTP {response.status_code}" + (
                f": {text}" if text else ""
            )
    except httpx.TimeoutException as exc:
        return None, f"Timed out after {timeout:g}s ({type(exc).__name__})."
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def webhook_attempt(*, delivery_id: int) -> WebhookAttempt | None:
    """Send a pending delivery once, if it is due; log the attempt; finish it on a 2xx, else
    schedule a retry with backoff, or give up after CMS_WEBHOOK_MAX_ATTEMPTS. Safe to run twice
    or concurrently: returns None without sending when there is nothing to send."""
    now = timezone.now()
    claimed = _claim(delivery_id, now)
    if claimed is None:
        return None
    delivery, number = claimed
    if delivery.endpoint.is_active:
        started = time.monotonic()
        status_code, error = _post(delivery, number)  # outside any transaction
        duration_ms = round((time.monotonic() - started) * 1000)
    else:
        status_code, error, duration_ms = None, "Not sent: the endpoint is inactive.", 0
    succeeded = status_code is not None and 200 <= status_code < 300
    with transaction.atomic():
        # Locked, so a delete of the endpoint (and its deliveries) waits or has already happened.
        if not WebhookDelivery.objects.select_for_update().filter(pk=delivery_id).exists():
            return None
        attempt = WebhookAttempt.objects.create(
            delivery_id=delivery_id,
            number=number,
            status_code=status_code,
            error=error[:ERROR_MAX_LENGTH],
            duration_ms=duration_ms,
        )
        if succeeded:
            changes = {"status": WebhookDelivery.Status.SUCCEEDED, "next_attempt_at": None}
        elif number >= settings.CMS_WEBHOOK_MAX_ATTEMPTS or not delivery.endpoint.is_active:
            changes = {"status": WebhookDelivery.Status.FAILED, "next_attempt_at": None}
        else:
            changes = {"next_attempt_at": timezone.now() + webhook_backoff(attempts=number)}
        # Only if no one has claimed it since (a retry forced while this send hung, say).
        WebhookDelivery.objects.filter(pk=delivery_id, attempts=number).update(**changes)
    log = logger.info if succeeded else logger.warning
    log(
        "Webhook %s %s to %s, attempt %d: %s in %d ms",
        delivery.event,
        delivery.idempotency_key[:12],
        delivery.endpoint.url,
        number,
        status_code or error,
        duration_ms,
    )
    return attempt


def webhooks_retry_due(*, limit: int = RETRY_DUE_BATCH) -> int:
    """Send (enqueue) the pending deliveries whose time has come, oldest due first, at most
    `limit` per run; returns how many. Run by beat every few seconds. Safe to overlap with the
    sends already queued: a delivery someone else is sending is skipped by `webhook_attempt`."""
    from cmsproject.celery import enqueue_on_commit
    from content.tasks import webhook_deliver_task

    now = timezone.now()
    due = list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
        )
        # A new delivery has its own task on the way; the sweep takes it only if that task seems
        # lost (not run after a while), so a busy queue does not get every delivery twice.
        .filter(Q(attempts__gt=0) | Q(created_at__lte=now - IN_FLIGHT_MARGIN))
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    for delivery_id in due:
        enqueue_on_commit(webhook_deliver_task, delivery_id)
    return len(due)


def webhook_delivery_retry_now(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a pending or failed delivery again now (a failed one gets one more try)."""
    from cmsproject.celery import enqueue_on_commit
    from content.tasks import webhook_deliver_task

    if delivery.status == WebhookDelivery.Status.SUCCEEDED:
        raise Conflict("This delivery has already succeeded; it is not sent again.")
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).exclude(
        status=WebhookDelivery.Status.SUCCEEDED
    ).update(status=WebhookDelivery.Status.PENDING, next_attempt_at=now)
    delivery.refresh_from_db()
    enqueue_on_commit(webhook_deliver_task, delivery.pk)
    return delivery
