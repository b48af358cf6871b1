from __future__ import annotations

from rest_framework import serializers

from analytics.models import Event, EventType, JourneyStage


class EventTypeSerializer(serializers.ModelSerializer):
    journey_stage = serializers.ChoiceField(
        choices=JourneyStage.choices, allow_null=True, required=False
    )
    schema = serializers.JSONField(required=False, allow_null=True)
    distinct_properties = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=20
    )

    class Meta:
        model = EventType
        fields = [
            "name",
            "description",
            "schema",
            "journey_stage",
            "distinct_properties",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def to_representation(self, instance: EventType) -> dict:
        data = super().to_representation(instance)
        data["journey_stage"] = data["journey_stage"] or None
        return data


class EventIngestSerializer(serializers.Serializer):
    """Documents the event shape for OpenAPI; validation itself is `events_accept`'s, per event."""

    id = serializers.CharField(required=False, max_length=64)
    type = serializers.CharField(max_length=100)
    userId = serializers.CharField(required=False, max_length=255)
    anonymousId = serializers.CharField(required=False, max_length=128)
    properties = serializers.DictField(required=False)
    timestamp = serializers.DateTimeField(required=False)


class EventBatchSerializer(serializers.Serializer):
    events = EventIngestSerializer(many=True)


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.ListField(child=serializers.DictField(), required=False)


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "type", "anonymous_id", "properties", "timestamp", "received_at"]
