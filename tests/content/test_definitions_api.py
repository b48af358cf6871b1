"""Content types and components as data: every field type, validation of the definitions, and
safe evolution (what would break existing entries is refused with 409 and a count)."""

from __future__ import annotations

import pytest

from content.models import Component, EntryType
from content.services import entry_create, entry_publish
from tests.content.conftest import faq, hero

pytestmark = pytest.mark.django_db(transaction=True)
PROBLEM = "application/problem+json"

EVERY_FIELD_TYPE = [
    {"name": "title", "type": "string", "required": True, "max_length": 80},
    {"name": "intro", "type": "text"},
    {"name": "body", "type": "richtext"},
    {"name": "stock", "type": "integer", "min": 0},
    {"name": "price", "type": "number", "min": 0},
    {"name": "featured", "type": "boolean"},
    {"name": "launch", "type": "datetime"},
    {"name": "size", "type": "enum", "choices": ["s", "m", "l"]},
    {"name": "photo", "type": "media"},
    {"name": "related", "type": "reference", "to": "product"},
    {"name": "extra", "type": "json"},
    {"name": "specs", "type": "component", "component": "spec_row", "repeatable": True},
]


def test_builtin_components_are_seeded(staff_client):
    api_ids = {
        c["api_id"] for c in staff_client.get("/api/v1/components/?page_size=50").json()["results"]
    }
    assert {"hero", "testimonial", "product_specs", "faq", "rich_text", "cta", "image"} <= api_ids


def test_a_type_with_every_field_type_validates_its_entries(staff_client):
    response = staff_client.post(
        "/api/v1/content-types/",
        {"api_id": "product", "name": "Product", "fields": EVERY_FIELD_TYPE},
        format="json",
    )
    assert response.status_code == 201, response.content
    good = {
        "slug": "shirt",
        "fields": {
            "title": "Shirt",
            "intro": "Soft",
            "body": "<p>Cotton</p>",
            "stock": 3,
            "price": 19.5,
            "featured": True,
            "launch": "2026-12-01T09:00:00+01:00",
            "size": "m",
            "extra": {"anything": [1, 2]},
            "specs": [{"label": "Fabric", "value": "Cotton"}],
        },
    }
    assert staff_client.post("/api/v1/content/product/", good, format="json").status_code == 201
    bad = {
        "slug": "bad",
        "fields": {
            "title": "x" * 81,
            "stock": 1.5,
            "price": "cheap",
            "featured": "yes",
            "launch": "2026-12-01T09:00:00",
            "size": "xl",
            "specs": [{"label": "Fabric"}],
        },
    }
    response = staff_client.post("/api/v1/content/product/", bad, format="json")
    assert response.status_code == 400
    assert {e["attr"] for e in response.json()["errors"]} == {
        "fields.title",
        "fields.stock",
        "fields.price",
        "fields.featured",
        "fields.launch",
        "fields.size",
        "fields.specs[0].value",
    }


@pytest.mark.parametrize(
    ("definition", "attr"),
    [
        ({"fields": [{"name": "Bad Name", "type": "string"}]}, "fields[0].name"),
        ({"fields": [{"name": "x", "type": "colour"}]}, "fields[0].type"),
        ({"fields": [{"name": "x", "type": "enum"}]}, "fields[0].choices"),
        ({"fields": [{"name": "x", "type": "reference", "to": "nothing"}]}, "fields[0].to"),
        (
            {"fields": [{"name": "x", "type": "component", "component": "nothing"}]},
            "fields[0].component",
        ),
        ({"fields": [{"name": "slug", "type": "string"}]}, "fields[0].name"),
        (
            {"fields": [{"name": "a", "type": "string"}, {"name": "a", "type": "text"}]},
            "fields[1].name",
        ),
        ({"zones": [{"name": "body", "components": ["nothing"]}]}, "zones[0].components[0]"),
        ({"fields": [{"name": "x", "type": "string", "surprise": 1}]}, "fields[0].surprise"),
    ],
)
def test_bad_definitions_are_refused_with_the_path(staff_client, definition, attr):
    response = staff_client.post(
        "/api/v1/content-types/", {"api_id": "thing", "name": "Thing", **definition}, format="json"
    )
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == PROBLEM
    assert attr in {e["attr"] for e in response.json()["errors"]}
    assert not EntryType.objects.filter(api_id="thing").exists()


def test_components_cannot_nest_in_a_cycle(staff_client):
    staff_client.post(
        "/api/v1/components/",
        {"api_id": "a", "name": "A", "fields": [{"name": "x", "type": "string"}]},
        format="json",
    )
    staff_client.post(
        "/api/v1/components/",
        {
            "api_id": "b",
            "name": "B",
            "fields": [{"name": "a", "type": "component", "component": "a"}],
        },
        format="json",
    )
    response = staff_client.patch(
        "/api/v1/components/a/",
        {"fields": [{"name": "b", "type": "component", "component": "b"}]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "cycle"


# --- Safe evolution ------------------------------------------------------------------------------
@pytest.fixture
def two_entries(homepage_type):
    for slug in ("one", "two"):
        entry = entry_create(
            entry_type=homepage_type,
            body={
                "slug": slug,
                "fields": {"hero_title": "Hi", "summary": "s"},
                "zones": {"body": [hero(), faq(("Q", "A"))]},
            },
        )
        entry_publish(entry=entry)
    entry_create(entry_type=homepage_type, body={"slug": "bare", "fields": {"hero_title": "Hi"}})
    return homepage_type


def fields_without(entry_type, name):
    return [f for f in entry_type.fields if f["name"] != name]


def test_adding_an_optional_field_or_a_component_needs_nothing(staff_client, two_entries):
    fields = [*two_entries.fields, {"name": "subtitle", "type": "string"}]
    zones = [
        {"name": "body", "components": ["hero", "faq", "cta"]},
        {"name": "sidebar", "components": ["cta"]},
    ]
    response = staff_client.patch(
        "/api/v1/content-types/homepage/", {"fields": fields, "zones": zones}, format="json"
    )
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    ("change", "broken"),
    [
        (lambda t: {"fields": fields_without(t, "summary")}, 2),  # removing a field with data
        (
            lambda t: {
                "fields": [
                    {**f, "type": "integer"} if f["name"] == "summary" else f for f in t.fields
                ]
            },
            2,
        ),  # incompatible type change
        (
            lambda t: {
                "fields": [*t.fields, {"name": "subtitle", "type": "string", "required": True}]
            },
            3,
        ),
        (lambda t: {"zones": [{"name": "body", "components": ["hero"]}]}, 2),  # removing faq in use
        (lambda t: {"zones": []}, 2),  # removing the zone
    ],
    ids=[
        "remove-field-with-data",
        "type-change",
        "new-required-field",
        "remove-component",
        "remove-zone",
    ],
)
def test_a_breaking_change_is_refused_with_409_and_a_count(
    staff_client, two_entries, change, broken
):
    before = EntryType.objects.get(api_id="homepage")
    response = staff_client.patch("/api/v1/content-types/homepage/", change(before), format="json")
    assert response.status_code == 409, response.content
    assert response["Content-Type"] == PROBLEM
    assert f"break {broken} existing entr" in response.json()["detail"]
    assert response.json()["errors"]
    after = EntryType.objects.get(api_id="homepage")
    assert (after.fields, after.zones) == (before.fields, before.zones)


def test_removing_a_field_without_data_is_allowed(staff_client, two_entries):
    fields = [*two_entries.fields, {"name": "unused", "type": "string"}]
    staff_client.patch("/api/v1/content-types/homepage/", {"fields": fields}, format="json")
    response = staff_client.patch(
        "/api/v1/content-types/homepage/",
        {"fields": fields_without(EntryType.objects.get(), "unused")},
        format="json",
    )
    assert response.status_code == 200


def test_a_component_change_that_breaks_entries_is_refused(staff_client, two_entries):
    hero_fields = Component.objects.get(api_id="hero").fields
    stricter = [*hero_fields, {"name": "badge", "type": "string", "required": True}]
    response = staff_client.patch("/api/v1/components/hero/", {"fields": stricter}, format="json")
    assert response.status_code == 409
    assert "break 2 existing entries" in response.json()["detail"]
    assert Component.objects.get(api_id="hero").fields == hero_fields


def test_a_component_in_use_cannot_be_deleted(staff_client, two_entries):
    response = staff_client.delete("/api/v1/components/faq/")
    assert response.status_code == 409
    assert Component.objects.filter(api_id="faq").exists()


def test_a_type_with_entries_cannot_be_deleted_and_api_id_is_immutable(staff_client, two_entries):
    assert staff_client.delete("/api/v1/content-types/homepage/").status_code == 409
    response = staff_client.patch(
        "/api/v1/content-types/homepage/", {"api_id": "home"}, format="json"
    )
    assert response.status_code == 400


def test_the_entry_schema_is_served(staff_client, homepage_type):
    schema = staff_client.get("/api/v1/content-types/homepage/schema/").json()
    assert schema["properties"]["fields"]["required"] == ["hero_title"]
    assert "full.hero" in schema["$defs"]
