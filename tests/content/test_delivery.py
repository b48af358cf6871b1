"""Personalized delivery: each block resolved for the caller's segments, variants never sent,
consent respected, the same through REST and GraphQL."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from content.services import entry_create, entry_publish, entry_update
from customers.models import AnonymousId, Consent
from customers.services import customer_token_issue
from segmentation.models import Segment, SegmentMembership
from segmentation.selectors import subject_segments_forget
from tests.content.conftest import faq, hero
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/deliver/homepage/home/"
DEFAULT, VIP = "Hello", "Welcome back, VIP"


@pytest.fixture
def home(homepage_type):
    entry = entry_create(
        entry_type=homepage_type,
        body={
            "slug": "home",
            "fields": {"hero_title": "Home"},
            "zones": {"body": [hero(DEFAULT, vip=VIP), faq(("Q?", "A."))]},
        },
    )
    return entry_publish(entry=entry)


@pytest.fixture
def vip(db):
    return Segment.objects.create(key="vip", name="VIP", kind=Segment.Kind.STATIC)


def enter(segment, subject, customer=None):
    SegmentMembership.objects.create(
        segment=segment, subject=subject, customer=customer, entered_at=timezone.now()
    )
    subject_segments_forget(subject=subject)


def heading(response) -> str:
    assert response.status_code == 200, response.content
    return response.json()["data"]["zones"]["body"][0]["data"]["heading"]


def test_nobody_gets_the_defaults_and_no_variant_is_sent(anonymous, home):
    response = anonymous.get(URL)
    assert heading(response) == DEFAULT
    body = response.json()
    assert body["meta"] == {"segments": [], "experiments": {}}
    assert "variants" not in str(body)
    assert set(body["data"]["zones"]["body"][0]) == {"id", "component", "data"}
    assert response["Vary"] == "Authorization, Cookie, X-Anonymous-Id"
    assert response["Cache-Control"] == "private, no-cache"


def test_an_anonymous_visitor_in_a_segment_gets_its_variant(anonymous, home, vip):
    enter(vip, "a:browser-1")
    response = anonymous.get(URL, HTTP_X_ANONYMOUS_ID="browser-1")
    assert heading(response) == VIP
    assert response.json()["meta"]["segments"] == ["vip"]
    assert "segment:vip" in response["Cache-Tag"].split()
    assert heading(anonymous.get(URL, HTTP_X_ANONYMOUS_ID="browser-2")) == DEFAULT


def test_a_customer_token_and_a_linked_anonymous_id_both_mean_the_customer(anonymous, home, vip):
    customer = CustomerFactory(external_id="site-7")
    AnonymousId.objects.create(customer=customer, value="phone-7")
    enter(vip, f"c:{customer.pk}", customer)

    assert heading(anonymous.get(URL, HTTP_X_ANONYMOUS_ID="phone-7")) == VIP
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {customer_token_issue(external_id='site-7')}")
    assert heading(client.get(URL)) == VIP


def test_a_customer_who_refused_personalization_gets_the_defaults(anonymous, home, vip):
    customer = CustomerFactory()
    AnonymousId.objects.create(customer=customer, value="laptop-1")
    enter(vip, f"c:{customer.pk}", customer)
    Consent.objects.create(customer=customer, purpose="personalization", granted=False)

    response = anonymous.get(URL, HTTP_X_ANONYMOUS_ID="laptop-1")
    assert heading(response) == DEFAULT
    assert response.json()["meta"]["segments"] == []


def test_a_segment_change_shows_on_the_next_request(anonymous, home, vip):
    assert heading(anonymous.get(URL, HTTP_X_ANONYMOUS_ID="browser-9")) == DEFAULT
    enter(vip, "a:browser-9")
    assert heading(anonymous.get(URL, HTTP_X_ANONYMOUS_ID="browser-9")) == VIP


def test_drafts_are_not_delivered_and_unpublished_entries_are_404(anonymous, home):
    entry_update(entry=home, body={"fields": {"hero_title": "Draft"}})
    assert anonymous.get(URL).json()["data"]["fields"]["hero_title"] == "Home"
    response = anonymous.get("/api/v1/deliver/homepage/nothing/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_etag_gives_304(anonymous, home):
    first = anonymous.get(URL)
    assert anonymous.get(URL, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304


def test_graphql_deliver_matches_rest(anonymous, home, vip):
    enter(vip, "a:browser-3")
    query = '{ deliver(type: "homepage", slug: "home", anonymousId: "browser-3") { data meta } }'
    response = anonymous.post("/graphql/", {"query": query}, format="json")
    delivered = response.json()["data"]["deliver"]
    rest = anonymous.get(URL, HTTP_X_ANONYMOUS_ID="browser-3").json()
    assert delivered == rest


def test_a_warm_anonymous_delivery_makes_no_sql_query(
    anonymous, home, vip, django_assert_num_queries
):
    enter(vip, "a:browser-4")
    assert heading(anonymous.get(URL, HTTP_X_ANONYMOUS_ID="browser-4")) == VIP  # warms the caches
    with django_assert_num_queries(0):
        assert heading(anonymous.get(URL, HTTP_X_ANONYMOUS_ID="browser-4")) == VIP


def test_identify_makes_the_browser_its_customer_on_the_next_request(anonymous, home, vip):
    from customers.services import customer_identify

    customer = CustomerFactory(external_id="site-11")
    enter(vip, f"c:{customer.pk}", customer)
    assert heading(anonymous.get(URL, HTTP_X_ANONYMOUS_ID="tablet-11")) == DEFAULT  # cached: none
    customer_identify(anonymous_id="tablet-11", external_id="site-11")
    assert heading(anonymous.get(URL, HTTP_X_ANONYMOUS_ID="tablet-11")) == VIP


def test_anonymous_deliveries_share_the_per_ip_budget(anonymous, home, settings):
    settings.CMS_THROTTLE_RATES = {**settings.CMS_THROTTLE_RATES, "anon": "2/min"}
    statuses = [anonymous.get(URL, HTTP_X_ANONYMOUS_ID="b").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
