"""The experiments admin in a real browser, against a real server: a marketer builds an
experiment with the variant row editor (a third variant, split evenly), saves and starts it;
exposures and conversions arrive through the public events API; "Recompute now" on the results
page counts them, the table and the three charts draw; declaring a winner shows it. A flag's kill
switch in the flag list turns it off for everyone at once.

Playwright drives Debian's Chromium (/usr/bin/chromium); the page may reach only the server
(Chart.js is vendored under analytics/, no CDN). The server's demo data has the `add_to_cart`
event type, and the exposure type is ensured after every migrate.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import Server
from tests.e2e.test_zone_editor_browser import log_in, staff_headers

# The server fixture (`cms_server`) picks the mode of the pass, so this runs in both.
pytestmark = [pytest.mark.e2e, pytest.mark.browser]

DRAIN_WAIT = 20.0  # the drain runs every 2 s; a slow CI box gets some slack
VARIANTS = {"control": (20, 2), "treatment": (20, 4), "bold": (20, 6)}  # units, conversions
CHARTS = ("experiment-rate-chart", "experiment-uplift-chart", "experiment-exposures-chart")


def post_events(server: Server, key: str, token: str) -> None:
    """Exposures and conversions as a site would send them: anonymous units, one batch."""
    now = datetime.now(UTC)
    events = []
    for variant, (units, converted) in VARIANTS.items():
        for index in range(units):
            unit = f"e2e-{token}-{variant}-{index}"
            events.append(
                {
                    "type": "experiment_exposure",
                    "anonymousId": unit,
                    "properties": {"experiment": key, "variant": variant},
                    "timestamp": now.isoformat(),
                }
            )
            if index < converted:
                events.append(
                    {
                        "type": "add_to_cart",
                        "anonymousId": unit,
                        "timestamp": (now + timedelta(seconds=1)).isoformat(),
                    }
                )
    with server.client() as client:
        response = client.post("/api/v1/events/batch/", json={"events": events})
    assert response.status_code == 202, response.text[:500]
    assert response.json()["accepted"] == len(events), response.text[:500]


def recompute_until_counted(page: Any) -> None:
    """Press "Recompute now" until the drain has stored every exposure."""
    from playwright.sync_api import expect

    deadline = time.monotonic() + DRAIN_WAIT
    expected = {variant: str(units) for variant, (units, _) in VARIANTS.items()}
    while True:
        page.get_by_role("button", name="Recompute now").click()
        expect(page.locator(".messagelist .success")).to_have_text("Results recomputed.")
        counted = {
            variant: page.locator(f"tr[data-variant='{variant}'] td.exposures").inner_text()
            for variant in VARIANTS
        }
        if counted == expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert counted == expected, f"exposures counted {counted}, expected {expected}"


def flag_value(server: Server, key: str, unit: str) -> Any:
    with server.client() as client:
        response = client.get("/api/v1/flags/", params={"unit": unit})
    assert response.status_code == 200, response.text[:500]
    return response.json()[key]


def test_an_experiment_built_started_computed_and_won_in_the_admin(
    page: Any, cms_server: Server, outside_requests: list[str], page_errors: list[str]
) -> None:
    from playwright.sync_api import expect

    token = secrets.token_hex(3)
    key, name = f"hero-{token}", f"Hero test {token}"
    log_in(page, cms_server)
    page.goto("/admin/experiments/experiment/add/")
    page.locator("#id_key").fill(key)
    page.locator("#id_name").fill(name)

    # Given control and treatment to start from, a third variant is added by clicks
    editor = page.locator(".variants-editor")
    total = editor.get_by_role("status")
    expect(editor.get_by_role("group", name="Variant 1").get_by_label("Key")).to_have_value(
        "control"
    )
    expect(total).to_have_text("Total: 100 %")
    editor.get_by_role("button", name="Add variant").click()
    bold = editor.get_by_role("group", name="Variant 3")
    bold.get_by_label("Key").fill("bold")
    bold.get_by_label("Weight (%)").fill("10")
    expect(total).to_have_text("Total: 110 % (must be 100 %)")
    editor.get_by_role("button", name="Split evenly").click()
    expect(total).to_have_text("Total: 100 %")
    expect(bold.get_by_label("Weight (%)")).to_have_value("33.3333")
    page.get_by_label("Metric event").select_option("add_to_cart")
    page.get_by_label("Min exposures").fill("1000")  # no winner by the rule in this test
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".messagelist .success")).to_contain_text("was added successfully")

    # When it is started from its page
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page.locator(".messagelist .success")).to_have_text(f"“{name}” is now running.")
    with cms_server.client(headers=staff_headers(cms_server)) as client:
        stored = client.get(f"/api/v1/experiments/{key}/").json()
    assert [v["key"] for v in stored["variants"]] == ["control", "treatment", "bold"]
    assert sum(v["weight"] for v in stored["variants"]) == pytest.approx(1)
    assert stored["status"] == "running"

    # And units are exposed and convert, through the public events API
    post_events(cms_server, key, token)

    # Then "Recompute now" counts them; the table and the three charts draw
    page.locator(".object-tools").get_by_role("link", name="Results").click()
    expect(page.get_by_role("heading", name=f"Results of {name}")).to_be_visible()
    recompute_until_counted(page)
    expect(page.locator("tr[data-variant='bold'] td.conversions")).to_have_text("6")
    expect(page.locator(".srm-warning")).to_have_count(0)
    for chart in CHARTS:
        expect(page.locator(f"canvas#{chart}")).to_be_visible()
        assert page.evaluate(f"Boolean(Chart.getChart('{chart}'))"), f"{chart} was not drawn"
    history = page.evaluate("Chart.getChart('experiment-exposures-chart').data.datasets.length")
    assert history == 3  # a line per variant

    # When a winner is declared (after the confirmation)
    page.get_by_label("Winner").select_option("bold")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Declare winner").click()

    # Then the page shows it, and the experiment is completed
    expect(page.locator(".messagelist .success")).to_contain_text("“bold” is the winner")
    expect(page.locator(".experiment-results-winner")).to_contain_text("bold (manual)")
    expect(page.locator("tr[data-variant='bold'] .experiment-winner-mark")).to_be_visible()
    expect(page.locator(".experiment-summary .experiment-status")).to_have_text(
        re.compile("completed", re.I)
    )
    assert not page_errors, page_errors
    assert not outside_requests, outside_requests


def test_the_kill_switch_in_the_flag_list_turns_a_flag_off_for_everyone(
    page: Any, cms_server: Server, outside_requests: list[str], page_errors: list[str]
) -> None:
    from playwright.sync_api import expect

    key = f"new-checkout-{secrets.token_hex(3)}"
    with cms_server.client(headers=staff_headers(cms_server)) as client:
        created = client.post(
            "/api/v1/flags/", json={"key": key, "name": f"New checkout {key}", "enabled": True}
        )
    assert created.status_code == 201, created.text[:500]
    assert flag_value(cms_server, key, "visitor-1") is True

    log_in(page, cms_server)
    page.goto(f"/admin/experiments/featureflag/?q={key}")
    switch = page.locator("#result_list input[name='form-0-enabled']")
    expect(switch).to_be_checked()
    switch.uncheck()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist .success")).to_contain_text("changed successfully")
    expect(page.locator("#result_list input[name='form-0-enabled']")).not_to_be_checked()

    assert flag_value(cms_server, key, "visitor-1") is False
    assert not page_errors, page_errors
    assert not outside_requests, outside_requests
