"""Reads of customer data that other apps may call (the drain worker, segmentation)."""

from __future__ import annotations

from collections.abc import Iterable

from customers.models import AnonymousId, Consent, Customer


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
