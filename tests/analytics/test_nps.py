"""NPS: figures pinned by hand-computed examples, buckets and stages, the sentiment counts, the
query count, who may read it (REST and GraphQL), and the admin journey report's NPS charts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from analytics.nps import nps_report, nps_score
from cmsproject.errors import ValidationError
from cmsproject.services import api_key_create
from customers.feedback import feedback_sentiment_score
from customers.models import Feedback
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"
NPS = "/api/v1/analytics/nps/"
# Friday 20 November 2026, 10:00 UTC.
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def answers(at: datetime, *scores: int, stage: str = "customer", comment: str = "") -> None:
    """Feedback rows given at `at` (created_at is set on insert, so it is moved afterwards)."""
    rows = Feedback.objects.bulk_create(
        Feedback(score=score, anonymous_id="a", journey_stage=stage, comment=comment)
        for score in scores
    )
    Feedback.objects.filter(pk__in=[row.pk for row in rows]).update(created_at=at)


def problem_attrs(response) -> set[str]:
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == PROBLEM
    return {error["attr"] for error in response.json()["errors"]}


@pytest.fixture
def reader(api_client) -> APIClient:
    """Staff with `analytics.view_event` and nothing else."""
    user = UserFactory(is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="analytics", codename="view_event")
    )
    api_client.force_authenticate(user)
    return api_client


# --- The figures ---------------------------------------------------------------------------------
def test_five_promoters_two_passives_three_detractors_is_twenty():
    answers(T0, 10, 9, 9, 10, 9, 7, 8, 0, 6, 3)

    report = nps_report(start=T0 - DAY, end=T0 + DAY)

    assert report["nps"] == 20.0
    assert (report["responses"], report["promoters"], report["passives"], report["detractors"]) == (
        10,
        5,
        2,
        3,
    )


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ((9, 10, 10), 100.0),
        ((0, 1, 6), -100.0),
        ((7, 8), 0.0),
        ((9, 7, 8), 33.3),  # 1/3 promoters: one decimal
        ((6, 7, 9, 0), -25.0),  # 6 detracts, 7 is passive, 9 promotes
    ],
)
def test_nps_of_hand_computed_examples(scores, expected):
    answers(T0, *scores)

    assert nps_report(start=T0 - DAY, end=T0 + DAY)["nps"] == expected


def test_nps_without_answers_is_null():
    answers(T0 - 10 * DAY, 10)  # outside the range

    midnight = datetime(2026, 11, 19, tzinfo=UTC)
    report = nps_report(start=midnight, end=midnight + 2 * DAY, interval="day")

    assert report["nps"] is None and report["responses"] == 0
    assert report["by_stage"] == []
    assert [bucket["nps"] for bucket in report["series"]] == [None, None]
    assert [bucket["responses"] for bucket in report["series"]] == [0, 0]
    assert nps_score(promoters=0, detractors=0, responses=0) is None


def test_the_range_includes_its_start_and_excludes_its_end():
    answers(T0, 10)
    answers(T0 + DAY, 0)

    assert nps_report(start=T0, end=T0 + DAY)["nps"] == 100.0


def test_daily_series_has_every_day_with_its_own_nps():
    start = datetime(2026, 11, 18, tzinfo=UTC)
    answers(start + timedelta(hours=1), 10, 0)  # 18th: 0
    answers(start + 2 * DAY + timedelta(hours=23), 9, 9, 7, 8)  # 20th: 50

    series = nps_report(start=start, end=start + 3 * DAY, interval="day")["series"]

    assert [(b["bucket"].day, b["nps"], b["responses"]) for b in series] == [
        (18, 0.0, 2),
        (19, None, 0),
        (20, 50.0, 4),
    ]


def test_weeks_start_on_monday_utc():
    answers(datetime(2026, 11, 18, 12, tzinfo=UTC), 10)  # Wednesday
    answers(datetime(2026, 11, 22, 23, 59, tzinfo=UTC), 0)  # Sunday: same week
    answers(datetime(2026, 11, 23, 0, 0, tzinfo=UTC), 9)  # Monday: the next week

    series = nps_report(
        start=datetime(2026, 11, 18, tzinfo=UTC),
        end=datetime(2026, 11, 30, tzinfo=UTC),
        interval="week",
    )["series"]

    assert [(b["bucket"], b["nps"], b["responses"]) for b in series] == [
        (datetime(2026, 11, 16, tzinfo=UTC), 0.0, 2),
        (datetime(2026, 11, 23, tzinfo=UTC), 100.0, 1),
    ]


def test_months_cross_the_year():
    answers(datetime(2026, 12, 31, 23, 0, tzinfo=UTC), 0)
    answers(datetime(2027, 1, 1, 0, 30, tzinfo=UTC), 10)

    series = nps_report(
        start=datetime(2026, 12, 15, tzinfo=UTC),
        end=datetime(2027, 2, 1, tzinfo=UTC),
        interval="month",
    )["series"]

    assert [(b["bucket"], b["nps"]) for b in series] == [
        (datetime(2026, 12, 1, tzinfo=UTC), -100.0),
        (datetime(2027, 1, 1, tzinfo=UTC), 100.0),
    ]


def test_nps_per_stage_in_lifecycle_order_with_unknown_last():
    answers(T0, 10, 10, 0, stage="repeat_customer")  # 33.3
    answers(T0, 9, stage="visitor")  # 100
    answers(T0, 3, stage="")  # unknown: -100
    answers(T0, 7, 8, stage="lead")  # 0

    by_stage = nps_report(start=T0 - DAY, end=T0 + DAY)["by_stage"]

    assert by_stage == [
        {"stage": "visitor", "nps": 100.0, "responses": 1},
        {"stage": "lead", "nps": 0.0, "responses": 2},
        {"stage": "repeat_customer", "nps": 33.3, "responses": 3},
        {"stage": "unknown", "nps": -100.0, "responses": 1},
    ]


def test_sentiment_counts_follow_the_sentiment_job():
    answers(T0, 10, comment="I absolutely love this shop, everything was wonderful!")
    answers(T0, 1, comment="Terrible service, rude staff and a broken product. Awful.")
    answers(T0, 8)  # no comment

    assert nps_report(start=T0 - DAY, end=T0 + DAY)["sentiment"] == {
        "positive": 0,
        "neutral": 0,
        "negative": 0,
        "pending": 3,
    }
    feedback_sentiment_score()
    assert nps_report(start=T0 - DAY, end=T0 + DAY)["sentiment"] == {
        "positive": 1,
        "neutral": 0,
        "negative": 1,
        "pending": 0,
    }


def test_the_report_is_two_queries_however_many_answers(django_assert_max_num_queries):
    for day in range(30):
        answers(T0 - day * DAY, *(day % 11 for _ in range(20)), stage=("lead", "customer")[day % 2])

    with django_assert_max_num_queries(2):
        report = nps_report(start=T0 - 30 * DAY, end=T0 + DAY, interval="day")

    assert report["responses"] == 600 and len(report["series"]) == 32  # 21 Oct to 21 Nov
    assert {stage["stage"] for stage in report["by_stage"]} == {"lead", "customer"}


def test_the_endpoint_does_not_grow_with_answers(reader, django_assert_max_num_queries):
    answers(T0, 9)
    with django_assert_max_num_queries(6) as few:
        reader.get(NPS, {"start": "2026-11-01", "end": "2026-12-01", "interval": "week"})
    for day in range(30):
        answers(T0 - day * DAY, 0, 5, 9, 10, stage=("lead", "visitor", "")[day % 3])

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = reader.get(NPS, {"start": "2026-11-01", "end": "2026-12-01", "interval": "week"})

    assert (
        response.status_code == 200 and response.json()["responses"] == 1 + 4 * 20
    )  # days 0-19 are in November


@pytest.mark.parametrize(
    ("kwargs", "attr"),
    [
        ({"interval": "hour"}, "interval"),
        ({"start": T0, "end": T0}, "end"),
        ({"start": T0.replace(tzinfo=None)}, "start"),
        ({"start": T0 - 20_000 * DAY, "end": T0, "interval": "day"}, "start"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, attr):
    with pytest.raises(ValidationError) as caught:
        nps_report(**kwargs)

    assert attr in {error.attr for error in caught.value.errors}


# --- REST -----------------------------------------------------------------------------------------
def test_rest_answers_the_contract(reader):
    answers(T0, 10, 9, 9, 10, 9, 7, 8, 0, 6, 3, stage="customer")

    response = reader.get(NPS, {"start": "2026-11-19", "end": "2026-11-21", "interval": "day"})

    assert response.status_code == 200
    body = response.json()
    assert {"nps", "responses", "promoters", "passives", "detractors"} <= set(body)
    assert (body["nps"], body["responses"], body["promoters"]) == (20.0, 10, 5)
    assert (body["passives"], body["detractors"]) == (2, 3)
    assert body["series"] == [
        {"bucket": "2026-11-19T00:00:00Z", "nps": None, "responses": 0},
        {"bucket": "2026-11-20T00:00:00Z", "nps": 20.0, "responses": 10},
    ]
    assert body["by_stage"] == [{"stage": "customer", "nps": 20.0, "responses": 10}]
    assert body["sentiment"] == {"positive": 0, "neutral": 0, "negative": 0, "pending": 10}


def test_rest_empty_range_is_null(reader):
    response = reader.get(NPS, {"start": "2026-11-19", "end": "2026-11-21"})

    assert response.status_code == 200
    assert response.json()["nps"] is None and response.json()["responses"] == 0


def test_rest_defaults_to_the_last_thirty_days_per_day(reader):
    response = reader.get(NPS)

    assert response.status_code == 200
    assert len(response.json()["series"]) in (30, 31)  # 31 when the range starts mid-day
    assert response.json()["interval"] == "day"


def test_rest_takes_from_and_to_as_the_other_reports_do(reader):
    answers(T0, 10)

    response = reader.get(NPS, {"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"})

    assert response.status_code == 200 and response.json()["nps"] == 100.0


@pytest.mark.parametrize(
    ("params", "attr"),
    [
        ({"interval": "hour"}, "interval"),
        ({"start": "yesterday"}, "start"),
        ({"end": "2026-13-45"}, "end"),
        ({"from": "nope"}, "from"),
        ({"start": "2026-11-21", "end": "2026-11-20"}, "end"),
    ],
)
def test_rest_bad_parameter_is_400_naming_it(reader, params, attr):
    assert attr in problem_attrs(reader.get(NPS, params))


def test_anonymous_callers_cannot_read_nps(api_client):
    response = api_client.get(NPS)

    assert response.status_code == 401 and response["Content-Type"] == PROBLEM


def test_customers_cannot_read_nps():
    customer = CustomerFactory(user=UserFactory())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(customer.user)}")

    response = client.get(NPS)

    assert response.status_code == 403 and response["Content-Type"] == PROBLEM


def test_staff_without_the_analytics_permission_and_api_keys_cannot_read_nps(api_client):
    api_client.force_authenticate(UserFactory(is_staff=True))
    _, raw = api_key_create(name="k", scopes=["events:write", "customers:read"], created_by=None)
    keyed = APIClient()
    keyed.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")

    assert api_client.get(NPS).status_code == 403
    assert keyed.get(NPS).status_code == 403


def test_openapi_documents_nps(api_client):
    document = json.loads(
        api_client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content
    )

    operation = document["paths"]["/api/v1/analytics/nps/"]["get"]
    assert {"start", "end", "interval"} <= {p["name"] for p in operation["parameters"]}
    assert "/api/v1/feedback/" in document["paths"]


# --- GraphQL -------------------------------------------------------------------------------------
QUERY = """query ($start: DateTime, $end: DateTime) {
  nps(start: $start, end: $end, interval: "day") {
    nps responses promoters passives detractors
    series { bucket nps responses }
    byStage { stage nps responses }
    sentiment { positive neutral negative }
  }
}"""


def graphql(client: APIClient, variables: dict) -> dict:
    response = client.post("/graphql/", {"query": QUERY, "variables": variables}, format="json")
    return response.json()


def test_graphql_nps_gives_the_same_figures(reader):
    answers(T0, 10, 9, 9, 10, 9, 7, 8, 0, 6, 3, stage="lead")

    body = graphql(reader, {"start": "2026-11-20T00:00:00Z", "end": "2026-11-21T00:00:00Z"})

    assert "errors" not in body, body
    nps = body["data"]["nps"]
    assert (nps["nps"], nps["responses"], nps["passives"]) == (20.0, 10, 2)
    assert nps["series"] == [{"bucket": "2026-11-20T00:00:00+00:00", "nps": 20.0, "responses": 10}]
    assert nps["byStage"] == [{"stage": "lead", "nps": 20.0, "responses": 10}]


def test_graphql_nps_is_for_staff_with_the_analytics_permission(api_client):
    api_client.force_authenticate(CustomerFactory(user=UserFactory()).user)

    body = graphql(api_client, {})

    assert body["data"]["nps"] is None
    assert body["errors"][0]["extensions"]["code"] == "forbidden"


# --- Admin: the journey report's NPS charts -------------------------------------------------------
REPORT_PAGE = "/admin/analytics/eventrollup/"


def test_admin_journey_report_shows_nps_over_time_and_per_stage(admin_client):
    answers(datetime(2026, 11, 17, 9, tzinfo=UTC), 10, 9, stage="customer")
    answers(datetime(2026, 11, 24, 9, tzinfo=UTC), 0, 8, stage="lead")

    response = admin_client.get(
        REPORT_PAGE,
        {
            "date_from": "2026-11-16",
            "date_to": "2026-11-29",
            "interval": "day",
            "nps_interval": "week",
        },
    )

    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="nps-series-chart"' in content and 'id="nps-stages-chart"' in content
    nps = response.context["report"]["nps"]
    assert nps["nps"] == 25.0 and nps["responses"] == 4
    assert [(b["label"], b["nps"], b["responses"]) for b in nps["series"]] == [
        ("2026-11-16", 100.0, 2),
        ("2026-11-23", -50.0, 2),
    ]
    assert [(s["stage"], s["nps"]) for s in nps["by_stage"]] == [
        ("lead", -50.0),
        ("customer", 100.0),
    ]
    embedded = json.loads(
        content.split('id="journey-report-data" type="application/json">')[1].split("</script>")[0]
    )
    assert embedded["nps"]["series"][0]["nps"] == 100.0


def test_admin_nps_periods_link_to_that_periods_journey_report(admin_client):
    answers(datetime(2026, 11, 17, 9, tzinfo=UTC), 10)

    response = admin_client.get(
        REPORT_PAGE,
        {
            "date_from": "2026-11-18",
            "date_to": "2026-11-29",
            "event": "",
            "interval": "day",
            "nps_interval": "week",
        },
    )

    series = response.context["report"]["nps"]["series"]
    # The first week is cut to the range asked for; the drill-down shows that period by day.
    first = parse_qs(urlsplit(series[0]["href"]).query)
    assert (first["date_from"], first["date_to"], first["nps_interval"]) == (
        ["2026-11-18"],
        ["2026-11-22"],
        ["day"],
    )
    second = parse_qs(urlsplit(series[1]["href"]).query)
    assert (second["date_from"], second["date_to"]) == (["2026-11-23"], ["2026-11-29"])
    assert series[0]["href"] in response.content.decode().replace("&amp;", "&")

    drilled = admin_client.get(REPORT_PAGE + series[1]["href"])
    assert drilled.status_code == 200
    assert len(drilled.context["report"]["nps"]["series"]) == 7


def test_admin_journey_report_without_nps_interval_defaults_to_weeks(admin_client):
    response = admin_client.get(
        REPORT_PAGE, {"date_from": "2026-11-16", "date_to": "2026-11-29", "interval": "day"}
    )

    assert response.status_code == 200
    assert response.context["report"]["nps"]["interval"] == "week"
    assert "No feedback" in response.content.decode()
