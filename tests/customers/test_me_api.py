"""The caller's own profile: `/api/v1/me/`, preferences, consents, and the way in for a site's
users: an API key trades an external id for a customer JWT (`/api/v1/auth/customer-token/`)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from cmsproject.services import api_key_create
from customers.models import Consent, Customer
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"
TOKEN = "/api/v1/auth/customer-token/"


def bearer(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    return client


@pytest.fixture
def customer() -> Customer:
    return CustomerFactory(
        user=UserFactory(),
        email="ada@example.com",
        attributes={"churn_risk": 0.9},
        preferences={"language": "en", "channels": ["email"]},
    )


@pytest.fixture
def me_client(customer) -> APIClient:
    return bearer(customer.user)


def errors_of(response) -> dict[str, str]:
    assert response["Content-Type"] == PROBLEM
    return {error["attr"]: error["code"] for error in response.json().get("errors", [])}


# --- /me/ ---------------------------------------------------------------------------------------
def test_me_is_the_tokens_own_profile_without_marketing_internals(me_client, customer):
    CustomerFactory()  # someone else

    response = me_client.get("/api/v1/me/")

    body = response.json()
    assert response.status_code == 200
    assert body["id"] == customer.pk and body["email"] == "ada@example.com"
    assert "attributes" not in body and "total_spend" not in body


def test_a_jwt_of_a_user_who_is_no_customer_is_403(staff_user):
    response = bearer(staff_user).get("/api/v1/me/")

    assert response.status_code == 403 and response["Content-Type"] == PROBLEM


def test_an_api_key_is_no_customer():
    _, raw = api_key_create(name="k", scopes=["customers:read"], created_by=None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")

    assert client.get("/api/v1/me/").status_code == 403


def test_me_without_credentials_is_401(api_client):
    assert api_client.get("/api/v1/me/").status_code == 401


def test_an_erased_customers_token_no_longer_reaches_me(me_client, customer):
    Customer.objects.filter(pk=customer.pk).update(erased_at="2026-01-01T00:00:00Z")

    assert me_client.get("/api/v1/me/").status_code == 403


# --- Preferences --------------------------------------------------------------------------------
def test_patch_preferences_merges_keys(me_client, customer):
    response = me_client.patch(
        "/api/v1/me/preferences/", {"frequency": "weekly", "language": None}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == {"channels": ["email"], "frequency": "weekly"}
    customer.refresh_from_db()
    assert customer.preferences == {"channels": ["email"], "frequency": "weekly"}


def test_bad_preferences_are_400_naming_the_path(me_client, customer):
    response = me_client.patch(
        "/api/v1/me/preferences/", {"channels": ["email", "fax"], "mood": 1}, format="json"
    )

    assert response.status_code == 400
    assert errors_of(response) == {
        "preferences.channels[1]": "invalid-choice",
        "preferences.mood": "unknown-field",
    }
    customer.refresh_from_db()
    assert customer.preferences == {"language": "en", "channels": ["email"]}


def test_preferences_must_be_an_object(me_client):
    response = me_client.patch("/api/v1/me/preferences/", ["email"], format="json")

    assert response.status_code == 400 and errors_of(response) == {"preferences": "invalid-type"}


# --- Consents -----------------------------------------------------------------------------------
def test_put_consents_records_every_purpose(me_client, customer):
    body = {"personalization": True, "analytics": False, "email": True, "sms": False}

    response = me_client.put("/api/v1/me/consents/", body, format="json")

    assert response.status_code == 200 and response.json() == body
    assert dict(Consent.objects.filter(customer=customer).values_list("purpose", "granted")) == body
    assert me_client.get("/api/v1/me/").json()["consents"] == body


def test_consents_must_be_booleans_for_known_purposes(me_client):
    response = me_client.put(
        "/api/v1/me/consents/", {"analytics": "yes", "telepathy": True}, format="json"
    )

    assert response.status_code == 400
    assert errors_of(response) == {
        "consents.analytics": "invalid-type",
        "consents.telepathy": "unknown-field",
    }
    assert not Consent.objects.exists()


# --- Customer tokens, end to end ----------------------------------------------------------------
def test_api_key_to_customer_token_to_me(api_client):
    _, raw = api_key_create(name="shop", scopes=["customers:impersonate"], created_by=None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")

    issued = api_client.post(TOKEN, {"external_id": "shop-user-7"}, format="json")
    site_user = APIClient()
    site_user.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.json()['access']}")
    me = site_user.get("/api/v1/me/")
    consents = site_user.put("/api/v1/me/consents/", {"analytics": True}, format="json")

    assert issued.status_code == 200 and set(issued.json()) == {"access"}
    assert me.status_code == 200 and me.json()["external_id"] == "shop-user-7"
    assert consents.json() == {"analytics": True}


def test_a_token_for_an_existing_customer_is_theirs(api_client, customer):
    _, raw = api_key_create(name="shop", scopes=["customers:impersonate"], created_by=None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")

    issued = api_client.post(TOKEN, {"external_id": customer.external_id}, format="json")

    assert AccessToken(issued.json()["access"])["user_id"] == str(customer.user.pk)


def test_a_customer_token_is_no_staff_token(api_client):
    _, raw = api_key_create(name="shop", scopes=["customers:impersonate"], created_by=None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    access = api_client.post(TOKEN, {"external_id": "u-1"}, format="json").json()["access"]
    site_user = APIClient()
    site_user.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")

    assert site_user.get("/api/v1/customers/").status_code == 403
    assert site_user.get("/api/v1/api-keys/").status_code == 403


def test_impersonating_a_profile_linked_to_staff_is_403(api_client):
    CustomerFactory(external_id="boss", user=UserFactory(is_staff=True))
    _, raw = api_key_create(name="shop", scopes=["customers:impersonate"], created_by=None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")

    response = api_client.post(TOKEN, {"external_id": "boss"}, format="json")

    assert response.status_code == 403 and response["Content-Type"] == PROBLEM


def test_customer_token_without_external_id_names_the_field(api_client):
    _, raw = api_key_create(name="shop", scopes=["customers:impersonate"], created_by=None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")

    response = api_client.post(TOKEN, {}, format="json")

    assert response.status_code == 400 and errors_of(response) == {"external_id": "required"}
