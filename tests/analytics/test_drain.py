"""The drain: buffer → events (each once) → roll-ups → customers → hook, in the mode's real
buffer (a file embedded, a Redis Stream with a consumer group in services mode)."""

from __future__ import annotations

import random
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from analytics.buffer import RedisStreamBuffer
from analytics.drain import drain_until_empty
from analytics.models import (
    DroppedEvents,
    Event,
    EventRollup,
    SubjectDailyRollup,
    SubjectHourlyRollup,
)
from analytics.services import Caller, event_type_save, events_accept
from analytics.signals import events_ingested
from customers.models import AnonymousId, Consent, Customer
from customers.services import customer_identify

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


# --- Set-based roll-ups: exact across batches, workers and identify --------------------------
def _recounted(events) -> dict[tuple[str, str, datetime], tuple[int, int]]:
    """(type, interval, bucket) -> (count, unique subjects), from stored events, from scratch."""
    subjects: dict[tuple[str, str, datetime], list] = {}
    for event_type, customer_id, anonymous_id, moment in events:
        moment = moment.astimezone(UTC)
        subject = f"c:{customer_id}" if customer_id else f"a:{anonymous_id}"
        for interval, bucket in (
            ("minute", moment.replace(second=0, microsecond=0)),
            ("hour", moment.replace(minute=0, second=0, microsecond=0)),
            ("day", moment.replace(hour=0, minute=0, second=0, microsecond=0)),
        ):
            subjects.setdefault((event_type, interval, bucket), []).append(subject)
    return {key: (len(found), len(set(found))) for key, found in subjects.items()}


def _stored_rollups() -> dict[tuple[str, str, datetime], tuple[int, int]]:
    return {
        (r.event_type, r.interval, r.bucket.astimezone(UTC)): (r.count, r.uniques)
        for r in EventRollup.objects.all()
    }


def _stored_hourly() -> dict[tuple[str, datetime, str], tuple[int, int]]:
    return {
        (r.event_type, r.hour.astimezone(UTC), r.subject): (r.count, r.minutes)
        for r in SubjectHourlyRollup.objects.all()
    }


def _hourly_recounted(events) -> dict[tuple[str, datetime, str], tuple[int, int]]:
    """(type, hour, subject) -> (count, minute bits), from stored events."""
    hourly: dict[tuple[str, datetime, str], tuple[int, int]] = {}
    for event_type, customer_id, anonymous_id, moment in events:
        moment = moment.astimezone(UTC)
        subject = f"c:{customer_id}" if customer_id else f"a:{anonymous_id}"
        key = (event_type, moment.replace(minute=0, second=0, microsecond=0), subject)
        count, bits = hourly.get(key, (0, 0))
        hourly[key] = (count + 1, bits | 1 << moment.minute)
    return hourly


def _stored_events():
    return Event.objects.values_list("type", "customer_id", "anonymous_id", "timestamp")


def _random_events(rng: random.Random, count: int, prefix: str = "r") -> list[dict]:
    """Events of a few subjects over two days and a few hours, some ids sent twice."""
    events = []
    for _ in range(count):
        subject = rng.randrange(12)
        moment = datetime(
            2026, 11, 19 + rng.randrange(2), 9 + rng.randrange(3), rng.randrange(60), 5, tzinfo=UTC
        )
        event = {
            "id": f"{prefix}{rng.randrange(count * 4 // 5)}",
            "type": rng.choice(["page_view", "add_to_cart"]),
            "timestamp": moment.isoformat(),
            "properties": {"amount": rng.randrange(1, 5), "path": f"/{rng.randrange(3)}"},
        }
        event.update(
            {"userId": f"u{subject}"} if subject % 3 == 0 else {"anonymousId": f"b{subject}"}
        )
        events.append(event)
    return events


def test_rollups_match_a_recount_of_the_stored_events_over_many_batches(events_buffer):
    """Minute and hour uniques come from the per-subject hourly rows, day uniques from the daily
    ones: adding batch after batch must give what counting the stored events gives."""
    accept(*_random_events(random.Random(3), 400))

    drain_until_empty(buffer=events_buffer, max_seconds=60, batch_size=37)

    assert Event.objects.count() > 200  # some ids were sent twice
    assert _stored_rollups() == _recounted(_stored_events())
    assert _stored_hourly() == _hourly_recounted(_stored_events())
    per_day: dict[tuple[str, date, str], tuple[int, int]] = {}
    for event_type, customer_id, anonymous_id, moment, properties in Event.objects.values_list(
        "type", "customer_id", "anonymous_id", "timestamp", "properties"
    ):
        key = (
            f"c:{customer_id}" if customer_id else f"a:{anonymous_id}",
            moment.astimezone(UTC).date(),
            event_type,
        )
        count, amount = per_day.get(key, (0, 0))
        per_day[key] = (count + 1, amount + properties["amount"])
    daily = SubjectDailyRollup.objects.values_list("subject", "day", "event_type", "count", "sums")
    assert {(s, d, t): (c, sums["amount"]) for s, d, t, c, sums in daily} == per_day


def test_daily_sums_and_distinct_values_merge_with_what_is_stored(
    events_buffer, drain, monkeypatch
):
    monkeypatch.setattr("analytics.rollups.MAX_DISTINCT_VALUES", 4)
    event_type_save(name="product_view", distinct_properties=["category", "size"])

    def view(minute: int, **properties) -> dict:
        return {
            "type": "product_view",
            "userId": "u1",
            "timestamp": at(minute),
            "properties": properties,
        }

    accept(view(1, category="shoes", price=10), view(2, category="hats", price=2.5))
    drain()
    accept(
        view(3, category="shoes", price=1, size=42),
        view(4, category="bags", quantity=3, size=True),
        view(5, category="a-line", size="M"),
        view(6, category="zips"),
    )

    drain()

    daily = SubjectDailyRollup.objects.get()
    assert daily.count == 6
    assert daily.sums == {"price": 13.5, "quantity": 3, "size": 42}
    # Distinct values ordered as Python's str() orders them, the first MAX_DISTINCT_VALUES kept.
    assert daily.distinct == {
        "category": ["a-line", "bags", "hats", "shoes"],
        "size": [42, "M", True],
    }


def test_a_repeated_event_is_not_rolled_up_again(events_buffer, drain):
    accept(
        {
            "id": "once",
            "type": "page_view",
            "anonymousId": "a",
            "timestamp": at(1),
            "properties": {"n": 1},
        }
    )
    drain()
    accept(
        {
            "id": "once",
            "type": "page_view",
            "anonymousId": "a",
            "timestamp": at(1),
            "properties": {"n": 1},
        },
        {
            "id": "new",
            "type": "page_view",
            "anonymousId": "b",
            "timestamp": at(1),
            "properties": {"n": 1},
        },
    )

    report = drain()

    assert (report.inserted, report.duplicates) == (1, 1)
    assert _stored_rollups() == _recounted(_stored_events())
    assert SubjectDailyRollup.objects.get(subject="a:a").sums == {"n": 1}
    assert SubjectHourlyRollup.objects.get(subject="a:a").count == 1


def test_after_identify_the_customer_is_not_counted_again_in_the_same_minute(events_buffer, drain):
    """Identify recounts the buckets of the moved events and rebuilds their hourly rows: the
    customer's next event in the same minute finds itself already counted."""
    accept(
        {"type": "page_view", "anonymousId": "browser", "timestamp": at(1)},
        {"type": "page_view", "anonymousId": "bystander", "timestamp": at(1)},
    )
    drain()
    customer, moved = customer_identify(anonymous_id="browser", external_id="u1")

    accept({"type": "page_view", "userId": "u1", "timestamp": at(1)})
    drain()

    assert moved == 1
    assert _stored_rollups() == _recounted(_stored_events())
    assert {r.interval: (r.count, r.uniques) for r in EventRollup.objects.all()} == {
        "minute": (3, 2),
        "hour": (3, 2),
        "day": (3, 2),
    }
    assert _stored_hourly() == _hourly_recounted(_stored_events())
    assert set(SubjectHourlyRollup.objects.values_list("subject", flat=True)) == {
        f"c:{customer.pk}",
        "a:bystander",
    }


@pytest.mark.services
def test_one_refused_event_among_many_is_dropped_alone(events_buffer):
    now = timezone.now().isoformat()
    good = [
        {
            "id": f"ok{n}",
            "type": "page_view",
            "userId": None,
            "anonymousId": f"a{n % 7}",
            "properties": {},
            "timestamp": now,
            "receivedAt": now,
        }
        for n in range(60)
    ]
    bad = {**good[0], "id": "bad", "properties": {"q": "a\u0000b"}}
    events_buffer.append([*good[:41], bad, *good[41:]])

    drain_until_empty(buffer=events_buffer, max_seconds=60, batch_size=100)

    assert Event.objects.count() == 60
    assert DroppedEvents.objects.get(reason="unstorable").count == 1
    assert _stored_rollups() == _recounted(_stored_events())
    assert events_buffer.pending_count() == 0


@pytest.mark.services
def test_two_workers_draining_the_same_subjects_at_once_count_each_event_once(events_buffer):
    """Each worker reads as its own consumer; their batches share subjects and buckets, so their
    upserts meet on the same roll-up rows (and wait for each other there)."""
    accept(*_random_events(random.Random(5), 600, prefix="w"))
    errors: list[BaseException] = []
    stored: dict[str, int] = {}

    def work(name: str) -> None:
        try:
            worker = RedisStreamBuffer(settings.REDIS_URL, consumer=name)
            stored[name] = 0
            while report := drain_until_empty(buffer=worker, max_seconds=60, batch_size=20):
                if not report.read:
                    break
                stored[name] += report.inserted
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(name,)) for name in ("w1", "w2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors, errors
    assert all(stored.values()), stored  # both took part
    assert events_buffer.pending_count() == 0
    assert _stored_rollups() == _recounted(_stored_events())
    assert sum(SubjectDailyRollup.objects.values_list("count", flat=True)) == Event.objects.count()


@pytest.mark.django_db
def test_hourly_rows_past_the_event_age_limit_are_pruned():
    from analytics.rollups import subject_hourly_rollups_prune

    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    for days_ago in (40, 30, 1):
        SubjectHourlyRollup.objects.create(
            event_type="page_view",
            hour=now - timedelta(days=days_ago),
            subject=f"a:{days_ago}",
            count=1,
            minutes=1,
        )
    assert subject_hourly_rollups_prune(now=now, max_age=timedelta(days=30)) == 1
    assert sorted(SubjectHourlyRollup.objects.values_list("subject", flat=True)) == ["a:1", "a:30"]
