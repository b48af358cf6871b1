"""Outgoing webhooks against a real local HTTP receiver: signed POSTs, retries with backoff after a
500 or a timeout, giving up, idempotent dispatch and sends, the REST API, the admin, and (services
pass) a real Celery worker delivering through Redis.

The sends run through the product's own path (dispatch → enqueue after commit → task →
`webhook_attempt`); `tasks_inline` makes enqueued tasks run in this process in both passes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from cmsproject.services import api_key_create
from content.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from content.tasks import webhook_deliver_task
from content.webhooks import (
    PING_EVENT,
    webhook_attempt,
    webhook_delivery_retry_now,
    webhook_endpoint_create,
    webhook_event_register,
    webhook_events,
    webhooks_dispatch,
    webhooks_retry_due,
)
from tests.content import webhook_receiver as receiver_fixtures
from tests.content.webhook_receiver import Reply, WebhookReceiver
from tests.factories import UserFactory

webhook_receiver = receiver_fixtures.webhook_receiver  # the fixture, shared with other modules

PROBLEM = "application/problem+json"
WEBHOOKS = "/api/v1/webhooks/"
SECRET = "s3cret-for-tests-0123456789"
PAYLOAD = {"entry": {"id": 42, "slug": "home", "type": "homepage"}, "revision": 3}
CONTENT_EVENTS = [
    "content.published",
    "content.updated",
    "content.unpublished",
    "content.deleted",
    "media.uploaded",
]


# --- fixtures and helpers ------------------------------------------------------------------------
@pytest.fixture
def tasks_inline(settings) -> None:
    """Tasks enqueued after commit run here, at once, in both passes (as CMS_EMBEDDED_TASKS_INLINE
    does in the embedded pass); the services pass has its own test with a real worker."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CMS_EMBEDDED_TASKS_INLINE = True


@pytest.fixture
def fast_retries(settings) -> None:
    settings.CMS_WEBHOOK_BACKOFF_SECONDS = 0.2
    settings.CMS_WEBHOOK_TIMEOUT_SECONDS = 2


@pytest.fixture
def after_commit(django_capture_on_commit_callbacks) -> Callable[[], Any]:
    """`with after_commit():` runs the block as a committed transaction would end: the
    on-commit callbacks (the enqueued sends) run at its end."""

    def block() -> Any:
        return django_capture_on_commit_callbacks(execute=True)

    return block


def endpoint_for(receiver: WebhookReceiver, **kwargs: Any) -> WebhookEndpoint:
    values = {"url": receiver.url, "events": ["content.published"], "secret": SECRET, **kwargs}
    endpoint, _ = webhook_endpoint_create(**values)
    return endpoint


def dispatch(after_commit, event: str = "content.published", key: str = "entry:42:rev3") -> None:
    with after_commit(), transaction.atomic():
        webhooks_dispatch(event=event, payload=PAYLOAD, key=key)


def retry_when_due(after_commit, delivery: WebhookDelivery) -> int:
    """Wait for the delivery's next_attempt_at, then run the beat job once."""
    delivery.refresh_from_db()
    wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
    time.sleep(max(wait, 0) + 0.02)
    with after_commit():
        return webhooks_retry_due()


def hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def errors_of(response) -> dict[str, str]:
    assert response["Content-Type"] == PROBLEM, response.content
    return {error["attr"]: error["code"] for error in response.json().get("errors", [])}


# --- signing and the request ---------------------------------------------------------------------
@pytest.mark.django_db
def test_the_receiver_gets_a_post_signed_with_the_hmac_of_the_exact_body(
    tasks_inline, after_commit, webhook_receiver
):
    # Given an endpoint subscribed to content.published
    endpoint = endpoint_for(webhook_receiver)

    # When the event is dispatched and the transaction commits
    dispatch(after_commit)

    # Then the receiver got one POST whose X-Signature is the HMAC-SHA256 of the raw body
    [request] = webhook_receiver.wait_for(1)
    delivery = WebhookDelivery.objects.get()
    assert request.method == "POST"
    assert request.path == "/hooks/cms"
    assert request.headers["x-signature"] == f"sha256={hmac_hex(SECRET, request.body)}"
    assert request.signature_is_valid(SECRET)
    assert not request.signature_is_valid("another-secret-0123456789")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-webhook-event"] == "content.published"
    assert request.headers["x-webhook-delivery"] == delivery.idempotency_key
    assert request.headers["user-agent"].startswith("headless-cms-webhooks/")
    body = request.json()
    assert body == {
        "id": delivery.idempotency_key,
        "event": "content.published",
        "created_at": body["created_at"],
        "data": PAYLOAD,
    }
    assert body["created_at"].startswith(str(delivery.created_at.date()))
    # And the delivery succeeded, with its one attempt logged
    delivery.refresh_from_db()
    assert delivery.endpoint == endpoint
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("succeeded", 1, None)
    [attempt] = delivery.log.all()
    assert (attempt.number, attempt.status_code, attempt.error) == (1, 200, "")
    assert attempt.duration_ms >= 0


@pytest.mark.django_db
def test_payload_values_that_are_not_json_are_sent_as_the_api_writes_them(
    tasks_inline, after_commit, webhook_receiver
):
    # Given a payload with a datetime and a decimal
    endpoint_for(webhook_receiver)
    moment = timezone.now().replace(microsecond=0)

    # When it is dispatched
    with after_commit():
        webhooks_dispatch(
            event="content.published",
            payload={"published_at": moment, "price": Decimal("9.90")},
            key="entry:7",
        )

    # Then the body carries them as the REST API renders them: ISO 8601 in UTC, decimal text
    [request] = webhook_receiver.wait_for(1)
    published_at = moment.isoformat().replace("+00:00", "Z")
    assert request.json()["data"] == {"published_at": published_at, "price": "9.90"}


# --- retries -------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_500_is_retried_after_the_backoff_with_the_same_id_and_body(
    tasks_inline, fast_retries, after_commit, webhook_receiver
):
    # Given a receiver that answers 500, then 200
    webhook_receiver.script(500, 200)
    endpoint_for(webhook_receiver)

    # When the event is dispatched
    dispatch(after_commit)

    # Then the first attempt is logged with 500 and the delivery waits for its retry
    delivery = WebhookDelivery.objects.get()
    [first] = delivery.log.all()
    assert (first.number, first.status_code) == (1, 500)
    assert first.error.startswith("HTTP 500")
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    wait = (delivery.next_attempt_at - first.attempted_at).total_seconds()
    assert 0.15 <= wait <= 0.3  # 0.2 s plus at most 10% jitter

    # When the beat job runs after the backoff
    sent = retry_when_due(after_commit, delivery)

    # Then the retry succeeds; two attempts are logged; the receiver saw the same id and bytes
    assert sent == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("succeeded", 2, None)
    assert [(a.number, a.status_code) for a in delivery.log.all()] == [(1, 500), (2, 200)]
    one, two = webhook_receiver.wait_for(2)
    assert one.headers["x-webhook-delivery"] == two.headers["x-webhook-delivery"]
    assert one.body == two.body
    assert one.headers["x-signature"] == two.headers["x-signature"]
    assert two.signature_is_valid(SECRET)
    assert (one.headers["x-webhook-attempt"], two.headers["x-webhook-attempt"]) == ("1", "2")


@pytest.mark.django_db
def test_the_backoff_doubles_with_each_failed_attempt(
    tasks_inline, fast_retries, after_commit, webhook_receiver
):
    # Given a receiver that keeps failing
    webhook_receiver.default = Reply(503)
    endpoint_for(webhook_receiver)
    dispatch(after_commit)
    delivery = WebhookDelivery.objects.get()

    # When two retries have run
    retry_when_due(after_commit, delivery)
    retry_when_due(after_commit, delivery)

    # Then each wait was about twice the one before (0.2 s, 0.4 s, 0.8 s, +10% jitter at most)
    delivery.refresh_from_db()
    log = list(delivery.log.all())
    assert [a.status_code for a in log] == [503, 503, 503]
    waits = [
        (later.attempted_at - earlier.attempted_at).total_seconds()
        for earlier, later in itertools.pairwise(log)
    ]
    waits.append((delivery.next_attempt_at - log[-1].attempted_at).total_seconds())
    for wait, base in zip(waits, [0.2, 0.4, 0.8], strict=True):
        assert base * 0.95 <= wait <= base * 1.1 + 0.25, waits


@pytest.mark.django_db
def test_a_timeout_is_a_failure_retried_and_the_delivery_fails_after_max_attempts(
    tasks_inline, settings, after_commit, webhook_receiver
):
    # Given a receiver slower than the timeout, and two attempts allowed
    settings.CMS_WEBHOOK_TIMEOUT_SECONDS = 0.3
    settings.CMS_WEBHOOK_BACKOFF_SECONDS = 0.2
    settings.CMS_WEBHOOK_MAX_ATTEMPTS = 2
    webhook_receiver.default = Reply(200, delay=1.5)
    endpoint_for(webhook_receiver)

    # When the event is dispatched
    dispatch(after_commit)

    # Then the first attempt timed out and a retry is scheduled
    delivery = WebhookDelivery.objects.get()
    [first] = delivery.log.all()
    assert first.status_code is None
    assert "Timed out" in first.error
    assert first.duration_ms >= 250
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.next_attempt_at is not None

    # When the retry times out too
    assert retry_when_due(after_commit, delivery) == 1

    # Then the delivery has failed for good: nothing is due, nothing more is sent
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 2, None)
    assert [a.status_code for a in delivery.log.all()] == [None, None]
    assert webhooks_retry_due() == 0
    assert webhook_attempt(delivery_id=delivery.pk) is None
    assert len(webhook_receiver.wait_for(2)) == 2
    time.sleep(0.1)
    assert len(webhook_receiver.requests) == 2


@pytest.mark.django_db
def test_a_connection_refused_is_a_failure_that_is_retried(
    tasks_inline, fast_retries, after_commit, webhook_receiver
):
    # Given an endpoint whose server is gone
    endpoint = endpoint_for(webhook_receiver)
    webhook_receiver.stop()

    # When the event is dispatched
    dispatch(after_commit)

    # Then the attempt is logged with the connection error, and a retry is scheduled
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    [attempt] = delivery.log.all()
    assert attempt.status_code is None
    assert "ConnectError" in attempt.error
    assert (delivery.status, delivery.attempts) == ("pending", 1)


@pytest.mark.django_db
def test_a_redirect_is_not_followed_and_counts_as_a_failure(
    tasks_inline, fast_retries, after_commit, webhook_receiver
):
    # Given a receiver answering 302
    webhook_receiver.script(302)
    endpoint_for(webhook_receiver)

    # When the event is dispatched
    dispatch(after_commit)

    # Then one request only, logged as a failure
    delivery = WebhookDelivery.objects.get()
    assert [a.status_code for a in delivery.log.all()] == [302]
    assert delivery.status == "pending"
    assert len(webhook_receiver.requests) == 1


@pytest.mark.django_db
def test_a_delivery_that_is_not_due_yet_is_not_sent(
    tasks_inline, settings, after_commit, webhook_receiver
):
    # Given a delivery that failed once and waits a minute for its retry
    settings.CMS_WEBHOOK_BACKOFF_SECONDS = 60
    webhook_receiver.script(500)
    endpoint_for(webhook_receiver)
    dispatch(after_commit)
    delivery = WebhookDelivery.objects.get()

    # When the task runs again early, and the beat job runs
    early = webhook_attempt(delivery_id=delivery.pk)
    with after_commit():
        swept = webhooks_retry_due()

    # Then nothing is sent
    assert early is None
    assert swept == 0
    assert len(webhook_receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 1


@pytest.mark.django_db
def test_the_sweep_sends_a_new_delivery_whose_task_was_lost_but_not_one_on_its_way(
    tasks_inline, after_commit, webhook_receiver
):
    # Given a delivery whose send task never ran (the transaction's on-commit hooks are dropped)
    endpoint_for(webhook_receiver)
    webhooks_dispatch(event="content.published", payload=PAYLOAD, key="lost")

    # When the sweep runs at once, and again once the delivery is a minute old
    with after_commit():
        fresh = webhooks_retry_due()
    WebhookDelivery.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    with after_commit():
        old = webhooks_retry_due()

    # Then the fresh one is left to its own task; the old one is sent
    assert (fresh, old) == (0, 1)
    assert len(webhook_receiver.wait_for(1)) == 1
    assert WebhookDelivery.objects.get().status == "succeeded"


# --- idempotency ---------------------------------------------------------------------------------
@pytest.mark.django_db
def test_dispatching_the_same_key_twice_creates_and_sends_one_delivery(
    tasks_inline, after_commit, webhook_receiver
):
    # Given an endpoint
    endpoint_for(webhook_receiver)

    # When the same occurrence is dispatched twice
    dispatch(after_commit, key="entry:42:published:rev3")
    dispatch(after_commit, key="entry:42:published:rev3")

    # Then one delivery exists and one request was made
    assert WebhookDelivery.objects.count() == 1
    time.sleep(0.1)
    assert len(webhook_receiver.requests) == 1


@pytest.mark.django_db
def test_only_active_endpoints_subscribed_to_the_event_get_a_delivery(
    tasks_inline, after_commit, webhook_receiver
):
    # Given a subscribed endpoint, an inactive one, and one subscribed to other events
    subscribed = endpoint_for(webhook_receiver, events=["content.updated", "content.published"])
    endpoint_for(webhook_receiver, is_active=False)
    endpoint_for(webhook_receiver, events=["content.deleted"])

    # When content.published is dispatched
    dispatch(after_commit)

    # Then only the subscribed, active endpoint gets it
    assert list(WebhookDelivery.objects.values_list("endpoint", flat=True)) == [subscribed.pk]
    assert len(webhook_receiver.wait_for(1)) == 1
    time.sleep(0.1)
    assert len(webhook_receiver.requests) == 1


@pytest.mark.django_db
def test_each_endpoint_gets_its_own_delivery_signed_with_its_own_secret(
    tasks_inline, after_commit, webhook_receiver
):
    # Given two endpoints with different secrets
    first = endpoint_for(webhook_receiver, url=f"{webhook_receiver.url}?n=1")
    second = endpoint_for(
        webhook_receiver, url=f"{webhook_receiver.url}?n=2", secret="another-secret-0123456789"
    )

    # When one event is dispatched
    dispatch(after_commit)

    # Then each got one request, signed with its secret, with distinct delivery ids
    requests = {r.path: r for r in webhook_receiver.wait_for(2)}
    assert requests["/hooks/cms?n=1"].signature_is_valid(first.secret)
    assert requests["/hooks/cms?n=2"].signature_is_valid(second.secret)
    ids = {r.headers["x-webhook-delivery"] for r in requests.values()}
    assert len(ids) == 2


@pytest.mark.django_db
def test_running_the_send_again_for_a_succeeded_delivery_sends_nothing(
    tasks_inline, after_commit, webhook_receiver
):
    # Given a delivery that succeeded
    endpoint_for(webhook_receiver)
    dispatch(after_commit)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "succeeded"

    # When the service and the task run again for it
    again = webhook_attempt(delivery_id=delivery.pk)
    webhook_deliver_task.apply(args=[delivery.pk])

    # Then nothing more is sent or logged
    assert again is None
    time.sleep(0.1)
    assert len(webhook_receiver.requests) == 1
    assert WebhookAttempt.objects.count() == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 1


@pytest.mark.django_db
def test_a_rolled_back_change_announces_nothing(tasks_inline, after_commit, webhook_receiver):
    # Given an endpoint
    endpoint_for(webhook_receiver)

    # When the transaction that dispatched the event rolls back
    with after_commit(), contextlib.suppress(RuntimeError), transaction.atomic():
        webhooks_dispatch(event="content.published", payload=PAYLOAD, key="entry:1")
        raise RuntimeError("the change failed")

    # Then no delivery exists and nothing was sent
    assert WebhookDelivery.objects.count() == 0
    time.sleep(0.1)
    assert webhook_receiver.requests == []


@pytest.mark.django_db(transaction=True)
def test_a_delivery_another_worker_holds_is_skipped_not_waited_on(webhook_receiver):
    """PostgreSQL: while another worker holds the row (select_for_update), a second send skips
    it at once. Rows are committed for real: the lock is taken on another connection."""
    if not connection.features.has_select_for_update_skip_locked:
        pytest.skip("SQLite takes no row locks; the compare-and-set on attempts guards it")
    endpoint = endpoint_for(webhook_receiver)
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event="content.published",
        payload=PAYLOAD,
        idempotency_key="held-by-another-worker",
        next_attempt_at=timezone.now(),
    )
    locked, release = threading.Event(), threading.Event()

    def other_worker() -> None:
        try:
            with transaction.atomic():
                WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()  # this thread's own connection

    holder = threading.Thread(target=other_worker)
    holder.start()
    assert locked.wait(5)

    # When a second send runs while the row is held, and again once it is released
    started = time.monotonic()
    skipped = webhook_attempt(delivery_id=delivery.pk)
    waited = time.monotonic() - started
    release.set()
    holder.join(5)
    sent = webhook_attempt(delivery_id=delivery.pk)

    # Then the first did nothing, without waiting; the second sent it
    assert skipped is None
    assert waited < 1
    assert sent is not None and sent.status_code == 200
    assert len(webhook_receiver.wait_for(1)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_send_is_not_skipped_while_its_endpoint_row_is_locked(webhook_receiver):
    """PostgreSQL: the claim locks the delivery's row only; an endpoint being edited (its row
    locked by an UPDATE in another transaction) must not make sends to it skip."""
    if not connection.features.has_select_for_update_skip_locked:
        pytest.skip("SQLite takes no row locks")
    endpoint = endpoint_for(webhook_receiver)
    delivery = WebhookDelivery.objects.create(  # no dispatch: its task would go to the broker
        endpoint=endpoint,
        event="content.published",
        payload=PAYLOAD,
        idempotency_key="while-edited",
        next_attempt_at=timezone.now(),
    )
    locked, release = threading.Event(), threading.Event()

    def editor() -> None:
        try:
            with transaction.atomic():
                WebhookEndpoint.objects.filter(pk=endpoint.pk).update(name="being edited")
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=editor)
    holder.start()
    assert locked.wait(5)
    try:
        sent = webhook_attempt(delivery_id=delivery.pk)
    finally:
        release.set()
        holder.join(5)

    assert sent is not None and sent.status_code == 200
    assert len(webhook_receiver.wait_for(1)) == 1


@pytest.mark.django_db
def test_an_unknown_event_cannot_be_dispatched():
    with pytest.raises(ValueError, match="not a registered webhook event"):
        webhooks_dispatch(event="content.exploded", payload={}, key="x")


def test_the_registry_holds_the_content_events_and_other_apps_can_add_theirs():
    # Given the registry as the content app fills it
    assert list(webhook_events())[:5] == CONTENT_EVENTS

    # When another app registers an event (names are `<noun>.<verb>`)
    webhook_event_register("testsuite.widget_made", "A widget was made (tests only).")

    # Then it is known; a malformed name or the reserved ping is refused
    assert webhook_events()["testsuite.widget_made"] == "A widget was made (tests only)."
    for bad in ("Widget made", "widget", "a..b", PING_EVENT):
        with pytest.raises(ValueError):
            webhook_event_register(bad, "no")


@pytest.mark.django_db
def test_retry_now_gives_a_failed_delivery_one_more_try(
    tasks_inline, settings, after_commit, webhook_receiver
):
    # Given a delivery that failed for good (one attempt allowed)
    settings.CMS_WEBHOOK_MAX_ATTEMPTS = 1
    webhook_receiver.script(500, 200)
    endpoint_for(webhook_receiver)
    dispatch(after_commit)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed"

    # When staff retry it now
    with after_commit():
        webhook_delivery_retry_now(delivery=delivery)

    # Then it is sent again, and succeeds
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)
    assert [a.status_code for a in delivery.log.all()] == [500, 200]


# --- REST ----------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_create_returns_the_secret_once_and_masks_it_afterwards(staff_client):
    # When an endpoint is created with a secret
    created = staff_client.post(
        WEBHOOKS,
        {"url": "https://hooks.example.com/cms", "events": CONTENT_EVENTS[:2], "secret": SECRET},
        format="json",
    )

    # Then the answer carries the secret once; the list and the detail mask it
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"] == SECRET
    assert body["events"] == CONTENT_EVENTS[:2]
    assert body["is_active"] is True
    listed = staff_client.get(WEBHOOKS).json()
    detail = staff_client.get(f"{WEBHOOKS}{body['id']}/").json()
    assert listed["results"][0]["id"] == body["id"]
    for shown in (listed["results"][0], detail):
        assert SECRET not in json.dumps(shown)
        assert shown["secret"] == f"********{SECRET[-4:]}"
    assert WebhookEndpoint.objects.get().secret == SECRET


@pytest.mark.django_db
def test_create_without_a_secret_generates_one(staff_client):
    created = staff_client.post(
        WEBHOOKS, {"url": "http://hooks:8080/in", "events": ["media.uploaded"]}, format="json"
    )

    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    assert secret.startswith("whsec_") and len(secret) >= 32
    assert WebhookEndpoint.objects.get().secret == secret


@pytest.mark.django_db
def test_patch_changes_the_fields_given_and_rotates_the_secret(staff_client):
    endpoint, _ = webhook_endpoint_create(url="https://a.example.com/", events=CONTENT_EVENTS[:1])

    response = staff_client.patch(
        f"{WEBHOOKS}{endpoint.pk}/",
        {"events": ["content.deleted", "content.deleted"], "secret": "rotated-secret-0123456789"},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["events"] == ["content.deleted"]
    assert response.json()["secret"] == "********6789"
    assert response.json()["url"] == "https://a.example.com/"
    endpoint.refresh_from_db()
    assert endpoint.secret == "rotated-secret-0123456789"


@pytest.mark.django_db
def test_delete_removes_the_endpoint_and_its_deliveries(staff_client):
    endpoint, _ = webhook_endpoint_create(url="https://a.example.com/", events=CONTENT_EVENTS)
    webhooks_dispatch(event="content.published", payload={}, key="k")

    response = staff_client.delete(f"{WEBHOOKS}{endpoint.pk}/")

    assert response.status_code == 204
    assert not WebhookEndpoint.objects.exists()
    assert not WebhookDelivery.objects.exists()
    assert staff_client.get(f"{WEBHOOKS}{endpoint.pk}/").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "attr", "code"),
    [
        ({"url": "ftp://files.example.com/", "events": ["content.published"]}, "url", None),
        ({"url": "https:///no-host", "events": ["content.published"]}, "url", None),
        ({"url": "not a url", "events": ["content.published"]}, "url", None),
        ({"url": "https://x.example.com/", "events": ["content.exploded"]}, "events[0]", None),
        ({"url": "https://x.example.com/", "events": []}, "events", None),
        ({"url": "https://x.example.com/", "events": "content.published"}, "events", None),
        (
            {"url": "https://x.example.com/", "events": ["content.published"], "secret": "short"},
            "secret",
            None,
        ),
        (
            {"url": "https://x.example.com/", "events": ["media.uploaded"], "colour": "red"},
            "colour",
            "unknown_field",
        ),
        ({"events": ["content.published"]}, "url", "required"),
    ],
    ids=[
        "ftp-url",
        "no-host",
        "not-a-url",
        "unknown-event",
        "no-events",
        "events-not-a-list",
        "short-secret",
        "unknown-field",
        "missing-url",
    ],
)
def test_bad_input_is_refused_with_the_field_named_and_nothing_saved(
    staff_client, body, attr, code
):
    response = staff_client.post(WEBHOOKS, body, format="json")

    assert response.status_code == 400, response.content
    errors = errors_of(response)
    assert attr in errors, errors
    if code:
        assert errors[attr] == code
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_a_bad_patch_changes_nothing(staff_client):
    endpoint, _ = webhook_endpoint_create(url="https://a.example.com/", events=CONTENT_EVENTS[:1])

    response = staff_client.patch(
        f"{WEBHOOKS}{endpoint.pk}/",
        {"url": "ftp://elsewhere/", "events": ["content.deleted"], "secret": None},
        format="json",
    )

    assert response.status_code == 400
    assert set(errors_of(response)) == {"url", "secret"}
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.events) == ("https://a.example.com/", ["content.published"])


@pytest.mark.django_db
def test_malformed_json_is_a_problem(staff_client):
    response = staff_client.post(WEBHOOKS, b'{"url": ', content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_only_staff_with_the_model_permissions_may_manage_webhooks(api_client):
    body = {"url": "https://x.example.com/", "events": ["content.published"]}
    _, raw_key = api_key_create(
        name="site", scopes=["content:read", "content:write"], created_by=None
    )
    key_client = APIClient()
    key_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    plain = APIClient()
    plain.force_authenticate(UserFactory(is_staff=False))
    bare_staff = APIClient()
    bare_staff.force_authenticate(UserFactory(is_staff=True))
    marketer = UserFactory(is_staff=True)
    marketer.groups.add(Group.objects.get(name="Marketer"))  # webhooks: view only
    viewer = APIClient()
    viewer.force_authenticate(marketer)
    analyst = UserFactory(is_staff=True)
    analyst.groups.add(Group.objects.get(name="Analyst"))  # no webhooks at all
    blind = APIClient()
    blind.force_authenticate(analyst)

    assert api_client.get(WEBHOOKS).status_code == 401
    for client in (key_client, plain, bare_staff):
        for response in (client.get(WEBHOOKS), client.post(WEBHOOKS, body, format="json")):
            assert response.status_code == 403, response.content
            assert response["Content-Type"] == PROBLEM
    assert viewer.get(WEBHOOKS).status_code == 200
    assert viewer.post(WEBHOOKS, body, format="json").status_code == 403
    assert blind.get(WEBHOOKS).status_code == 403
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_deliveries_list_shows_recent_deliveries_with_their_attempts(
    tasks_inline, after_commit, staff_client, webhook_receiver
):
    # Given an endpoint with a delivery that failed once then succeeded, and one pending
    webhook_receiver.script(500, 200)
    endpoint = endpoint_for(webhook_receiver)
    dispatch(after_commit, key="first")
    delivery = WebhookDelivery.objects.get()
    with after_commit():
        webhook_delivery_retry_now(delivery=delivery)
    webhooks_dispatch(event="content.published", payload={"n": 2}, key="second")  # not committed

    # When staff list its deliveries
    response = staff_client.get(f"{WEBHOOKS}{endpoint.pk}/deliveries/")
    failed_only = staff_client.get(f"{WEBHOOKS}{endpoint.pk}/deliveries/", {"status": "failed"})

    # Then the newest comes first, each with its log
    assert response.status_code == 200, response.content
    newest, oldest = response.json()["results"]
    assert newest["data"] == {"n": 2} and newest["status"] == "pending" and newest["log"] == []
    assert oldest["delivery_id"] == delivery.idempotency_key
    assert oldest["status"] == "succeeded"
    assert [(a["number"], a["status_code"]) for a in oldest["log"]] == [(1, 500), (2, 200)]
    assert all(set(a) >= {"error", "duration_ms", "attempted_at"} for a in oldest["log"])
    assert failed_only.json()["results"] == []
    assert (
        staff_client.get(f"{WEBHOOKS}{endpoint.pk}/deliveries/", {"status": "x"}).status_code == 400
    )
    assert staff_client.get(f"{WEBHOOKS}999999/deliveries/").status_code == 404


@pytest.mark.django_db
def test_the_deliveries_list_costs_the_same_queries_for_one_or_many(staff_client):
    endpoint, _ = webhook_endpoint_create(url="https://a.example.com/", events=CONTENT_EVENTS)

    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert staff_client.get(f"{WEBHOOKS}{endpoint.pk}/deliveries/").status_code == 200
        return len(queries)

    def add_deliveries(count: int) -> None:
        for n in range(count):
            webhooks_dispatch(event="content.updated", payload={"n": n}, key=f"{count}-{n}")
        for delivery in WebhookDelivery.objects.filter(log__isnull=True):
            WebhookAttempt.objects.create(
                delivery=delivery, number=1, status_code=500, duration_ms=3
            )

    add_deliveries(1)
    one = queries_for_page()
    add_deliveries(6)
    many = queries_for_page()

    assert many == one


# --- admin ---------------------------------------------------------------------------------------
ADMIN_ENDPOINTS = "/admin/content/webhookendpoint/"
ADMIN_DELIVERIES = "/admin/content/webhookdelivery/"


@pytest.mark.django_db
def test_admin_creates_an_endpoint_with_a_generated_secret_shown_once(admin_client):
    response = admin_client.post(
        f"{ADMIN_ENDPOINTS}add/",
        {"name": "Site", "url": "https://hooks.example.com/", "events": CONTENT_EVENTS[:2]},
        follow=True,
    )

    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.events == CONTENT_EVENTS[:2]
    assert endpoint.secret.startswith("whsec_")
    assert response.redirect_chain[-1][0] == f"{ADMIN_ENDPOINTS}{endpoint.pk}/change/"
    assert endpoint.secret in response.content.decode()  # the message, once
    assert endpoint.secret not in admin_client.cookies.output()  # never in a cookie
    change_page = admin_client.get(f"{ADMIN_ENDPOINTS}{endpoint.pk}/change/").content.decode()
    assert endpoint.secret not in change_page
    assert f"********{endpoint.secret[-4:]}" in change_page


@pytest.mark.django_db
def test_admin_lists_and_pages_render(admin_client):
    endpoint, _ = webhook_endpoint_create(url="https://a.example.com/", events=CONTENT_EVENTS)
    webhooks_dispatch(event="content.updated", payload={"n": 1}, key="k")
    delivery = WebhookDelivery.objects.get()

    pages = [
        ADMIN_ENDPOINTS,
        f"{ADMIN_ENDPOINTS}add/",
        f"{ADMIN_ENDPOINTS}{endpoint.pk}/change/",
        ADMIN_DELIVERIES,
        f"{ADMIN_DELIVERIES}?endpoint__id__exact={endpoint.pk}",
        f"{ADMIN_DELIVERIES}{delivery.pk}/change/",
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        assert endpoint.secret not in response.content.decode(), page


@pytest.mark.django_db
def test_admin_refuses_what_the_api_refuses(admin_client):
    response = admin_client.post(
        f"{ADMIN_ENDPOINTS}add/",
        {"url": "ftp://files.example.com/", "events": ["content.published"], "new_secret": "short"},
    )

    assert response.status_code == 200  # the form again, with errors
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"url", "new_secret"}
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_admin_delivery_page_shows_the_attempts_and_retry_now_sends_again(
    tasks_inline, settings, after_commit, admin_client, webhook_receiver
):
    # Given a delivery that failed for good after one 500
    settings.CMS_WEBHOOK_MAX_ATTEMPTS = 1
    webhook_receiver.script(500, 200)
    endpoint_for(webhook_receiver)
    dispatch(after_commit)
    delivery = WebhookDelivery.objects.get()

    # When staff open it, then use "retry now" from the list
    page = admin_client.get(f"{ADMIN_DELIVERIES}{delivery.pk}/change/")
    with after_commit():
        admin_client.post(
            ADMIN_DELIVERIES, {"action": "retry_now", "_selected_action": [delivery.pk]}
        )

    # Then the page showed the logged attempt; the retry was sent and succeeded
    assert page.status_code == 200
    assert "500" in page.content.decode() and "HTTP 500" in page.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == "succeeded"
    assert len(webhook_receiver.wait_for(2)) == 2


@pytest.mark.django_db
def test_admin_ping_sends_a_signed_ping_to_the_endpoint(
    tasks_inline, after_commit, admin_client, webhook_receiver
):
    endpoint = endpoint_for(webhook_receiver, events=["content.deleted"])

    with after_commit():
        response = admin_client.post(
            ADMIN_ENDPOINTS, {"action": "send_test_ping", "_selected_action": [endpoint.pk]}
        )

    assert response.status_code == 302
    [request] = webhook_receiver.wait_for(1)
    assert request.headers["x-webhook-event"] == PING_EVENT
    assert request.signature_is_valid(SECRET)
    assert WebhookDelivery.objects.get().status == "succeeded"


# --- services: a real Celery worker --------------------------------------------------------------
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_delivers_a_dispatched_webhook_and_its_retry(webhook_receiver, tmp_path):
    """A `celery worker` process, on this test database and a private queue of the pass's Redis,
    sends what the test dispatches (committed for real: the worker is another process)."""
    from cmsproject.celery import app
    from tests.e2e.conftest import _with_database

    queue = f"webhooks-test-{secrets.token_hex(4)}"
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": _with_database(
            os.environ["DATABASE_URL"], connection.settings_dict["NAME"]
        ),
        "CMS_WEBHOOK_BACKOFF_SECONDS": "0.2",
        "PYTHONUNBUFFERED": "1",
    }
    webhook_receiver.script(500, 200)
    endpoint_for(webhook_receiver)
    worker = _worker(queue, env, log)
    default_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue  # this process's sends go to the private queue
    try:
        # When an event is dispatched and committed
        with transaction.atomic():
            webhooks_dispatch(event="content.published", payload=PAYLOAD, key="worker")

        # Then the worker sends it: the receiver answers 500, and the attempt is logged
        first = _wait(lambda: webhook_receiver.requests, 20, "the first POST", worker, log)
        assert first[0].signature_is_valid(SECRET)
        attempt = _wait(
            lambda: WebhookAttempt.objects.first(), 10, "the first attempt's log", worker, log
        )
        delivery = WebhookDelivery.objects.get(pk=attempt.delivery_id)
        assert (delivery.status, delivery.attempts, attempt.status_code) == ("pending", 1, 500)

        # When, as beat would, the sweep runs once the retry is due
        time.sleep(max((delivery.next_attempt_at - timezone.now()).total_seconds(), 0) + 0.05)
        assert webhooks_retry_due() == 1

        # Then the worker sends the retry, which succeeds with the same bytes
        done = _wait(
            lambda: WebhookDelivery.objects.filter(pk=delivery.pk, status="succeeded").first(),
            15,
            "the retry to succeed",
            worker,
            log,
        )
        assert done.attempts == 2
        one, two = webhook_receiver.wait_for(2)
        assert one.body == two.body and two.signature_is_valid(SECRET)
    finally:
        app.conf.task_default_queue = default_queue
        _stop(worker)
        _forget_queue(queue)


def _worker(queue: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "celery", "-A", "cmsproject", "worker", "--pool", "solo",
        "--queues", queue, "--hostname", f"{queue}@%h", "--loglevel", "INFO",
        "--without-heartbeat", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole, nothing else
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _forget_queue(queue: str) -> None:
    """Remove what Celery's Redis transport keeps for the private queue (only names with its
    token: the Redis may be shared)."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5)
    try:
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        pidbox = "_kombu.binding.celery.pidbox"
        for member in client.smembers(pidbox):
            if queue.encode() in member:
                client.srem(pidbox, member)
        if not client.exists(pidbox):
            client.zrem("_kombu.binding_deadlines", "celery.pidbox")
    finally:
        client.close()


def _wait(condition: Callable[[], Any], timeout: float, what: str, worker: Any, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if worker.poll() is not None:
            break
        time.sleep(0.05)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:]) if log.exists() else ""
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; worker log:\n{tail}")
