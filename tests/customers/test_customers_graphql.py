"""GraphQL: `me` for the calling customer, `customer(id:)` for staff and API keys."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from rest_framework_simplejwt.tokens import AccessToken

from cmsproject.services import api_key_create
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db

ME = "{ me { id email name segments { key name } } }"
CUSTOMER = "query($id: ID!) { customer(id: $id) { id email attributes consents totalSpend } }"


def post(client, query: str, variables: dict | None = None, **headers):
    return client.post(
        "/graphql/",
        {"query": query, "variables": variables or {}},
        content_type="application/json",
        **headers,
    )


def bearer(user) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(user)}"}


def api_key(*scopes: str) -> dict[str, str]:
    _, raw = api_key_create(name="k", scopes=list(scopes), created_by=None)
    return {"HTTP_AUTHORIZATION": f"Api-Key {raw}"}


def test_me_is_the_calling_customer_with_no_segments_yet(client):
    customer = CustomerFactory(user=UserFactory(), email="ada@example.com", name="Ada")

    response = post(client, ME, **bearer(customer.user))

    assert response.json() == {
        "data": {
            "me": {
                "id": str(customer.pk),
                "email": "ada@example.com",
                "name": "Ada",
                "segments": [],
            }
        }
    }


def test_me_is_null_for_anyone_but_a_customer(client, staff_user):
    CustomerFactory()  # a customer without a login must never be "me" for a login-less caller

    anonymous = post(client, ME).json()
    staff = post(client, ME, **bearer(staff_user)).json()
    key = post(client, ME, **api_key("customers:read")).json()

    assert anonymous["data"]["me"] is None
    assert staff["data"]["me"] is None
    assert key["data"]["me"] is None


def test_staff_with_the_permission_read_a_customer(client):
    analyst = UserFactory(is_staff=True)
    analyst.groups.add(Group.objects.get(name="Analyst"))
    customer = CustomerFactory(attributes={"plan": "pro"})

    response = post(client, CUSTOMER, {"id": customer.pk}, **bearer(analyst))

    assert response.json()["data"]["customer"] == {
        "id": str(customer.pk),
        "email": customer.email,
        "attributes": {"plan": "pro"},
        "consents": {},
        "totalSpend": "0.00",
    }


def test_an_api_key_with_read_scope_reads_a_customer(client):
    customer = CustomerFactory()

    response = post(client, CUSTOMER, {"id": customer.pk}, **api_key("customers:read"))

    assert response.json()["data"]["customer"]["id"] == str(customer.pk)


@pytest.mark.parametrize("who", ["anonymous", "customer", "staff_without_permission", "key"])
def test_others_get_a_forbidden_error(client, who):
    customer = CustomerFactory(user=UserFactory())
    headers = {
        "anonymous": {},
        "customer": bearer(customer.user),
        "staff_without_permission": bearer(UserFactory(is_staff=True)),
        "key": api_key("content:read"),
    }[who]

    body = post(client, CUSTOMER, {"id": customer.pk}, **headers).json()

    assert body["data"]["customer"] is None
    assert body["errors"][0]["extensions"] == {"code": "forbidden", "status": 403}


def test_an_unknown_or_malformed_id_is_null(client, superuser):
    unknown = post(client, CUSTOMER, {"id": "999999"}, **bearer(superuser)).json()
    malformed = post(client, CUSTOMER, {"id": "abc"}, **bearer(superuser)).json()

    assert unknown == {"data": {"customer": None}}
    assert malformed == {"data": {"customer": None}}
