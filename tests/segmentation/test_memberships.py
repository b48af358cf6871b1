"""Recording membership changes as stays, and announcing them after commit: the subject's own
socket hears `segments.changed`, webhooks get `segment.entered`/`segment.exited`, the cached
segment set is forgotten."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from channels.testing.websocket import WebsocketCommunicator
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from cmsproject.asgi import application
from content.models import WebhookDelivery
from content.webhooks import webhook_endpoint_create
from customers.models import AnonymousId
from segmentation.memberships import segment_members_set, subject_memberships_set
from segmentation.models import Segment, SegmentMembership
from segmentation.selectors import subject_segment_keys
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def segments(db):
    return [
        Segment.objects.create(key="vip", name="VIP"),
        Segment.objects.create(key="churned", name="Churned"),
    ]


def test_entering_and_leaving_are_stays_and_counts(segments):
    vip, churned = segments
    now = timezone.now()
    change = subject_memberships_set(subject="a:b1", keys={"vip"}, segments=segments, now=now)
    assert (change.entered, change.exited) == ({"vip"}, set())
    later = now + timedelta(minutes=5)
    change = subject_memberships_set(subject="a:b1", keys={"churned"}, segments=segments, now=later)
    assert (change.entered, change.exited) == ({"churned"}, {"vip"})

    stays = list(SegmentMembership.objects.order_by("entered_at", "segment__key"))
    assert [(s.segment.key, s.exited_at) for s in stays] == [("vip", later), ("churned", None)]
    vip.refresh_from_db()
    churned.refresh_from_db()
    assert (vip.member_count, churned.member_count) == (0, 1)
    # nothing changes: nothing recorded
    again = subject_memberships_set(subject="a:b1", keys={"churned"}, segments=segments, now=later)
    assert (again.entered, again.exited) == (set(), set())
    assert SegmentMembership.objects.count() == 2


def test_the_cached_segment_set_is_forgotten_after_commit(segments):
    assert subject_segment_keys(subject="a:b2") == []
    subject_memberships_set(subject="a:b2", keys={"vip"}, segments=segments, now=timezone.now())
    assert subject_segment_keys(subject="a:b2") == ["vip"]


def test_bulk_sets_a_segments_customers_and_leaves_browsers_alone(segments):
    vip, _ = segments
    one, two, three = CustomerFactory(), CustomerFactory(), CustomerFactory()
    now = timezone.now()
    customers_only = Q(customer__isnull=False)
    subject_memberships_set(subject="a:b3", keys={"vip"}, segments=segments, now=now)
    segment_members_set(
        segment=vip, subjects={f"c:{one.pk}", f"c:{two.pk}"}, now=now, among=customers_only
    )

    changes = segment_members_set(
        segment=vip,
        subjects={f"c:{two.pk}", f"c:{three.pk}"},
        now=now,
        among=customers_only,
    )
    assert {s: (c.entered, c.exited) for s, c in changes.items()} == {
        f"c:{one.pk}": (set(), {"vip"}),
        f"c:{three.pk}": ({"vip"}, set()),
    }
    current = set(
        SegmentMembership.objects.filter(segment=vip, exited_at__isnull=True).values_list(
            "subject", flat=True
        )
    )
    assert current == {"a:b3", f"c:{two.pk}", f"c:{three.pk}"}
    assert SegmentMembership.objects.get(subject=f"c:{three.pk}").customer_id == three.pk


def test_webhooks_hear_entered_and_exited(segments):
    webhook_endpoint_create(
        url="https://hooks.example.com/",
        events=["segment.entered", "segment.exited"],
        secret="a-secret-of-sixteen-chars",
    )
    now = timezone.now()
    subject_memberships_set(subject="a:b4", keys={"vip"}, segments=segments, now=now)
    subject_memberships_set(subject="a:b4", keys=set(), segments=segments, now=now)
    deliveries = list(WebhookDelivery.objects.order_by("created_at", "pk"))
    assert [(d.event, d.payload["segment"], d.payload["subject"]) for d in deliveries] == [
        ("segment.entered", "vip", "a:b4"),
        ("segment.exited", "vip", "a:b4"),
    ]


def test_a_rolled_back_change_is_not_recorded_or_announced(segments):
    webhook_endpoint_create(
        url="https://hooks.example.com/", events=["segment.entered"], secret="x" * 20
    )
    with transaction.atomic():
        subject_memberships_set(subject="a:b5", keys={"vip"}, segments=segments, now=timezone.now())
        transaction.set_rollback(True)
    assert not SegmentMembership.objects.exists()
    assert not WebhookDelivery.objects.exists()


async def _listen(path: str) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(application, path)
    await socket.connect(timeout=5)
    await socket.send_json_to({"action": "subscribe", "topic": "customer:me"})
    assert (await socket.receive_json_from(timeout=5))["type"] == "subscribed"
    return socket


def test_the_subjects_own_sockets_hear_segments_changed(segments):
    customer = CustomerFactory()
    AnonymousId.objects.create(customer=customer, value="laptop-9")

    async def scenario() -> tuple[dict, dict, bool]:
        laptop = await _listen("/ws/v1/live?anonymous_id=laptop-9")
        stranger = await _listen("/ws/v1/live?anonymous_id=someone-else")
        await asyncio.to_thread(
            subject_memberships_set,
            subject=f"c:{customer.pk}",
            keys={"vip"},
            segments=segments,
            now=timezone.now(),
        )
        heard = await laptop.receive_json_from(timeout=5)
        quiet = await stranger.receive_nothing(timeout=0.3)
        await laptop.disconnect()
        await stranger.disconnect()
        return heard, heard["data"], quiet

    message, data, stranger_heard_nothing = asyncio.run(scenario())
    assert message["type"] == "segments.changed"
    assert data == {"entered": ["vip"], "exited": [], "segments": ["vip"]}
    assert stranger_heard_nothing


def test_a_customer_who_refused_personalization_leaves_silently(segments):
    from customers.models import Consent

    customer = CustomerFactory()
    webhook_endpoint_create(
        url="https://hooks.example.com/", events=["segment.exited"], secret="y" * 20
    )
    now = timezone.now()
    subject = f"c:{customer.pk}"
    subject_memberships_set(subject=subject, keys={"vip"}, segments=segments, now=now)
    Consent.objects.create(customer=customer, purpose="personalization", granted=False)

    change = subject_memberships_set(subject=subject, keys=set(), segments=segments, now=now)

    assert change.exited == {"vip"}  # the stay is closed...
    assert not WebhookDelivery.objects.filter(event="segment.exited").exists()  # ...silently
