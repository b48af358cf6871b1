"""Demo customers: a few profiles across tiers and stages, with consents and an attribute."""

from __future__ import annotations

from customers.models import AttributeDefinition, Customer
from customers.services import customer_create

DEMO_CUSTOMERS = [
    {
        "external_id": "demo-ada",
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "loyalty_tier": "gold",
        "lifecycle_stage": "repeat_customer",
        "attributes": {"newsletter": True},
        "preferences": {"channels": ["email", "in_app"]},
        "consents": {"personalization": True, "analytics": True, "email": True, "sms": False},
    },
    {
        "external_id": "demo-grace",
        "email": "grace@example.com",
        "name": "Grace Hopper",
        "loyalty_tier": "silver",
        "lifecycle_stage": "customer",
        "attributes": {"newsletter": False},
        "preferences": {"channels": ["sms"]},
        "consents": {"personalization": True, "analytics": True, "email": False, "sms": True},
    },
    {
        "external_id": "demo-alan",
        "email": "alan@example.com",
        "name": "Alan Turing",
        "loyalty_tier": "none",
        "lifecycle_stage": "lead",
        "consents": {"personalization": False, "analytics": True},
    },
]


def demo_load() -> str:
    AttributeDefinition.objects.get_or_create(
        key="newsletter", defaults={"label": "Newsletter subscriber", "type": "boolean"}
    )
    created = 0
    for values in DEMO_CUSTOMERS:
        if not Customer.objects.filter(external_id=values["external_id"]).exists():
            customer_create(**values)
            created += 1
    return f"{len(DEMO_CUSTOMERS)} customers ({created} new)"
