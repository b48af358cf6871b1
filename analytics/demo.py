"""Demo event types: a storefront's journey from first view to purchase."""

from __future__ import annotations

from analytics.models import EventType
from analytics.services import event_type_save

DEMO_EVENT_TYPES = [
    {
        "name": "page_view",
        "journey_stage": "awareness",
        "schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    },
    {
        "name": "product_view",
        "journey_stage": "consideration",
        "distinct_properties": ["category"],
        "schema": {
            "type": "object",
            "required": ["sku"],
            "properties": {"sku": {"type": "string"}, "category": {"type": "string"}},
        },
    },
    {"name": "add_to_cart", "journey_stage": "consideration"},
    {"name": "cart_abandoned", "journey_stage": "consideration"},
    {"name": "checkout_complete", "journey_stage": "action"},
    {
        "name": "purchase",
        "journey_stage": "action",
        "schema": {
            "type": "object",
            "required": ["amount"],
            "properties": {
                "amount": {"type": "number", "minimum": 0},
                "currency": {"type": "string", "minLength": 3, "maxLength": 3},
            },
        },
    },
]


def demo_load() -> str:
    created = 0
    for values in DEMO_EVENT_TYPES:
        if not EventType.objects.filter(name=values["name"]).exists():
            event_type_save(**values)
            created += 1
    return f"{len(DEMO_EVENT_TYPES)} event types ({created} new)"
