"""The components every installation starts with, created after migrate; editors may add more.

`faq_item` and `spec_row` exist to be nested (FAQ questions, spec table rows).
"""

from __future__ import annotations

from typing import Any

BUILTIN_COMPONENTS: list[dict[str, Any]] = [
    {
        "api_id": "hero",
        "name": "Hero",
        "description": "A large banner: heading, text, image and a call to action.",
        "fields": [
            {"name": "heading", "type": "string", "required": True, "max_length": 160},
            {"name": "subheading", "type": "text", "max_length": 500},
            {"name": "image", "type": "media"},
            {"name": "cta_label", "type": "string", "max_length": 60},
            {"name": "cta_url", "type": "string", "max_length": 500},
            {"name": "theme", "type": "enum", "choices": ["light", "dark"]},
        ],
    },
    {
        "api_id": "testimonial",
        "name": "Testimonial",
        "description": "A customer quote.",
        "fields": [
            {"name": "quote", "type": "text", "required": True, "max_length": 2000},
            {"name": "author", "type": "string", "required": True, "max_length": 120},
            {"name": "role", "type": "string", "max_length": 120},
            {"name": "avatar", "type": "media"},
            {"name": "rating", "type": "integer", "min": 1, "max": 5},
        ],
    },
    {
        "api_id": "spec_row",
        "name": "Specification row",
        "description": "One label and value of a product's specifications.",
        "fields": [
            {"name": "label", "type": "string", "required": True, "max_length": 120},
            {"name": "value", "type": "string", "required": True, "max_length": 500},
        ],
    },
    {
        "api_id": "product_specs",
        "name": "Product specifications",
        "description": "A table of specifications.",
        "fields": [
            {"name": "title", "type": "string", "max_length": 160},
            {
                "name": "rows",
                "type": "component",
                "component": "spec_row",
                "repeatable": True,
                "required": True,
            },
        ],
    },
    {
        "api_id": "faq_item",
        "name": "FAQ item",
        "description": "One question and its answer.",
        "fields": [
            {"name": "question", "type": "string", "required": True, "max_length": 300},
            {"name": "answer", "type": "richtext", "required": True},
        ],
    },
    {
        "api_id": "faq",
        "name": "FAQ",
        "description": "Questions and answers.",
        "fields": [
            {"name": "title", "type": "string", "max_length": 160},
            {
                "name": "items",
                "type": "component",
                "component": "faq_item",
                "repeatable": True,
                "required": True,
            },
        ],
    },
    {
        "api_id": "rich_text",
        "name": "Rich text",
        "description": "Formatted text.",
        "fields": [{"name": "body", "type": "richtext", "required": True}],
    },
    {
        "api_id": "cta",
        "name": "Call to action",
        "description": "A button with a short pitch.",
        "fields": [
            {"name": "label", "type": "string", "required": True, "max_length": 60},
            {"name": "url", "type": "string", "required": True, "max_length": 500},
            {"name": "description", "type": "text", "max_length": 500},
            {"name": "style", "type": "enum", "choices": ["primary", "secondary", "link"]},
        ],
    },
    {
        "api_id": "image",
        "name": "Image",
        "description": "One image with its alternative text and caption.",
        "fields": [
            {"name": "image", "type": "media", "required": True},
            {"name": "alt", "type": "string", "max_length": 300},
            {"name": "caption", "type": "string", "max_length": 300},
            {"name": "link", "type": "string", "max_length": 500},
        ],
    },
]


def builtin_components_ensure() -> int:
    """Create the built-in components that are missing (after every migrate, and after a test
    database flush, which re-runs post_migrate). One an editor changed is left as it is."""
    from content.models import Component

    created = 0
    for component in BUILTIN_COMPONENTS:
        _, was_created = Component.objects.get_or_create(
            api_id=component["api_id"],
            defaults={
                "name": component["name"],
                "description": component["description"],
                "fields": component["fields"],
                "builtin": True,
            },
        )
        created += was_created
    return created
