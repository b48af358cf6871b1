"""A block's A/B test and feature flag in the zone editor, in a real browser against a real
server: the demo home page's call to action is bound to the running experiment `join-cta`; a
marketer changes the discount variant's label and gates another block behind the `new-checkout`
flag through selects and inputs (no JSON), publishes, and the API has both. Saving keeps them (the
editor used to drop block keys it did not know), and an invalid edit still lands beside its inputs
and changes nothing.

Playwright drives Debian's Chromium (/usr/bin/chromium); the page may reach only the server.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Server
from tests.e2e.test_zone_editor_browser import log_in, staff_headers

# The server fixture (`cms_server`) picks the mode of the pass, so this runs in both.
pytestmark = [pytest.mark.e2e, pytest.mark.browser]

HOME = "/api/v1/content/page/home/"
DISCOUNT = "Experiment variant “discount”"


@pytest.fixture
def home(cms_server: Server) -> Iterator[dict[str, Any]]:
    """The demo home page as editors read it; published back as it was afterwards (the server
    is shared by the session, and the storefront tests read this page)."""
    with cms_server.client(headers=staff_headers(cms_server)) as staff:
        before = staff.get(HOME)
        assert before.status_code == 200, before.text[:500]
        yield before.json()
        original = {"fields": before.json()["fields"], "zones": before.json()["zones"]}
        restored = staff.patch(HOME, json=original)
        assert restored.status_code == 200, restored.text[:500]
        if restored.json()["live_revision"] != restored.json()["revision"]:
            assert staff.post(f"{HOME}publish/").status_code == 200


def editor_read(server: Server) -> dict[str, Any]:
    with server.client(headers=staff_headers(server)) as staff:
        response = staff.get(HOME)
    assert response.status_code == 200, response.text[:500]
    return response.json()


def test_an_ab_test_and_a_flag_are_edited_published_and_kept(
    page: Any,
    cms_server: Server,
    home: dict[str, Any],
    outside_requests: list[str],
    page_errors: list[str],
) -> None:
    from playwright.sync_api import expect

    body = home["zones"]["body"]
    assert [block["component"] for block in body] == ["hero", "rich_text", "cta"]
    assert body[2]["experiment"]["key"] == "join-cta"

    # Given the home page open in the editor: the cta block shows its A/B test, control being
    # the default, and one sub-form for the discount variant
    log_in(page, cms_server)
    page.goto(f"/admin/content/entry/{home['id']}/change/")
    zone = page.get_by_role("region", name="Body")
    cta = zone.get_by_role("group", name="Block 3: Call to action")
    expect(cta.locator(".ze-item-title")).to_contain_text("[A/B test join-cta]")
    ab_test = cta.get_by_role("group", name="A/B test")
    expect(ab_test.get_by_label("Experiment")).to_have_value("join-cta")
    expect(ab_test.get_by_label("Experiment").locator("option:checked")).to_have_text(
        "join-cta — Join button: club vs discount — running"
    )
    expect(ab_test).to_contain_text("Control (“control”) is the default")
    discount = ab_test.get_by_role("group", name=DISCOUNT)
    expect(discount.get_by_label("Label", exact=True)).to_have_value("Join and get 10% off")
    expect(discount.get_by_label("Url", exact=True)).to_have_attribute(
        "placeholder", "inherits: /signup"
    )
    expect(ab_test.get_by_role("group", name="Experiment variant “control”")).to_have_count(0)
    rich_text = zone.get_by_role("group", name="Block 2: Rich text")
    flag = rich_text.get_by_label("Show only when flag is on")
    expect(flag).to_have_value("")

    # When the discount label changes and the rich text requires the flag, saved and published
    label = f"Join now: 15% off {secrets.token_hex(3)}"
    discount.get_by_label("Label", exact=True).fill(label)
    flag.select_option("new-checkout")
    expect(rich_text).to_contain_text("Only visitors for whom “new-checkout” is on")
    expect(rich_text.locator(".ze-item-title")).to_have_text("2. Rich text [flag new-checkout]")
    page.get_by_role("button", name="Save and publish").click()
    expect(page.locator(".messagelist .success")).to_contain_text("Published revision")

    # Then the API has both, and everything the editor did not touch is as it was
    saved = editor_read(cms_server)
    assert saved["live_revision"] == saved["revision"] > home["revision"]
    hero, rich, call = saved["zones"]["body"]
    assert call["experiment"] == {"key": "join-cta", "variants": {"discount": {"label": label}}}
    assert call["data"] == body[2]["data"]
    assert rich["flag"] == "new-checkout"
    assert "flag" not in call and "flag" not in hero and "experiment" not in rich
    assert hero == body[0]  # its VIP variant included

    # And the reopened editor shows them again
    zone = page.get_by_role("region", name="Body")
    ab_test = zone.get_by_role("group", name="Block 3: Call to action").get_by_role(
        "group", name="A/B test"
    )
    expect(
        ab_test.get_by_role("group", name=DISCOUNT).get_by_label("Label", exact=True)
    ).to_have_value(label)
    expect(
        zone.get_by_role("group", name="Block 2: Rich text").get_by_label(
            "Show only when flag is on"
        )
    ).to_have_value("new-checkout")
    assert not page_errors, page_errors
    assert not outside_requests, outside_requests


def test_an_invalid_edit_shows_its_errors_beside_the_inputs_and_changes_nothing(
    page: Any, cms_server: Server, home: dict[str, Any], page_errors: list[str]
) -> None:
    from playwright.sync_api import expect

    # Given the home page open in the editor
    log_in(page, cms_server)
    page.goto(f"/admin/content/entry/{home['id']}/change/")
    cta = page.get_by_role("region", name="Body").get_by_role(
        "group", name="Block 3: Call to action"
    )

    # When the default label is cleared (it is required) and the discount label is made longer
    # than the component allows (past the input's own limit, as an API client could)
    default_label = cta.locator('[data-path="zones.body[2].data.label"]')
    default_label.get_by_label("Label", exact=True).fill("")
    discount_label = cta.get_by_role("group", name=DISCOUNT).get_by_label("Label", exact=True)
    discount_label.evaluate("input => input.removeAttribute('maxlength')")
    discount_label.fill("x" * 61)
    page.get_by_role("button", name="Save draft").click()

    # Then each error shows beside its own input, and the A/B test is still bound
    problem = page.locator("#entry-editor-problem")
    expect(problem).to_contain_text("zones.body[2].data.label")
    expect(problem).to_contain_text("zones.body[2].experiment.variants.discount.label")
    cta = page.get_by_role("region", name="Body").get_by_role(
        "group", name="Block 3: Call to action"
    )
    default_label = cta.locator('[data-path="zones.body[2].data.label"]')
    expect(default_label.get_by_label("Label", exact=True)).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(default_label.locator(".ze-errorlist")).to_contain_text("This field is required.")
    discount = cta.get_by_role("group", name=DISCOUNT)
    expect(discount.get_by_label("Label", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(discount.get_by_label("Label", exact=True)).to_have_value("x" * 61)
    expect(discount.locator(".ze-errorlist")).to_have_count(1)
    expect(cta.get_by_role("group", name="A/B test").get_by_label("Experiment")).to_have_value(
        "join-cta"
    )

    # And nothing was saved
    after = editor_read(cms_server)
    assert after["revision"] == home["revision"]
    assert after["zones"] == home["zones"]
    assert not page_errors, page_errors
