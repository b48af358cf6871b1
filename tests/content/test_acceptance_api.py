"""Issue 3's acceptance, through the API only: define a type, write an entry with blocks and a
VIP variant, publish, read it anonymously, and be refused a change that would break it."""

from __future__ import annotations

import pytest

from tests.content.conftest import faq, hero

# Publishing announces after commit (cache, sockets, webhooks): run with real transactions.
pytestmark = pytest.mark.django_db(transaction=True)
PROBLEM = "application/problem+json"


def test_type_entry_publish_read_and_breaking_change_through_the_api(staff_client, anonymous):
    # Given a type with a string field and a zone allowing hero and faq
    response = staff_client.post(
        "/api/v1/content-types/",
        {
            "api_id": "homepage",
            "name": "Homepage",
            "kind": "collection",
            "fields": [{"name": "hero_title", "type": "string"}],
            "zones": [{"name": "body", "components": ["hero", "faq"]}],
        },
        format="json",
    )
    assert response.status_code == 201, response.content

    # When an entry with both blocks and a VIP variant is created and published
    body = {
        "slug": "home",
        "locale": "en",
        "status": "draft",
        "fields": {"hero_title": "Welcome"},
        "zones": {"body": [hero("Hello", vip="Welcome back, VIP"), faq(("Shipping?", "Free"))]},
        "audience": ["vip"],
        "lifecycle_stage": "customer",
        "language": "en",
    }
    created = staff_client.post("/api/v1/content/homepage/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "draft"
    assert anonymous.get("/api/v1/content/homepage/home/").status_code == 404

    published = staff_client.post("/api/v1/content/homepage/home/publish/", {}, format="json")
    assert published.status_code == 200, published.content
    assert published.json()["status"] == "published"

    # Then an anonymous reader sees it, blocks in order, variant included
    read = anonymous.get("/api/v1/content/homepage/home/")
    assert read.status_code == 200
    data = read.json()
    assert data["fields"] == {"hero_title": "Welcome"}
    assert [block["component"] for block in data["zones"]["body"]] == ["hero", "faq"]
    assert data["zones"]["body"][0]["variants"][0]["data"] == {"heading": "Welcome back, VIP"}
    assert read["Cache-Tag"] == f"content:{data['id']} type:homepage"
    assert read["ETag"]

    # And removing the field that has data is refused, saying how many entries it would break
    refused = staff_client.patch("/api/v1/content-types/homepage/", {"fields": []}, format="json")
    assert refused.status_code == 409
    assert refused["Content-Type"] == PROBLEM
    assert "1 existing entry" in refused.json()["detail"]
    assert staff_client.get("/api/v1/content-types/homepage/").json()["fields"] == [
        {"name": "hero_title", "type": "string"}
    ]
