"""Shapes of customer data on the REST API. Checks of content (attribute definitions, the
preferences and consents schemas, uniqueness) are the services'; these check types and shape."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from customers.models import AttributeDefinition, Customer, LifecycleStage, LoyaltyTier
from customers.selectors import customer_consents
from customers.services import CONSENTS_SCHEMA, CUSTOMER_WRITABLE_FIELDS, PREFERENCES_SCHEMA


@extend_schema_field(PREFERENCES_SCHEMA)
class PreferencesField(serializers.DictField):
    """Documented with the schema the service validates against."""


@extend_schema_field(CONSENTS_SCHEMA)
class ConsentsField(serializers.DictField):
    """`{purpose: granted}` for the purposes the customer answered."""

    def get_attribute(self, instance: Customer) -> Customer:
        return instance

    def to_representation(self, value: Customer) -> dict[str, bool]:
        return customer_consents(customer=value)


class CustomerSerializer(serializers.ModelSerializer):
    # A profile may have no email (created from an external id or an event): "" then, which an
    # EmailField would document as `format: email` and so promise it never is.
    email = serializers.CharField(read_only=True, help_text='An email address, or "" for none.')
    attributes = serializers.DictField(
        read_only=True,
        help_text="Values of the attribute definitions (`/api/v1/customer-attributes/`).",
    )
    preferences = PreferencesField(read_only=True)
    consents = ConsentsField(read_only=True)
    total_spend = serializers.DecimalField(
        max_digits=14, decimal_places=2, read_only=True, help_text="A decimal string."
    )

    class Meta:
        model = Customer
        fields = [
            "id",
            *CUSTOMER_WRITABLE_FIELDS,
            "consents",
            "last_seen",
            "total_spend",
            "created_at",
        ]
        read_only_fields = fields


class MeSerializer(CustomerSerializer):
    """What customers see of themselves: not the marketers' attributes, spend or stage."""

    class Meta(CustomerSerializer.Meta):
        fields = [
            "id",
            "email",
            "name",
            "external_id",
            "loyalty_tier",
            "preferences",
            "consents",
            "created_at",
        ]
        read_only_fields = fields


class CustomerWriteSerializer(serializers.Serializer):
    """POST creates; PATCH changes only the fields sent, and merges `attributes` and
    `preferences` key by key (`null` removes a key)."""

    # Fields a client may echo back from a GET body; ignored rather than refused.
    READ_ONLY = frozenset({"id", "last_seen", "total_spend", "created_at"})

    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    external_id = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=255
    )
    loyalty_tier = serializers.ChoiceField(choices=LoyaltyTier.choices, required=False)
    lifecycle_stage = serializers.ChoiceField(choices=LifecycleStage.choices, required=False)
    attributes = serializers.DictField(required=False)
    preferences = PreferencesField(required=False)
    consents = serializers.DictField(
        required=False, help_text="`{purpose: granted}`; purposes not sent keep their answer."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields) - self.READ_ONLY)
        if unknown:
            raise serializers.ValidationError(
                {key: serializers.ErrorDetail("Unknown field.", code="unknown") for key in unknown}
            )
        return attrs


class AttributeDefinitionSerializer(serializers.ModelSerializer):
    class Meta:
        model = AttributeDefinition
        fields = ["key", "label", "type", "required", "choices", "description"]
        extra_kwargs = {
            # Uniqueness is the service's (409, not 400).
            "key": {"validators": []},
            "choices": {"help_text": "For `enum`: the allowed values (distinct strings)."},
        }


class AttributeDefinitionUpdateSerializer(AttributeDefinitionSerializer):
    class Meta(AttributeDefinitionSerializer.Meta):
        read_only_fields = ["key"]


class IdentifyRequestSerializer(serializers.Serializer):
    anonymousId = serializers.RegexField(r"^[A-Za-z0-9_.:-]{1,128}$")
    userId = serializers.CharField(max_length=255, required=False)
    traits = serializers.DictField(required=False)


class IdentifyResultSerializer(serializers.Serializer):
    customer = serializers.IntegerField()
    anonymousId = serializers.CharField()
    moved_events = serializers.IntegerField()
