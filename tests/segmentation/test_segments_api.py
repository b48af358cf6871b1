"""Segments through REST, and segments updating themselves: events drained by the real drain
move a customer (or a browser) into a segment, and the delivery endpoint shows it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.services import ANONYMOUS, events_accept
from segmentation.models import Segment, SegmentMembership
from segmentation.services import segment_recompute, segments_recompute_all
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)
PROBLEM = "application/problem+json"
VIP_RULES = {
    "event": "purchase",
    "aggregate": "sum",
    "property": "amount",
    "within_days": 90,
    "op": "gt",
    "value": 500,
}


@pytest.fixture
def purchase_type(db):
    from analytics.demo import demo_load

    demo_load()


def post_segment(client, **body):
    return client.post(
        "/api/v1/segments/", {"name": body.get("key", "x").title(), **body}, format="json"
    )


def test_crud_schema_and_member_count(staff_client, purchase_type):
    created = post_segment(staff_client, key="vip", rules=VIP_RULES)
    assert created.status_code == 201, created.content
    assert created.json()["rules"]["op"] == "gt"
    assert staff_client.get("/api/v1/segments/vip/").json()["member_count"] == 0
    patched = staff_client.patch("/api/v1/segments/vip/", {"name": "Big spenders"}, format="json")
    assert patched.json()["name"] == "Big spenders"
    schema = APIClient().get("/api/v1/segments/schema/").json()
    assert "$schema" in schema or "type" in schema or "$defs" in schema
    assert staff_client.delete("/api/v1/segments/vip/").status_code == 204


@pytest.mark.parametrize(
    ("rules", "attr"),
    [
        ({"attribute": "shoe_size", "op": "eq", "value": 42}, "rules.attribute"),
        ({"event": "teleported", "aggregate": "count", "op": "gte", "value": 1}, "rules.event"),
        ({"all": [{"attribute": "loyalty_tier", "op": "gt"}]}, "rules.all[0]"),
        ({"attribute": "loyalty_tier", "op": "in", "value": ["gold", "diamond"]}, "rules.value[1]"),
        ({"segment": "nothing"}, "rules.segment"),
    ],
)
def test_invalid_criteria_are_400_naming_the_path_and_save_nothing(
    staff_client, purchase_type, rules, attr
):
    response = post_segment(staff_client, key="bad", rules=rules)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == PROBLEM
    attrs = {error["attr"] for error in response.json()["errors"]}
    assert any(a.startswith(attr) for a in attrs), attrs
    assert not Segment.objects.filter(key="bad").exists()


def test_a_cycle_is_refused(staff_client, purchase_type):
    post_segment(
        staff_client, key="a", rules={"attribute": "loyalty_tier", "op": "eq", "value": "gold"}
    )
    post_segment(staff_client, key="b", rules={"segment": "a"})
    response = staff_client.patch("/api/v1/segments/a/", {"rules": {"segment": "b"}}, format="json")
    assert response.status_code == 400
    assert staff_client.delete("/api/v1/segments/a/").status_code == 409  # b refers to it


def test_preview_counts_and_needs_staff_rights(staff_client, api_client, purchase_type):
    CustomerFactory(loyalty_tier="gold")
    CustomerFactory(loyalty_tier="silver")
    body = {"rules": {"attribute": "loyalty_tier", "op": "in", "value": ["gold", "platinum"]}}
    preview = staff_client.post("/api/v1/segments/preview/", body, format="json")
    assert preview.status_code == 200
    assert preview.json()["count"] == 1
    assert preview.json()["sample"][0]["loyalty_tier"] == "gold"
    assert api_client.post("/api/v1/segments/preview/", body, format="json").status_code == 401
    plain = APIClient()
    plain.force_authenticate(UserFactory(is_staff=True))
    assert plain.post("/api/v1/segments/preview/", body, format="json").status_code == 403


def test_static_segments_take_members_by_hand_and_csv(staff_client, purchase_type):
    one, two = CustomerFactory(email="one@example.com"), CustomerFactory(external_id="site-two")
    post_segment(staff_client, key="testers", kind="static")
    added = staff_client.post(
        "/api/v1/segments/testers/members/", {"customer_ids": [one.pk]}, format="json"
    )
    assert added.json() == {"changed": 1}
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile(
        "m.csv", b"external_id\nsite-two\nsite-nobody\n", content_type="text/csv"
    )
    imported = staff_client.post(
        "/api/v1/segments/testers/members/import/", {"file": upload}, format="multipart"
    )
    assert imported.json() == {"matched": 1, "unknown": ["site-nobody"], "changed": 1}
    members = staff_client.get("/api/v1/segments/testers/members/").json()["results"]
    assert {m["subject"] for m in members} == {f"c:{one.pk}", f"c:{two.pk}"}
    dynamic = post_segment(staff_client, key="vip", rules=VIP_RULES)
    assert dynamic.status_code == 201
    refused = staff_client.post(
        "/api/v1/segments/vip/members/", {"customer_ids": [one.pk]}, format="json"
    )
    assert refused.status_code == 409


def test_bulk_recompute_follows_the_rules(purchase_type):
    gold, silver = CustomerFactory(loyalty_tier="gold"), CustomerFactory(loyalty_tier="silver")
    segment = Segment.objects.create(
        key="gold", name="Gold", rules={"attribute": "loyalty_tier", "op": "eq", "value": "gold"}
    )
    assert segment_recompute(segment_id=segment.pk) == 1
    assert segment_recompute(segment_id=segment.pk) == 0  # idempotent
    silver.loyalty_tier = "gold"
    silver.save()
    assert segments_recompute_all() == {"gold": 1}
    current = SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True)
    assert {m.customer_id for m in current} == {gold.pk, silver.pk}


def test_purchases_drained_move_a_browser_into_vip_and_delivery_shows_it(
    purchase_type, events_buffer, drain
):
    # Given the VIP segment and a browser that has bought for $300
    Segment.objects.create(key="vip", name="VIP", rules=VIP_RULES)
    now = timezone.now()

    def buy(amount: float, event_id: str) -> None:
        events_accept(
            events=[
                {
                    "id": event_id,
                    "type": "purchase",
                    "anonymousId": "shopper-1",
                    "timestamp": (now - timedelta(minutes=1)).isoformat(),
                    "properties": {"amount": amount},
                }
            ],
            caller=ANONYMOUS,
        )

    buy(300, "p-1")
    drain()
    assert not SegmentMembership.objects.exists()

    # When another $250 lands and the drain commits it
    buy(250, "p-2")
    drain()

    # Then the browser is in VIP, with the stay recorded
    stay = SegmentMembership.objects.get()
    assert (stay.subject, stay.segment.key, stay.exited_at) == ("a:shopper-1", "vip", None)


def test_withdrawing_personalization_consent_ends_every_stay(purchase_type):
    from customers.services import consents_set

    customer = CustomerFactory(loyalty_tier="gold")
    segment = Segment.objects.create(
        key="gold", name="Gold", rules={"attribute": "loyalty_tier", "op": "eq", "value": "gold"}
    )
    segment_recompute(segment_id=segment.pk)
    assert SegmentMembership.objects.filter(exited_at__isnull=True).count() == 1

    consents_set(customer=customer, consents={"personalization": False})

    assert not SegmentMembership.objects.filter(exited_at__isnull=True).exists()


def test_graphql_segments_for_staff_only(staff_client, api_client, purchase_type):
    Segment.objects.create(key="vip", name="VIP", rules=VIP_RULES)
    query = {"query": "{ segments { key name kind memberCount rules } }"}
    data = staff_client.post("/graphql/", query, format="json").json()["data"]
    assert data["segments"][0]["key"] == "vip"
    assert data["segments"][0]["rules"]["op"] == "gt"
    refused = api_client.post("/graphql/", query, format="json").json()
    assert refused["errors"][0]["extensions"]["code"] == "forbidden"
