"""Event ingestion (the write path) and event types.

`events_accept` validates and stamps events and appends them to the buffer: no database read or
write happens here (event types come from the cache). `event_accept_anonymous` is the same for
one anonymous event, counting the request against the caller's budget in the call that appends
it. The drain worker (`analytics.drain`) turns the buffer into rows and roll-ups.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from analytics.buffer import Budget, BufferUnavailable, event_buffer
from analytics.models import Event, EventType, SubjectDailyRollup
from analytics.selectors import event_type_catalog, event_type_catalog_forget, properties_validator
from analytics.signals import events_ingested
from cmsproject.errors import FieldError, Forbidden, ServiceUnavailable, ValidationError
from cmsproject.observability.metrics import EVENTS_INGESTED, EVENTS_REJECTED

MAX_BATCH = 1000
EVENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
TYPE_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
ANONYMOUS_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
MAX_PROPERTIES_BYTES = 32 * 1024
KNOWN_KEYS = {"id", "type", "userId", "anonymousId", "properties", "timestamp"}


def _seconds_from_env(name: str, default: int) -> timedelta:
    return timedelta(seconds=int(os.environ.get(name, default)))


# A client clock may run a little fast; a timestamp further ahead is a bug or an attack.
FUTURE_TOLERANCE = _seconds_from_env("CMS_EVENTS_FUTURE_TOLERANCE_SECONDS", 300)
# Late events (offline apps) are welcome, but not years late: roll-ups would be rewritten.
MAX_AGE = _seconds_from_env("CMS_EVENTS_MAX_AGE_SECONDS", 30 * 24 * 3600)


@dataclass(frozen=True)
class Caller:
    """Who is posting events, as far as ingestion cares."""

    external_id: str | None = None  # a customer JWT: the only userId it may send
    may_name_any_user: bool = False  # an API key with `events:write`


ANONYMOUS = Caller()
BUFFER_UNAVAILABLE = "Events cannot be accepted right now; retry shortly."


@dataclass
class AcceptResult:
    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    over_budget: bool = False  # counted over the caller's request budget: nothing was appended


def _errors_of(raw: Any, catalog: dict, now: datetime, strict_types: bool) -> list[FieldError]:
    if not isinstance(raw, dict):
        return [FieldError("", "invalid", "An event must be a JSON object.")]
    errors = [
        FieldError(key, "unknown-field", f"Unknown field {key!r}.")
        for key in raw
        if key not in KNOWN_KEYS
    ]
    event_id = raw.get("id")
    if event_id is not None and (not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id)):
        errors.append(FieldError("id", "invalid", "1-64 characters: letters, digits, _ . : -"))
    event_type = raw.get("type")
    if not isinstance(event_type, str) or not TYPE_NAME.fullmatch(event_type):
        errors.append(FieldError("type", "invalid", "1-100 characters: letters, digits, _ -"))
    elif strict_types and event_type not in catalog:
        errors.append(FieldError("type", "unknown-type", f"No event type {event_type!r}."))
    user_id, anonymous_id = raw.get("userId"), raw.get("anonymousId")
    if user_id is not None and (
        not isinstance(user_id, str) or not 0 < len(user_id) <= 255 or "\x00" in user_id
    ):
        errors.append(FieldError("userId", "invalid", "A string of 1-255 characters."))
    if anonymous_id is not None and (
        not isinstance(anonymous_id, str) or not ANONYMOUS_ID.fullmatch(anonymous_id)
    ):
        errors.append(
            FieldError("anonymousId", "invalid", "1-128 characters: letters, digits, _ . : -")
        )
    properties = raw.get("properties", {})
    if not isinstance(properties, dict):
        errors.append(FieldError("properties", "invalid", "Properties must be a JSON object."))
    elif len(encoded := json.dumps(properties)) > MAX_PROPERTIES_BYTES:
        errors.append(
            FieldError("properties", "too-large", f"At most {MAX_PROPERTIES_BYTES} bytes.")
        )
    elif "\\u0000" in encoded:
        # PostgreSQL cannot store U+0000 in text or jsonb: refuse it here, not in the drain.
        errors.append(FieldError("properties", "invalid", "Text may not contain U+0000."))
    elif isinstance(event_type, str) and event_type in catalog:
        validator = properties_validator(catalog[event_type])
        if validator is not None:
            for problem in sorted(validator.iter_errors(properties), key=lambda e: list(e.path)):
                path = "".join(
                    f"[{part}]" if isinstance(part, int) else f".{part}" for part in problem.path
                )
                errors.append(FieldError(f"properties{path}", "schema", problem.message))
    timestamp = raw.get("timestamp")
    if timestamp is not None:
        parsed = parse_datetime(timestamp) if isinstance(timestamp, str) else None
        if parsed is None or parsed.tzinfo is None:
            errors.append(FieldError("timestamp", "invalid", "ISO 8601 with a time zone."))
        elif parsed > now + FUTURE_TOLERANCE:
            errors.append(FieldError("timestamp", "future", "The timestamp is in the future."))
        elif parsed < now - MAX_AGE:
            errors.append(
                FieldError("timestamp", "too-old", "The timestamp is too far in the past.")
            )
    return errors


def _stamped(raw: dict[str, Any], caller: Caller, now: datetime) -> dict[str, Any]:
    user_id = raw.get("userId") or caller.external_id
    received_at = now.isoformat()
    return {
        "id": raw.get("id") or uuid.uuid4().hex,
        "type": raw["type"],
        "userId": user_id,
        "anonymousId": raw.get("anonymousId") or "",
        "properties": raw.get("properties") or {},
        "timestamp": raw.get("timestamp") or received_at,
        "receivedAt": received_at,
    }


def _authorize_users(events: list[Any], caller: Caller) -> None:
    """A request that names a user the caller may not speak for is refused whole: it is an
    attempt to write another customer's history, not a malformed event."""
    if caller.may_name_any_user:
        return
    for index, raw in enumerate(events):
        if not isinstance(raw, dict) or raw.get("userId") is None:
            continue
        if caller.external_id is None:
            raise Forbidden(
                "Only a customer token or an API key may send `userId`.",
                errors=[FieldError(f"events[{index}].userId", "forbidden", "Send anonymousId.")],
            )
        if raw["userId"] != caller.external_id:
            raise Forbidden(
                "A customer token may only send its own `userId`.",
                errors=[FieldError(f"events[{index}].userId", "forbidden", "Not your userId.")],
            )


def _events_checked(
    *, events: list[Any], caller: Caller, strict_types: bool
) -> tuple[AcceptResult, list[dict[str, Any]]]:
    """The rules every ingestion path applies: the batch limit, who may name users (raises),
    each event's validation. Returns the rejections and the stamped valid events."""
    if len(events) > MAX_BATCH:
        raise ValidationError(
            f"At most {MAX_BATCH} events per batch.",
            errors=[
                FieldError("events", "too-many", f"{len(events)} events; the limit is {MAX_BATCH}.")
            ],
        )
    _authorize_users(events, caller)
    now = timezone.now()
    catalog = event_type_catalog()
    result, accepted = AcceptResult(), []
    for index, raw in enumerate(events):
        errors = _errors_of(raw, catalog, now, strict_types)
        if not errors and not (raw.get("userId") or raw.get("anonymousId") or caller.external_id):
            errors = [FieldError("anonymousId", "required", "Send userId or anonymousId.")]
        if errors:
            result.rejected.append({"index": index, "errors": [e.as_dict() for e in errors]})
        else:
            accepted.append(_stamped(raw, caller, now))
    if result.rejected:
        EVENTS_REJECTED.inc(len(result.rejected))
    return result, accepted


def events_accept(*, events: list[Any], caller: Caller, strict_types: bool = False) -> AcceptResult:
    """Validate, stamp and append; valid events are accepted even when others are rejected."""
    result, accepted = _events_checked(events=events, caller=caller, strict_types=strict_types)
    if accepted:
        try:
            event_buffer().append(accepted)
        except BufferUnavailable as exc:
            raise ServiceUnavailable(BUFFER_UNAVAILABLE) from exc
    result.accepted = len(accepted)
    EVENTS_INGESTED.inc(result.accepted)
    return result


def event_accept_anonymous(
    *, event: Any, budget: Budget | None, strict_types: bool = False
) -> AcceptResult:
    """One event from an anonymous caller, counted against the caller's request budget in the
    same buffer call that appends it (one Redis round trip in services mode).

    The request is counted exactly once whatever its outcome, as DRF's throttle counts it before
    the view runs, and a request over the budget is answered as throttled (`over_budget`) even
    when its event is invalid: nothing is appended then. Otherwise as `events_accept` with an
    anonymous caller: rejections in `rejected`, a `userId` raises Forbidden.
    """
    try:
        result, accepted = _events_checked(
            events=[event], caller=ANONYMOUS, strict_types=strict_types
        )
    except Forbidden:
        if budget is not None and budget.increment() > budget.limit:
            return AcceptResult(over_budget=True)
        raise
    if not accepted:
        result.over_budget = budget is not None and budget.increment() > budget.limit
        return result
    try:
        if budget is None:
            event_buffer().append(accepted)
        elif event_buffer().append_counted(accepted, budget=budget) > budget.limit:
            return AcceptResult(over_budget=True)
    except BufferUnavailable as exc:
        raise ServiceUnavailable(BUFFER_UNAVAILABLE) from exc
    result.accepted = 1
    EVENTS_INGESTED.inc()
    return result


# --- Event types ---------------------------------------------------------------------------------
def _check_schema(schema: Any) -> None:
    if schema is None:
        return
    if not isinstance(schema, dict):
        raise ValidationError(
            "Invalid schema.", errors=[FieldError("schema", "invalid", "A JSON Schema object.")]
        )
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path)
        raise ValidationError(
            "Invalid schema.", errors=[FieldError(f"schema{path}", "invalid", exc.message)]
        ) from exc


def event_type_save(*, event_type: EventType | None = None, **values: Any) -> EventType:
    """Create or update an event type; ingestion sees the change on its next request."""
    if "schema" in values:
        _check_schema(values["schema"])
    event_type = event_type or EventType()
    for name, value in values.items():
        setattr(event_type, name, value)
    try:
        event_type.full_clean()
    except DjangoValidationError as exc:
        raise ValidationError(
            "Invalid event type.",
            errors=[
                FieldError(attr, "invalid", message)
                for attr, messages in exc.message_dict.items()
                for message in messages
            ],
        ) from exc
    event_type.save()
    event_type_catalog_forget()
    return event_type


# --- Identity ------------------------------------------------------------------------------------
def events_link_anonymous(*, anonymous_id: str, customer_id: int) -> int:
    """Give an anonymous history to the customer it turned out to be: events, daily roll-ups,
    bucket counts (unique subjects change) and the customer's spend and last seen.

    Idempotent: a second call finds no anonymous events left and changes nothing. Returns how
    many events moved.
    """
    from analytics.drain import Row, event_rollups_recount, record_customer_activity

    with transaction.atomic():
        moved = list(
            Event.objects.select_for_update()
            .filter(anonymous_id=anonymous_id, customer__isnull=True)
            .values_list("id", "type", "properties", "timestamp")
        )
        if not moved:
            return 0
        Event.objects.filter(pk__in=[event_id for event_id, *_ in moved]).update(
            customer_id=customer_id
        )
        _merge_daily_rollups(f"a:{anonymous_id}", f"c:{customer_id}", customer_id)
        event_rollups_recount(occurrences=((kind, at) for _id, kind, _props, at in moved))
        record_customer_activity(
            [
                Row(event_id, kind, customer_id, anonymous_id, props, at, at)
                for event_id, kind, props, at in moved
            ]
        )
        transaction.on_commit(
            lambda: events_ingested.send(
                sender=Event, customer_ids={customer_id}, anonymous_ids={anonymous_id}
            )
        )
    return len(moved)


def _merge_daily_rollups(source: str, target: str, customer_id: int) -> None:
    from analytics.drain import daily_rollup_add

    sources = list(SubjectDailyRollup.objects.select_for_update().filter(subject=source))
    if not sources:
        return
    targets = {
        (r.day, r.event_type): r
        for r in SubjectDailyRollup.objects.select_for_update().filter(
            subject=target, day__in={r.day for r in sources}
        )
    }
    for rollup in sources:
        into = targets.get((rollup.day, rollup.event_type))
        if into is None:
            rollup.subject, rollup.customer_id = target, customer_id
            rollup.save(update_fields=["subject", "customer"])
            continue
        daily_rollup_add(into, count=rollup.count, sums=rollup.sums, distinct=rollup.distinct)
        into.save(update_fields=["count", "sums", "distinct"])
        rollup.delete()
