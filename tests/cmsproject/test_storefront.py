"""The demo storefront's server side: the page, and the purchase endpoint's refusals (the
purchase itself goes through the real events API: tests/e2e/test_storefront_browser.py)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


def test_the_page_renders_with_the_socket_address(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"storefront.js" in response.content
    assert b"ws://testserver/ws/v1/live" in response.content


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        ({"product": "linen-shirt"}, "anonymousId"),
        ({"anonymousId": "bad id with spaces", "product": "linen-shirt"}, "anonymousId"),
        ({"anonymousId": "anon-1"}, "product"),
        ({"anonymousId": "anon-1", "product": "no-such-product"}, "product"),
    ],
)
def test_a_bad_purchase_is_refused_and_nothing_is_sent(api_client, body, attr):
    response = api_client.post("/demo/purchase/", body, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert attr in {error["attr"] for error in response.json()["errors"]}


def test_the_demo_key_is_made_once_and_kept_private(settings, tmp_path):
    from cmsproject.storefront import demo_api_key

    settings.VAR_DIR = tmp_path
    first = demo_api_key()
    assert demo_api_key() == first
    assert (tmp_path / "demo-api-key").stat().st_mode & 0o077 == 0
