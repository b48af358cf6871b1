"""Operating it: `/metrics` (who may read it, what it holds), request ids and trace ids in the
logs, and the trace carried from a request into a Celery task."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from celery import signals
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from rest_framework_simplejwt.tokens import AccessToken

from cmsproject.celery import app as celery_app
from cmsproject.observability import websocket
from cmsproject.observability.logs import JsonFormatter, RequestIdsFilter, current_trace_ids
from cmsproject.observability.metrics import HTTP_REQUEST_DURATION
from cmsproject.observability.tracing import tracer_use
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
CONTENT_ROUTE = "api/v1/content/<slug:type_api_id>/<slug:slug>/"
logger = logging.getLogger("tests.observability")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def request_count(route: str, method: str = "GET", status_class: str = "2xx") -> float:
    return sample(
        "http_request_duration_seconds_count",
        route=route,
        method=method,
        status_class=status_class,
    )


def as_json(record: logging.LogRecord) -> dict:
    return json.loads(JsonFormatter().format(record))


# --- A tiny URLconf for the tests that need a view of their own ----------------------------------
@celery_app.task(name="tests.observability.echo")
def echo_task() -> str | None:
    logger.info("in the task")
    return current_trace_ids()[0]


@celery_app.task(name="tests.observability.fail")
def fail_task() -> None:
    raise RuntimeError("expected by the test")


@celery_app.task(name="tests.observability.flaky", bind=True, max_retries=1)
def flaky_task(self) -> str:
    if self.request.retries == 0:
        raise self.retry(countdown=0)
    return "done"


def logging_view(request: HttpRequest, number: int) -> HttpResponse:
    logger.info("in the view", extra={"number": number})
    return JsonResponse({"trace_id": current_trace_ids()[0]})


def enqueueing_view(request: HttpRequest) -> HttpResponse:
    """Publishes a task the way services mode does (to a broker), here an in-memory one."""
    eager, celery_app.conf.task_always_eager = celery_app.conf.task_always_eager, False
    try:
        with celery_app.connection_for_write("memory://") as connection:
            echo_task.apply_async(connection=connection)
    finally:
        celery_app.conf.task_always_eager = eager
    return HttpResponse(status=204)


def unavailable_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(status=503)


urlpatterns = [
    path("things/<int:number>/", logging_view),
    path("unavailable/", unavailable_view),
    path("enqueue/", enqueueing_view),
]


@pytest.fixture
def captured_headers():
    published: list[dict] = []

    def receiver(headers=None, **_):
        published.append(dict(headers or {}))

    signals.before_task_publish.connect(receiver, weak=False, dispatch_uid="test-capture")
    yield published
    signals.before_task_publish.disconnect(dispatch_uid="test-capture")


# --- Who may read /metrics ------------------------------------------------------------------------
def jwt_for(api_client, *, is_staff: bool) -> str:
    user = UserFactory(is_staff=is_staff, password="pw-for-metrics-test")
    response = api_client.post(
        "/api/v1/auth/token/",
        {"username": user.username, "password": "pw-for-metrics-test"},
        format="json",
    )
    return response.json()["access"]


def test_metrics_refuses_an_anonymous_caller_with_401(api_client):
    response = api_client.get("/metrics")

    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_metrics_refuses_a_user_who_is_not_staff_with_403(api_client):
    token = jwt_for(api_client, is_staff=False)

    response = api_client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 403
    assert response["Content-Type"] == PROBLEM


def test_metrics_are_served_to_staff_by_jwt_and_by_session(api_client, admin_client):
    token = jwt_for(api_client, is_staff=True)

    by_jwt = api_client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    by_session = admin_client.get("/metrics")

    assert by_jwt.status_code == 200
    assert by_jwt["Content-Type"].startswith("text/plain; version=")
    assert by_session.status_code == 200


def test_metrics_are_served_for_the_configured_token(api_client, settings):
    settings.CMS_METRICS_TOKEN = "scrape-me-0123456789"

    response = api_client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-0123456789")

    assert response.status_code == 200
    assert b"# TYPE http_request_duration_seconds histogram" in response.content


@pytest.mark.parametrize("configured", ["scrape-me-0123456789", ""])
def test_metrics_refuse_a_wrong_token_with_403(api_client, settings, configured):
    settings.CMS_METRICS_TOKEN = configured

    response = api_client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-wrong")

    assert response.status_code == 403
    assert response["Content-Type"] == PROBLEM


def test_metrics_answer_401_to_an_expired_staff_jwt_so_it_can_be_refreshed(api_client):
    token = AccessToken.for_user(UserFactory(is_staff=True))
    token.set_exp(lifetime=-timedelta(seconds=1))

    response = api_client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM


# --- What /metrics holds --------------------------------------------------------------------------
def test_every_metric_family_is_exposed(staff_client, events_buffer):
    body = staff_client.get("/metrics").content.decode()

    for family, kind in [
        ("http_request_duration_seconds", "histogram"),
        ("events_ingested_total", "counter"),
        ("events_rejected_total", "counter"),
        ("events_stream_backlog", "gauge"),
        ("rollups_lag_seconds", "gauge"),
        ("segment_evaluation_seconds", "histogram"),
        ("content_cache_requests_total", "counter"),
        ("websocket_connections", "gauge"),
        ("websocket_messages_sent_total", "counter"),
        ("celery_tasks_total", "counter"),
        ("celery_task_duration_seconds", "histogram"),
    ]:
        assert f"# TYPE {family} {kind}\n" in body, family


def test_a_request_is_counted_under_its_route_not_its_path(api_client):
    before = request_count("api/v1/health/")

    api_client.get("/api/v1/health/")

    assert request_count("api/v1/health/") == before + 1
    routes = {s.labels["route"] for m in HTTP_REQUEST_DURATION.collect() for s in m.samples}
    assert "api/v1/health/" in routes
    assert not [route for route in routes if route.startswith("/")]


def test_an_anonymous_fast_path_read_is_counted_with_its_pattern(api_client):
    before = request_count(CONTENT_ROUTE, status_class="4xx")

    api_client.get("/api/v1/content/homepage/nothing-here/")

    assert request_count(CONTENT_ROUTE, status_class="4xx") == before + 1


def test_a_path_no_pattern_matches_is_counted_as_unmatched(api_client):
    before = request_count("unmatched", status_class="4xx")

    api_client.get("/no/such/page/42")

    assert request_count("unmatched", status_class="4xx") == before + 1


async def test_the_asgi_server_path_is_measured_and_echoes_the_request_id():
    from cmsproject.asgi import application

    sent: list[dict] = []
    bodies = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict:
        if bodies:
            return bodies.pop()
        await asyncio.Event().wait()  # no disconnect until the response is sent
        return {}

    async def send(message: dict) -> None:
        sent.append(message)

    before = request_count("unmatched", status_class="4xx")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/no/such/page/",
        "raw_path": b"/no/such/page/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"x-request-id", b"asgi-1")],
        "client": ("127.0.0.1", 5000),
        "server": ("localhost", 80),
    }

    await application(scope, receive, send)

    assert dict(sent[0]["headers"])[b"X-Request-ID"] == b"asgi-1"
    assert request_count("unmatched", status_class="4xx") == before + 1


def test_ingested_and_rejected_events_are_counted(api_client, events_buffer):
    ingested, rejected = sample("events_ingested_total"), sample("events_rejected_total")

    api_client.post("/api/v1/events/", {"type": "page_view", "anonymousId": "a1"}, format="json")
    api_client.post(
        "/api/v1/events/batch/",
        {"events": [{"type": "page_view", "anonymousId": "a1"}, {"type": "bad type!"}]},
        format="json",
    )

    assert sample("events_ingested_total") == ingested + 2
    assert sample("events_rejected_total") == rejected + 1


def test_backlog_and_lag_are_read_from_the_buffer_at_scrape_time(
    api_client, staff_client, events_buffer
):
    def scraped(name: str) -> float:
        body = staff_client.get("/metrics").content.decode()
        return float(re.search(rf"^{name} (\S+)$", body, re.MULTILINE).group(1))

    assert scraped("events_stream_backlog") == 0
    assert scraped("rollups_lag_seconds") == 0

    api_client.post("/api/v1/events/", {"type": "page_view", "anonymousId": "a1"}, format="json")

    assert scraped("events_stream_backlog") == 1
    assert 0 <= scraped("rollups_lag_seconds") < 60


def test_content_cache_misses_then_hits_are_counted(api_client):
    hits = sample("content_cache_requests_total", result="hit")
    misses = sample("content_cache_requests_total", result="miss")

    api_client.get("/api/v1/content/homepage/cached-404/")  # a miss fills the cache (a short 404)
    api_client.get("/api/v1/content/homepage/cached-404/")

    assert sample("content_cache_requests_total", result="miss") == misses + 1
    assert sample("content_cache_requests_total", result="hit") == hits + 1


def test_incremental_and_bulk_segment_evaluations_are_timed():
    from segmentation.services import segment_create, segment_recompute, subjects_reevaluate
    from tests.factories import CustomerFactory

    segment = segment_create(
        key="gold",
        name="Gold",
        rules={"all": [{"attribute": "loyalty_tier", "op": "eq", "value": "gold"}]},
    )
    customer = CustomerFactory()
    bulk = sample("segment_evaluation_seconds_count", kind="bulk")
    incremental = sample("segment_evaluation_seconds_count", kind="incremental")

    segment_recompute(segment_id=segment.pk)
    subjects_reevaluate(subjects=[f"c:{customer.pk}"])

    assert sample("segment_evaluation_seconds_count", kind="bulk") == bulk + 1
    assert sample("segment_evaluation_seconds_count", kind="incremental") == incremental + 1


def test_a_socket_counts_once_while_open_and_a_refused_one_not_at_all():
    accepted, refused = SimpleNamespace(), SimpleNamespace()
    before = sample("websocket_connections")

    websocket.websocket_opened(accepted)
    during = sample("websocket_connections")
    websocket.websocket_closed(accepted)
    websocket.websocket_closed(accepted)  # Channels may report a close twice
    websocket.websocket_closed(refused)

    assert during == before + 1
    assert sample("websocket_connections") == before


def test_task_outcomes_and_durations_are_counted():
    def outcomes(task: str) -> dict[str, float]:
        return {
            outcome: sample(
                "celery_tasks_total", task=f"tests.observability.{task}", outcome=outcome
            )
            for outcome in ("success", "failure", "retry")
        }

    echo, fail, flaky = outcomes("echo"), outcomes("fail"), outcomes("flaky")
    runs = sample("celery_task_duration_seconds_count", task="tests.observability.fail")

    echo_task.apply()
    fail_task.apply(throw=False)
    flaky_task.apply(throw=False)  # retried once (in-process), then succeeds

    assert outcomes("echo") == {**echo, "success": echo["success"] + 1}
    assert outcomes("fail") == {**fail, "failure": fail["failure"] + 1}
    assert outcomes("flaky") == {
        **flaky,
        "retry": flaky["retry"] + 1,
        "success": flaky["success"] + 1,
    }
    assert sample("celery_task_duration_seconds_count", task="tests.observability.fail") == runs + 1


# --- Request ids and trace ids --------------------------------------------------------------------
def test_a_sane_request_id_is_echoed_and_an_unsafe_one_replaced(api_client):
    kept = api_client.get("/api/v1/health/", HTTP_X_REQUEST_ID="edge-7f3a.01_b")
    replaced = api_client.get("/api/v1/health/", HTTP_X_REQUEST_ID="bad id\nwith newline")
    too_long = api_client.get("/api/v1/health/", HTTP_X_REQUEST_ID="a" * 65)

    assert kept["X-Request-ID"] == "edge-7f3a.01_b"
    assert re.fullmatch(r"[0-9a-f]{32}", replaced["X-Request-ID"])
    assert re.fullmatch(r"[0-9a-f]{32}", too_long["X-Request-ID"])
    assert replaced["X-Request-ID"] != too_long["X-Request-ID"]


@pytest.mark.urls(__name__)
def test_a_log_line_of_a_request_carries_its_request_id_and_trace_id(client, caplog):
    with caplog.at_level(logging.INFO, logger="tests.observability"):
        response = client.get(
            "/things/7/", HTTP_X_REQUEST_ID="req-42", HTTP_TRACEPARENT=TRACEPARENT
        )

    logged = as_json(next(r for r in caplog.records if r.getMessage() == "in the view"))
    assert response["X-Request-ID"] == "req-42"
    assert logged["request_id"] == "req-42"
    assert logged["trace_id"] == TRACE_ID == response.json()["trace_id"]
    assert logged["span_id"] != PARENT_SPAN_ID  # the server span is a child of the caller's
    assert (
        logged["number"] == 7 and logged["level"] == "INFO" and logged["message"] == "in the view"
    )


@pytest.mark.urls(__name__)
def test_djangos_own_line_about_a_failed_request_carries_its_ids(client, caplog):
    with caplog.at_level(logging.ERROR, logger="django.request"):
        client.get("/unavailable/", HTTP_X_REQUEST_ID="req-503", HTTP_TRACEPARENT=TRACEPARENT)

    record = next(r for r in caplog.records if r.name == "django.request")
    RequestIdsFilter().filter(record)  # as the console handler applies it (settings.LOGGING)
    logged = as_json(record)
    assert logged["request_id"] == "req-503"
    assert logged["trace_id"] == TRACE_ID
    assert logged["status_code"] == 503


@pytest.mark.urls(__name__)
def test_the_route_of_a_request_names_its_histogram_series(client):
    before = request_count("things/<int:number>/")

    client.get("/things/1/")
    client.get("/things/2/")

    assert request_count("things/<int:number>/") == before + 2


@pytest.mark.urls(__name__)
def test_a_recorded_server_span_is_named_by_route_under_the_callers_span(client):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer_use(provider)
    try:
        client.get("/things/3/", HTTP_TRACEPARENT=TRACEPARENT)
    finally:
        tracer_use(None)

    (span,) = exporter.get_finished_spans()
    assert span.name == "GET things/<int:number>/"
    assert span.kind == trace.SpanKind.SERVER
    assert trace.format_trace_id(span.context.trace_id) == TRACE_ID
    assert trace.format_span_id(span.parent.span_id) == PARENT_SPAN_ID
    assert span.attributes["http.response.status_code"] == 200


@pytest.mark.urls(__name__)
@pytest.mark.parametrize(
    "bad", ["00-xyz-00f067aa0ba902b7-01", f"00-{'0' * 32}-{PARENT_SPAN_ID}-01"]
)
def test_a_malformed_traceparent_is_ignored_and_a_new_trace_begins(client, bad):
    trace_id = client.get("/things/1/", HTTP_TRACEPARENT=bad).json()["trace_id"]

    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert trace_id not in (TRACE_ID, "0" * 32)


def test_outside_a_request_records_have_no_ids(caplog):
    with caplog.at_level(logging.INFO, logger="tests.observability"):
        logger.info("background")

    assert caplog.records[-1].request_id is None and caplog.records[-1].trace_id is None


@pytest.mark.urls(__name__)
def test_a_task_published_during_a_request_carries_its_trace_and_request_id(
    client, captured_headers
):
    client.get("/enqueue/", HTTP_TRACEPARENT=TRACEPARENT, HTTP_X_REQUEST_ID="req-9")

    (headers,) = captured_headers
    assert headers["traceparent"].split("-")[1] == TRACE_ID
    assert headers["cms_request_id"] == "req-9"


def test_a_worker_runs_the_task_in_the_trace_of_its_message(caplog):
    headers = {"traceparent": TRACEPARENT, "cms_request_id": "req-9"}

    with caplog.at_level(logging.INFO, logger="tests.observability"):
        seen = echo_task.apply(headers=headers).get()

    logged = as_json(next(r for r in caplog.records if r.getMessage() == "in the task"))
    assert seen == TRACE_ID == logged["trace_id"]
    assert logged["request_id"] == "req-9"
    assert not trace.get_current_span().get_span_context().is_valid  # nothing leaks after it


def test_an_in_process_task_inherits_the_callers_trace():
    from cmsproject.observability.tracing import tracer

    with tracer().start_as_current_span("caller") as span:
        seen = echo_task.apply().get()

    assert seen == trace.format_trace_id(span.get_span_context().trace_id)
