"""A newcomer's first minute, in a real browser: `make run`, read the login, open the admin.

Playwright drives Debian's Chromium (/usr/bin/chromium); `playwright install` is never used.
The server is started without CMS_ADMIN_PASSWORD, so the launcher generates the password and
the banner is the only place to read it from.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Server

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.embedded]

TRANSPARENT = {"rgba(0, 0, 0, 0)", "transparent", ""}


@pytest.fixture
def outside_requests() -> list[str]:
    """URLs the page tried to fetch from anywhere but the server under test (all aborted)."""
    return []


@pytest.fixture
def page(browser: Any, newcomer_server: Server, outside_requests: list[str]) -> Iterator[Any]:
    """A fresh browser context that may only reach the server under test (no CDN, no network)."""
    context = browser.new_context(base_url=newcomer_server.base_url)
    context.set_default_timeout(20_000)

    def only_local(route: Any) -> None:
        if route.request.url.startswith(f"{newcomer_server.base_url}/"):
            route.continue_()
        else:
            outside_requests.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_admin_login_with_the_password_from_the_banner(
    page: Any, newcomer_server: Server, outside_requests: list[str]
) -> None:
    from playwright.sync_api import expect

    assert newcomer_server.admin_password is None  # the launcher had to generate one
    username, password = newcomer_server.banner_login()
    assert username == newcomer_server.admin_user
    static: dict[str, int] = {}
    page.on(
        "response",
        lambda response: (
            static.__setitem__(response.url, response.status)
            if "/static/" in response.url
            else None
        ),
    )

    page.goto("/admin/")
    expect(page).to_have_url(f"{newcomer_server.base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")

    expect(page).to_have_url(f"{newcomer_server.base_url}/admin/")
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    background = page.eval_on_selector("#header", "el => getComputedStyle(el).backgroundColor")
    assert background not in TRANSPARENT, "the admin is unstyled: #header has no background"
    stylesheets = {url: status for url, status in static.items() if url.endswith(".css")}
    assert stylesheets, f"no stylesheet was loaded: {static}"
    assert set(static.values()) == {200}, static
    session = [c for c in page.context.cookies() if c["name"] == "sessionid"]
    assert session, page.context.cookies()
    assert session[0]["secure"] and session[0]["httpOnly"], session
    assert not outside_requests, outside_requests


def test_api_docs_render_swagger_ui_from_local_assets(
    page: Any, outside_requests: list[str]
) -> None:
    from playwright.sync_api import expect

    page.goto("/api/v1/docs/")

    expect(page.locator(".swagger-ui")).to_be_visible()
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Headless CMS API")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    assert not outside_requests, f"the docs page needs assets from elsewhere: {outside_requests}"
