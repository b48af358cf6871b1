import pytest


def test_health_answers_ok_with_every_check(api_client, db):
    response = api_client.get("/api/v1/health/")

    assert response.status_code == 200
    assert response.json()["checks"] == {
        "database": "ok",
        "cache": "ok",
        "channel_layer": "ok",
        "broker": "ok",
    }


@pytest.fixture
def staff_token_unreadable(staff_user, monkeypatch) -> str:
    """A valid staff token whose user lookup fails as in a database outage (the outage itself is
    in tests/e2e/test_faults.py; here the other checks pass)."""
    from django.db import OperationalError
    from rest_framework_simplejwt.authentication import JWTAuthentication
    from rest_framework_simplejwt.tokens import AccessToken

    def database_gone(self, validated_token):
        raise OperationalError("connection refused")

    monkeypatch.setattr(JWTAuthentication, "get_user", database_gone)
    return str(AccessToken.for_user(staff_user))


def test_health_for_a_token_whose_user_cannot_be_read_answers_as_to_anyone(
    api_client, staff_token_unreadable
):
    response = api_client.get(
        "/api/v1/health/", HTTP_AUTHORIZATION=f"Bearer {staff_token_unreadable}"
    )

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_other_endpoints_still_refuse_a_token_whose_user_cannot_be_read(
    api_client, staff_token_unreadable
):
    response = api_client.get(
        "/api/v1/event-types/", HTTP_AUTHORIZATION=f"Bearer {staff_token_unreadable}"
    )

    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
