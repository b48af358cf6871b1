"""Demo segments: the headline scenario's VIP (over $500 spent in 90 days) and a few others."""

from __future__ import annotations

from segmentation.models import Segment
from segmentation.services import segment_create

DEMO_SEGMENTS = [
    {
        "key": "vip",
        "name": "VIP",
        "description": "Spent more than $500 in the last 90 days.",
        "rules": {
            "event": "purchase",
            "aggregate": "sum",
            "property": "amount",
            "within_days": 90,
            "op": "gt",
            "value": 500,
        },
    },
    {
        "key": "gold_or_platinum",
        "name": "Gold or platinum",
        "rules": {"attribute": "loyalty_tier", "op": "in", "value": ["gold", "platinum"]},
    },
    {
        "key": "browsers",
        "name": "Browsing, not buying",
        "description": "Viewed products in the last 7 days and bought nothing in 30.",
        "rules": {
            "all": [
                {
                    "event": "product_view",
                    "aggregate": "count",
                    "within_days": 7,
                    "op": "gte",
                    "value": 1,
                },
                {
                    "not": {
                        "event": "purchase",
                        "aggregate": "count",
                        "within_days": 30,
                        "op": "gte",
                        "value": 1,
                    }
                },
            ]
        },
    },
    {"key": "newsletter_testers", "name": "Newsletter testers", "kind": "static"},
]


def demo_load() -> str:
    created = 0
    for values in DEMO_SEGMENTS:
        if not Segment.objects.filter(key=values["key"]).exists():
            segment_create(**values)
            created += 1
    return f"{len(DEMO_SEGMENTS)} segments ({created} new)"
