"""Customer services: attribute and preference validation with paths, uniqueness, consents,
attribute definitions, and customer tokens."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from cmsproject.errors import Conflict, Forbidden, ValidationError
from customers.models import AttributeDefinition, Consent, Customer
from customers.services import (
    attribute_definition_create,
    attribute_definition_delete,
    attribute_definition_update,
    consents_set,
    customer_create,
    customer_token_issue,
    customer_update,
)
from tests.factories import AttributeDefinitionFactory, CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


def attrs_of(exc: pytest.ExceptionInfo) -> dict[str, str]:
    return {error.attr: error.code for error in exc.value.errors}


@pytest.fixture
def definitions() -> None:
    AttributeDefinitionFactory(key="plan", type="enum", choices=["free", "pro"], required=True)
    AttributeDefinitionFactory(key="seats", type="integer")
    AttributeDefinitionFactory(key="score", type="number")
    AttributeDefinitionFactory(key="newsletter", type="boolean")
    AttributeDefinitionFactory(key="birthday", type="date")
    AttributeDefinitionFactory(key="company", type="string")


# --- Attributes ---------------------------------------------------------------------------------
def test_attributes_matching_the_definitions_are_stored(definitions):
    attributes = {
        "plan": "pro",
        "seats": 3,
        "score": 4.5,
        "newsletter": True,
        "birthday": "1990-02-28",
        "company": "Acme",
    }

    customer = customer_create(email="a@example.com", attributes=attributes)

    assert Customer.objects.get(pk=customer.pk).attributes == attributes


@pytest.mark.parametrize(
    ("key", "value", "code"),
    [
        ("plan", "enterprise", "invalid-choice"),
        ("seats", "3", "invalid-type"),
        ("seats", 2.5, "invalid-type"),
        ("seats", True, "invalid-type"),
        ("score", "high", "invalid-type"),
        ("newsletter", "yes", "invalid-type"),
        ("birthday", "1990-02-30", "invalid-format"),
        ("birthday", "28/02/1990", "invalid-format"),
        ("company", 7, "invalid-type"),
    ],
)
def test_an_attribute_of_the_wrong_type_is_refused_at_its_path(definitions, key, value, code):
    with pytest.raises(ValidationError) as exc:
        customer_create(attributes={"plan": "free", key: value})

    assert attrs_of(exc) == {f"attributes.{key}": code}
    assert not Customer.objects.exists()


def test_unknown_and_missing_required_attributes_are_each_named(definitions):
    with pytest.raises(ValidationError) as exc:
        customer_create(attributes={"shoe_size": 44, "eye_colour": "green"})

    assert attrs_of(exc) == {
        "attributes.plan": "required",
        "attributes.shoe_size": "unknown-field",
        "attributes.eye_colour": "unknown-field",
    }


def test_attributes_must_be_an_object():
    with pytest.raises(ValidationError) as exc:
        customer_create(attributes=["plan"])

    assert attrs_of(exc) == {"attributes": "invalid-type"}


def test_update_merges_attributes_and_null_removes_a_key(definitions):
    customer = customer_create(attributes={"plan": "free", "seats": 2, "company": "Acme"})

    updated = customer_update(customer=customer, data={"attributes": {"seats": 5, "company": None}})

    assert updated.attributes == {"plan": "free", "seats": 5}


def test_removing_a_required_attribute_is_refused(definitions):
    customer = customer_create(attributes={"plan": "free"})

    with pytest.raises(ValidationError) as exc:
        customer_update(customer=customer, data={"attributes": {"plan": None}})

    assert attrs_of(exc) == {"attributes.plan": "required"}


def test_a_new_required_definition_does_not_block_edits_of_other_fields():
    customer = CustomerFactory(attributes={})
    AttributeDefinitionFactory(key="plan", type="string", required=True)

    updated = customer_update(customer=customer, data={"name": "Renamed"})

    assert updated.name == "Renamed"


# --- Core fields and uniqueness -----------------------------------------------------------------
def test_model_checks_apply_to_every_caller():
    with pytest.raises(ValidationError) as exc:
        customer_create(email="not-an-email", loyalty_tier="diamond", name="x" * 201)

    assert attrs_of(exc) == {
        "email": "invalid",
        "loyalty_tier": "invalid-choice",
        "name": "max-length",
    }


def test_a_taken_external_id_is_a_conflict():
    CustomerFactory(external_id="u-1")

    with pytest.raises(Conflict) as exc:
        customer_create(external_id="u-1")

    assert attrs_of(exc) == {"external_id": "unique"}


def test_a_taken_email_in_another_case_is_a_conflict():
    CustomerFactory(email="ada@example.com")

    with pytest.raises(Conflict) as exc:
        customer_create(email="Ada@Example.com")

    assert attrs_of(exc) == {"email": "unique"}


def test_emails_are_stored_lower_case_and_blank_external_ids_as_null():
    first = customer_create(email="  Ada@Example.COM ", external_id="")
    second = customer_create(external_id="  ")

    assert first.email == "ada@example.com"
    assert first.external_id is None and second.external_id is None


def test_updating_to_another_customers_external_id_is_a_conflict():
    CustomerFactory(external_id="taken")
    customer = CustomerFactory(external_id="mine")

    with pytest.raises(Conflict):
        customer_update(customer=customer, data={"external_id": "taken"})

    assert Customer.objects.get(pk=customer.pk).external_id == "mine"


def test_keeping_ones_own_email_is_no_conflict():
    customer = CustomerFactory(email="ada@example.com")

    updated = customer_update(customer=customer, data={"email": "ADA@example.com"})

    assert updated.email == "ada@example.com"


# --- Preferences --------------------------------------------------------------------------------
def test_valid_preferences_are_stored():
    preferences = {
        "channels": ["email", "in_app"],
        "language": "pt-BR",
        "topics": ["sale"],
        "frequency": "weekly",
    }

    assert customer_create(preferences=preferences).preferences == preferences


def test_bad_preferences_are_named_by_path():
    with pytest.raises(ValidationError) as exc:
        customer_create(
            preferences={
                "channels": ["email", "fax"],
                "language": "English please",
                "topics": "sale",
                "frequency": "hourly",
                "colour": "blue",
            }
        )

    assert attrs_of(exc) == {
        "preferences.channels[1]": "invalid-choice",
        "preferences.language": "invalid",
        "preferences.topics": "invalid-type",
        "preferences.frequency": "invalid-choice",
        "preferences.colour": "unknown-field",
    }


# --- Consents -----------------------------------------------------------------------------------
def test_consents_are_upserted_and_given_at_moves():
    customer = CustomerFactory()
    consents_set(customer=customer, consents={"personalization": True, "sms": False})
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    Consent.objects.filter(customer=customer).update(given_at=long_ago)

    answers = consents_set(customer=customer, consents={"personalization": False})

    assert answers == {"personalization": False, "sms": False}
    assert Consent.objects.filter(customer=customer).count() == 2
    assert Consent.objects.get(customer=customer, purpose="personalization").given_at > long_ago
    assert Consent.objects.get(customer=customer, purpose="sms").given_at == long_ago


def test_unknown_purposes_and_non_booleans_are_refused():
    customer = CustomerFactory()

    with pytest.raises(ValidationError) as exc:
        consents_set(customer=customer, consents={"telepathy": True, "email": "yes"})

    assert attrs_of(exc) == {
        "consents.telepathy": "unknown-field",
        "consents.email": "invalid-type",
    }
    assert not Consent.objects.exists()


# --- Attribute definitions ----------------------------------------------------------------------
def test_an_enum_definition_needs_distinct_string_choices():
    with pytest.raises(ValidationError) as exc:
        attribute_definition_create(key="plan", label="Plan", type="enum", choices=["a", "a"])

    assert attrs_of(exc) == {"choices": "invalid"}


def test_only_an_enum_has_choices():
    with pytest.raises(ValidationError) as exc:
        attribute_definition_create(key="seats", label="Seats", type="integer", choices=["1"])

    assert attrs_of(exc) == {"choices": "invalid"}


def test_a_duplicate_definition_key_is_a_conflict():
    AttributeDefinitionFactory(key="plan")

    with pytest.raises(Conflict):
        attribute_definition_create(key="plan", label="Plan", type="string")


def test_a_type_change_that_stored_values_fail_is_a_conflict():
    definition = AttributeDefinitionFactory(key="seats", type="string")
    CustomerFactory(attributes={"seats": "many"})

    with pytest.raises(Conflict) as exc:
        attribute_definition_update(definition=definition, data={"type": "integer"})

    assert "1 customer(s)" in exc.value.detail
    assert AttributeDefinition.objects.get(key="seats").type == "string"


def test_a_type_change_that_stored_values_pass_is_allowed():
    definition = AttributeDefinitionFactory(key="plan", type="string")
    CustomerFactory(attributes={"plan": "pro"})

    updated = attribute_definition_update(
        definition=definition, data={"type": "enum", "choices": ["free", "pro"]}
    )

    assert updated.type == "enum"


def test_a_definition_in_use_cannot_be_deleted():
    definition = AttributeDefinitionFactory(key="plan")
    CustomerFactory(attributes={"plan": "pro"})

    with pytest.raises(Conflict):
        attribute_definition_delete(definition=definition)

    assert AttributeDefinition.objects.filter(key="plan").exists()


# --- Customer tokens ----------------------------------------------------------------------------
def test_a_token_for_a_new_external_id_creates_the_profile_and_a_login():
    access = customer_token_issue(external_id="site-42")

    customer = Customer.objects.select_related("user").get(external_id="site-42")
    assert AccessToken(access)["user_id"] == str(customer.user.pk)
    assert customer.user.username == f"customer:{customer.pk}"
    assert not customer.user.has_usable_password()
    assert not customer.user.is_staff


def test_a_second_token_reuses_the_login():
    customer_token_issue(external_id="site-42")
    customer_token_issue(external_id="site-42")

    assert Customer.objects.filter(external_id="site-42").count() == 1
    assert Customer.objects.get(external_id="site-42").user.username.startswith("customer:")


def test_a_customer_linked_to_a_staff_account_cannot_be_impersonated():
    CustomerFactory(external_id="boss", user=UserFactory(is_staff=True))

    with pytest.raises(Forbidden):
        customer_token_issue(external_id="boss")


def test_a_blank_external_id_gets_no_token():
    with pytest.raises(ValidationError):
        customer_token_issue(external_id="  ")


@pytest.mark.django_db
def test_the_database_refuses_a_second_customer_with_the_same_email_in_any_case():
    from django.db import IntegrityError, transaction

    from customers.models import Customer

    Customer.objects.create(email="ada@example.com")
    Customer.objects.create(email="")
    Customer.objects.create(email="")  # blank emails (unknown, erased) do not collide

    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.create(email="ADA@example.com")
