from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from content.models import EntryType
from content.services import entry_type_create

HOMEPAGE_FIELDS = [
    {"name": "hero_title", "type": "string", "required": True},
    {"name": "summary", "type": "text"},
    {"name": "rank", "type": "integer", "min": 0},
]
HOMEPAGE_ZONES = [{"name": "body", "components": ["hero", "faq"]}]


def hero(heading: str = "Hello", **variants: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"component": "hero", "data": {"heading": heading}}
    if variants:
        block["variants"] = [
            {"segments": [segment], "data": {"heading": text}} for segment, text in variants.items()
        ]
    return block


def faq(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {
        "component": "faq",
        "data": {"items": [{"question": q, "answer": f"<p>{a}</p>"} for q, a in pairs]},
    }


@pytest.fixture
def homepage_type(db) -> EntryType:
    """A collection (so several slugs exist) named like the issue's example."""
    return entry_type_create(
        api_id="homepage", name="Homepage", fields=HOMEPAGE_FIELDS, zones=HOMEPAGE_ZONES
    )


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()
