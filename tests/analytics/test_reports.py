"""Reports: funnel, time series, journeys over REST and GraphQL, and the admin journey report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from django.contrib.auth.models import Permission
from django.test import override_settings

from analytics.models import DroppedEvents, Event, EventRollup, SubjectDailyRollup
from analytics.reports import funnel
from analytics.services import Caller, event_type_save, events_accept
from cmsproject.errors import ValidationError
from cmsproject.services import api_key_create
from customers.models import Customer
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
_ids = count()


def at(minutes: float = 0, days: int = 0) -> datetime:
    return T0 + timedelta(days=days, minutes=minutes)


def store(*events: tuple) -> None:
    """Raw event rows: (type, subject, minutes after T0); a subject is a Customer or an id."""
    rows = []
    for kind, subject, minutes in events:
        customer = subject if isinstance(subject, Customer) else None
        rows.append(
            Event(
                id=f"e{next(_ids)}",
                type=kind,
                customer=customer,
                anonymous_id="" if customer else subject,
                timestamp=at(minutes),
                received_at=at(minutes),
            )
        )
    Event.objects.bulk_create(rows)


def problem_attrs(response) -> set[str]:
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == PROBLEM
    return {error["attr"] for error in response.json()["errors"]}


@pytest.fixture
def reader(api_client):
    """Staff with `analytics.view_event` and nothing else."""
    user = UserFactory(is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="analytics", codename="view_event")
    )
    api_client.force_authenticate(user)
    return api_client


# --- Funnel over REST ---------------------------------------------------------------------------
FUNNEL = "/api/v1/analytics/funnel/"


def test_funnel_counts_subjects_who_did_the_steps_in_order_within_the_window(reader):
    buyer = Customer.objects.create(external_id="buyer")
    store(
        ("page_view", buyer, 0),
        ("add_to_cart", buyer, 10),
        ("checkout_complete", buyer, 20),
        ("page_view", "anon-1", 0),
        ("add_to_cart", "anon-1", 5),
        ("page_view", "anon-2", 0),
        ("checkout_complete", "anon-2", 5),  # skipped add_to_cart
        ("page_view", "slow", 0),
        ("add_to_cart", "slow", 61),  # outside the 1h window
    )

    response = reader.get(
        FUNNEL, {"steps": "page_view,add_to_cart,checkout_complete", "window": "1h"}
    )

    assert response.status_code == 200
    assert response.json() == {
        "steps": [
            {"step": "page_view", "count": 4, "conversionRate": 1.0},
            {"step": "add_to_cart", "count": 2, "conversionRate": 0.5},
            {"step": "checkout_complete", "count": 1, "conversionRate": 0.25},
        ]
    }


def test_funnel_step_must_come_strictly_after_the_previous_one(reader):
    store(
        ("add_to_cart", "a", 0),
        ("page_view", "a", 1),  # cart before view: does not count
        ("page_view", "b", 5),
        ("add_to_cart", "b", 5),  # same moment: not after
    )

    body = reader.get(FUNNEL, {"steps": "page_view,add_to_cart"}).json()

    assert [step["count"] for step in body["steps"]] == [2, 0]


def test_funnel_step_at_the_exact_end_of_the_window_is_outside_it(reader):
    store(("page_view", "a", 0), ("add_to_cart", "a", 30), ("page_view", "b", 0))
    store(("add_to_cart", "b", 29.99))

    body = reader.get(FUNNEL, {"steps": "page_view,add_to_cart", "window": "30m"}).json()

    assert [step["count"] for step in body["steps"]] == [2, 1]


def test_funnel_window_counts_from_the_first_entry_and_later_steps_may_pass_the_range(reader):
    store(
        ("page_view", "a", 0),
        ("page_view", "a", 50),  # a later entry does not restart the window
        ("add_to_cart", "a", 70),
        ("page_view", "b", 50),
        ("add_to_cart", "b", 70),  # after `to`, but within b's window
        ("page_view", "c", 70),  # enters after `to`: not in the funnel
    )

    body = reader.get(
        FUNNEL,
        {
            "steps": "page_view,add_to_cart",
            "window": "60m",
            "from": at(0).isoformat(),
            "to": at(60).isoformat(),
        },
    ).json()

    assert [step["count"] for step in body["steps"]] == [2, 1]


def test_funnel_keeps_a_customer_apart_from_the_anonymous_id_their_events_carry(reader):
    customer = Customer.objects.create(external_id="c")
    # A browser viewed before logging in (not linked yet), then its customer added to the cart.
    store(("page_view", "browser", 0), ("page_view", customer, 1), ("add_to_cart", customer, 2))
    Event.objects.filter(customer=customer).update(anonymous_id="browser")

    body = reader.get(FUNNEL, {"steps": "page_view,add_to_cart"}).json()

    assert [step["count"] for step in body["steps"]] == [2, 1]  # the browser did not convert


def test_funnel_leaves_out_erased_events(reader):
    store(("page_view", "", 0), ("add_to_cart", "", 1))  # no customer, no anonymous id

    body = reader.get(FUNNEL, {"steps": "page_view,add_to_cart"}).json()

    assert [step["count"] for step in body["steps"]] == [0, 0]


def test_funnel_with_nobody_entering_has_zero_conversion(reader):
    body = reader.get(FUNNEL, {"steps": "page_view,purchase"}).json()

    assert body == {
        "steps": [
            {"step": "page_view", "count": 0, "conversionRate": 0.0},
            {"step": "purchase", "count": 0, "conversionRate": 0.0},
        ]
    }


def test_funnel_is_one_sql_query(django_assert_num_queries):
    store(("a", "x", 0), ("b", "x", 1), ("c", "x", 2))

    with django_assert_num_queries(1):
        result = funnel(steps=["a", "b", "c"], window=timedelta(days=1), start=None, end=None)

    assert [step.count for step in result] == [1, 1, 1]


@pytest.mark.parametrize(
    ("params", "attr"),
    [
        ({}, "steps"),
        ({"steps": ""}, "steps"),
        ({"steps": "a,,b"}, "steps[1]"),
        ({"steps": "a,b c"}, "steps[1]"),
        ({"steps": ",".join(f"s{n}" for n in range(11))}, "steps"),
        ({"steps": "a,b", "window": "7x"}, "window"),
        ({"steps": "a,b", "window": "0d"}, "window"),
        ({"steps": "a,b", "window": "366d"}, "window"),
        ({"steps": "a,b", "from": "yesterday"}, "from"),
        ({"steps": "a,b", "from": "2026-11-20T10:00:00"}, "from"),  # no zone
        ({"steps": "a,b", "to": "2026-13-01"}, "to"),
        ({"steps": "a,b", "from": "2026-11-20", "to": "2026-11-19"}, "to"),
    ],
)
def test_funnel_bad_parameter_is_400_naming_it(reader, params, attr):
    assert attr in problem_attrs(reader.get(FUNNEL, params))


def test_funnel_takes_an_unencoded_plus_offset(reader):
    response = reader.get(f"{FUNNEL}?steps=a,b&from=2026-11-20T10:00:00+05:00")

    assert response.status_code == 200


def test_funnel_accepts_ten_steps(reader):
    response = reader.get(FUNNEL, {"steps": ",".join(f"s{n}" for n in range(10))})

    assert response.status_code == 200
    assert len(response.json()["steps"]) == 10


# --- Permissions --------------------------------------------------------------------------------
REPORTS = [
    f"{FUNNEL}?steps=a,b",
    "/api/v1/analytics/timeseries/?event=a",
    "/api/v1/analytics/journeys/",
]


@pytest.mark.parametrize("url", REPORTS)
def test_reports_need_credentials(api_client, url):
    response = api_client.get(url)

    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM


@pytest.mark.parametrize("url", REPORTS)
def test_reports_are_forbidden_to_staff_without_the_analytics_permission(api_client, url):
    api_client.force_authenticate(UserFactory(is_staff=True))

    assert api_client.get(url).status_code == 403


@pytest.mark.parametrize("url", REPORTS)
def test_reports_are_forbidden_to_customers_and_api_keys(api_client, url):
    _, key = api_key_create(name="k", scopes=["events:write"], created_by=None)
    api_client.force_authenticate(UserFactory(is_staff=False))
    as_user = api_client.get(url)
    api_client.force_authenticate(None)

    as_key = api_client.get(url, HTTP_AUTHORIZATION=f"Api-Key {key}")

    assert (as_user.status_code, as_key.status_code) == (403, 403)


@pytest.mark.parametrize("url", REPORTS)
def test_reports_are_open_to_staff_with_the_analytics_permission(reader, url):
    assert reader.get(url).status_code == 200


# --- Time series ----------------------------------------------------------------------------
TIMESERIES = "/api/v1/analytics/timeseries/"


def rollup(interval: str, bucket: datetime, count: int, uniques: int, kind: str = "page_view"):
    EventRollup.objects.create(
        event_type=kind, interval=interval, bucket=bucket, count=count, uniques=uniques
    )


def test_timeseries_zero_fills_buckets_between_from_and_to(reader):
    rollup("hour", at(0), 5, 2)
    rollup("hour", at(120), 1, 1)
    rollup("hour", at(120), 9, 9, kind="purchase")  # another type
    rollup("day", at(0).replace(hour=0), 6, 3)  # another interval

    response = reader.get(
        TIMESERIES,
        {
            "event": "page_view",
            "interval": "hour",
            "from": at(0).isoformat(),
            "to": at(240).isoformat(),
        },
    )

    assert response.json() == {
        "results": [
            {"bucket": "2026-11-20T10:00:00Z", "count": 5, "uniques": 2},
            {"bucket": "2026-11-20T11:00:00Z", "count": 0, "uniques": 0},
            {"bucket": "2026-11-20T12:00:00Z", "count": 1, "uniques": 1},
            {"bucket": "2026-11-20T13:00:00Z", "count": 0, "uniques": 0},
        ]
    }


def test_timeseries_starts_at_the_bucket_holding_from(reader):
    rollup("day", datetime(2026, 11, 20, tzinfo=UTC), 3, 2)

    body = reader.get(
        TIMESERIES, {"event": "page_view", "from": "2026-11-20T15:30:00Z", "to": "2026-11-22"}
    ).json()

    assert [(b["bucket"][:10], b["count"]) for b in body["results"]] == [
        ("2026-11-20", 3),
        ("2026-11-21", 0),
    ]


def test_timeseries_reads_rollups_not_raw_events(reader, django_assert_num_queries):
    store(("page_view", "a", 0), ("page_view", "b", 1))  # never rolled up

    with django_assert_num_queries(1):
        from analytics.reports import timeseries

        series = timeseries(event="page_view", interval="minute", start=at(0), end=at(2))

    assert [(point["count"], point["uniques"]) for point in series] == [(0, 0), (0, 0)]


def test_timeseries_without_a_range_ends_now(reader):
    body = reader.get(TIMESERIES, {"event": "page_view", "interval": "hour"}).json()

    assert len(body["results"]) == 48
    last = datetime.fromisoformat(body["results"][-1]["bucket"])
    assert timedelta(0) <= datetime.now(UTC) - last < timedelta(hours=1)


@pytest.mark.parametrize(
    ("params", "attrs"),
    [
        ({}, {"event"}),
        ({"event": "bad name"}, {"event"}),
        ({"event": "a", "interval": "week"}, {"interval"}),
        ({"event": "a", "from": "nope"}, {"from"}),
        (
            {"event": "a", "interval": "minute", "from": "2026-01-01", "to": "2026-03-01"},
            {"from", "to"},
        ),
        ({"event": "a", "from": "2026-03-01", "to": "2026-03-01"}, {"to"}),
    ],
)
def test_timeseries_bad_parameter_is_400_naming_it(reader, params, attrs):
    assert attrs <= problem_attrs(reader.get(TIMESERIES, params))


def test_timeseries_allows_ten_thousand_buckets(reader):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    params = {"event": "a", "interval": "minute", "from": start.isoformat()}

    ok = reader.get(TIMESERIES, {**params, "to": (start + timedelta(minutes=10_000)).isoformat()})
    too_many = reader.get(
        TIMESERIES, {**params, "to": (start + timedelta(minutes=10_001)).isoformat()}
    )

    assert ok.status_code == 200 and len(ok.json()["results"]) == 10_000
    assert too_many.status_code == 400


# --- Journeys -------------------------------------------------------------------------------
JOURNEYS = "/api/v1/analytics/journeys/"


@pytest.fixture
def staged_types():
    event_type_save(name="page_view", journey_stage="awareness")
    event_type_save(name="ad_click", journey_stage="awareness")
    event_type_save(name="add_to_cart", journey_stage="consideration")
    event_type_save(name="purchase", journey_stage="action")
    event_type_save(name="unstaged")


def daily(subject: str, kind: str, count: int = 1, day: int = 20) -> None:
    SubjectDailyRollup.objects.create(
        subject=subject, day=datetime(2026, 11, day).date(), event_type=kind, count=count
    )


def test_journeys_count_events_and_subjects_per_stage_with_drop_off(reader, staged_types):
    for subject in ("a:1", "a:2", "a:3", "a:4"):
        daily(subject, "page_view", count=2)
    daily("a:1", "ad_click")  # same subject, another awareness type: still one subject
    daily("a:1", "add_to_cart")
    daily("a:2", "add_to_cart", count=3)
    daily("a:1", "purchase")
    daily("a:9", "unstaged", count=50)
    daily("a:5", "page_view", day=25)  # outside the range

    response = reader.get(JOURNEYS, {"from": "2026-11-20", "to": "2026-11-21"})

    assert response.json() == {
        "stages": [
            {"stage": "awareness", "count": 9, "uniques": 4, "drop_off": None},
            {"stage": "consideration", "count": 4, "uniques": 2, "drop_off": 0.5},
            {"stage": "action", "count": 1, "uniques": 1, "drop_off": 0.5},
        ]
    }


def test_journeys_with_no_staged_types_are_zero(reader):
    body = reader.get(JOURNEYS).json()

    assert body["stages"] == [
        {"stage": "awareness", "count": 0, "uniques": 0, "drop_off": None},
        {"stage": "consideration", "count": 0, "uniques": 0, "drop_off": 0.0},
        {"stage": "action", "count": 0, "uniques": 0, "drop_off": 0.0},
    ]


def test_journeys_bad_range_is_400_naming_it(reader):
    assert problem_attrs(reader.get(JOURNEYS, {"from": "2026-11-21", "to": "2026-11-20"})) == {"to"}


@pytest.mark.django_db(transaction=True)
def test_reports_read_what_the_drain_rolled_up(reader, staged_types, drain, monkeypatch):
    monkeypatch.setattr("analytics.services.MAX_AGE", timedelta(days=3650))
    server = Caller(may_name_any_user=True)
    events = [
        ("page_view", "a", 1),
        ("page_view", "a", 1),
        ("page_view", "b", 2),
        ("page_view", "c", 2),
        ("add_to_cart", "a", 3),
        ("add_to_cart", "b", 4),
        ("purchase", "a", 5),
    ]
    result = events_accept(
        events=[
            {"type": kind, "anonymousId": who, "timestamp": at(minute).isoformat()}
            for kind, who, minute in events
        ],
        caller=server,
    )
    assert not result.rejected
    drain()

    series = reader.get(
        TIMESERIES,
        {
            "event": "page_view",
            "interval": "minute",
            "from": at(0).isoformat(),
            "to": at(3).isoformat(),
        },
    ).json()["results"]
    stages = reader.get(JOURNEYS, {"from": "2026-11-20", "to": "2026-11-21"}).json()["stages"]
    steps = reader.get(FUNNEL, {"steps": "page_view,add_to_cart,purchase"}).json()["steps"]

    assert [(b["count"], b["uniques"]) for b in series] == [(0, 0), (2, 1), (2, 2)]
    assert [(s["uniques"], s["drop_off"]) for s in stages] == [(3, None), (2, 0.3333), (1, 0.5)]
    assert [s["count"] for s in steps] == [3, 2, 1]


# --- GraphQL --------------------------------------------------------------------------------
def graphql(client, query: str, variables: dict | None = None) -> dict:
    response = client.post(
        "/graphql/", {"query": query, "variables": variables or {}}, format="json"
    )
    return response.json()


@pytest.fixture
def cart_funnel_events():
    store(
        ("page_view", "a", 0),
        ("add_to_cart", "a", 1),
        ("checkout_complete", "a", 2),
        ("page_view", "b", 0),
        ("checkout_complete", "b", 2),
    )


def test_graphql_funnel_with_start_and_end_event(reader, cart_funnel_events):
    body = graphql(
        reader,
        '{ funnel(startEvent: "page_view", endEvent: "checkout_complete") '
        "{ step count conversionRate } }",
    )

    assert body == {
        "data": {
            "funnel": [
                {"step": "page_view", "count": 2, "conversionRate": 1.0},
                {"step": "checkout_complete", "count": 2, "conversionRate": 1.0},
            ]
        }
    }


def test_graphql_funnel_with_steps_window_and_range(reader, cart_funnel_events):
    body = graphql(
        reader,
        "query($steps: [String!]!, $from: DateTime) "
        '{ funnel(steps: $steps, window: "1h", from: $from) { step count conversionRate } }',
        {"steps": ["page_view", "add_to_cart", "checkout_complete"], "from": at(0).isoformat()},
    )

    assert [(s["count"], s["conversionRate"]) for s in body["data"]["funnel"]] == [
        (2, 1.0),
        (1, 0.5),
        (1, 0.5),
    ]


@pytest.mark.parametrize(
    "arguments",
    [
        "",
        'startEvent: "a"',
        'endEvent: "b"',
        'startEvent: "a", endEvent: "b", steps: ["a", "b"]',
    ],
)
def test_graphql_funnel_needs_exactly_one_form(reader, arguments):
    query = f"{{ funnel{f'({arguments})' if arguments else ''} {{ step count }} }}"

    body = graphql(reader, query)

    assert body["data"] == {"funnel": None}
    assert body["errors"][0]["extensions"]["code"] == "validation-error"


def test_graphql_funnel_bad_window_names_it(reader):
    body = graphql(reader, '{ funnel(steps: ["a"], window: "soon") { count } }')

    assert body["errors"][0]["extensions"]["errors"][0]["attr"] == "window"


@pytest.mark.parametrize("who", ["anonymous", "customer", "staff without permission"])
def test_graphql_funnel_is_for_staff_with_the_analytics_permission(api_client, who):
    if who != "anonymous":
        api_client.force_authenticate(UserFactory(is_staff=who.startswith("staff")))

    body = graphql(api_client, '{ funnel(steps: ["a", "b"]) { count } }')

    assert body["data"] == {"funnel": None}
    assert body["errors"][0]["extensions"]["code"] == "forbidden"


# --- Selector rules shared by every caller ------------------------------------------------
def test_funnel_refuses_a_naive_range():
    with pytest.raises(ValidationError) as caught:
        funnel(steps=["a"], window=timedelta(hours=1), start=datetime(2026, 1, 1), end=None)

    assert caught.value.errors[0].attr == "from"


# --- OpenAPI --------------------------------------------------------------------------------
def test_openapi_documents_the_reports(api_client):
    document = json.loads(
        api_client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content
    )

    funnel_op = document["paths"]["/api/v1/analytics/funnel/"]["get"]
    names = {parameter["name"] for parameter in funnel_op["parameters"]}
    assert {"steps", "window", "from", "to"} <= names
    assert "/api/v1/analytics/timeseries/" in document["paths"]
    assert "/api/v1/analytics/journeys/" in document["paths"]
    step = document["components"]["schemas"]["FunnelStep"]
    assert set(step["properties"]) == {"step", "count", "conversionRate"}


# --- Admin --------------------------------------------------------------------------------------
REPORT_PAGE = "/admin/analytics/eventrollup/"


def test_admin_journey_report_renders_charts_for_staff(admin_client, staged_types):
    daily("a:1", "page_view", day=20)
    daily("a:1", "add_to_cart", day=20)
    rollup("day", datetime(2026, 11, 20, tzinfo=UTC), 1, 1)

    response = admin_client.get(
        REPORT_PAGE,
        {
            "date_from": "2026-11-19",
            "date_to": "2026-11-21",
            "event": "page_view",
            "interval": "day",
        },
    )

    assert response.status_code == 200
    content = response.content.decode()
    assert "analytics/vendor/chartjs/chart.umd.min.js" in content
    assert "cdn" not in content.lower()
    data = response.context["report"]
    assert [stage["uniques"] for stage in data["stages"]] == [1, 1, 0]
    assert [point["count"] for point in data["series"]] == [0, 1, 0]
    assert 'id="journey-report-data"' in content


def test_admin_journey_report_defaults_to_the_last_thirty_days(admin_client, staged_types):
    response = admin_client.get(REPORT_PAGE)

    assert response.status_code == 200
    assert len(response.context["report"]["series"]) == 30
    assert response.context["report"]["event"] == "ad_click"  # awareness types first, by name


def test_admin_journey_report_shows_range_errors_on_the_form(admin_client):
    response = admin_client.get(
        REPORT_PAGE, {"date_from": "2026-11-21", "date_to": "2026-11-20", "interval": "day"}
    )

    assert response.status_code == 200
    assert response.context["report"] is None
    assert "date_to" in response.context["form"].errors


def test_admin_journey_report_is_not_for_customers(client):
    client.force_login(UserFactory(is_staff=False))

    response = client.get(REPORT_PAGE)

    assert response.status_code == 302  # to the admin login


def test_vendored_chart_library_is_served_with_its_license():
    from django.contrib.staticfiles import finders

    assert finders.find("analytics/vendor/chartjs/chart.umd.min.js")
    assert finders.find("analytics/vendor/chartjs/LICENSE.md")


def test_admin_lists_event_types_with_schema_flag(admin_client):
    event_type_save(name="signup", journey_stage="action", schema={"type": "object"})
    DroppedEvents.objects.create(day=T0.date(), reason="consent", count=3)

    types = admin_client.get("/admin/analytics/eventtype/")
    dropped = admin_client.get("/admin/analytics/droppedevents/")

    assert types.status_code == 200 and b"signup" in types.content
    assert b"icon-yes.svg" in types.content
    assert dropped.status_code == 200 and b"consent" in dropped.content
    assert admin_client.get("/admin/analytics/droppedevents/add/").status_code == 403


def test_admin_event_type_form_refuses_an_invalid_schema(admin_client):
    response = admin_client.post(
        "/admin/analytics/eventtype/add/",
        {
            "name": "signup",
            "description": "",
            "journey_stage": "",
            "schema": '{"type": 12}',
            "distinct_properties": "[]",
        },
    )

    assert response.status_code == 200
    assert "schema" in response.context["adminform"].form.errors


@override_settings(CMS_EVENTS_STRICT_TYPES=True)
def test_admin_saved_event_type_is_seen_by_ingestion_at_once(admin_client):
    from analytics.selectors import event_type_catalog

    assert "signup" not in event_type_catalog()  # cached now

    admin_client.post(
        "/admin/analytics/eventtype/add/",
        {
            "name": "signup",
            "description": "",
            "journey_stage": "action",
            "schema": "",
            "distinct_properties": "[]",
        },
    )

    assert event_type_catalog()["signup"].journey_stage == "action"
