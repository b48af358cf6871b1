from __future__ import annotations

from rest_framework import serializers

from cmsproject.models import ApiKey


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKey.Scope.choices),
        allow_empty=False,
        max_length=len(ApiKey.Scope.choices),
    )


class ApiKeySerializer(serializers.ModelSerializer):
    # null for keys made by the system (the demo storefront's) or whose creator was deleted
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = ApiKey
        fields = [
            "prefix",
            "name",
            "scopes",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]
        read_only_fields = fields


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The full key. Shown once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = ["key", *ApiKeySerializer.Meta.fields]
        read_only_fields = fields


class RefreshSerializer(serializers.Serializer):
    refresh = serializers.CharField(required=False, help_text="Omit in cookie mode.")


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class CustomerTokenRequestSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=255)


class AccessTokenSerializer(serializers.Serializer):
    access = serializers.CharField()


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok"])
    checks = serializers.DictField(child=serializers.CharField())
