"""Shapes of the content API. Types and components are checked here for their envelope (names,
kinds); the field definitions themselves are validated by `content.schema` in the services, so the
admin, REST and GraphQL share one set of rules."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from content.models import API_ID_VALIDATOR, Component, EntryType
from content.schema import FIELDS_SCHEMA, ZONES_SCHEMA


class DefinitionListField(serializers.JSONField):
    def __init__(self, schema: dict[str, Any], **kwargs: Any) -> None:
        self.json_schema = schema
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, list):
            raise serializers.ValidationError("Expected a list.")
        return data


class ComponentSerializer(serializers.ModelSerializer):
    api_id = serializers.CharField(max_length=63, validators=[API_ID_VALIDATOR])
    fields = DefinitionListField(FIELDS_SCHEMA)

    class Meta:
        model = Component
        fields = ["api_id", "name", "description", "fields", "builtin", "created_at", "updated_at"]
        read_only_fields = ["builtin", "created_at", "updated_at"]


class ComponentUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    fields = DefinitionListField(FIELDS_SCHEMA, required=False)


class EntryTypeSerializer(serializers.ModelSerializer):
    api_id = serializers.CharField(max_length=63, validators=[API_ID_VALIDATOR])
    fields = DefinitionListField(FIELDS_SCHEMA, required=False)
    zones = DefinitionListField(ZONES_SCHEMA, required=False)

    class Meta:
        model = EntryType
        fields = [
            "api_id",
            "name",
            "kind",
            "description",
            "fields",
            "zones",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]


class EntryTypeUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    kind = serializers.ChoiceField(choices=EntryType.Kind.choices, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    fields = DefinitionListField(FIELDS_SCHEMA, required=False)
    zones = DefinitionListField(ZONES_SCHEMA, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(self.initial_data) - set(self.fields)
        if "api_id" in unknown:
            raise serializers.ValidationError({"api_id": "A type's api_id cannot change."})
        if unknown:
            raise serializers.ValidationError({key: "Unknown field." for key in sorted(unknown)})
        return attrs


class PublishSerializer(serializers.Serializer):
    publish_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="ISO 8601 with a zone; omit to publish now."
    )


ENTRY_BODY_SCHEMA = {
    "type": "object",
    "properties": {
        "slug": {"type": "string"},
        "locale": {"type": "string"},
        "status": {"type": "string", "readOnly": True},
        "fields": {"type": "object", "additionalProperties": True},
        "zones": {
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "component": {"type": "string"},
                        "data": {"type": "object"},
                        "variants": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "segments": {"type": "array", "items": {"type": "string"}},
                                    "data": {"type": "object"},
                                },
                            },
                        },
                        "experiment": {
                            "type": "object",
                            "description": "An A/B test of the block: each variant's partial data.",
                            "properties": {
                                "key": {"type": "string"},
                                "variants": {
                                    "type": "object",
                                    "additionalProperties": {"type": "object"},
                                },
                            },
                        },
                        "flag": {
                            "type": "string",
                            "description": "Shown only to visitors for whom this flag is on.",
                        },
                    },
                },
            },
        },
        "audience": {"type": "array", "items": {"type": "string"}},
        "lifecycle_stage": {"type": "string"},
        "language": {"type": "string"},
    },
}
