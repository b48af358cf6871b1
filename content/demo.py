"""Demo content: a homepage whose hero has a VIP variant, an FAQ page and a few products.

Idempotent: types are created once, and an entry that exists is left as the editors made it.
"""

from __future__ import annotations

from typing import Any

from content.models import Entry, EntryType
from content.services import entry_create, entry_publish, entry_type_create

DEMO_TYPES: list[dict[str, Any]] = [
    {
        "api_id": "page",
        "name": "Page",
        "fields": [
            {"name": "title", "type": "string", "required": True, "max_length": 160},
            {"name": "seo_description", "type": "text", "max_length": 300},
        ],
        "zones": [
            {
                "name": "body",
                "components": ["hero", "rich_text", "faq", "testimonial", "cta", "image"],
            }
        ],
    },
    {
        "api_id": "product",
        "name": "Product",
        "fields": [
            {"name": "name", "type": "string", "required": True, "max_length": 160},
            {"name": "price", "type": "number", "required": True, "min": 0},
            {
                "name": "currency",
                "type": "enum",
                "choices": ["USD", "EUR", "GBP"],
                "required": True,
            },
            {"name": "category", "type": "string", "max_length": 60},
            {"name": "description", "type": "richtext"},
            {"name": "in_stock", "type": "boolean"},
            {"name": "photo", "type": "media"},
        ],
        "zones": [{"name": "details", "components": ["product_specs", "testimonial", "faq"]}],
    },
]

HOME_HERO = {
    "component": "hero",
    "data": {
        "heading": "Spring collection is here",
        "subheading": "Fresh styles for every day.",
        "cta_label": "Shop now",
        "cta_url": "/shop",
        "theme": "light",
    },
    "variants": [
        {
            "name": "VIP",
            "segments": ["vip"],
            "data": {
                "heading": "Welcome back, VIP: your private sale is open",
                "cta_label": "See VIP offers",
                "cta_url": "/vip",
                "theme": "dark",
            },
        }
    ],
}

DEMO_ENTRIES: list[tuple[str, dict[str, Any]]] = [
    (
        "page",
        {
            "slug": "home",
            "fields": {"title": "Home", "seo_description": "Our storefront."},
            "zones": {
                "body": [
                    HOME_HERO,
                    {
                        "component": "rich_text",
                        "data": {"body": "<p>Free shipping on orders over $50.</p>"},
                    },
                    {
                        "component": "cta",
                        "data": {"label": "Join the club", "url": "/signup", "style": "primary"},
                        # An A/B test of the label (experiments' demo starts `join-cta`).
                        "experiment": {
                            "key": "join-cta",
                            "variants": {"discount": {"label": "Join and get 10% off"}},
                        },
                    },
                ]
            },
            "audience": [],
            "lifecycle_stage": "",
            "language": "en",
        },
    ),
    (
        "page",
        {
            "slug": "faq",
            "fields": {"title": "Frequently asked questions"},
            "zones": {
                "body": [
                    {
                        "component": "faq",
                        "data": {
                            "title": "Orders and shipping",
                            "items": [
                                {
                                    "question": "How long does shipping take?",
                                    "answer": "<p>Two to four working days.</p>",
                                },
                                {
                                    "question": "Can I return an item?",
                                    "answer": "<p>Yes, within 30 days, free of charge.</p>",
                                },
                                {
                                    "question": "Do you ship abroad?",
                                    "answer": "<p>To the EU, the UK and the US.</p>",
                                },
                            ],
                        },
                    }
                ]
            },
            "language": "en",
        },
    ),
    *[
        (
            "product",
            {
                "slug": slug,
                "fields": {
                    "name": name,
                    "price": price,
                    "currency": "USD",
                    "category": category,
                    "description": f"<p>{name}, made to last.</p>",
                    "in_stock": True,
                },
                "zones": {
                    "details": [
                        {
                            "component": "product_specs",
                            "data": {"rows": [{"label": "Material", "value": material}]},
                        }
                    ]
                },
            },
        )
        for slug, name, price, category, material in [
            ("linen-shirt", "Linen shirt", 79.0, "apparel", "Linen"),
            ("leather-bag", "Leather bag", 349.0, "accessories", "Full-grain leather"),
            ("wool-coat", "Wool coat", 520.0, "apparel", "Merino wool"),
            ("silk-scarf", "Silk scarf", 129.0, "accessories", "Mulberry silk"),
        ]
    ],
]


def demo_load() -> str:
    types = 0
    for definition in DEMO_TYPES:
        if not EntryType.objects.filter(api_id=definition["api_id"]).exists():
            entry_type_create(**definition)
            types += 1
    entries = 0
    for api_id, body in DEMO_ENTRIES:
        entry_type = EntryType.objects.get(api_id=api_id)
        if Entry.objects.filter(type=entry_type, slug=body["slug"], locale="en").exists():
            continue
        entry_publish(entry=entry_create(entry_type=entry_type, body=body))
        entries += 1
    return f"{types} content types, {entries} published entries"
