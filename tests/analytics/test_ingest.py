"""`POST /api/v1/events/` and `/events/batch/`: validate, stamp, append; no SQL per request."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.response import Response
from rest_framework_simplejwt.tokens import AccessToken

from analytics.buffer import RedisStreamBuffer
from analytics.services import event_type_save
from cmsproject.services import api_key_create
from customers.models import Customer

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


def post(client, body, batch: bool = False, **headers):
    url = "/api/v1/events/batch/" if batch else "/api/v1/events/"
    return client.post(url, body, format="json", **headers)


def test_anonymous_page_view_is_accepted_and_buffered(api_client, events_buffer):
    response = post(
        api_client, {"type": "page_view", "anonymousId": "a1", "properties": {"path": "/"}}
    )

    assert response.status_code == 202
    assert response.json() == {"accepted": 1}
    assert events_buffer.pending_count() == 1


def test_ingestion_makes_no_sql_query(api_client, events_buffer, django_assert_num_queries):
    post(api_client, {"type": "page_view", "anonymousId": "a1"})  # warms the type catalog

    with django_assert_num_queries(0):
        response = post(api_client, {"type": "page_view", "anonymousId": "a1"})

    assert response.status_code == 202


def test_anonymous_caller_may_not_send_a_user_id(api_client, events_buffer):
    response = post(api_client, {"type": "purchase", "userId": "someone", "anonymousId": "a"})

    assert response.status_code == 403
    assert response["Content-Type"] == PROBLEM
    assert events_buffer.pending_count() == 0


@pytest.fixture
def customer_token():
    user = get_user_model().objects.create(username="customer:1")
    Customer.objects.create(external_id="ext-1", user=user)
    return str(AccessToken.for_user(user))


def test_customer_token_sends_its_own_user_id(api_client, events_buffer, customer_token):
    response = post(
        api_client,
        {"type": "purchase", "userId": "ext-1"},
        HTTP_AUTHORIZATION=f"Bearer {customer_token}",
    )

    assert response.status_code == 202


def test_customer_token_cannot_post_for_another_customer(api_client, events_buffer, customer_token):
    response = post(
        api_client,
        {
            "events": [
                {"type": "page_view", "anonymousId": "x"},
                {"type": "purchase", "userId": "ext-2"},
            ]
        },
        batch=True,
        HTTP_AUTHORIZATION=f"Bearer {customer_token}",
    )

    assert response.status_code == 403
    assert response.json()["errors"][0]["attr"] == "events[1].userId"
    assert events_buffer.pending_count() == 0  # the whole request was refused


def test_customer_token_events_are_stamped_with_its_user_id(
    api_client, events_buffer, customer_token, drain
):
    post(api_client, {"type": "page_view"}, HTTP_AUTHORIZATION=f"Bearer {customer_token}")

    drain()

    from analytics.models import Event

    assert Event.objects.get().customer.external_id == "ext-1"


def test_api_key_with_events_write_may_name_any_user(api_client, events_buffer):
    _, raw = api_key_create(name="shop", scopes=["events:write"], created_by=None)

    response = post(
        api_client, {"type": "purchase", "userId": "any-user"}, HTTP_AUTHORIZATION=f"Api-Key {raw}"
    )

    assert response.status_code == 202


def test_api_key_without_events_write_may_not_name_users(api_client, events_buffer):
    _, raw = api_key_create(name="crm", scopes=["customers:read"], created_by=None)

    response = post(
        api_client, {"type": "purchase", "userId": "any-user"}, HTTP_AUTHORIZATION=f"Api-Key {raw}"
    )

    assert response.status_code == 403


def test_batch_accepts_the_valid_and_names_each_rejected(api_client, events_buffer):
    future = (timezone.now() + timedelta(hours=2)).isoformat()
    events = [
        {"type": "page_view", "anonymousId": "a"},
        {"type": "bad type!", "anonymousId": "a"},
        {"type": "page_view", "anonymousId": "a", "timestamp": future},
        {"type": "page_view", "anonymousId": "a", "color": "red"},
        "not an object",
        {"type": "page_view"},
        {"type": "page_view", "anonymousId": "a", "timestamp": "yesterday"},
    ]

    response = post(api_client, {"events": events}, batch=True)

    body = response.json()
    assert response.status_code == 202
    assert body["accepted"] == 1
    assert [
        (r["index"], r["errors"][0]["attr"], r["errors"][0]["code"]) for r in body["rejected"]
    ] == [
        (1, "type", "invalid"),
        (2, "timestamp", "future"),
        (3, "color", "unknown-field"),
        (4, "", "invalid"),
        (5, "anonymousId", "required"),
        (6, "timestamp", "invalid"),
    ]
    assert events_buffer.pending_count() == 1


def test_batch_over_a_thousand_events_is_refused_whole(api_client, events_buffer):
    events = [{"type": "page_view", "anonymousId": "a"}] * 1001

    response = post(api_client, {"events": events}, batch=True)

    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        "attr": "events",
        "code": "too-many",
        "detail": "1001 events; the limit is 1000.",
    }
    assert events_buffer.pending_count() == 0


def test_properties_are_validated_against_the_event_type_schema(api_client, events_buffer):
    event_type_save(
        name="purchase",
        schema={
            "type": "object",
            "required": ["amount"],
            "properties": {"amount": {"type": "number", "minimum": 0}},
        },
    )

    bad = post(
        api_client, {"type": "purchase", "anonymousId": "a", "properties": {"amount": "lots"}}
    )
    missing = post(api_client, {"type": "purchase", "anonymousId": "a", "properties": {}})
    good = post(
        api_client, {"type": "purchase", "anonymousId": "a", "properties": {"amount": 12.5}}
    )

    assert bad.status_code == 400
    assert bad.json()["errors"][0]["attr"] == "properties.amount"
    assert missing.json()["errors"][0]["code"] == "schema"
    assert good.status_code == 202
    assert events_buffer.pending_count() == 1


def test_strict_mode_refuses_unknown_types(api_client, events_buffer, settings):
    settings.CMS_EVENTS_STRICT_TYPES = True

    response = post(api_client, {"type": "mystery", "anonymousId": "a"})

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "unknown-type"


def test_a_non_object_body_is_400(api_client, events_buffer):
    assert post(api_client, ["a", "b"]).status_code == 400
    assert post(api_client, {"events": "nope"}, batch=True).status_code == 400


@pytest.mark.services
def test_with_redis_down_ingestion_answers_503_not_500(api_client, events_buffer, monkeypatch):
    # A real connection to a port where nothing listens, not a mock.
    dead = RedisStreamBuffer("redis://127.0.0.1:1/0")
    monkeypatch.setattr("analytics.services.event_buffer", lambda: dead)

    response = post(api_client, {"type": "page_view", "anonymousId": "a"})

    assert response.status_code == 503
    assert response["Content-Type"] == PROBLEM


def test_event_types_api_validates_the_schema(staff_client):
    bad = staff_client.post(
        "/api/v1/event-types/", {"name": "purchase", "schema": {"type": "nonsense"}}, format="json"
    )
    good = staff_client.post(
        "/api/v1/event-types/",
        {
            "name": "purchase",
            "journey_stage": "action",
            "schema": {"type": "object", "properties": {"amount": {"type": "number"}}},
        },
        format="json",
    )

    assert bad.status_code == 400
    assert bad.json()["errors"][0]["attr"].startswith("schema")
    assert good.status_code == 201
    assert staff_client.get("/api/v1/event-types/purchase/").json()["journey_stage"] == "action"


def test_a_nul_character_in_properties_is_refused_at_the_door(api_client, events_buffer):
    response = post(
        api_client,
        {
            "type": "page_view",
            "anonymousId": "a",
            "properties": {"q": "a\u0000b", "nested": {"k": 1}},
        },
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "properties"
    assert events_buffer.pending_count() == 0


def test_a_cached_api_key_ingests_without_a_query(
    api_client, events_buffer, django_assert_num_queries
):
    _, raw = api_key_create(name="k", scopes=["events:write"], created_by=None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    event = {"type": "page_view", "userId": "u1"}
    post(api_client, event)  # caches the key and the event type catalog

    with django_assert_num_queries(0):
        assert post(api_client, event).status_code == 202


# --- The anonymous single event, answered before DRF (bench/README.md) ---------------------------
ANONYMOUS_EVENT = {"type": "page_view", "anonymousId": "a1"}


@pytest.fixture
def events_budget(settings):
    """A budget of two anonymous events per IP: a day-long window, so the test never straddles
    two windows."""
    settings.CMS_THROTTLE_RATES = {**settings.CMS_THROTTLE_RATES, "events": "2/day"}


def test_anonymous_event_is_answered_before_drf_without_sql(
    api_client, events_buffer, django_assert_num_queries
):
    post(api_client, ANONYMOUS_EVENT)  # warms the type catalog

    with django_assert_num_queries(0):
        response = post(api_client, ANONYMOUS_EVENT)

    assert response.status_code == 202
    assert not isinstance(response, Response)  # a plain Django response: DRF never ran
    assert response.json() == {"accepted": 1}
    assert response["Allow"] == "POST, OPTIONS"
    assert events_buffer.pending_count() == 2


@contextmanager
def redis_commands(client: Any, prefix: str) -> Iterator[list[dict[str, Any]]]:
    """The commands Redis executes meanwhile on `client`'s database that name a key under
    `prefix`, from MONITOR, in order (the server may be shared); those a script runs have
    client_type "lua". Filled when the block ends."""
    seen: list[dict[str, Any]] = []
    db = client.connection_pool.connection_kwargs.get("db", 0)
    sentinel = f"{prefix}:end-of-test:{uuid.uuid4().hex}"
    with client.monitor() as monitor:
        yield seen
        client.exists(sentinel)
        while sentinel not in (command := monitor.next_command())["command"]:
            if command["db"] == db and f" {prefix}:" in command["command"]:
                seen.append(command)


def _names(commands: list[dict[str, Any]], *, in_script: bool) -> list[str]:
    return [c["command"].split()[0] for c in commands if (c["client_type"] == "lua") == in_script]


@pytest.mark.services
def test_anonymous_event_is_one_redis_round_trip(api_client, events_buffer, settings):
    post(api_client, ANONYMOUS_EVENT)  # warms the type catalog and loads the script

    with redis_commands(events_buffer.redis, settings.CACHE_KEY_PREFIX) as commands:
        response = post(api_client, ANONYMOUS_EVENT)

    assert response.status_code == 202
    assert _names(commands, in_script=False) == ["EVALSHA"]
    assert _names(commands, in_script=True) == ["INCR", "EXPIRE", "XADD"]
    assert events_buffer.pending_count() == 2


@pytest.mark.services
def test_anonymous_events_survive_redis_forgetting_the_script(api_client, events_buffer):
    post(api_client, ANONYMOUS_EVENT)  # loads the script
    events_buffer.redis.script_flush()  # as a Redis restart does

    response = post(api_client, ANONYMOUS_EVENT)

    assert response.status_code == 202
    assert events_buffer.pending_count() == 2


@pytest.mark.services
def test_anonymous_events_survive_redis_closing_the_buffers_connection(api_client, events_buffer):
    import hiredis

    post(api_client, ANONYMOUS_EVENT)  # opens the buffer's own connection
    own_id = events_buffer._own_call(hiredis.pack_command(("CLIENT", "ID")))
    assert events_buffer.redis.client_kill_filter(_id=own_id) == 1  # as an idle timeout does

    response = post(api_client, ANONYMOUS_EVENT)

    assert response.status_code == 202
    assert events_buffer.pending_count() == 2


def test_over_budget_anonymous_event_is_429_with_retry_after_and_buffers_nothing(
    api_client, events_buffer, events_budget
):
    accepted = [post(api_client, ANONYMOUS_EVENT).status_code for _ in range(2)]

    response = post(api_client, ANONYMOUS_EVENT)

    assert accepted == [202, 202]
    assert response.status_code == 429
    assert response["Content-Type"] == PROBLEM
    assert int(response["Retry-After"]) >= 1
    assert response.json()["detail"].startswith("Request was throttled.")
    assert events_buffer.pending_count() == 2


def test_over_budget_invalid_event_is_429_as_drf_throttles_before_validating(
    api_client, events_buffer, events_budget
):
    for _ in range(2):
        post(api_client, ANONYMOUS_EVENT)

    invalid = post(api_client, {"type": "bad type!", "anonymousId": "a1"})
    with_user_id = post(api_client, {"type": "page_view", "userId": "someone"})

    assert (invalid.status_code, with_user_id.status_code) == (429, 429)
    assert events_buffer.pending_count() == 2


@pytest.mark.services
def test_over_budget_anonymous_event_is_counted_but_never_added(
    api_client, events_buffer, events_budget, settings
):
    for _ in range(2):
        post(api_client, ANONYMOUS_EVENT)

    with redis_commands(events_buffer.redis, settings.CACHE_KEY_PREFIX) as commands:
        response = post(api_client, ANONYMOUS_EVENT)

    assert response.status_code == 429
    assert _names(commands, in_script=False) == ["EVALSHA"]
    assert _names(commands, in_script=True) == ["INCR", "EXPIRE"]
    assert events_buffer.pending_count() == 2


def test_invalid_anonymous_event_is_400_naming_the_path_and_buffers_nothing(
    api_client, events_buffer
):
    event_type_save(
        name="purchase",
        schema={"type": "object", "properties": {"amount": {"type": "number"}}},
    )

    response = post(
        api_client, {"type": "purchase", "anonymousId": "a", "properties": {"amount": "lots"}}
    )

    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == 400
    assert body["errors"][0]["attr"] == "properties.amount"
    assert body["errors"][0]["code"] == "schema"
    assert events_buffer.pending_count() == 0


def test_anonymous_budget_is_shared_with_the_drf_path(api_client, events_buffer, events_budget):
    # A stale login cookie sends a request through DRF, where the caller is anonymous too.
    through_drf = {"HTTP_COOKIE": "cms_access=expired"}

    first = post(api_client, ANONYMOUS_EVENT, **through_drf)
    second = post(api_client, ANONYMOUS_EVENT)
    over_fast = post(api_client, ANONYMOUS_EVENT)
    over_drf = post(api_client, ANONYMOUS_EVENT, **through_drf)

    assert isinstance(first, Response) and not isinstance(second, Response)
    assert [r.status_code for r in (first, second, over_fast, over_drf)] == [202, 202, 429, 429]
    assert over_drf["Retry-After"] == over_fast["Retry-After"]
    assert events_buffer.pending_count() == 2


def test_a_body_that_is_not_json_is_415(api_client, events_buffer):
    response = api_client.post(
        "/api/v1/events/", "type=page_view", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 415
    assert response["Content-Type"] == PROBLEM


def test_malformed_json_is_400(api_client, events_buffer):
    response = api_client.post("/api/v1/events/", "{nope", content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert response.json()["detail"].startswith("JSON parse error")


def test_resending_an_anonymous_event_id_stores_it_once(api_client, events_buffer, drain):
    event = {**ANONYMOUS_EVENT, "id": "evt-1"}

    responses = [post(api_client, event) for _ in range(2)]
    drain()

    from analytics.models import Event

    assert [r.status_code for r in responses] == [202, 202]
    assert list(Event.objects.values_list("id", flat=True)) == ["evt-1"]
