"""The customers admin: the change list with its filters and search, the change page with its
inlines, and validation shared with the APIs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.models import AnonymousId, AttributeDefinition, Consent, Customer
from tests.factories import AttributeDefinitionFactory, CustomerFactory

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/customers/customer/"


def test_change_list_renders_with_filters_and_search(admin_client):
    gold = CustomerFactory(loyalty_tier="gold", last_seen=timezone.now(), email="gold@example.com")
    CustomerFactory(loyalty_tier="silver", last_seen=timezone.now() - timedelta(days=60))

    filtered = admin_client.get(
        CHANGELIST, {"loyalty_tier__exact": "gold", "lifecycle_stage__exact": "lead"}
    )
    # The "Past 7 days" link of the date filter, as the admin builds it.
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    past_week = admin_client.get(
        CHANGELIST,
        {
            "last_seen__gte": str(today - timedelta(days=7)),
            "last_seen__lt": str(today + timedelta(days=1)),
        },
    )
    searched = admin_client.get(CHANGELIST, {"q": "gold@"})

    assert filtered.status_code == 200
    assert list(filtered.context["cl"].result_list) == [gold]
    assert list(past_week.context["cl"].result_list) == [gold]
    assert list(searched.context["cl"].result_list) == [gold]
    assert b"By loyalty tier" in filtered.content and b"By last seen" in filtered.content


def test_change_list_does_not_count_the_whole_table_or_join(admin_client):
    CustomerFactory.create_batch(3)

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST, {"loyalty_tier__exact": "none"})

    customer_queries = [q["sql"] for q in queries if 'FROM "customers_customer"' in q["sql"]]
    assert response.status_code == 200
    # The filtered page and its count; no unfiltered COUNT(*) of every customer.
    assert all("WHERE" in sql for sql in customer_queries)
    assert not any("JOIN" in sql for sql in customer_queries)


def test_change_page_shows_attributes_preferences_consents_and_anonymous_ids(admin_client):
    customer = CustomerFactory(preferences={"language": "en"})
    Consent.objects.create(customer=customer, purpose="email", granted=True)
    AnonymousId.objects.create(customer=customer, value="anon-123")

    response = admin_client.get(f"{CHANGELIST}{customer.pk}/change/")

    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="attributes"' in content and 'name="preferences"' in content
    assert 'name="consents-0-granted"' in content
    assert "anon-123" in content and 'name="anonymous_ids-0-value"' not in content


def test_saving_bad_attributes_in_the_admin_shows_the_services_error(admin_client):
    AttributeDefinitionFactory(key="seats", type="integer")
    customer = CustomerFactory()

    response = admin_client.post(
        f"{CHANGELIST}{customer.pk}/change/",
        {
            "email": customer.email,
            "name": customer.name,
            "external_id": customer.external_id,
            "loyalty_tier": "none",
            "lifecycle_stage": "lead",
            "attributes": '{"seats": "three"}',
            "preferences": "{}",
            "consents-TOTAL_FORMS": "0",
            "consents-INITIAL_FORMS": "0",
            "anonymous_ids-TOTAL_FORMS": "0",
            "anonymous_ids-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 200  # the form again, with the error
    assert "attributes.seats" in str(response.context["adminform"].form.errors)
    assert Customer.objects.get(pk=customer.pk).attributes == {}


def test_attribute_definition_admin_refuses_an_enum_without_choices(admin_client):
    response = admin_client.post(
        "/admin/customers/attributedefinition/add/",
        {"key": "plan", "label": "Plan", "type": "enum", "choices": "[]", "description": ""},
    )

    assert response.status_code == 200
    assert "choices" in response.context["adminform"].form.errors
    assert not AttributeDefinition.objects.exists()


def test_attribute_definition_admin_lists(admin_client):
    AttributeDefinitionFactory(key="plan")

    response = admin_client.get("/admin/customers/attributedefinition/")

    assert response.status_code == 200 and b"plan" in response.content


def test_profile_page_shows_the_latest_interactions_escaped(admin_client):
    from datetime import timedelta

    from django.utils import timezone

    from analytics.models import Event
    from customers.models import Customer

    customer = Customer.objects.create(external_id="timeline", email="t@example.com")
    now = timezone.now()
    Event.objects.create(
        id="e1",
        type="page_view",
        customer=customer,
        timestamp=now,
        received_at=now,
        properties={"path": "<script>alert(1)</script>"},
    )
    Event.objects.create(
        id="e2",
        type="purchase",
        customer=customer,
        timestamp=now + timedelta(seconds=1),
        received_at=now,
        properties={"amount": 9},
    )

    page = admin_client.get(f"/admin/customers/customer/{customer.pk}/change/")

    html = page.content.decode()
    assert page.status_code == 200
    assert html.index("purchase") < html.index("page_view")  # newest first
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.services
@pytest.mark.django_db
def test_admin_search_has_trigram_indexes_on_postgresql():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'customers_customer'"
        )
        indexes = dict(cursor.fetchall())
    # The expression must be the one Django's icontains writes, or the planner cannot use it.
    assert "upper((email)::text) gin_trgm_ops" in indexes["customers_email_trgm"]
    assert "upper((name)::text) gin_trgm_ops" in indexes["customers_name_trgm"]
