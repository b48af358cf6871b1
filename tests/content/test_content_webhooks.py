"""Content changes reach webhook receivers: a real local HTTP server gets a signed POST for a
publish, and a retry after it first answers 500."""

from __future__ import annotations

import time

import pytest

from content.models import WebhookDelivery
from content.services import entry_create, entry_delete, entry_publish, entry_unpublish
from content.webhooks import webhook_endpoint_create, webhooks_retry_due
from tests.content import webhook_receiver as receiver_fixtures
from tests.content.conftest import hero

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.embedded]
webhook_receiver = receiver_fixtures.webhook_receiver
SECRET = "s3cret-for-the-content-webhook-test"


def test_publish_is_signed_and_a_500_is_retried(homepage_type, webhook_receiver, settings):
    settings.CMS_WEBHOOK_BACKOFF_SECONDS = 0.2
    webhook_endpoint_create(
        url=webhook_receiver.url,
        events=["content.published", "content.unpublished", "content.deleted"],
        secret=SECRET,
    )
    webhook_receiver.script(500, 200)

    entry = entry_create(
        entry_type=homepage_type,
        body={"slug": "home", "fields": {"hero_title": "Hi"}, "zones": {"body": [hero()]}},
    )
    entry_publish(entry=entry)
    first = webhook_receiver.wait_for(1)[0]
    time.sleep(0.3)  # past the backoff
    assert webhooks_retry_due() == 1
    _, retry = webhook_receiver.wait_for(2)

    for request in (first, retry):
        assert request.signature_is_valid(SECRET)
        assert request.headers["x-webhook-event"] == "content.published"
    assert first.body == retry.body
    body = retry.json()
    assert body["event"] == "content.published"
    assert body["data"]["slug"] == "home"
    assert body["data"]["fields"] == {"hero_title": "Hi"}
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)


def test_unpublish_and_delete_are_announced_each_time(homepage_type, webhook_receiver):
    webhook_endpoint_create(
        url=webhook_receiver.url,
        events=["content.unpublished", "content.deleted"],
        secret=SECRET,
    )
    entry = entry_create(
        entry_type=homepage_type, body={"slug": "home", "fields": {"hero_title": "Hi"}}
    )
    for _ in range(2):  # the same revision goes live and off twice: two unpublish events
        entry_publish(entry=entry)
        entry_unpublish(entry=entry)
    entry_delete(entry=entry)
    events = [request.json()["event"] for request in webhook_receiver.wait_for(3)]
    assert events == ["content.unpublished", "content.unpublished", "content.deleted"]
