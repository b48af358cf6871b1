"""`/api/v1/customers/` and `/api/v1/customer-attributes/`: CRUD, problems naming fields, 409s,
filters, cursor pages, who may call (staff permissions, API key scopes), and query counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from cmsproject.models import AuditEntry
from cmsproject.services import api_key_create
from customers.models import AttributeDefinition, Consent, Customer
from tests.factories import AttributeDefinitionFactory, CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"
CUSTOMERS = "/api/v1/customers/"
ATTRIBUTES = "/api/v1/customer-attributes/"


def key_client(*scopes: str) -> APIClient:
    _, raw = api_key_create(name="site", scopes=list(scopes), created_by=None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


def staff_in(role: str) -> APIClient:
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = APIClient()
    client.force_authenticate(user)
    return client


def errors_of(response) -> dict[str, str]:
    assert response["Content-Type"] == PROBLEM
    return {error["attr"]: error["code"] for error in response.json().get("errors", [])}


# --- CRUD ---------------------------------------------------------------------------------------
def test_create_returns_the_full_body(staff_client):
    AttributeDefinitionFactory(key="plan", type="enum", choices=["free", "pro"])

    response = staff_client.post(
        CUSTOMERS,
        {
            "email": "ada@example.com",
            "name": "Ada",
            "external_id": "u-1",
            "loyalty_tier": "gold",
            "lifecycle_stage": "customer",
            "attributes": {"plan": "pro"},
            "preferences": {"channels": ["email"]},
            "consents": {"analytics": True},
        },
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id",
        "email",
        "name",
        "external_id",
        "loyalty_tier",
        "lifecycle_stage",
        "attributes",
        "preferences",
        "consents",
        "last_seen",
        "total_spend",
        "created_at",
    }
    assert body["attributes"] == {"plan": "pro"}
    assert body["consents"] == {"analytics": True}
    assert body["total_spend"] == "0.00" and body["last_seen"] is None


def test_get_patch_and_list(staff_client):
    customer = CustomerFactory(name="Ada", preferences={"language": "en"})

    fetched = staff_client.get(f"{CUSTOMERS}{customer.pk}/")
    patched = staff_client.patch(
        f"{CUSTOMERS}{customer.pk}/",
        {"loyalty_tier": "silver", "preferences": {"frequency": "daily"}},
        format="json",
    )
    listed = staff_client.get(CUSTOMERS)

    assert fetched.status_code == 200 and fetched.json()["name"] == "Ada"
    assert patched.status_code == 200
    assert patched.json()["loyalty_tier"] == "silver"
    assert patched.json()["preferences"] == {"language": "en", "frequency": "daily"}
    assert [item["id"] for item in listed.json()["results"]] == [customer.pk]


def test_patch_refuses_unknown_fields_and_ignores_read_only_ones(staff_client):
    customer = CustomerFactory()

    unknown = staff_client.patch(f"{CUSTOMERS}{customer.pk}/", {"shoe": 44}, format="json")
    echoed = staff_client.patch(
        f"{CUSTOMERS}{customer.pk}/", {"total_spend": "1000.00", "name": "B"}, format="json"
    )

    assert unknown.status_code == 400 and errors_of(unknown) == {"shoe": "unknown"}
    assert echoed.status_code == 200 and echoed.json()["total_spend"] == "0.00"


def test_bad_input_is_a_problem_naming_each_path(staff_client):
    AttributeDefinitionFactory(key="seats", type="integer")

    response = staff_client.post(
        CUSTOMERS,
        {
            "attributes": {"seats": "three", "mood": "happy"},
            "preferences": {"channels": ["pigeon"]},
        },
        format="json",
    )

    assert response.status_code == 400
    assert errors_of(response) == {
        "attributes.seats": "invalid-type",
        "attributes.mood": "unknown-field",
        "preferences.channels[0]": "invalid-choice",
    }
    assert not Customer.objects.exists()


def test_serializer_level_errors_name_the_field(staff_client):
    response = staff_client.post(
        CUSTOMERS, {"email": "nope", "loyalty_tier": "diamond"}, format="json"
    )

    assert response.status_code == 400
    assert errors_of(response) == {"email": "invalid", "loyalty_tier": "invalid_choice"}


def test_duplicate_external_id_is_409(staff_client):
    CustomerFactory(external_id="u-1")

    response = staff_client.post(CUSTOMERS, {"external_id": "u-1"}, format="json")

    assert response.status_code == 409
    assert errors_of(response) == {"external_id": "unique"}


def test_unknown_customer_is_404(staff_client):
    response = staff_client.get(f"{CUSTOMERS}999999/")

    assert response.status_code == 404 and response["Content-Type"] == PROBLEM


def test_an_erased_customer_is_gone_from_reads(staff_client):
    customer = CustomerFactory(erased_at=datetime(2026, 1, 1, tzinfo=UTC))

    assert staff_client.get(f"{CUSTOMERS}{customer.pk}/").status_code == 404
    assert staff_client.get(CUSTOMERS).json()["results"] == []


def test_delete_erases_the_customer(staff_client):
    customer = CustomerFactory(email="ada@example.com")

    first = staff_client.delete(f"{CUSTOMERS}{customer.pk}/")
    again = staff_client.delete(f"{CUSTOMERS}{customer.pk}/")

    customer.refresh_from_db()
    assert first.status_code == 204 and again.status_code == 204
    assert customer.erased_at is not None and customer.email == ""


def test_reads_are_audited(staff_client, superuser):
    customer = CustomerFactory()

    staff_client.get(f"{CUSTOMERS}{customer.pk}/")
    staff_client.get(CUSTOMERS)

    reads = AuditEntry.objects.filter(action="customers.read", actor=superuser)
    assert sorted(entry.details["via"] for entry in reads) == ["rest.detail", "rest.list"]
    assert reads.get(details__via="rest.detail").object_id == str(customer.pk)


# --- List: filters and pages --------------------------------------------------------------------
def test_filters_by_tier_stage_email_external_id_and_last_seen(staff_client):
    now = datetime(2026, 3, 1, tzinfo=UTC)
    gold = CustomerFactory(loyalty_tier="gold", last_seen=now, email="gold@example.com")
    CustomerFactory(loyalty_tier="silver", last_seen=now - timedelta(days=30))
    churned = CustomerFactory(lifecycle_stage="churned", external_id="gone")

    def ids(query: str) -> list[int]:
        response = staff_client.get(f"{CUSTOMERS}?{query}")
        assert response.status_code == 200, response.json()
        return [item["id"] for item in response.json()["results"]]

    assert ids("loyalty_tier=gold") == [gold.pk]
    assert ids("lifecycle_stage=churned") == [churned.pk]
    assert ids("email=GOLD@example.com") == [gold.pk]
    assert ids("external_id=gone") == [churned.pk]
    assert ids("last_seen_after=2026-02-15T00:00:00Z") == [gold.pk]
    assert len(ids("last_seen_before=2026-02-15T00:00:00Z")) == 1


def test_a_bad_filter_value_is_a_problem_naming_it(staff_client):
    response = staff_client.get(f"{CUSTOMERS}?loyalty_tier=diamond&last_seen_after=yesterday")

    assert response.status_code == 400
    assert set(errors_of(response)) == {"loyalty_tier", "last_seen_after"}


def test_list_is_cursor_paginated_newest_first(staff_client):
    customers = CustomerFactory.create_batch(3)

    first = staff_client.get(f"{CUSTOMERS}?page_size=2").json()
    second = staff_client.get(first["next"]).json()

    assert set(first) == {"results", "next", "previous"}
    assert [item["id"] for item in first["results"] + second["results"]] == [
        customer.pk for customer in reversed(customers)
    ]


def test_listing_fifty_customers_costs_a_constant_number_of_queries(
    staff_client, django_assert_max_num_queries
):
    def list_all() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert len(staff_client.get(f"{CUSTOMERS}?page_size=50").json()["results"]) > 0
        return len(queries)

    for customer in CustomerFactory.create_batch(2):
        Consent.objects.create(customer=customer, purpose="email", granted=True)
    with_two = list_all()
    for customer in CustomerFactory.create_batch(48):
        Consent.objects.create(customer=customer, purpose="email", granted=True)

    # the page, its consents in one prefetch, the audit entry (the user is force-authenticated)
    with django_assert_max_num_queries(3):
        body = staff_client.get(f"{CUSTOMERS}?page_size=50").json()

    assert len(body["results"]) == 50
    assert all(item["consents"] == {"email": True} for item in body["results"])
    assert list_all() == with_two


# --- Who may call -------------------------------------------------------------------------------
def test_api_key_with_read_scope_reads_but_cannot_write():
    customer = CustomerFactory()
    client = key_client("customers:read")

    assert client.get(f"{CUSTOMERS}{customer.pk}/").status_code == 200
    assert client.get(CUSTOMERS).status_code == 200
    refused = client.post(CUSTOMERS, {"name": "x"}, format="json")
    assert refused.status_code == 403 and refused["Content-Type"] == PROBLEM


def test_api_key_with_write_scope_creates_and_updates():
    client = key_client("customers:write")

    created = client.post(CUSTOMERS, {"external_id": "u-9"}, format="json")
    patched = client.patch(f"{CUSTOMERS}{created.json()['id']}/", {"name": "N"}, format="json")

    assert created.status_code == 201 and patched.status_code == 200
    assert client.get(CUSTOMERS).status_code == 403  # reading needs customers:read


def test_api_key_without_a_customers_scope_is_403():
    client = key_client("content:read")

    response = client.get(CUSTOMERS)

    assert response.status_code == 403 and response["Content-Type"] == PROBLEM


def test_anonymous_callers_get_401(api_client):
    assert api_client.get(CUSTOMERS).status_code == 401


def test_staff_need_the_model_permission_for_the_method():
    marketer = staff_in("Marketer")  # view and change customers, not add
    customer = CustomerFactory()

    assert marketer.get(CUSTOMERS).status_code == 200
    assert (
        marketer.patch(f"{CUSTOMERS}{customer.pk}/", {"name": "N"}, format="json").status_code
        == 200
    )
    assert marketer.post(CUSTOMERS, {"name": "N"}, format="json").status_code == 403
    assert marketer.delete(f"{CUSTOMERS}{customer.pk}/").status_code == 403


def test_staff_without_permissions_get_403(api_client, staff_user):
    api_client.force_authenticate(staff_user)

    assert api_client.get(CUSTOMERS).status_code == 403


def test_a_customer_token_cannot_list_customers(api_client):
    customer = CustomerFactory(user=UserFactory())
    api_client.force_authenticate(customer.user)

    assert api_client.get(CUSTOMERS).status_code == 403


# --- Attribute definitions ----------------------------------------------------------------------
def test_attribute_definitions_crud(staff_client):
    created = staff_client.post(
        ATTRIBUTES,
        {"key": "plan", "label": "Plan", "type": "enum", "choices": ["free", "pro"]},
        format="json",
    )
    listed = staff_client.get(ATTRIBUTES)
    patched = staff_client.patch(
        f"{ATTRIBUTES}plan/", {"choices": ["free", "pro", "team"], "required": True}, format="json"
    )
    fetched = staff_client.get(f"{ATTRIBUTES}plan/")
    deleted = staff_client.delete(f"{ATTRIBUTES}plan/")

    assert created.status_code == 201
    assert [item["key"] for item in listed.json()["results"]] == ["plan"]
    assert patched.status_code == 200
    assert fetched.json()["choices"] == ["free", "pro", "team"] and fetched.json()["required"]
    assert deleted.status_code == 204
    assert not AttributeDefinition.objects.exists()


def test_a_duplicate_attribute_key_is_409(staff_client):
    AttributeDefinitionFactory(key="plan")

    response = staff_client.post(
        ATTRIBUTES, {"key": "plan", "label": "Plan", "type": "string"}, format="json"
    )

    assert response.status_code == 409 and errors_of(response) == {"key": "unique"}


def test_an_enum_without_choices_is_a_problem_naming_choices(staff_client):
    response = staff_client.post(
        ATTRIBUTES, {"key": "plan", "label": "Plan", "type": "enum"}, format="json"
    )

    assert response.status_code == 400 and errors_of(response) == {"choices": "invalid"}


def test_a_bad_key_or_type_is_a_problem(staff_client):
    response = staff_client.post(
        ATTRIBUTES, {"key": "no spaces", "label": "X", "type": "colour"}, format="json"
    )

    assert response.status_code == 400
    assert set(errors_of(response)) == {"key", "type"}


def test_narrowing_an_enum_that_customers_use_is_409(staff_client):
    AttributeDefinitionFactory(key="plan", type="enum", choices=["free", "pro"])
    CustomerFactory(attributes={"plan": "pro"})

    response = staff_client.patch(f"{ATTRIBUTES}plan/", {"choices": ["free"]}, format="json")

    assert response.status_code == 409
    assert "1 customer(s)" in response.json()["detail"]


def test_the_attribute_key_cannot_be_renamed(staff_client):
    AttributeDefinitionFactory(key="plan")

    response = staff_client.patch(f"{ATTRIBUTES}plan/", {"key": "tier"}, format="json")

    assert response.status_code == 200
    assert AttributeDefinition.objects.filter(key="plan").exists()


def test_unknown_attribute_is_404(staff_client):
    assert staff_client.get(f"{ATTRIBUTES}nope/").status_code == 404


def test_api_keys_cannot_manage_attribute_definitions():
    client = key_client("customers:read", "customers:write")

    assert client.get(ATTRIBUTES).status_code == 403
