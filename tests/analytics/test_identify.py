"""Identify: an anonymous history becomes the customer's, once, through the real API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.models import Event, EventRollup, SubjectDailyRollup
from cmsproject.services import api_key_create
from customers.models import AnonymousId, Customer
from customers.services import customer_identify

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def site_backend() -> APIClient:
    """The site's own server: an API key that may issue customer tokens and name users."""
    _, raw = api_key_create(
        name="site",
        scopes=["customers:impersonate", "customers:write", "events:write"],
        created_by=None,
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


def browse_anonymously(client: APIClient, anonymous_id: str, pages: list[str]) -> None:
    """One page view per second, as a browser reports them (with its own timestamps)."""
    start = timezone.now() - timedelta(minutes=5)
    events = [
        {
            "type": "page_view",
            "anonymousId": anonymous_id,
            "properties": {"path": page},
            "timestamp": (start + timedelta(seconds=n)).isoformat(),
        }
        for n, page in enumerate(pages)
    ]
    response = client.post("/api/v1/events/batch/", {"events": events}, format="json")
    assert response.json() == {"accepted": len(pages), "rejected": []}


def test_history_shows_the_views_made_before_identifying(
    api_client, site_backend, drain, staff_client
):
    browse_anonymously(api_client, "browser-7", ["/", "/shoes", "/shoes/42"])
    drain()
    access = site_backend.post(
        "/api/v1/auth/customer-token/", {"external_id": "shop-user-1"}, format="json"
    ).json()["access"]
    customer_client = APIClient()
    customer_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")

    identified = customer_client.post(
        "/api/v1/identify/", {"anonymousId": "browser-7"}, format="json"
    )
    customer_id = identified.json()["customer"]
    history = staff_client.get(f"/api/v1/customers/{customer_id}/events/").json()

    assert identified.status_code == 200
    assert identified.json()["moved_events"] == 3
    assert [e["properties"]["path"] for e in history["results"]] == ["/shoes/42", "/shoes", "/"]
    assert set(history) == {"results", "next", "previous"}


def test_identify_twice_changes_nothing_more(api_client, drain):
    browse_anonymously(api_client, "b1", ["/a", "/b"])
    drain()

    customer, first = customer_identify(anonymous_id="b1", external_id="u1")
    _, second = customer_identify(anonymous_id="b1", external_id="u1")

    assert (first, second) == (2, 0)
    assert set(Event.objects.values_list("customer_id", flat=True)) == {customer.pk}
    daily = SubjectDailyRollup.objects.get()
    assert (daily.subject, daily.count) == (f"c:{customer.pk}", 2)


def test_identify_merges_into_existing_daily_rollups_and_recounts_uniques(
    api_client, site_backend, drain
):
    browse_anonymously(api_client, "b2", ["/x"])
    site_backend.post("/api/v1/events/", {"type": "page_view", "userId": "u2"}, format="json")
    drain()
    before = EventRollup.objects.get(event_type="page_view", interval="day").uniques

    customer_identify(anonymous_id="b2", external_id="u2")

    assert before == 2
    assert EventRollup.objects.get(event_type="page_view", interval="day").uniques == 1
    assert SubjectDailyRollup.objects.get().count == 2


def test_anonymous_events_after_identify_land_on_the_customer(api_client, drain):
    customer, _ = customer_identify(anonymous_id="b3", external_id="u3")

    browse_anonymously(api_client, "b3", ["/later"])
    drain()

    assert Event.objects.get().customer_id == customer.pk


def test_an_anonymous_id_of_another_customer_is_a_conflict(site_backend):
    customer_identify(anonymous_id="shared", external_id="first")

    response = site_backend.post(
        "/api/v1/identify/", {"anonymousId": "shared", "userId": "second"}, format="json"
    )

    assert response.status_code == 409
    assert AnonymousId.objects.get(value="shared").customer.external_id == "first"


def test_a_customer_token_cannot_claim_another_user_id(site_backend):
    access = site_backend.post(
        "/api/v1/auth/customer-token/", {"external_id": "me"}, format="json"
    ).json()["access"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")

    response = client.post(
        "/api/v1/identify/", {"anonymousId": "b4", "userId": "someone-else"}, format="json"
    )

    assert response.status_code == 403
    assert not AnonymousId.objects.exists()


def test_anonymous_callers_cannot_identify(api_client):
    response = api_client.post(
        "/api/v1/identify/", {"anonymousId": "b5", "userId": "x"}, format="json"
    )

    assert response.status_code == 401
    assert not Customer.objects.exists()


def test_traits_fill_email_and_name(site_backend):
    response = site_backend.post(
        "/api/v1/identify/",
        {
            "anonymousId": "b6",
            "userId": "u6",
            "traits": {"email": "Ada@Example.com", "name": "Ada"},
        },
        format="json",
    )

    customer = Customer.objects.get(pk=response.json()["customer"])
    assert (customer.email, customer.name) == ("ada@example.com", "Ada")


def test_purchases_made_anonymously_count_towards_spend_after_identify(api_client, drain):
    api_client.post(
        "/api/v1/events/",
        {"type": "purchase", "anonymousId": "b7", "properties": {"amount": 250}},
        format="json",
    )
    drain()

    customer, _ = customer_identify(anonymous_id="b7", external_id="u7")

    customer.refresh_from_db()
    assert customer.total_spend == 250
    assert customer.lifecycle_stage == "customer"
