"""The drain: buffer → events (each once) → roll-ups → customers → hook, in the mode's real
buffer (a file embedded, a Redis Stream with a consumer group in services mode)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import timezone

from analytics.buffer import RedisStreamBuffer
from analytics.drain import drain_until_empty
from analytics.models import DroppedEvents, Event, EventRollup, SubjectDailyRollup
from analytics.services import Caller, event_type_save, events_accept
from analytics.signals import events_ingested
from customers.models import AnonymousId, Consent, Customer

pytestmark = pytest.mark.django_db(transaction=True)
SERVER = Caller(may_name_any_user=True)  # as an API key with events:write


def accept(*events: dict) -> None:
    result = events_accept(events=list(events), caller=SERVER)
    assert not result.rejected, result.rejected


def at(minute: int, hour: int = 10) -> str:
    return datetime(2026, 11, 20, hour, minute, 30, tzinfo=UTC).isoformat()


@pytest.fixture(autouse=True)
def _recent_timestamps_allowed(monkeypatch):
    monkeypatch.setattr("analytics.services.MAX_AGE", timedelta(days=3650))


def test_events_are_stored_once_even_when_sent_twice(events_buffer, drain):
    accept({"id": "e1", "type": "page_view", "anonymousId": "a"})
    drain()
    accept(
        {"id": "e1", "type": "page_view", "anonymousId": "a"},
        {"id": "e1", "type": "page_view", "anonymousId": "a"},
    )

    report = drain()

    assert Event.objects.count() == 1
    assert report.inserted == 0 and report.duplicates == 1
    assert EventRollup.objects.get(event_type="page_view", interval="day").count == 1
    assert events_buffer.pending_count() == 0


def test_entries_left_pending_are_stored_exactly_once_after_a_crash(events_buffer):
    """A worker read a batch and died before committing: nothing was acknowledged."""
    accept(*({"id": f"e{n}", "type": "page_view", "anonymousId": "a"} for n in range(5)))
    if isinstance(events_buffer, RedisStreamBuffer):
        dead = RedisStreamBuffer(settings.REDIS_URL, consumer="dead")
        assert len(dead.read(count=10)) == 5  # pending on the dead consumer, never acked
        # Another worker claims what the dead one left (XAUTOCLAIM; idle time 0 for the test).
        survivor = RedisStreamBuffer(settings.REDIS_URL, consumer="alive", claim_idle_ms=0)
    else:
        assert len(events_buffer.read(count=10)) == 5  # read, never acknowledged
        survivor = events_buffer

    drain_until_empty(buffer=survivor, max_seconds=30)
    drain_until_empty(buffer=survivor, max_seconds=30)

    assert sorted(Event.objects.values_list("id", flat=True)) == [f"e{n}" for n in range(5)]
    assert EventRollup.objects.get(event_type="page_view", interval="day").count == 5
    assert survivor.pending_count() == 0


def test_rollups_count_events_and_unique_subjects_per_bucket(events_buffer, drain):
    accept(
        {"type": "page_view", "anonymousId": "a", "timestamp": at(1)},
        {"type": "page_view", "anonymousId": "a", "timestamp": at(1)},
        {"type": "page_view", "anonymousId": "b", "timestamp": at(2)},
        {"type": "page_view", "userId": "u1", "timestamp": at(2, hour=11)},
    )

    drain()

    rollups = {
        (r.interval, r.bucket.hour, r.bucket.minute): (r.count, r.uniques)
        for r in EventRollup.objects.filter(event_type="page_view")
    }
    assert rollups == {
        ("minute", 10, 1): (2, 1),
        ("minute", 10, 2): (1, 1),
        ("minute", 11, 2): (1, 1),
        ("hour", 10, 0): (3, 2),
        ("hour", 11, 0): (1, 1),
        ("day", 0, 0): (4, 3),
    }


def test_subject_daily_rollups_sum_numbers_and_collect_distinct_values(events_buffer, drain):
    event_type_save(name="product_view", distinct_properties=["category"])
    accept(
        {
            "type": "product_view",
            "userId": "u1",
            "timestamp": at(1),
            "properties": {"category": "shoes", "price": 10},
        },
        {
            "type": "product_view",
            "userId": "u1",
            "timestamp": at(2),
            "properties": {"category": "hats", "price": 5.5},
        },
        {
            "type": "product_view",
            "userId": "u1",
            "timestamp": at(3),
            "properties": {"category": "shoes", "price": 1},
        },
    )

    drain()

    daily = SubjectDailyRollup.objects.get()
    assert daily.subject == f"c:{Customer.objects.get(external_id='u1').pk}"
    assert daily.count == 3
    assert daily.sums == {"price": 16.5}
    assert daily.distinct == {"category": ["hats", "shoes"]}


def test_purchases_update_spend_last_seen_and_lifecycle(events_buffer, drain):
    accept(
        {"type": "purchase", "userId": "u1", "timestamp": at(1), "properties": {"amount": 120.5}}
    )
    drain()
    customer = Customer.objects.get(external_id="u1")
    assert (customer.total_spend, customer.lifecycle_stage) == (Decimal("120.50"), "customer")

    accept({"type": "purchase", "userId": "u1", "timestamp": at(5), "properties": {"amount": 400}})
    drain()

    customer.refresh_from_db()
    assert customer.total_spend == Decimal("520.50")
    assert customer.lifecycle_stage == "repeat_customer"
    assert customer.last_seen == datetime(2026, 11, 20, 10, 5, 30, tzinfo=UTC)


def test_events_of_a_customer_who_refused_analytics_are_dropped_and_counted(events_buffer, drain):
    customer = Customer.objects.create(external_id="private")
    Consent.objects.create(customer=customer, purpose="analytics", granted=False)
    accept({"type": "page_view", "userId": "private"}, {"type": "page_view", "userId": "public"})

    drain()

    assert list(Event.objects.values_list("customer__external_id", flat=True)) == ["public"]
    assert DroppedEvents.objects.get(reason="consent").count == 1
    assert events_buffer.pending_count() == 0


def test_events_of_a_linked_anonymous_id_belong_to_its_customer(events_buffer, drain):
    customer = Customer.objects.create(external_id="known")
    AnonymousId.objects.create(value="browser-1", customer=customer)
    accept({"type": "page_view", "anonymousId": "browser-1"})

    drain()

    assert Event.objects.get().customer_id == customer.pk


def test_the_hook_hears_affected_customers_after_commit(events_buffer, drain):
    heard = []

    def listener(sender, customer_ids, anonymous_ids, **kwargs):
        heard.append((customer_ids, anonymous_ids))

    events_ingested.connect(listener)
    try:
        accept({"type": "page_view", "userId": "u9"}, {"type": "page_view", "anonymousId": "z"})
        drain()
    finally:
        events_ingested.disconnect(listener)

    customer_id = Customer.objects.get(external_id="u9").pk
    assert heard == [({customer_id}, {"z"})]


def test_unknown_customers_get_a_profile_on_their_first_event(events_buffer, drain):
    accept({"type": "signup", "userId": "brand-new"})

    drain()

    assert Customer.objects.filter(external_id="brand-new").exists()


def test_draining_an_empty_buffer_does_nothing(events_buffer, drain):
    report = drain()

    assert (report.read, report.inserted) == (0, 0)


def test_late_events_update_their_own_buckets(events_buffer, drain):
    accept({"type": "page_view", "anonymousId": "a", "timestamp": at(1)})
    drain()
    accept({"type": "page_view", "anonymousId": "b", "timestamp": at(1)})

    drain()

    minute = EventRollup.objects.get(event_type="page_view", interval="minute")
    assert (minute.count, minute.uniques) == (2, 2)
    assert timezone.is_aware(minute.bucket)


def test_events_of_an_erased_customer_are_dropped(events_buffer, drain):
    Customer.objects.create(external_id="gone", erased_at=timezone.now())
    accept({"type": "page_view", "userId": "gone"})

    drain()

    assert not Event.objects.exists()
    assert DroppedEvents.objects.get(reason="erased").count == 1


@pytest.mark.services
def test_an_event_the_database_refuses_does_not_hold_back_its_batch(events_buffer, drain):
    """Written straight to the stream (as an old client or a bug could): PostgreSQL refuses
    U+0000 in jsonb. The others of the batch are stored; the bad one is dropped and counted."""
    now = timezone.now().isoformat()
    good = {
        "id": "ok",
        "type": "page_view",
        "userId": None,
        "anonymousId": "a",
        "properties": {},
        "timestamp": now,
        "receivedAt": now,
    }
    events_buffer.append(
        [good, {**good, "id": "bad", "properties": {"q": "a\u0000b"}}, {**good, "id": "ok2"}]
    )

    drain()

    assert sorted(Event.objects.values_list("id", flat=True)) == ["ok", "ok2"]
    assert DroppedEvents.objects.get(reason="unstorable").count == 1
    assert events_buffer.pending_count() == 0
