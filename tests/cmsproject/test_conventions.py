"""API conventions (API.md): problem+json everywhere, body limits, throttles, slashes, health."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group
from django.test import override_settings

from cmsproject.asgi import application
from cmsproject.services import api_key_create

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == PROBLEM
    body = json.loads(response.content)
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    assert b"Traceback" not in response.content and b"<html" not in response.content.lower()
    return body


def test_unknown_path_is_404_problem(client):
    assert_problem(client.get("/no/such/page"), 404)


def test_unknown_api_path_is_404_problem(api_client):
    assert_problem(api_client.get("/api/v1/nothing-here/"), 404)


def test_admin_404_stays_html_for_browsers(admin_client):
    response = admin_client.get("/admin/no-such-app/", HTTP_ACCEPT="text/html")

    assert response.status_code == 404
    assert "text/html" in response["Content-Type"]


def test_body_over_one_megabyte_is_413_and_changes_nothing(api_client, staff_client):
    body = json.dumps({"name": "x" * (2 * 1024 * 1024), "scopes": ["content:read"]})

    response = staff_client.post("/api/v1/api-keys/", body, content_type="application/json")

    assert_problem(response, 413)
    assert staff_client.get("/api/v1/api-keys/").json()["count"] == 0


async def test_chunked_body_over_the_limit_is_413_on_the_asgi_server():
    """No Content-Length: the ASGI wrapper counts the bytes as they stream in."""
    chunks = [b"{" + b" " * 600_000, b" " * 600_000, b"}"]
    sent: list[dict] = []

    async def receive() -> dict:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/auth/token/",
        "raw_path": b"",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"localhost")],
        "server": ("localhost", 80),
        "client": ("127.0.0.1", 5000),
        "scheme": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "root_path": "",
    }

    await application(scope, receive, send)

    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["status"] == 413


def test_non_json_body_is_415(api_client):
    response = api_client.post("/api/v1/auth/token/", "username=a", content_type="text/plain")

    body = assert_problem(response, 415)
    assert "text/plain" in body["detail"]


def test_malformed_json_is_400(api_client):
    response = api_client.post("/api/v1/auth/token/", "{nope", content_type="application/json")

    assert_problem(response, 400)


def test_method_not_allowed_is_405_problem(api_client):
    assert_problem(api_client.delete("/api/v1/health/"), 405)


def test_post_without_trailing_slash_reaches_the_view(api_client, staff_user, password):
    response = api_client.post(
        "/api/v1/auth/token", {"username": staff_user.username, "password": password}, format="json"
    )

    assert response.status_code == 200


def test_unexpected_error_is_500_problem_without_internals(api_client, monkeypatch):
    # A view that crashes for a reason the code did not foresee (here: the health report).
    def explode() -> dict:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("cmsproject.api.health_report", explode)

    body = assert_problem(api_client.get("/api/v1/health/"), 500)
    assert "secret" not in json.dumps(body)


# --- Throttles ----------------------------------------------------------------------------------
RATES = {
    "anon": "3/min",
    "user": "4/min",
    "api_key": "2/min",
    "events": "600/min",
    "login": "2/min",
}


@override_settings(CMS_THROTTLE_RATES=RATES)
def test_anonymous_callers_are_throttled_per_ip_with_retry_after(api_client):
    statuses = [
        api_client.post("/api/v1/auth/customer-token/", {}, format="json").status_code
        for _ in range(4)
    ]
    throttled = api_client.post(
        "/api/v1/auth/customer-token/", {}, format="json", REMOTE_ADDR="127.0.0.1"
    )

    assert statuses[:3] == [401, 401, 401]
    body = assert_problem(throttled, 429)
    assert int(throttled["Retry-After"]) > 0
    assert body["type"] == "urn:cms:problem:throttled"


@override_settings(CMS_THROTTLE_RATES=RATES)
def test_another_ip_has_its_own_anonymous_budget(api_client):
    for _ in range(4):
        api_client.post("/api/v1/auth/customer-token/", {}, format="json")

    other = api_client.post(
        "/api/v1/auth/customer-token/", {}, format="json", REMOTE_ADDR="10.0.0.9"
    )

    assert other.status_code == 401


@override_settings(CMS_THROTTLE_RATES=RATES)
def test_forwarded_for_header_cannot_pick_a_fresh_bucket(api_client):
    for _ in range(3):
        api_client.post("/api/v1/auth/customer-token/", {}, format="json")

    spoofed = api_client.post(
        "/api/v1/auth/customer-token/", {}, format="json", HTTP_X_FORWARDED_FOR="1.2.3.4"
    )

    assert spoofed.status_code == 429


@override_settings(CMS_THROTTLE_RATES={**RATES, "anon": "100/min"})
def test_login_attempts_are_throttled_per_ip_and_username(api_client, staff_user):
    for _ in range(2):
        api_client.post(
            "/api/v1/auth/token/",
            {"username": staff_user.username, "password": "bad"},
            format="json",
        )

    same_user = api_client.post(
        "/api/v1/auth/token/", {"username": staff_user.username, "password": "bad"}, format="json"
    )
    other_user = api_client.post(
        "/api/v1/auth/token/", {"username": "someone-else", "password": "bad"}, format="json"
    )

    assert_problem(same_user, 429)
    assert other_user.status_code == 401


@override_settings(CMS_THROTTLE_RATES=RATES)
@override_settings(CMS_THROTTLE_RATES=RATES)
def test_guessing_api_keys_is_throttled(api_client):
    statuses = [
        api_client.post(
            "/api/v1/auth/customer-token/",
            {},
            format="json",
            HTTP_AUTHORIZATION=f"Api-Key cms_guess{n}_secret",
        ).status_code
        for n in range(4)
    ]

    assert statuses == [401, 401, 401, 429]


@override_settings(CMS_THROTTLE_RATES=RATES)
def test_users_are_throttled_per_user(api_client, staff_user):
    staff_user.groups.add(Group.objects.get(name="Developer"))
    api_client.force_authenticate(staff_user)

    statuses = [api_client.get("/api/v1/api-keys/").status_code for _ in range(5)]

    assert statuses == [200, 200, 200, 200, 429]


@override_settings(CMS_THROTTLE_RATES=RATES)
def test_api_keys_are_throttled_per_key(api_client):
    _, first = api_key_create(name="a", scopes=["customers:impersonate"], created_by=None)
    _, second = api_key_create(name="b", scopes=["customers:impersonate"], created_by=None)

    def call(raw: str) -> int:
        return api_client.post(
            "/api/v1/auth/customer-token/",
            {"external_id": "u"},
            format="json",
            HTTP_AUTHORIZATION=f"Api-Key {raw}",
        ).status_code

    assert [call(first) for _ in range(3)] == [200, 200, 429]
    assert call(second) == 200


def test_throttle_rates_come_from_the_environment_with_api_md_defaults(settings):
    assert settings.CMS_THROTTLE_RATES == {
        "anon": "100/min",
        "user": "1000/min",
        "api_key": "1000/min",
        "events": "600/min",
        "login": "10/min",
    }


# --- Health ---------------------------------------------------------------------------------------
UNREACHABLE_CACHE = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2},
    }
}


def test_health_is_503_naming_the_failing_dependency(api_client):
    with override_settings(CACHES=UNREACHABLE_CACHE):
        from django.core.cache import caches

        caches._settings = caches.settings = UNREACHABLE_CACHE
        caches._connections.__dict__.pop("default", None)
        try:
            response = api_client.get("/api/v1/health/")
        finally:
            caches._connections.__dict__.pop("default", None)

    body = assert_problem(response, 503)
    assert body["checks"]["cache"] == "error"  # anonymous callers see no host or port
    assert body["checks"]["database"] == "ok"
    assert "cache" in body["detail"]


def test_staff_see_why_a_check_fails(staff_client):
    with override_settings(CACHES=UNREACHABLE_CACHE):
        from django.core.cache import caches

        caches._connections.__dict__.pop("default", None)
        try:
            response = staff_client.get("/api/v1/health/")
        finally:
            caches._connections.__dict__.pop("default", None)

    assert response.json()["checks"]["cache"].startswith("error: ")


def test_health_is_never_throttled(api_client):
    with override_settings(CMS_THROTTLE_RATES=RATES):
        statuses = {api_client.get("/api/v1/health/").status_code for _ in range(6)}

    assert statuses == {200}


# --- Pagination -----------------------------------------------------------------------------------
def test_lists_use_the_results_next_previous_envelope(staff_client):
    for index in range(3):
        api_key_create(name=f"k{index}", scopes=["content:read"], created_by=None)

    body = staff_client.get("/api/v1/api-keys/?page_size=2").json()

    assert set(body) == {"results", "next", "previous", "count"}
    assert len(body["results"]) == 2 and body["count"] == 3 and body["next"]


def test_openapi_document_and_docs_are_served(api_client):
    schema = api_client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    docs = api_client.get("/api/v1/docs/")

    assert schema.status_code == 200
    assert "/api/v1/health/" in json.loads(schema.content)["paths"]
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
