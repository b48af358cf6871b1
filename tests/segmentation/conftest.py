"""A seeded world for the segment evaluators: customers with tiers and attributes, purchases,
product views and abandoned carts, an anonymous visitor, a customer who refused personalization
and an erased one. Events go through the drain's own writer (`analytics.rollups.events_store`,
the set-based statements the drain runs), so the roll-ups the evaluators read are real."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest

from analytics.models import EventType
from analytics.rollups import Row, events_store
from analytics.selectors import event_type_catalog_forget
from customers.models import AttributeDefinition, Consent, Customer
from segmentation.compiler import customers_matching
from segmentation.evaluation import subject_matches

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
_ids = count()


def days_ago(days: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days), datetime.min.time(), tzinfo=UTC).replace(
        hour=hour, minute=minute
    )


def event(
    type_: str,
    at: datetime,
    *,
    customer: Customer | None = None,
    anonymous_id: str = "",
    **properties: Any,
) -> Row:
    return Row(
        f"ev-{next(_ids)}",
        type_,
        customer.pk if customer else None,
        anonymous_id,
        properties,
        at,
        at,
    )


def store(rows: list[Row]) -> None:
    """One drain batch (the test's transaction stands for the drain's)."""
    assert len(events_store(rows)) == len(rows)


@pytest.fixture
def catalog(db):
    """Event types and attribute definitions the rules may name."""
    EventType.objects.create(
        name="purchase",
        schema={"type": "object", "properties": {"amount": {"type": "number"}}},
    )
    EventType.objects.create(
        name="product_view",
        distinct_properties=["category"],
        schema={
            "type": "object",
            "properties": {"category": {"type": "string"}, "price": {"type": "number"}},
            "additionalProperties": False,
        },
    )
    EventType.objects.create(name="cart_abandoned")
    event_type_catalog_forget()
    for key, kind, choices in (
        ("newsletter", "boolean", []),
        ("age", "integer", []),
        ("score", "number", []),
        ("city", "string", []),
        ("birthday", "date", []),
        ("plan", "enum", ["free", "pro", "team"]),
    ):
        AttributeDefinition.objects.create(key=key, label=key.title(), type=kind, choices=choices)
    yield
    event_type_catalog_forget()


@dataclass
class World:
    customers: dict[str, Customer] = field(default_factory=dict)
    anonymous: list[str] = field(default_factory=list)

    def names(self, ids: set[int]) -> set[str]:
        by_id = {c.pk: name for name, c in self.customers.items()}
        return {by_id[i] for i in ids}

    def sql(self, rules: dict[str, Any], now: datetime = NOW) -> set[str]:
        return self.names(
            set(customers_matching(rules=rules, now=now).values_list("pk", flat=True))
        )

    def python(self, rules: dict[str, Any], now: datetime = NOW) -> set[str]:
        found = {
            name
            for name, c in self.customers.items()
            if subject_matches(subject=f"c:{c.pk}", rules=rules, now=now)
        }
        return found | {
            a for a in self.anonymous if subject_matches(subject=f"a:{a}", rules=rules, now=now)
        }

    def selects(self, rules: dict[str, Any], now: datetime = NOW) -> set[str]:
        """What both evaluators select (customers by name, anonymous ids as such); they must
        agree on customers, and only Python evaluates anonymous subjects."""
        in_python, in_sql = self.python(rules, now), self.sql(rules, now)
        assert in_python - set(self.anonymous) == in_sql, (in_python, in_sql)
        return in_python


@pytest.fixture
def world(catalog) -> World:
    w = World()

    def customer(key: str, /, **values: Any) -> Customer:
        values.setdefault("email", f"{key}@example.com")
        values.setdefault("name", key.title())
        w.customers[key] = Customer.objects.create(external_id=key, **values)
        return w.customers[key]

    ada = customer(
        "ada",
        name="Ada Lovelace",
        loyalty_tier="gold",
        lifecycle_stage="repeat_customer",
        total_spend=Decimal("900.00"),
        last_seen=days_ago(1),
        attributes={
            "newsletter": True,
            "age": 36,
            "score": 7.5,
            "city": "London",
            "birthday": "1990-12-10",
            "plan": "pro",
        },
    )
    bob = customer(
        "bob",
        email="bob@example.org",
        loyalty_tier="platinum",
        lifecycle_stage="customer",
        total_spend=Decimal("100.00"),
        attributes={"newsletter": False, "age": 17, "city": "Paris", "plan": "free"},
    )
    customer("cy", email="", loyalty_tier="silver", attributes={})
    dee = customer("dee", loyalty_tier="gold", attributes={"newsletter": True, "age": 50})
    Consent.objects.create(customer=dee, purpose="personalization", granted=False)
    eve = customer("eve", loyalty_tier="gold", attributes={"newsletter": True, "age": 40})
    eve.erased_at = NOW
    eve.save()
    fay = customer(
        "fay",
        loyalty_tier="none",
        last_seen=days_ago(20),
        # Stored before the definitions changed: values of the wrong kind count as no value
        # for typed comparisons, and null is no value at all.
        attributes={"city": None, "age": "40", "newsletter": "yes"},
    )
    w.anonymous = ["visitor-1"]
    store(
        [
            # Ada: two purchases (10 days ago and yesterday), three categories this week, a
            # cart abandoned this morning.
            event("purchase", days_ago(10, hour=0), customer=ada, amount=300),
            event("purchase", days_ago(1), customer=ada, amount=250),
            event("product_view", days_ago(2), customer=ada, category="shoes", price=80),
            event("product_view", days_ago(1), customer=ada, category="hats", price=20),
            event("product_view", days_ago(0, hour=8), customer=ada, category="bags"),
            event("product_view", days_ago(0, hour=9), customer=ada, category="shoes"),
            event("cart_abandoned", days_ago(0, hour=9), customer=ada),
            # Bob: an old purchase, one whose amount is text (not a number), a cart abandoned
            # just before midnight yesterday.
            event("purchase", days_ago(134), customer=bob, amount=100),
            event("purchase", days_ago(5), customer=bob, amount="12"),
            event("cart_abandoned", days_ago(1, hour=23, minute=59), customer=bob),
            # Dee (refused personalization) and Eve (erased) would match plenty.
            event("purchase", days_ago(0), customer=dee, amount=1000),
            event("cart_abandoned", days_ago(0), customer=dee),
            event("purchase", days_ago(0), customer=eve, amount=1000),
            # Fay: the same category twice this week, another 8 days ago.
            event("product_view", days_ago(3), customer=fay, category="shoes"),
            event("product_view", days_ago(2), customer=fay, category="shoes"),
            event("product_view", days_ago(8), customer=fay, category="toys"),
            # An anonymous visitor, not linked to anyone.
            event("product_view", days_ago(1), anonymous_id="visitor-1", category="shoes"),
            event("product_view", days_ago(1), anonymous_id="visitor-1", category="hats"),
            event("product_view", days_ago(0), anonymous_id="visitor-1", category="bags"),
            event("cart_abandoned", days_ago(0), anonymous_id="visitor-1"),
            # Tomorrow (a fast client clock): after `now`, so no window counts it.
            event("cart_abandoned", days_ago(-1, hour=0), customer=fay),
        ]
    )
    return w


# API.md's example rule, word for word (criteria tests and the rule editor's browser test).
API_EXAMPLE = {
    "all": [
        {"attribute": "loyalty_tier", "op": "in", "value": ["gold", "platinum"]},
        {
            "event": "purchase",
            "aggregate": "sum",
            "property": "amount",
            "within_days": 90,
            "op": "gt",
            "value": 500,
        },
        {
            "event": "product_view",
            "aggregate": "distinct",
            "property": "category",
            "within_days": 7,
            "op": "gte",
            "value": 3,
        },
        {
            "event": "cart_abandoned",
            "aggregate": "count",
            "within_days": 1,
            "op": "gte",
            "value": 1,
        },
        {
            "any": [
                {"attribute": "attributes.newsletter", "op": "eq", "value": True},
                {"not": {"segment": "churned"}},
            ]
        },
    ]
}
