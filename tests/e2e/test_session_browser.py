"""The storefront's shared cart in a real browser (both passes): two devices (two browser
contexts, each with its own storage) hold one session token through the "Continue on another
device" link; a change on one shows on the other without a reload, through `session.state` on the
socket. Writes that cross another device's (409), and changes made offline, are replayed on the
current state: nothing is lost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Server

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

LIVE_WITHIN_MS = 2000


@pytest.fixture
def other_device(
    browser: Any, cms_server: Server, outside_requests: list[str], page_errors: list[str]
) -> Iterator[Any]:
    """A second browser context (another device: its own localStorage) on the same server."""
    context = browser.new_context(base_url=cms_server.base_url)
    context.set_default_timeout(20_000)

    def only_local(route: Any) -> None:
        if route.request.url.startswith(f"{cms_server.base_url}/"):
            route.continue_()
        else:
            outside_requests.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    device = context.new_page()
    device.on("pageerror", lambda error: page_errors.append(str(error)))
    try:
        yield device
    finally:
        context.close()


def open_storefront(page: Any, url: str = "/") -> None:
    from playwright.sync_api import expect

    page.goto(url)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    expect(page.locator("#cart-sync")).to_have_attribute("data-state", "saved")
    expect(page.locator("button[data-add-to-cart='linen-shirt']")).to_be_visible()
    page.evaluate("window.__sameDocument = true")


def session_token(page: Any) -> str:
    href = page.locator("#session-link").get_attribute("href") or ""
    assert "#session=" in href, href
    return href.split("#session=", 1)[1]


def cart_item(page: Any, product: str) -> Any:
    return page.locator(f"#cart-items li[data-cart-product='{product}']")


def join(device: Any, page: Any) -> str:
    """Open on `device` the share link shown on `page`; both now hold one token."""
    link = page.locator("#session-link").get_attribute("href")
    open_storefront(device, link)
    token = session_token(page)
    assert session_token(device) == token
    assert "#session=" not in device.url  # the secret leaves the address bar
    return token


def test_a_cart_change_on_one_device_shows_on_the_other_live(
    page: Any,
    other_device: Any,
    cms_server: Server,
    outside_requests: list[str],
    page_errors: list[str],
) -> None:
    from playwright.sync_api import expect

    # Given the storefront open on a laptop and, through its share link, on a phone
    laptop, phone = page, other_device
    open_storefront(laptop)
    token = join(phone, laptop)
    assert 32 <= len(token) <= 128
    phone.evaluate(
        """() => new MutationObserver((_, observer) => {
             if (document.querySelector("#cart-items li[data-cart-product='linen-shirt']")) {
               window.__seenAt = Date.now();
               observer.disconnect();
             }
           }).observe(document.getElementById("cart-items"), {childList: true})"""
    )

    # When the laptop adds a shirt to the cart
    clicked_at = laptop.evaluate(
        """() => { const at = Date.now();
                   document.querySelector("button[data-add-to-cart='linen-shirt']").click();
                   return at; }"""
    )

    # Then the phone shows it, live, without a reload
    expect(cart_item(phone, "linen-shirt")).to_be_visible(timeout=LIVE_WITHIN_MS)
    latency_ms = phone.evaluate("window.__seenAt") - clicked_at
    print(f"\ncart change seen on the other device after {latency_ms} ms ({cms_server.mode})")
    assert latency_ms < LIVE_WITHIN_MS
    expect(cart_item(phone, "linen-shirt").get_by_test_id("cart-quantity")).to_have_text("1")
    expect(laptop.locator("#cart-sync")).to_have_attribute("data-state", "saved")

    # And changes flow back: the phone adds one more, the laptop removes the line
    cart_item(phone, "linen-shirt").locator("[data-cart-action='add']").click()
    expect(cart_item(laptop, "linen-shirt").get_by_test_id("cart-quantity")).to_have_text("2")
    expect(laptop.locator("#cart-total")).to_have_text("$158")
    expect(laptop.locator("#cart-sync")).to_have_attribute("data-state", "saved")
    cart_item(laptop, "linen-shirt").locator("[data-cart-action='remove']").click()
    expect(cart_item(phone, "linen-shirt")).to_have_count(0, timeout=LIVE_WITHIN_MS)
    expect(phone.locator("#cart-empty")).to_be_visible()

    # Nothing reloaded, nothing left the server, no script error
    assert laptop.evaluate("window.__sameDocument") is True
    assert phone.evaluate("window.__sameDocument") is True
    assert outside_requests == []
    assert page_errors == []


def test_a_write_crossing_another_devices_is_replayed_on_top_of_it(
    page: Any,
    other_device: Any,
    cms_server: Server,
    outside_requests: list[str],
    page_errors: list[str],
) -> None:
    from playwright.sync_api import expect

    laptop, phone = page, other_device
    open_storefront(laptop)
    token = join(phone, laptop)
    state_path = f"/api/v1/sessions/{token}/state/"
    statuses: list[int] = []
    phone.on(
        "response",
        lambda response: (
            statuses.append(response.status)
            if response.request.method == "PUT" and state_path in response.url
            else None
        ),
    )

    def another_device_writes_first(route: Any) -> None:
        """The phone's first write leaves with the version it read; a third device (a plain API
        client) writes in between, so the phone's write arrives stale."""
        if route.request.method == "PUT" and not statuses:
            with cms_server.client() as api:
                current = api.get(state_path).json()
                scarf = {"product": "silk-scarf", "name": "Silk scarf", "price": 129, "quantity": 1}
                written = api.put(
                    state_path,
                    json={"state": {"cart": [*current["state"].get("cart", []), scarf]}},
                    headers={"If-Match": str(current["version"])},
                )
                assert written.status_code == 200, written.text
        route.continue_()

    phone.route(f"**{state_path}", another_device_writes_first)

    # When the phone adds a shirt while another device adds a scarf
    phone.locator("button[data-add-to-cart='linen-shirt']").click()

    # Then the phone's stale write is refused, replayed on the scarf cart, and both devices agree
    for device in (phone, laptop):
        expect(cart_item(device, "silk-scarf")).to_be_visible()
        expect(cart_item(device, "linen-shirt")).to_be_visible()
    expect(phone.locator("#cart-sync")).to_have_attribute("data-state", "saved")
    assert statuses[:2] == [409, 200], statuses
    with cms_server.client() as api:
        stored = api.get(state_path).json()
    assert sorted(item["product"] for item in stored["state"]["cart"]) == [
        "linen-shirt",
        "silk-scarf",
    ]
    assert stored["version"] == 2  # the other device's write, then the replayed one
    assert outside_requests == []
    assert page_errors == []


def test_changes_made_offline_are_saved_and_merged_when_back_online(
    page: Any,
    other_device: Any,
    cms_server: Server,
    outside_requests: list[str],
    page_errors: list[str],
) -> None:
    from playwright.sync_api import expect

    laptop, phone = page, other_device
    open_storefront(laptop)
    join(phone, laptop)

    # Given the phone offline, with two shirts added there (queued, shown on the phone only)
    phone.context.set_offline(True)
    add_shirt = phone.locator("button[data-add-to-cart='linen-shirt']")
    add_shirt.click()
    add_shirt.click()
    expect(phone.locator("#cart-sync")).to_have_attribute("data-state", "offline")
    expect(cart_item(phone, "linen-shirt").get_by_test_id("cart-quantity")).to_have_text("2")
    # ...and a scarf added on the laptop meanwhile
    laptop.locator("button[data-add-to-cart='silk-scarf']").click()
    expect(laptop.locator("#cart-sync")).to_have_attribute("data-state", "saved")
    time.sleep(0.3)
    expect(cart_item(laptop, "linen-shirt")).to_have_count(0)

    # When the phone is back online
    phone.context.set_offline(False)

    # Then its queued changes are written on top of the laptop's, and both devices agree
    for device in (phone, laptop):
        expect(cart_item(device, "linen-shirt").get_by_test_id("cart-quantity")).to_have_text(
            "2", timeout=15_000
        )
        expect(cart_item(device, "silk-scarf").get_by_test_id("cart-quantity")).to_have_text("1")
        expect(device.locator("#cart-total")).to_have_text("$287")
    expect(phone.locator("#cart-sync")).to_have_attribute("data-state", "saved")
    assert phone.evaluate("localStorage.length") > 0
    assert phone.evaluate(
        "Object.keys(localStorage).filter(k => k.startsWith('cms-session-pending:'))"
        ".every(k => JSON.parse(localStorage.getItem(k)).length === 0)"
    )
    assert phone.evaluate("window.__sameDocument") is True
    assert outside_requests == []
    assert page_errors == []
