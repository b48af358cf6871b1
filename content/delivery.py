"""Personalized delivery: one published entry, each block resolved for one caller.

The caller is a customer (customer JWT), a browser (`X-Anonymous-Id`, which counts as its
customer once `identify` linked them) or nobody. Their segments come from segmentation's cached
set; a customer who refused personalization gets the default of every block. Variants and
targeting rules never leave the server: each block is sent with the one `data` chosen.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cmsproject.errors import NotFound
from content.cache import CachedResponse
from content.resolution import zones_resolve
from content.selectors import live_response_cached
from customers.selectors import (
    anonymous_link_cache_key,
    anonymous_link_customer,
    customer_external_id,
    customer_for_user,
    customer_ids_refusing,
)
from experiments.blocks import exposures_record, zones_apply, zones_bound
from segmentation.selectors import subject_segment_keys, subject_segments_cache_key

PERSONALIZATION = "personalization"
MAX_ANONYMOUS_ID_LENGTH = 128


@dataclass(frozen=True)
class Audience:
    """Who a delivery is for: the subject whose segments apply, and those segments."""

    subject: str | None = None
    customer_id: int | None = None
    segments: tuple[str, ...] = ()
    personalized: bool = True  # False: the customer refused personalization
    anonymous_id: str | None = None

    def experiment_unit(self) -> tuple[str | None, str | None]:
        """(unit, external id): what experiments bucket this caller by (API.md: a customer's
        external id, else the browser's anonymous id) and the `userId` its exposures carry.
        A customer who refused personalization takes part in no experiment."""
        if not self.personalized:
            return None, None
        if self.customer_id is not None:
            external_id = customer_external_id(customer_id=self.customer_id)
            if external_id:
                return external_id, external_id
        return self.anonymous_id, None


@dataclass(frozen=True)
class Delivery:
    body: dict[str, Any]
    tags: list[str] = field(default_factory=list)

    def etag(self) -> str:
        encoded = json.dumps(self.body, sort_keys=True, separators=(",", ":")).encode()
        return '"' + hashlib.blake2b(encoded, digest_size=12).hexdigest() + '"'


def anonymous_id_clean(raw: str | None) -> str | None:
    return (raw or "").strip()[:MAX_ANONYMOUS_ID_LENGTH] or None


def audience_prefetch_keys(anonymous_id: str | None) -> list[str]:
    """Cache keys an anonymous caller's audience reads, for a caller that fetches them in its
    own round trip: the browser's link to a customer, and the browser's own segments."""
    if not anonymous_id:
        return []
    return [
        anonymous_link_cache_key(anonymous_id),
        subject_segments_cache_key(f"a:{anonymous_id}"),
    ]


def audience_for(
    *, user: Any, anonymous_id: str | None, prefetched: Mapping[str, Any] | None = None
) -> Audience:
    """The caller's subject and segments. A customer token wins over an anonymous id; an
    anonymous id linked to a customer by `identify` is that customer. `prefetched`: values of
    `audience_prefetch_keys` the caller already read (None where the cache had nothing)."""
    prefetched = prefetched or {}
    customer = customer_for_user(user=user) if user is not None else None
    customer_id = customer.pk if customer is not None else None
    anonymous_id = anonymous_id_clean(anonymous_id)
    if customer_id is None and anonymous_id:
        customer_id = anonymous_link_customer(
            anonymous_id=anonymous_id,
            prefetched=prefetched.get(anonymous_link_cache_key(anonymous_id)),
        )
    if customer_id is not None:
        if customer_ids_refusing(customer_ids=[customer_id], purpose=PERSONALIZATION):
            return Audience(
                subject=f"c:{customer_id}",
                customer_id=customer_id,
                personalized=False,
                anonymous_id=anonymous_id,
            )
        subject = f"c:{customer_id}"
    elif anonymous_id:
        subject = f"a:{anonymous_id}"
    else:
        return Audience()
    segments = subject_segment_keys(
        subject=subject, prefetched=prefetched.get(subject_segments_cache_key(subject))
    )
    return Audience(
        subject=subject,
        customer_id=customer_id,
        segments=tuple(segments),
        anonymous_id=anonymous_id,
    )


def entry_deliver(
    *,
    api_id: str,
    slug: str,
    locale: str,
    audience: Audience,
    cached: CachedResponse | None = None,
) -> Delivery:
    """The published entry with every block resolved for `audience` (from the content cache;
    `cached`: the caller already read it)."""
    if cached is None:
        cached = live_response_cached(api_id=api_id, slug=slug, locale=locale)
    if cached.status == 404:
        raise NotFound("No published entry here.")
    live = json.loads(cached.body)
    live_zones = live.get("zones") or {}
    zones = zones_resolve(live_zones, audience.segments)
    experiments: dict[str, str] = {}
    if zones_bound(live_zones):
        unit, external_id = audience.experiment_unit()
        outcome = zones_apply(live_zones, zones, unit=unit, segments=audience.segments)
        zones, experiments = outcome.zones, outcome.experiments
        if unit is not None:
            exposures_record(
                outcome.assignments.values(),
                unit=unit,
                user_id=external_id,
                anonymous_id=audience.anonymous_id,
            )
    targeted = _segments_targeted(live_zones)
    used = sorted(set(audience.segments) & targeted)
    body = {
        "data": {
            "id": live["id"],
            "type": live["type"],
            "slug": live["slug"],
            "locale": live["locale"],
            "revision": live["revision"],
            "fields": live.get("fields") or {},
            "zones": {
                name: [
                    {"id": block["id"], "component": block["component"], "data": block["data"]}
                    for block in blocks
                ]
                for name, blocks in zones.items()
            },
        },
        "meta": {"segments": list(audience.segments), "experiments": experiments},
    }
    # A CDN keying on these can purge a personalized answer when a segment's rules change.
    tags = [*cached.tags, *(f"segment:{key}" for key in used)]
    return Delivery(body=body, tags=tags)


def _segments_targeted(zones: dict[str, list[dict[str, Any]]]) -> set[str]:
    return {
        key
        for blocks in zones.values()
        for block in blocks
        for variant in block.get("variants") or ()
        for key in variant.get("segments") or ()
    }
