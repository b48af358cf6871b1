"""Customer profiles: core columns on the access paths, extensible attributes, consents, and the
anonymous ids that were linked to each customer."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class LoyaltyTier(models.TextChoices):
    NONE = "none", "None"
    BRONZE = "bronze", "Bronze"
    SILVER = "silver", "Silver"
    GOLD = "gold", "Gold"
    PLATINUM = "platinum", "Platinum"


class LifecycleStage(models.TextChoices):
    VISITOR = "visitor", "Visitor"
    LEAD = "lead", "Lead"
    CUSTOMER = "customer", "Customer"
    REPEAT_CUSTOMER = "repeat_customer", "Repeat customer"
    CHURNED = "churned", "Churned"


class Customer(models.Model):
    external_id = models.CharField(
        max_length=255,
        unique=True,
        null=True,
        blank=True,
        help_text="The site's own user id (`userId` in events).",
    )
    email = models.EmailField(blank=True, db_index=True)
    name = models.CharField(max_length=200, blank=True)
    # A customer who logs in to our API (customer JWT) has a user row; most do not.
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="customer",
    )
    loyalty_tier = models.CharField(
        max_length=20, choices=LoyaltyTier.choices, default=LoyaltyTier.NONE
    )
    lifecycle_stage = models.CharField(
        max_length=20, choices=LifecycleStage.choices, default=LifecycleStage.LEAD
    )
    last_seen = models.DateTimeField(null=True, blank=True)
    total_spend = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    attributes = models.JSONField(default=dict, blank=True)
    preferences = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    erased_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["loyalty_tier", "last_seen"], name="customer_tier_seen"),
            models.Index(fields=["lifecycle_stage", "last_seen"], name="customer_stage_seen"),
            models.Index(fields=["last_seen"], name="customer_seen"),
        ]
        constraints = [
            # One customer per address, whatever its case; blank (unknown, erased) is not unique.
            models.UniqueConstraint(
                Lower("email"), condition=~Q(email=""), name="one_customer_per_email"
            ),
        ]
        permissions = [
            ("export_customer", "Can export customers"),
        ]

    def __str__(self) -> str:
        return self.email or self.external_id or f"customer {self.pk}"


class AttributeDefinition(models.Model):
    """A marketer-defined attribute: `attributes.<key>` on every customer, validated on write."""

    class Type(models.TextChoices):
        STRING = "string", "Text"
        INTEGER = "integer", "Whole number"
        NUMBER = "number", "Number"
        BOOLEAN = "boolean", "Yes/no"
        DATE = "date", "Date"
        ENUM = "enum", "One of a list"

    key = models.SlugField(max_length=64, unique=True)
    label = models.CharField(max_length=120)
    type = models.CharField(max_length=10, choices=Type.choices)
    required = models.BooleanField(default=False)
    choices = models.JSONField(
        default=list, blank=True, help_text="For `enum`: the allowed values."
    )
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(type="enum") | ~Q(choices=[]), name="enum_attribute_has_choices"
            )
        ]

    def __str__(self) -> str:
        return self.key


class Consent(models.Model):
    class Purpose(models.TextChoices):
        PERSONALIZATION = "personalization", "Personalization"
        ANALYTICS = "analytics", "Analytics"
        EMAIL = "email", "Email"
        SMS = "sms", "SMS"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consents")
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    granted = models.BooleanField()
    given_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "purpose"], name="one_consent_per_purpose")
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.purpose}={self.granted}"


class AnonymousId(models.Model):
    """A browser's anonymous id, linked to the customer it turned out to be."""

    value = models.CharField(max_length=128, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="anonymous_ids")
    linked_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.value
