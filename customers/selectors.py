"""Reads of customer data that other apps may call (the drain worker, segmentation)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from django.core.cache import cache
from django.db.models import QuerySet

from cmsproject.errors import NotFound
from customers.models import AnonymousId, AttributeDefinition, Consent, Customer


def customer_ids_refusing(*, customer_ids: Iterable[int], purpose: str) -> set[int]:
    """Of these customers, those who explicitly refused `purpose`. No answer is not a refusal."""
    ids = set(customer_ids)
    if not ids:
        return set()
    return set(
        Consent.objects.filter(customer_id__in=ids, purpose=purpose, granted=False).values_list(
            "customer_id", flat=True
        )
    )


def customers_by_anonymous_id(*, values: Iterable[str]) -> dict[str, int]:
    """{anonymous id: customer id} for the ids that were linked by `identify`."""
    wanted = set(values)
    if not wanted:
        return {}
    return dict(AnonymousId.objects.filter(value__in=wanted).values_list("value", "customer_id"))


def customers_by_external_id(*, external_ids: Iterable[str]) -> dict[str, int]:
    wanted = set(external_ids)
    if not wanted:
        return {}
    return dict(Customer.objects.filter(external_id__in=wanted).values_list("external_id", "id"))


def customer_external_id_for_user(*, user_id: int) -> str | None:
    """The external id of the customer behind a customer JWT, from the cache when possible:
    event ingestion asks on every request and must not query the database."""
    from django.core.cache import cache

    key = _external_id_cache_key(user_id)
    cached = cache.get(key)
    if cached is not None:
        return cached or None  # "" caches "this user is not a customer"
    external_id = (
        Customer.objects.filter(user_id=user_id).values_list("external_id", flat=True).first()
    )
    cache.set(key, external_id or "", 300)
    return external_id


def _external_id_cache_key(user_id: int) -> str:
    return f"customers:external-id-of-user:{user_id}"


def customer_external_id_forget(*, user_id: int) -> None:
    from django.core.cache import cache

    cache.delete(_external_id_cache_key(user_id))


# --- Profiles as the API reads them -------------------------------------------------------------
def customer_list() -> QuerySet[Customer]:
    """Customers as the API shows them: erased profiles left out (nothing personal is left to
    show), consents prefetched so a page of any size costs one extra query, not one per row."""
    return Customer.objects.filter(erased_at__isnull=True).prefetch_related("consents")


def customer_get(*, customer_id: int, include_erased: bool = False) -> Customer:
    """One customer, or `NotFound`. Erasure asks with `include_erased` so a retried DELETE finds
    the erased row (and does nothing) instead of answering 404."""
    customers = Customer.objects.prefetch_related("consents") if include_erased else customer_list()
    customer = customers.filter(pk=customer_id).first()
    if customer is None:
        raise NotFound(f"No customer has the id {customer_id}.")
    return customer


def customer_for_user(*, user: Any) -> Customer | None:
    """The customer behind a customer login, or None for anyone else (staff, API keys, anonymous).

    API-key principals and anonymous users have no pk: without the guard, `user_id=None` would
    match every customer who has no login.
    """
    if user is None or not user.is_authenticated or getattr(user, "pk", None) is None:
        return None
    return customer_list().filter(user_id=user.pk).first()


def customer_consents(*, customer: Customer) -> dict[str, bool]:
    """{purpose: granted} for the purposes the customer answered; a missing purpose is no answer.
    Reads the prefetched consents when the customer came from `customer_list`."""
    return {consent.purpose: consent.granted for consent in customer.consents.all()}


# JSON Schema of one attribute value per definition type; `enum` takes its choices instead.
ATTRIBUTE_TYPE_SCHEMAS: dict[str, dict[str, Any]] = {
    AttributeDefinition.Type.STRING: {"type": "string", "maxLength": 10_000},
    AttributeDefinition.Type.INTEGER: {"type": "integer"},
    AttributeDefinition.Type.NUMBER: {"type": "number"},
    AttributeDefinition.Type.BOOLEAN: {"type": "boolean"},
    AttributeDefinition.Type.DATE: {"type": "string", "format": "date"},
}


def customer_attributes_schema() -> dict[str, Any]:
    """The JSON Schema `Customer.attributes` must satisfy, generated from the attribute
    definitions marketers keep in the admin: one property per key, no other keys."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for definition in AttributeDefinition.objects.all():
        if definition.type == AttributeDefinition.Type.ENUM:
            schema: dict[str, Any] = {"enum": list(definition.choices)}
        else:
            schema = dict(ATTRIBUTE_TYPE_SCHEMAS[definition.type])
        properties[definition.key] = {**schema, "title": definition.label}
        if definition.required:
            required.append(definition.key)
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def customers_holding_attribute(*, key: str) -> QuerySet[Customer]:
    """Customers with a value stored under `attributes.<key>`."""
    return Customer.objects.filter(attributes__has_key=key)


def attribute_definition_get(*, key: str) -> AttributeDefinition:
    definition = AttributeDefinition.objects.filter(key=key).first()
    if definition is None:
        raise NotFound(f"No customer attribute has the key {key!r}.")
    return definition


def customer_ids_erased(*, customer_ids: Iterable[int]) -> set[int]:
    """Of these customers, those whose personal data was erased: nothing more is recorded."""
    ids = set(customer_ids)
    if not ids:
        return set()
    return set(
        Customer.objects.filter(pk__in=ids, erased_at__isnull=False).values_list("id", flat=True)
    )


def customer_streams(*, customer_ids: Iterable[int]) -> dict[int, list[str]]:
    """The live streams (`customer:me` of `customers.topics`) a customer's sockets listen on:
    their login's, and each browser linked to them by identify."""
    from customers.topics import customer_stream_for

    ids = set(customer_ids)
    streams: dict[int, list[str]] = {customer_id: [] for customer_id in ids}
    for customer_id, user_id in Customer.objects.filter(pk__in=ids).values_list("pk", "user_id"):
        if user_id is not None:
            streams[customer_id].append(customer_stream_for(user_id=user_id))
    for customer_id, value in AnonymousId.objects.filter(customer_id__in=ids).values_list(
        "customer_id", "value"
    ):
        streams[customer_id].append(customer_stream_for(anonymous_id=value))
    return streams


def customers_personalizable() -> QuerySet[Customer]:
    """Customers whose data may personalize what they see (segments): not erased, and not
    refusing `personalization` (no answer is not a refusal)."""
    from django.db.models import Exists, OuterRef

    refused = Consent.objects.filter(
        customer_id=OuterRef("pk"), purpose=Consent.Purpose.PERSONALIZATION, granted=False
    )
    return Customer.objects.filter(erased_at__isnull=True).filter(~Exists(refused))


def customers_by_email(*, emails: Iterable[str]) -> dict[str, int]:
    """{email as given: customer id} for the emails that name a customer (case-insensitive)."""
    wanted = {email.strip().lower(): email for email in emails if email.strip()}
    if not wanted:
        return {}
    found = Customer.objects.filter(email__in=list(wanted), erased_at__isnull=True).values_list(
        "email", "pk"
    )
    return {wanted[email.lower()]: pk for email, pk in found if email.lower() in wanted}


# --- Which customer a browser is, cached: personalization asks on every anonymous request -------
ANONYMOUS_LINK_TTL_SECONDS = 60 * 60
NOT_LINKED = 0  # cached "no customer" (None would read as a cache miss)


def anonymous_link_cache_key(anonymous_id: str) -> str:
    return "customers:anonymous-link:" + hashlib.sha256(anonymous_id.encode()).hexdigest()[:40]


def anonymous_link_customer(*, anonymous_id: str, prefetched: int | None = None) -> int | None:
    """The customer `identify` linked this browser to, or None. One cache read when warm (none
    when the caller `prefetched` it); identify and erasure forget it after commit."""
    key = anonymous_link_cache_key(anonymous_id)
    value = prefetched if prefetched is not None else cache.get(key)
    if value is None:
        value = customers_by_anonymous_id(values=[anonymous_id]).get(anonymous_id, NOT_LINKED)
        cache.set(key, value, ANONYMOUS_LINK_TTL_SECONDS)
    return value or None


def anonymous_link_forget(*, anonymous_ids: Iterable[str]) -> None:
    cache.delete_many([anonymous_link_cache_key(value) for value in anonymous_ids])


def customer_external_id(*, customer_id: int) -> str | None:
    """A customer's external id (the unit experiments bucket a customer by), cached: delivery
    asks for it on every personalized request."""
    key = f"customers:external-id:{customer_id}"
    cached = cache.get(key)
    if cached is not None:
        return cached or None
    external_id = (
        Customer.objects.filter(pk=customer_id).values_list("external_id", flat=True).first()
    )
    cache.set(key, external_id or "", 300)
    return external_id
