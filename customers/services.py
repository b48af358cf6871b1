"""Writes to customer data. Keyword-only, typed, named <entity>_<action>."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, transaction

from customers.models import Customer
from customers.selectors import customers_by_external_id


def customers_ensure_external_ids(*, external_ids: Iterable[str]) -> dict[str, int]:
    """{external id: customer id}, creating a bare profile for ids seen for the first time (an
    API key may send events for a site user we have not heard of yet). Safe under concurrency."""
    wanted = set(external_ids)
    found = customers_by_external_id(external_ids=wanted)
    for external_id in sorted(wanted - set(found)):
        try:
            with transaction.atomic():
                found[external_id] = Customer.objects.create(external_id=external_id).pk
        except IntegrityError:  # another worker created it first
            found[external_id] = Customer.objects.get(external_id=external_id).pk
    return found
