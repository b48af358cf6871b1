"""Erasure: personal data blanked, login disabled, events anonymized, roll-up counts kept, one
audit entry, all in one transaction, and a second erasure changes nothing."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from analytics.models import Event, SubjectDailyRollup, SubjectHourlyRollup
from analytics.privacy import properties_without_personal_keys
from cmsproject.errors import NotFound
from cmsproject.models import AuditEntry
from customers.erasure import customer_erase
from customers.models import AnonymousId, Consent, Customer
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = date(2026, 3, 1)


def _event(event_id: str, **fields) -> Event:
    return Event.objects.create(
        id=event_id, type="purchase", timestamp=WHEN, received_at=WHEN, **fields
    )


@pytest.fixture
def login(db):
    return UserFactory(username="ada@example.com", email="ada@example.com", first_name="Ada")


@pytest.fixture
def customer(login) -> Customer:
    """A customer with everything erasure touches: a login, consents, linked anonymous ids, events
    as a customer and from before identify, and daily roll-ups under both subjects."""
    customer = Customer.objects.create(
        external_id="site-1",
        email="ada@example.com",
        name="Ada Lovelace",
        user=login,
        loyalty_tier="gold",
        lifecycle_stage="customer",
        total_spend=Decimal("512.50"),
        attributes={"city": "London"},
        preferences={"language": "en"},
    )
    Consent.objects.create(customer=customer, purpose="analytics", granted=True)
    AnonymousId.objects.create(customer=customer, value="anon-ada")
    _event(
        "e1",
        customer=customer,
        anonymous_id="anon-ada",
        properties={
            "amount": 500,
            "Email": "ada@example.com",
            "shipping": {"address": "12 St James's Square", "method": "express"},
            "items": [{"sku": "a1", "name": "Analytical Engine"}],
        },
    )
    _event("e2", customer=customer, properties={"amount": 12, "ip": "198.51.100.4"})
    _event("e3", anonymous_id="anon-ada", properties={"category": "books", "phone": "+44 1"})
    SubjectDailyRollup.objects.create(
        subject=f"c:{customer.pk}",
        customer=customer,
        day=DAY,
        event_type="purchase",
        count=2,
        sums={"amount": 512},
        distinct={"email": ["ada@example.com"], "category": ["books"]},
    )
    SubjectDailyRollup.objects.create(
        subject="a:anon-ada", day=DAY, event_type="purchase", count=1, sums={}, distinct={}
    )
    return customer


@pytest.fixture
def bystander(db) -> Customer:
    other = Customer.objects.create(external_id="site-2", email="grace@example.com")
    _event("other-1", customer=other, properties={"email": "grace@example.com"})
    _event("other-2", anonymous_id="anon-grace", properties={"name": "Grace"})
    SubjectDailyRollup.objects.create(
        subject=f"c:{other.pk}", customer=other, day=DAY, event_type="purchase", count=1
    )
    return other


@pytest.fixture
def operator(staff_user):
    return staff_user


# --- The customer row -----------------------------------------------------------------------------
def test_erase_blanks_personal_fields_and_stamps_erased_at(customer, operator):
    customer_erase(customer=customer, actor=operator)

    customer.refresh_from_db()
    assert (customer.email, customer.name, customer.external_id) == ("", "", None)
    assert (customer.attributes, customer.preferences) == ({}, {})
    assert customer.erased_at is not None


def test_erase_keeps_what_is_not_personal(customer, operator):
    customer_erase(customer=customer, actor=operator)

    customer.refresh_from_db()
    assert (customer.loyalty_tier, customer.total_spend) == ("gold", Decimal("512.50"))


def test_erase_deletes_consents_and_anonymous_ids(customer, operator):
    customer_erase(customer=customer, actor=operator)

    assert not Consent.objects.filter(customer=customer).exists()
    assert not AnonymousId.objects.filter(customer=customer).exists()


def test_erase_disables_and_blanks_the_customer_login(customer, login, operator):
    customer_erase(customer=customer, actor=operator)

    login.refresh_from_db()
    customer.refresh_from_db()
    assert customer.user is None
    assert not login.is_active and not login.has_usable_password()
    # The username becomes a random token (whose hex could spell "ada": compare the shape).
    assert re.fullmatch(r"erased-[0-9a-f]{32}", login.username)
    assert (login.email, login.first_name, login.last_name) == ("", "", "")


def test_erase_only_unlinks_a_staff_login(customer, login, operator):
    # given a staff member who is also a customer
    login.is_staff = True
    login.save()

    customer_erase(customer=customer, actor=operator)

    # then the profile is unlinked but the staff account still works
    login.refresh_from_db()
    customer.refresh_from_db()
    assert customer.user is None
    assert login.is_active and login.has_usable_password()


def test_erasing_an_absent_customer_is_not_found(operator):
    with pytest.raises(NotFound):
        customer_erase(customer=Customer(pk=999_999), actor=operator)


# --- Events and roll-ups --------------------------------------------------------------------------
def test_erase_unlinks_events_and_strips_personal_properties(customer, operator):
    customer_erase(customer=customer, actor=operator)

    event = Event.objects.get(pk="e1")
    assert (event.customer_id, event.anonymous_id) == (None, "")
    assert event.properties == {
        "amount": 500,
        "shipping": {"method": "express"},
        "items": [{"sku": "a1"}],
    }
    assert Event.objects.get(pk="e2").properties == {"amount": 12}


def test_erase_anonymizes_events_recorded_before_identify(customer, operator):
    customer_erase(customer=customer, actor=operator)

    event = Event.objects.get(pk="e3")
    assert (event.anonymous_id, event.properties) == ("", {"category": "books"})


def test_erase_keeps_every_event_for_the_aggregates(customer, bystander, operator):
    customer_erase(customer=customer, actor=operator)

    assert Event.objects.count() == 5


def test_erase_leaves_other_customers_events_alone(customer, bystander, operator):
    customer_erase(customer=customer, actor=operator)

    assert Event.objects.get(pk="other-1").customer_id == bystander.pk
    assert Event.objects.get(pk="other-1").properties == {"email": "grace@example.com"}
    assert Event.objects.get(pk="other-2").anonymous_id == "anon-grace"
    assert SubjectDailyRollup.objects.get(customer=bystander).subject == f"c:{bystander.pk}"


def test_erase_moves_rollups_to_anonymous_subjects_keeping_counts(customer, operator):
    # given roll-ups under the customer's subject and their anonymous id's
    old_subjects = {f"c:{customer.pk}", "a:anon-ada"}

    customer_erase(customer=customer, actor=operator)

    # then the same counts and sums sit under fresh, unlinked, distinct subjects
    rows = list(SubjectDailyRollup.objects.order_by("count"))
    assert [(row.count, row.sums) for row in rows] == [(1, {}), (2, {"amount": 512})]
    assert all(row.customer_id is None for row in rows)
    assert all(row.subject.startswith("erased:") for row in rows)
    assert len({row.subject for row in rows}) == 2
    assert not SubjectDailyRollup.objects.filter(subject__in=old_subjects).exists()


def test_erase_moves_hourly_rollups_to_the_same_fresh_subjects(customer, bystander, operator):
    # given hourly rows under the customer's two subjects and a bystander's
    hour = WHEN.replace(minute=0)
    for subject, count in ((f"c:{customer.pk}", 2), ("a:anon-ada", 1), (f"c:{bystander.pk}", 1)):
        SubjectHourlyRollup.objects.create(
            event_type="purchase", hour=hour, subject=subject, count=count, minutes=1
        )

    customer_erase(customer=customer, actor=operator)

    # then each moved to the fresh subject its daily rows moved to; the bystander's stayed
    erased = SubjectDailyRollup.objects.filter(subject__startswith="erased:")
    daily = {row.count: row.subject for row in erased}
    hourly = {row.subject: row.count for row in SubjectHourlyRollup.objects.all()}
    assert hourly == {daily[2]: 2, daily[1]: 1, f"c:{bystander.pk}": 1}
    assert not SubjectHourlyRollup.objects.filter(
        subject__in=[f"c:{customer.pk}", "a:anon-ada"]
    ).exists()


def test_erase_drops_personal_distinct_values_from_rollups(customer, operator):
    customer_erase(customer=customer, actor=operator)

    row = SubjectDailyRollup.objects.get(count=2)
    assert row.distinct == {"category": ["books"]}


def test_personal_keys_are_removed_at_any_depth_in_any_case():
    properties = {"EMAIL": "x", "cart": [{"Phone": "1", "sku": "s"}], "total": 3}

    assert properties_without_personal_keys(properties) == {"cart": [{"sku": "s"}], "total": 3}


# --- Audit, idempotency, atomicity ----------------------------------------------------------------
def test_erase_writes_one_audit_entry_without_personal_data(customer, operator):
    customer_erase(customer=customer, actor=operator)

    entry = AuditEntry.objects.get(action="customers.erase")
    assert (entry.actor, entry.object_type, entry.object_id) == (
        operator,
        "customers.customer",
        str(customer.pk),
    )
    assert entry.details["events"] == 3
    assert "ada" not in f"{entry.object_repr} {entry.details}".lower()


def test_erasing_twice_changes_nothing_the_second_time(customer, operator):
    # given an erased customer
    customer_erase(customer=customer, actor=operator)
    customer.refresh_from_db()
    erased_at = customer.erased_at
    subjects = set(SubjectDailyRollup.objects.values_list("subject", flat=True))

    # when erased again
    customer_erase(customer=customer, actor=operator)

    # then nothing moved and no second audit entry was written
    customer.refresh_from_db()
    assert customer.erased_at == erased_at
    assert set(SubjectDailyRollup.objects.values_list("subject", flat=True)) == subjects
    assert AuditEntry.objects.filter(action="customers.erase").count() == 1


def test_erase_that_fails_at_the_last_step_changes_nothing(customer, login, operator, monkeypatch):
    # given an audit log that cannot be written (the last step)
    def audit_unavailable(**kwargs):
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr("customers.erasure.audit_record", audit_unavailable)

    # when erasing
    with pytest.raises(RuntimeError):
        customer_erase(customer=customer, actor=operator)

    # then every earlier step was rolled back with it
    customer.refresh_from_db()
    login.refresh_from_db()
    assert (customer.email, customer.erased_at, customer.user_id) == (
        "ada@example.com",
        None,
        login.pk,
    )
    assert login.is_active
    assert Event.objects.get(pk="e1").customer_id == customer.pk
    assert Consent.objects.filter(customer=customer).exists()
    assert SubjectDailyRollup.objects.filter(subject=f"c:{customer.pk}").exists()


# --- REST -----------------------------------------------------------------------------------------
def test_delete_api_erases_the_customer(customer, superuser):
    url = f"/api/v1/customers/{customer.pk}/"
    client = APIClient()
    client.force_authenticate(superuser)

    response = client.delete(url)

    assert response.status_code == 204
    customer.refresh_from_db()
    assert customer.erased_at is not None and customer.email == ""
    assert Event.objects.get(pk="e1").customer_id is None
    assert AuditEntry.objects.filter(action="customers.erase", actor=superuser).count() == 1
