"""The content admin in a real browser, against a real server: a marketer builds an entry with the
zone editor (two blocks, reordered), publishes it, and the API returns the blocks in the new
order; a developer defines a content type with the row editor instead of typing JSON.

Playwright drives Debian's Chromium (/usr/bin/chromium); `playwright install` is never used.
The browser context may reach only the server under test: the editors need no CDN.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server

# The server fixture (`cms_server`) picks the mode of the pass, so this runs in both.
pytestmark = [pytest.mark.e2e, pytest.mark.browser]

TOKEN = "/api/v1/auth/token/"


def staff_headers(server: Server) -> dict[str, str]:
    with server.client() as client:
        response = client.post(
            TOKEN, json={"username": server.admin_user, "password": server.admin_password}
        )
    assert response.status_code == 200, response.text[:500]
    return {"Authorization": f"Bearer {response.json()['access']}"}


@pytest.fixture
def landing_type(cms_server: Server) -> str:
    """A fresh type (the server is shared by the session) whose zone allows hero and faq."""
    api_id = f"landing_{secrets.token_hex(4)}"
    with cms_server.client(headers=staff_headers(cms_server)) as client:
        response = client.post(
            "/api/v1/content-types/",
            json={
                "api_id": api_id,
                "name": f"Landing {api_id[-8:]}",
                "kind": "collection",
                "fields": [{"name": "title", "type": "string"}],
                "zones": [{"name": "body", "components": ["hero", "faq"]}],
            },
        )
    assert response.status_code == 201, response.text[:500]
    return api_id


def log_in(page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", server.admin_user)
    page.fill("#id_password", server.admin_password)
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{server.base_url}/admin/")


def test_two_blocks_reordered_and_published_come_out_of_the_api_in_the_new_order(
    page: Any,
    cms_server: Server,
    landing_type: str,
    outside_requests: list[str],
    page_errors: list[str],
) -> None:
    from playwright.sync_api import expect

    log_in(page, cms_server)
    page.goto("/admin/content/entry/add/")
    name = f"Landing {landing_type[-8:]}"
    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=f"Add {name}")).to_be_visible()

    page.get_by_label("Slug").fill("spring-sale")
    page.get_by_label("Title", exact=True).fill("Spring sale")
    zone = page.get_by_role("region", name="Body")

    # Given a hero block, then an FAQ block with one question, added by clicks
    zone.get_by_label("Component to add").select_option("hero")
    zone.get_by_role("button", name="Add block").click()
    hero = zone.get_by_role("group", name="Block 1: Hero")
    hero.get_by_label("Heading", exact=True).fill("Spring is here")

    zone.get_by_label("Component to add").select_option("faq")
    zone.get_by_role("button", name="Add block").click()
    faq = zone.get_by_role("group", name="Block 2: FAQ")
    faq.get_by_role("button", name="Add FAQ item").click()
    item = faq.get_by_role("group", name="FAQ item 1")
    item.get_by_label("Question").fill("Is shipping free?")
    item.get_by_label("Answer").fill("<p>Yes, always.</p>")

    # When the FAQ moves up, and the entry is saved and published
    faq.get_by_role("button", name="Move block up").click()
    expect(zone.get_by_role("group", name="Block 1: FAQ")).to_be_visible()
    expect(zone.get_by_role("group", name="Block 2: Hero")).to_be_visible()
    # Focus follows the moved block, so a keyboard user can keep moving it.
    expect(
        zone.get_by_role("group", name="Block 1: FAQ").get_by_role("button", name="Move block down")
    ).to_be_focused()
    page.get_by_role("button", name="Save and publish").click()

    expect(page.locator(".messagelist .success")).to_contain_text("Published revision 1")
    editor = page.get_by_role("region", name="Body")
    expect(editor.get_by_role("group", name="Block 1: FAQ")).to_be_visible()

    # Then an anonymous reader gets the blocks in the new order
    with cms_server.client() as client:
        response = client.get(f"/api/v1/content/{landing_type}/spring-sale/")
    assert response.status_code == 200, response.text[:500]
    blocks = response.json()["zones"]["body"]
    assert [block["component"] for block in blocks] == ["faq", "hero"]
    assert blocks[0]["data"]["items"] == [
        {"question": "Is shipping free?", "answer": "<p>Yes, always.</p>"}
    ]
    assert blocks[1]["data"] == {"heading": "Spring is here"}
    assert response.json()["fields"] == {"title": "Spring sale"}
    assert not page_errors, page_errors
    assert not outside_requests, outside_requests


def test_blocks_can_also_be_reordered_by_drag_and_drop(
    page: Any, cms_server: Server, landing_type: str, page_errors: list[str]
) -> None:
    from playwright.sync_api import expect

    # Tall enough that nothing scrolls mid-drag (Playwright's drag does not follow a scroll).
    page.set_viewport_size({"width": 1400, "height": 2400})
    log_in(page, cms_server)
    page.goto(f"/admin/content/entry/add/?type={landing_type}")
    zone = page.get_by_role("region", name="Body")
    zone.get_by_role("button", name="Add block").click()
    zone.get_by_label("Component to add").select_option("faq")
    zone.get_by_role("button", name="Add block").click()

    faq_header = zone.get_by_role("group", name="Block 2: FAQ").locator(".ze-item-header").first
    hero_header = zone.get_by_role("group", name="Block 1: Hero").locator(".ze-item-header").first
    faq_header.drag_to(hero_header, target_position={"x": 10, "y": 2})

    expect(zone.get_by_role("group", name="Block 1: FAQ")).to_be_visible()
    expect(zone.get_by_role("group", name="Block 2: Hero")).to_be_visible()
    assert not page_errors, page_errors


def test_a_missing_heading_is_shown_beside_its_input(
    page: Any, cms_server: Server, landing_type: str, page_errors: list[str]
) -> None:
    from playwright.sync_api import expect

    log_in(page, cms_server)
    page.goto(f"/admin/content/entry/add/?type={landing_type}")
    page.get_by_label("Slug").fill("no-heading")
    zone = page.get_by_role("region", name="Body")
    zone.get_by_role("button", name="Add block").click()  # hero is the first allowed component

    page.get_by_role("button", name="Save draft").click()

    expect(page.locator("#entry-editor-problem")).to_contain_text("zones.body[0].data.heading")
    hero = page.get_by_role("region", name="Body").get_by_role("group", name="Block 1: Hero")
    heading = hero.get_by_label("Heading", exact=True)
    expect(heading).to_have_attribute("aria-invalid", "true")
    expect(hero.locator(".ze-errorlist")).to_contain_text("This field is required.")
    with httpx.Client(base_url=cms_server.base_url, headers=staff_headers(cms_server)) as client:
        assert client.get(f"/api/v1/content/{landing_type}/no-heading/").status_code == 404
    assert not page_errors, page_errors


def test_every_field_type_is_entered_through_its_own_input(
    page: Any, cms_server: Server, page_errors: list[str]
) -> None:
    from playwright.sync_api import expect

    api_id = f"kinds_{secrets.token_hex(4)}"
    fields = [
        {"name": "headline", "type": "string"},
        {"name": "body", "type": "richtext"},
        {"name": "stock", "type": "integer"},
        {"name": "price", "type": "number"},
        {"name": "featured", "type": "boolean"},
        {"name": "starts_at", "type": "datetime"},
        {"name": "season", "type": "enum", "choices": ["spring", "summer"]},
        {"name": "extra", "type": "json"},
        {"name": "related", "type": "reference", "to": api_id},
        {"name": "specs", "type": "component", "component": "spec_row", "repeatable": True},
    ]
    with cms_server.client(headers=staff_headers(cms_server)) as client:
        created = client.post(
            "/api/v1/content-types/",
            json={"api_id": api_id, "name": f"Kinds {api_id[-8:]}", "fields": fields},
        )
        assert created.status_code == 201, created.text[:500]
        other = client.post(f"/api/v1/content/{api_id}/", json={"slug": "other"})
        assert other.status_code == 201, other.text[:500]
    log_in(page, cms_server)
    page.goto(f"/admin/content/entry/add/?type={api_id}")
    page.get_by_label("Slug").fill("all-kinds")
    form = page.locator(".ze-entry-fields")
    form.get_by_label("Headline").fill("Hello")
    form.get_by_label("Body").fill("<p>Hi <script>x</script></p>")
    form.get_by_label("Stock").fill("7")
    form.get_by_label("Price").fill("9.5")
    form.get_by_label("Featured").check()
    form.get_by_label("Starts at").fill("2030-05-01T10:30")
    form.get_by_label("Season").select_option("summer")
    form.get_by_label("Extra").fill('{"a": [1, 2]}')
    form.get_by_label("Related").select_option(label="other (en, draft)")
    form.get_by_role("button", name="Add Specification row").click()
    row = form.get_by_role("group", name="Specification row 1")
    row.get_by_label("Label").fill("Weight")
    row.get_by_label("Value").fill("1 kg")

    page.get_by_role("button", name="Save draft").click()

    expect(page.locator(".messagelist .success")).to_contain_text("as a draft")
    with cms_server.client(headers=staff_headers(cms_server)) as client:
        saved = client.get(f"/api/v1/content/{api_id}/all-kinds/").json()["fields"]
    starts_at = saved.pop("starts_at")
    assert starts_at.startswith("2030-05-01T"), starts_at  # sent with a zone (the browser's)
    assert saved == {
        "headline": "Hello",
        "body": "<p>Hi </p>",  # sanitized by the service
        "stock": 7,
        "price": 9.5,
        "featured": True,
        "season": "summer",
        "extra": {"a": [1, 2]},
        "related": other.json()["id"],
        "specs": [{"label": "Weight", "value": "1 kg"}],
    }
    assert not page_errors, page_errors


def test_a_content_type_is_defined_with_the_row_editor(
    page: Any, cms_server: Server, outside_requests: list[str], page_errors: list[str]
) -> None:
    from playwright.sync_api import expect

    api_id = f"promo_{secrets.token_hex(4)}"
    log_in(page, cms_server)
    page.goto("/admin/content/entrytype/add/")
    page.locator("#id_api_id").fill(api_id)
    page.locator("#id_name").fill("Promo")

    page.get_by_role("button", name="Add field").click()
    field = page.get_by_role("group", name="Field 1")
    field.get_by_label("Name").fill("headline")
    field.get_by_label("Type").select_option("enum")
    field.get_by_label("Choices (comma-separated)").fill("spring, summer")
    field.get_by_label("Required").check()
    page.get_by_role("button", name="Add zone").click()
    zone = page.get_by_role("group", name="Zone 1")
    zone.get_by_label("Name").fill("body")
    zone.get_by_label("Hero").check()
    zone.get_by_label("FAQ", exact=True).check()
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.locator(".messagelist .success")).to_be_visible()
    with cms_server.client(headers=staff_headers(cms_server)) as client:
        response = client.get(f"/api/v1/content-types/{api_id}/")
    assert response.status_code == 200, response.text[:500]
    assert response.json()["fields"] == [
        {"name": "headline", "type": "enum", "choices": ["spring", "summer"], "required": True}
    ]
    assert response.json()["zones"] == [{"name": "body", "components": ["faq", "hero"]}]
    assert not page_errors, page_errors
    assert not outside_requests, outside_requests
