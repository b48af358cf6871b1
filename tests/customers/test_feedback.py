"""Feedback: `POST /api/v1/feedback/` (who answered, what is refused), the sentiment job (real
VADER and yake on real text, idempotent, split between workers), and the read NPS uses."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from cmsproject.services import api_key_create
from customers.feedback import feedback_scores, feedback_sentiment_score
from customers.feedback_tasks import feedback_sentiment_score_task
from customers.models import Customer, Feedback, LifecycleStage
from customers.services import customer_identify
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"
FEEDBACK = "/api/v1/feedback/"
POSITIVE = "I absolutely love the new checkout, it is fast, simple and delightful!"
NEGATIVE = "Terrible support. The delivery was late and the product arrived broken. Awful."


def bearer(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    return client


def api_key_client(*scopes: str) -> APIClient:
    _, raw = api_key_create(name="site", scopes=list(scopes), created_by=None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


def errors_of(response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    return {error["attr"]: error["code"] for error in response.json().get("errors", [])}


def feedback(**fields) -> Feedback:
    return Feedback.objects.create(**{"score": 9, "anonymous_id": "a:1", **fields})


@pytest.fixture
def customer() -> Customer:
    return CustomerFactory(user=UserFactory(), lifecycle_stage=LifecycleStage.REPEAT_CUSTOMER)


# --- Who answered --------------------------------------------------------------------------------
def test_an_anonymous_visitor_answers_with_the_header_and_gets_the_stored_feedback(api_client):
    response = api_client.post(
        FEEDBACK,
        {"score": 9, "comment": " Great shop ", "context": {"page": "/checkout"}},
        format="json",
        HTTP_X_ANONYMOUS_ID="anon-1",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "score", "comment", "context", "created_at", "sentiment"}
    assert body["score"] == 9 and body["comment"] == "Great shop" and body["sentiment"] is None
    stored = Feedback.objects.get(pk=body["id"])
    assert stored.customer_id is None and stored.anonymous_id == "anon-1"
    assert stored.journey_stage == LifecycleStage.VISITOR
    assert stored.context == {"page": "/checkout"} and stored.scored_at is None


def test_an_anonymous_id_may_come_in_the_body(api_client):
    response = api_client.post(FEEDBACK, {"score": 0, "anonymousId": "anon-2"}, format="json")

    assert response.status_code == 201
    assert Feedback.objects.get().anonymous_id == "anon-2"


def test_a_browser_linked_by_identify_answers_as_its_customer(api_client):
    linked, _ = customer_identify(anonymous_id="anon-3", external_id="site-42")
    Customer.objects.filter(pk=linked.pk).update(lifecycle_stage=LifecycleStage.CUSTOMER)

    api_client.post(FEEDBACK, {"score": 7}, format="json", HTTP_X_ANONYMOUS_ID="anon-3")

    stored = Feedback.objects.get()
    assert stored.customer_id == linked.pk
    assert stored.journey_stage == LifecycleStage.CUSTOMER


def test_a_customer_token_ties_the_answer_to_that_customer_and_their_stage_then(customer):
    response = bearer(customer.user).post(FEEDBACK, {"score": 10}, format="json")
    customer.lifecycle_stage = LifecycleStage.CHURNED
    customer.save()

    assert response.status_code == 201
    stored = Feedback.objects.get()
    assert stored.customer_id == customer.pk
    assert stored.journey_stage == LifecycleStage.REPEAT_CUSTOMER  # as it was when answering


def test_a_customer_token_may_name_its_own_user_id(customer):
    response = bearer(customer.user).post(
        FEEDBACK, {"score": 8, "userId": customer.external_id}, format="json"
    )

    assert response.status_code == 201
    assert Feedback.objects.get().customer_id == customer.pk


def test_a_customer_token_naming_another_user_id_is_403_and_stores_nothing(customer):
    other = CustomerFactory()

    response = bearer(customer.user).post(
        FEEDBACK, {"score": 0, "userId": other.external_id}, format="json"
    )

    assert errors_of(response, 403) == {"userId": "forbidden"}
    assert not Feedback.objects.exists()


def test_an_anonymous_caller_may_not_name_a_user_id(api_client):
    someone = CustomerFactory()

    response = api_client.post(
        FEEDBACK,
        {"score": 0, "userId": someone.external_id},
        format="json",
        HTTP_X_ANONYMOUS_ID="anon-4",
    )

    assert errors_of(response, 403) == {"userId": "forbidden"}
    assert not Feedback.objects.exists()


def test_an_api_key_with_customers_write_answers_for_a_site_user():
    known = CustomerFactory(external_id="site-7", lifecycle_stage=LifecycleStage.CUSTOMER)
    client = api_key_client("customers:write")

    first = client.post(FEEDBACK, {"score": 6, "userId": "site-7"}, format="json")
    second = client.post(FEEDBACK, {"score": 9, "userId": "site-new"}, format="json")

    assert first.status_code == 201 and second.status_code == 201
    assert Feedback.objects.get(pk=first.json()["id"]).customer_id == known.pk
    created = Customer.objects.get(external_id="site-new")  # as events from a key would
    assert Feedback.objects.get(pk=second.json()["id"]).customer_id == created.pk
    assert Feedback.objects.get(pk=second.json()["id"]).journey_stage == LifecycleStage.LEAD


def test_an_api_key_without_customers_write_may_not_name_a_user_id():
    CustomerFactory(external_id="site-8")

    response = api_key_client("events:write").post(
        FEEDBACK, {"score": 6, "userId": "site-8"}, format="json"
    )

    assert errors_of(response, 403) == {"userId": "forbidden"}
    assert not Feedback.objects.exists()


def test_an_answer_from_nobody_in_particular_is_400_naming_anonymous_id(api_client):
    response = api_client.post(FEEDBACK, {"score": 5}, format="json")

    assert errors_of(response, 400) == {"anonymousId": "required"}
    assert not Feedback.objects.exists()


# --- What is refused ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "attr", "code"),
    [
        ({"score": 11}, "score", "out-of-range"),
        ({"score": -1}, "score", "out-of-range"),
        ({"score": "ten"}, "score", "invalid"),
        ({"score": "9"}, "score", "invalid"),
        ({"score": 9.5}, "score", "invalid"),
        ({"score": 9.0}, "score", "invalid"),
        ({"score": True}, "score", "invalid"),
        ({"score": None}, "score", "required"),
        ({"comment": "no score"}, "score", "required"),
        ({"score": 9, "comment": "x" * 5001}, "comment", "too-long"),
        ({"score": 9, "comment": 42}, "comment", "invalid"),
        ({"score": 9, "comment": "nul \x00 byte"}, "comment", "invalid"),
        ({"score": 9, "rating": 5}, "rating", "unknown-field"),
        ({"score": 9, "context": ["page"]}, "context", "invalid"),
        ({"score": 9, "context": {"note": "x" * 4100}}, "context", "too-large"),
        ({"score": 9, "anonymousId": "no spaces allowed"}, "anonymousId", "invalid"),
        ({"score": 9, "anonymousId": "anon-other"}, "anonymousId", "conflict"),
        ({"score": 9, "userId": ""}, "userId", "invalid"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_stores_nothing(api_client, body, attr, code):
    response = api_client.post(FEEDBACK, body, format="json", HTTP_X_ANONYMOUS_ID="anon-5")

    assert errors_of(response, 400) == {attr: code}
    assert not Feedback.objects.exists()


def test_every_bad_field_is_named_at_once(api_client):
    response = api_client.post(
        FEEDBACK, {"score": 11, "comment": "x" * 5001, "extra": 1}, format="json"
    )

    assert set(errors_of(response, 400)) == {"score", "comment", "extra"}


def test_a_comment_of_exactly_five_thousand_characters_is_accepted(api_client):
    response = api_client.post(
        FEEDBACK, {"score": 9, "comment": "y" * 5000}, format="json", HTTP_X_ANONYMOUS_ID="a"
    )

    assert response.status_code == 201


def test_a_body_that_is_not_an_object_is_400(api_client):
    response = api_client.post(FEEDBACK, [{"score": 9}], format="json", HTTP_X_ANONYMOUS_ID="a")

    errors_of(response, 400)
    assert not Feedback.objects.exists()


def test_a_bad_anonymous_id_header_is_400_naming_it(api_client):
    response = api_client.post(FEEDBACK, {"score": 9}, format="json", HTTP_X_ANONYMOUS_ID="a b")

    assert errors_of(response, 400) == {"X-Anonymous-Id": "invalid"}


@override_settings(
    CMS_THROTTLE_RATES={
        "anon": "2/min",
        "user": "100/min",
        "api_key": "100/min",
        "events": "100/min",
        "login": "100/min",
    }
)
def test_anonymous_answers_are_throttled_per_ip(api_client):
    statuses = [
        api_client.post(
            FEEDBACK, {"score": 9}, format="json", HTTP_X_ANONYMOUS_ID=f"a{n}"
        ).status_code
        for n in range(3)
    ]

    assert statuses == [201, 201, 429]
    assert Feedback.objects.count() == 2


def test_the_url_without_its_slash_reaches_the_view(api_client):
    response = api_client.post(
        FEEDBACK.rstrip("/"), {"score": 9}, format="json", HTTP_X_ANONYMOUS_ID="a"
    )

    assert response.status_code == 201


# --- Sentiment job -----------------------------------------------------------------------------
def test_the_job_labels_real_comments_and_extracts_key_phrases():
    happy = feedback(score=10, comment=POSITIVE)
    angry = feedback(score=1, comment=NEGATIVE)
    silent = feedback(score=8, comment="")
    short = feedback(score=9, comment="Great app")

    assert feedback_sentiment_score() == 4

    happy.refresh_from_db()
    angry.refresh_from_db()
    silent.refresh_from_db()
    short.refresh_from_db()
    assert happy.sentiment_label == "positive" and happy.sentiment >= 0.05
    assert angry.sentiment_label == "negative" and angry.sentiment <= -0.05
    assert 1 <= len(happy.key_phrases) <= 5 and 1 <= len(angry.key_phrases) <= 5
    assert "checkout" in " ".join(happy.key_phrases)
    assert any("broken" in phrase for phrase in angry.key_phrases)
    assert len(set(angry.key_phrases)) == len(angry.key_phrases)  # no phrase twice
    assert silent.sentiment is None and silent.sentiment_label == "none"
    assert short.sentiment_label == "positive" and short.key_phrases == []  # under three words
    assert all(row.scored_at is not None for row in (happy, angry, silent, short))


def test_key_phrases_do_not_repeat_one_another():
    row = feedback(comment=NEGATIVE)

    feedback_sentiment_score()

    row.refresh_from_db()
    phrases = row.key_phrases
    for phrase in phrases:
        assert phrase == phrase.lower() and 1 <= len(phrase.split()) <= 3
        others = [other for other in phrases if other != phrase]
        assert not any(f" {phrase} " in f" {other} " for other in others), phrases


def test_a_second_run_scores_nothing_more_and_changes_nothing():
    row = feedback(comment=POSITIVE)
    assert feedback_sentiment_score_task.apply().get() == 1
    row.refresh_from_db()
    first = (row.sentiment, row.sentiment_label, row.key_phrases, row.scored_at)

    assert feedback_sentiment_score_task.apply().get() == 0

    row.refresh_from_db()
    assert (row.sentiment, row.sentiment_label, row.key_phrases, row.scored_at) == first


def test_scored_rows_are_never_scored_again():
    earlier = timezone.now() - timedelta(days=1)
    done = feedback(comment=NEGATIVE, sentiment=0.5, sentiment_label="positive", scored_at=earlier)

    assert feedback_sentiment_score() == 0

    done.refresh_from_db()
    assert (done.sentiment, done.sentiment_label, done.scored_at) == (0.5, "positive", earlier)


def test_the_job_goes_batch_after_batch_oldest_first():
    rows = [feedback(comment=f"Comment number {n} is fine") for n in range(5)]
    Feedback.objects.filter(pk=rows[4].pk).update(created_at=timezone.now() - timedelta(days=9))

    # One batch only (no time left after it): the two oldest.
    assert feedback_sentiment_score(batch_size=2, max_seconds=0) == 2
    scored = set(Feedback.objects.filter(scored_at__isnull=False).values_list("pk", flat=True))
    assert scored == {rows[4].pk, rows[0].pk}

    assert feedback_sentiment_score(batch_size=2) == 3  # until none is left
    assert not Feedback.objects.filter(scored_at__isnull=True).exists()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_rows_another_worker_holds_are_skipped_not_waited_for():
    held = [feedback(comment=POSITIVE) for _ in range(3)]
    free = feedback(comment=NEGATIVE)
    locked, release = threading.Event(), threading.Event()

    def other_worker() -> None:
        try:
            with transaction.atomic():
                list(Feedback.objects.filter(pk__in=[r.pk for r in held]).select_for_update())
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    worker = threading.Thread(target=other_worker)
    worker.start()
    try:
        assert locked.wait(10)
        # The free row is scored at once; the held ones are skipped, not waited for.
        assert feedback_sentiment_score() == 1
        assert list(
            Feedback.objects.filter(scored_at__isnull=False).values_list("pk", flat=True)
        ) == [free.pk]
    finally:
        release.set()
        worker.join(10)

    assert feedback_sentiment_score() == 3


# --- The read analytics uses ----------------------------------------------------------------------
def test_the_analytics_read_carries_nothing_personal():
    feedback(comment="Call me at 555-0100", customer=CustomerFactory())
    now = timezone.now()

    rows = list(feedback_scores(start=now - timedelta(hours=1), end=now + timedelta(hours=1)))

    assert len(rows) == 1
    assert set(rows[0]) == {"score", "journey_stage", "sentiment_label", "scored_at", "created_at"}
