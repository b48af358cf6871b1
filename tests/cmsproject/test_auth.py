"""JWT (header and cookie mode), refresh rotation, logout, API keys, customer tokens."""

from __future__ import annotations

import pytest
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from cmsproject.models import ApiKey
from cmsproject.services import api_key_create
from customers.models import Customer

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


def obtain(client: APIClient, username: str, password: str, **extra):
    return client.post(
        "/api/v1/auth/token/", {"username": username, "password": password, **extra}, format="json"
    )


def test_token_with_right_password_returns_access_and_refresh(api_client, staff_user, password):
    response = obtain(api_client, staff_user.username, password)

    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}


def test_access_lives_five_minutes_and_refresh_one_day():
    assert settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds() == 300
    assert settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"].total_seconds() == 86400


def test_wrong_password_is_401_problem(api_client, staff_user):
    response = obtain(api_client, staff_user.username, "wrong")

    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == 401 and body["title"] == "Unauthorized"


def test_missing_password_names_the_field(api_client, staff_user):
    response = api_client.post("/api/v1/auth/token/", {"username": "x"}, format="json")

    assert response.status_code == 400
    assert {"attr": "password", "code": "required", "detail": "This field is required."} in (
        response.json()["errors"]
    )


def test_access_token_authenticates_bearer_requests(api_client, superuser, password):
    access = obtain(api_client, superuser.username, password).json()["access"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")

    response = api_client.get("/api/v1/api-keys/")

    assert response.status_code == 200


def test_garbage_bearer_token_is_401(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")

    response = api_client.get("/api/v1/api-keys/")

    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM


def test_refresh_rotates_and_the_old_refresh_is_refused(api_client, staff_user, password):
    first = obtain(api_client, staff_user.username, password).json()["refresh"]

    rotated = api_client.post("/api/v1/auth/token/refresh/", {"refresh": first}, format="json")
    reused = api_client.post("/api/v1/auth/token/refresh/", {"refresh": first}, format="json")

    assert rotated.status_code == 200
    assert rotated.json()["refresh"] != first
    assert reused.status_code == 401
    assert reused["Content-Type"] == PROBLEM


def test_logout_revokes_the_refresh_token(api_client, staff_user, password):
    refresh = obtain(api_client, staff_user.username, password).json()["refresh"]

    logout = api_client.post("/api/v1/auth/logout/", {"refresh": refresh}, format="json")
    after = api_client.post("/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json")

    assert logout.status_code == 204
    assert after.status_code == 401


def test_refresh_without_token_or_cookie_is_401(api_client):
    response = api_client.post("/api/v1/auth/token/refresh/", {}, format="json")

    assert response.status_code == 401


# --- Cookie mode ----------------------------------------------------------------------------------
@pytest.fixture
def cookie_client(superuser, password) -> APIClient:
    client = APIClient(enforce_csrf_checks=True)
    response = obtain(client, superuser.username, password, cookie=True)
    assert response.status_code == 200
    client.csrf_token = response.json()["csrf_token"]
    return client


def test_cookie_mode_sets_http_only_cookies_and_no_tokens_in_body(cookie_client):
    access = cookie_client.cookies[settings.JWT_ACCESS_COOKIE]
    refresh = cookie_client.cookies[settings.JWT_REFRESH_COOKIE]

    assert access["httponly"] and refresh["httponly"]
    assert refresh["path"] == "/api/v1/auth/"


def test_cookie_authenticates_reads(cookie_client):
    assert cookie_client.get("/api/v1/api-keys/").status_code == 200


def test_cookie_write_without_csrf_token_is_refused(cookie_client):
    response = cookie_client.post(
        "/api/v1/api-keys/", {"name": "k", "scopes": ["content:read"]}, format="json"
    )

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not ApiKey.objects.exists()


def test_cookie_write_with_csrf_token_succeeds(cookie_client):
    response = cookie_client.post(
        "/api/v1/api-keys/",
        {"name": "k", "scopes": ["content:read"]},
        format="json",
        HTTP_X_CSRFTOKEN=cookie_client.csrf_token,
    )

    assert response.status_code == 201


def test_cookie_refresh_needs_csrf_and_rotates(cookie_client):
    old_refresh = cookie_client.cookies[settings.JWT_REFRESH_COOKIE].value

    refused = cookie_client.post("/api/v1/auth/token/refresh/", {}, format="json")
    rotated = cookie_client.post(
        "/api/v1/auth/token/refresh/", {}, format="json", HTTP_X_CSRFTOKEN=cookie_client.csrf_token
    )

    assert refused.status_code == 403
    assert rotated.status_code == 200
    assert cookie_client.cookies[settings.JWT_REFRESH_COOKIE].value != old_refresh


# --- API keys -------------------------------------------------------------------------------------
def test_created_api_key_is_shown_once_and_stored_hashed(staff_client):
    response = staff_client.post(
        "/api/v1/api-keys/", {"name": "shop", "scopes": ["events:write"]}, format="json"
    )

    body = response.json()
    assert response.status_code == 201
    assert body["key"].startswith(f"cms_{body['prefix']}_")
    stored = ApiKey.objects.get(prefix=body["prefix"])
    assert body["key"].split("_", 2)[2] not in stored.hashed_secret
    listed = staff_client.get("/api/v1/api-keys/").json()["results"]
    assert "key" not in listed[0]


def test_api_key_with_unknown_scope_is_400_naming_it(staff_client):
    response = staff_client.post(
        "/api/v1/api-keys/", {"name": "shop", "scopes": ["root"]}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "scopes[0]"
    assert not ApiKey.objects.exists()


def test_api_key_authenticates_and_records_last_use(api_client):
    key, raw = api_key_create(name="k", scopes=["customers:impersonate"], created_by=None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")

    response = api_client.post("/api/v1/auth/customer-token/", {"external_id": "u1"}, format="json")

    assert response.status_code == 200
    assert set(response.json()) == {"access"}
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_customer_token_is_an_access_jwt_for_the_customers_login(api_client):
    _, raw = api_key_create(name="k", scopes=["customers:impersonate"], created_by=None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")

    response = api_client.post("/api/v1/auth/customer-token/", {"external_id": "u1"}, format="json")

    customer = Customer.objects.get(external_id="u1")
    assert AccessToken(response.json()["access"])["user_id"] == str(customer.user_id)


def test_revoked_api_key_is_401(api_client, staff_client):
    key, raw = api_key_create(name="k", scopes=["customers:impersonate"], created_by=None)
    assert staff_client.delete(f"/api/v1/api-keys/{key.prefix}/").status_code == 204
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")

    response = api_client.post("/api/v1/auth/customer-token/", {"external_id": "u1"}, format="json")

    assert response.status_code == 401


def _ingest_with_key(client: APIClient, raw: str) -> int:
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    events = [{"type": "page_view", "anonymousId": "a1"}]
    return client.post("/api/v1/events/batch/", {"events": events}, format="json").status_code


def test_an_api_key_revoked_in_the_database_stops_at_its_next_reading(
    api_client, events_buffer, settings
):
    settings.CMS_API_KEY_CACHE_SECONDS = 0  # every request reads the key again
    key, raw = api_key_create(name="k", scopes=["events:write"], created_by=None)
    assert _ingest_with_key(api_client, raw) == 202

    ApiKey.objects.filter(pk=key.pk).update(revoked_at=key.created_at)  # not through the API

    assert _ingest_with_key(api_client, raw) == 401


@pytest.fixture
def api_keys_unreadable(monkeypatch):
    """The key table cannot be read, as in a database outage (the outage itself, with
    PostgreSQL stopped, is tests/e2e/test_faults.py)."""
    from django.db import OperationalError

    def unreadable(*args, **kwargs):
        raise OperationalError("connection refused")

    def start() -> None:
        monkeypatch.setattr(ApiKey.objects, "filter", unreadable)

    return start


def test_a_key_read_before_the_database_went_away_keeps_working(
    api_client, events_buffer, settings, api_keys_unreadable
):
    settings.CMS_API_KEY_CACHE_SECONDS = 0  # past its trusted window: it must be read again
    _key, raw = api_key_create(name="k", scopes=["events:write"], created_by=None)
    assert _ingest_with_key(api_client, raw) == 202
    api_keys_unreadable()

    assert _ingest_with_key(api_client, raw) == 202
    assert events_buffer.pending_count() == 2


def test_a_key_never_read_is_503_while_the_database_is_away(
    api_client, events_buffer, api_keys_unreadable
):
    _key, raw = api_key_create(name="k", scopes=["events:write"], created_by=None)
    api_keys_unreadable()

    assert _ingest_with_key(api_client, raw) == 503
    assert events_buffer.pending_count() == 0


def test_a_key_revoked_through_the_api_is_not_served_from_its_last_reading(
    api_client, staff_client, events_buffer, settings, api_keys_unreadable
):
    key, raw = api_key_create(name="k", scopes=["events:write"], created_by=None)
    assert _ingest_with_key(api_client, raw) == 202
    assert staff_client.delete(f"/api/v1/api-keys/{key.prefix}/").status_code == 204
    api_keys_unreadable()

    assert _ingest_with_key(api_client, raw) == 503


def test_api_key_with_a_wrong_secret_is_401(api_client):
    key, _raw = api_key_create(name="k", scopes=["customers:impersonate"], created_by=None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key cms_{key.prefix}_forged")

    response = api_client.post("/api/v1/auth/customer-token/", {"external_id": "u1"}, format="json")

    assert response.status_code == 401


def test_customer_token_needs_the_impersonate_scope(api_client):
    _, raw = api_key_create(name="k", scopes=["customers:read"], created_by=None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")

    response = api_client.post("/api/v1/auth/customer-token/", {"external_id": "u1"}, format="json")

    assert response.status_code == 403
    assert response["Content-Type"] == PROBLEM


def test_customer_token_refuses_staff_jwt_without_api_key(staff_client):
    response = staff_client.post(
        "/api/v1/auth/customer-token/", {"external_id": "u1"}, format="json"
    )

    assert response.status_code == 401


def test_revoking_an_unknown_prefix_is_404(staff_client):
    assert staff_client.delete("/api/v1/api-keys/nope/").status_code == 404


def test_api_keys_need_the_model_permission(api_client, staff_user):
    api_client.force_authenticate(staff_user)  # staff, but no apikey permissions

    assert api_client.get("/api/v1/api-keys/").status_code == 403


def test_developer_role_manages_api_keys(api_client, staff_user):
    from django.contrib.auth.models import Group

    staff_user.groups.add(Group.objects.get(name="Developer"))
    api_client.force_authenticate(staff_user)

    response = api_client.post(
        "/api/v1/api-keys/", {"name": "k", "scopes": ["content:read"]}, format="json"
    )

    assert response.status_code == 201


def test_api_key_cannot_manage_api_keys(api_client):
    _, raw = api_key_create(name="k", scopes=["content:write"], created_by=None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")

    assert api_client.get("/api/v1/api-keys/").status_code == 403


def test_admin_creates_an_api_key_and_shows_it_once(admin_client):
    response = admin_client.post(
        "/admin/cmsproject/apikey/add/",
        {"name": "crm", "scopes": ["customers:read"]},
        follow=True,
    )

    key = ApiKey.objects.get(name="crm")
    shown = [str(message) for message in response.context["messages"]]
    assert key.scopes == ["customers:read"]
    assert any(f"cms_{key.prefix}_" in message for message in shown)
    change_page = admin_client.get(f"/admin/cmsproject/apikey/{key.pk}/change/")
    assert f"cms_{key.prefix}_".encode() not in change_page.content


def test_a_key_in_use_stops_working_the_moment_the_admin_revokes_it(api_client, admin_client):
    key, raw = api_key_create(name="k", scopes=["customers:impersonate"], created_by=None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    body = {"external_id": "u1"}
    assert api_client.post("/api/v1/auth/customer-token/", body, format="json").status_code == 200

    admin_client.post(
        "/admin/cmsproject/apikey/", {"action": "revoke", "_selected_action": [key.pk]}
    )

    assert api_client.post("/api/v1/auth/customer-token/", body, format="json").status_code == 401
