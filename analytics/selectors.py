"""Reads of analytics data, for this app's views and for other apps."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.core.cache import cache
from django.db.models import Sum
from jsonschema import Draft202012Validator

from analytics.models import EventType, SubjectDailyRollup

CATALOG_CACHE_KEY = "analytics:event-type-catalog"
CATALOG_TTL_SECONDS = 300


@dataclass(frozen=True)
class EventTypeInfo:
    name: str
    schema: dict[str, Any] | None
    journey_stage: str
    distinct_properties: tuple[str, ...]


# Each process also keeps the catalog for a few seconds, sparing ingestion a Redis round trip per
# request; a changed event type reaches every process within that time.
LOCAL_CATALOG_SECONDS = 5.0
_local_catalog: tuple[float, dict[str, EventTypeInfo]] | None = None


def event_type_catalog() -> dict[str, EventTypeInfo]:
    """Every event type, from memory or the cache: ingestion reads it on every request and must
    not touch the database. Saving a type deletes the cached copies
    (`event_type_catalog_forget`)."""
    global _local_catalog
    now = time.monotonic()
    if _local_catalog is not None and now - _local_catalog[0] < LOCAL_CATALOG_SECONDS:
        return _local_catalog[1]
    catalog = _shared_event_type_catalog()
    _local_catalog = (now, catalog)
    return catalog


def _shared_event_type_catalog() -> dict[str, EventTypeInfo]:
    catalog = cache.get(CATALOG_CACHE_KEY)
    if catalog is None:
        catalog = {
            row.name: EventTypeInfo(
                row.name, row.schema, row.journey_stage, tuple(row.distinct_properties)
            )
            for row in EventType.objects.all()
        }
        cache.set(CATALOG_CACHE_KEY, catalog, CATALOG_TTL_SECONDS)
    return catalog


def event_type_catalog_forget() -> None:
    global _local_catalog
    _local_catalog = None
    cache.delete(CATALOG_CACHE_KEY)


@lru_cache(maxsize=512)
def _validator_for(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


def properties_validator(info: EventTypeInfo) -> Draft202012Validator | None:
    """A compiled validator per distinct schema, kept for the life of the process."""
    if not info.schema:
        return None
    return _validator_for(json.dumps(info.schema, sort_keys=True))


def subject_event_counts(*, customer_ids: list[int], event_type: str) -> dict[int, int]:
    """{customer id: events of this type on record}, from the daily roll-ups."""
    rows = (
        SubjectDailyRollup.objects.filter(customer_id__in=customer_ids, event_type=event_type)
        .values("customer_id")
        .annotate(total=Sum("count"))
    )
    return {row["customer_id"]: row["total"] for row in rows}


def customer_events_recent(*, customer_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """A customer's latest interactions, newest first, for their profile page."""
    from analytics.models import Event

    return list(
        Event.objects.filter(customer_id=customer_id)
        .order_by("-timestamp", "-id")
        .values("type", "timestamp", "properties")[:limit]
    )
