"""Segment membership as customers see it: the admin's segment filter and profile section, and
`segments` in GraphQL. Memberships are stays (entered, exited)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from segmentation.models import Segment, SegmentMembership
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def vip_and_past_member():
    vip = Segment.objects.create(key="vip", name="VIP")
    now = timezone.now()
    current, former, never = CustomerFactory(), CustomerFactory(), CustomerFactory()
    SegmentMembership.objects.create(
        segment=vip, subject=f"c:{current.pk}", customer=current, entered_at=now
    )
    SegmentMembership.objects.create(
        segment=vip,
        subject=f"c:{former.pk}",
        customer=former,
        entered_at=now - timedelta(days=3),
        exited_at=now - timedelta(days=1),
    )
    return vip, current, former, never


def test_the_admin_filters_customers_by_current_segment(
    client, superuser, vip_and_past_member, django_assert_max_num_queries
):
    vip, current, _, _ = vip_and_past_member
    client.force_login(superuser)
    with django_assert_max_num_queries(12):
        response = client.get(f"/admin/customers/customer/?segment={vip.pk}")
    assert response.status_code == 200
    shown = {customer.pk for customer in response.context["cl"].result_list}
    assert shown == {current.pk}


def test_the_profile_shows_current_and_past_stays(client, superuser, vip_and_past_member):
    _, current, former, _ = vip_and_past_member
    client.force_login(superuser)
    assert "in it now" in client.get(f"/admin/customers/customer/{current.pk}/change/").text
    page = client.get(f"/admin/customers/customer/{former.pk}/change/").text
    assert "VIP" in page and "in it now" not in page


def test_graphql_segments_are_the_current_ones(staff_client, vip_and_past_member):
    _, current, former, _ = vip_and_past_member
    query = "query($id: ID!) { customer(id: $id) { segments { key name } } }"
    for customer, expected in ((current, [{"key": "vip", "name": "VIP"}]), (former, [])):
        response = staff_client.post(
            "/graphql/", {"query": query, "variables": {"id": customer.pk}}, format="json"
        )
        assert response.json()["data"]["customer"]["segments"] == expected


def test_one_open_stay_per_subject_and_segment(vip_and_past_member):
    from django.db import IntegrityError, transaction

    vip, current, _, _ = vip_and_past_member
    with pytest.raises(IntegrityError), transaction.atomic():
        SegmentMembership.objects.create(
            segment=vip, subject=f"c:{current.pk}", customer=current, entered_at=timezone.now()
        )
