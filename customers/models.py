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


# --- Engagement: orders, support tickets, notifications, feedback ------------------------------
class Order(models.Model):
    """A purchase with its lines. Amounts are in `currency` (ISO 4217); `total` is what the
    customer paid: subtotal + tax + shipping - discount, checked on every write."""

    class Status(models.TextChoices):
        PLACED = "placed"
        PAID = "paid"
        FULFILLED = "fulfilled"
        CANCELLED = "cancelled"
        REFUNDED = "refunded"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    external_id = models.CharField(
        max_length=100,
        unique=True,
        null=True,
        blank=True,
        help_text="The shop's order number; posting it again returns the same order.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PLACED)
    currency = models.CharField(max_length=3)
    subtotal = models.DecimalField(max_digits=14, decimal_places=2)
    tax = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    shipping = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    discount = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    total = models.DecimalField(max_digits=14, decimal_places=2)
    placed_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
        indexes = [models.Index(fields=["customer", "placed_at"], name="order_customer_placed")]
        constraints = [
            models.CheckConstraint(condition=Q(total__gte=0), name="order_total_not_negative"),
        ]

    def __str__(self) -> str:
        return self.external_id or f"order {self.pk}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=100)
    name = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=14, decimal_places=2)
    line_total = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"


class Ticket(models.Model):
    """A support ticket; every status move is kept in `TicketStatusChange`."""

    class Status(models.TextChoices):
        OPEN = "open"
        IN_PROGRESS = "in_progress"
        AWAITING_CUSTOMER = "awaiting_customer"
        RESOLVED = "resolved"
        CLOSED = "closed"

    class Priority(models.TextChoices):
        LOW = "low"
        NORMAL = "normal"
        HIGH = "high"
        URGENT = "urgent"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="tickets")
    subject = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["customer", "status"], name="ticket_customer_status")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"


class TicketStatusChange(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="history")
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    note = models.TextField(blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["ticket", "changed_at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status or '-'} → {self.to_status}"


class Notification(models.Model):
    """One message to one customer on one channel. `key` makes a send idempotent: the same
    business event (an order's confirmation, a ticket's move) on the same channel is one row,
    sent at most once however often a task is retried."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        SKIPPED = "skipped"  # preferences or consent said no: kept, so "why not?" has an answer
        FAILED = "failed"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="notifications")
    key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=60, help_text="What happened, e.g. `order.created`.")
    channel = models.CharField(max_length=20)
    title = models.CharField(max_length=200)
    body = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["customer", "channel", "created_at"], name="notification_inbox"),
            models.Index(fields=["status", "created_at"], name="notification_status"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} → {self.channel}"


class Feedback(models.Model):
    """A score from 0 to 10 with an optional comment. Sentiment and key phrases are added later,
    in batches, by a worker."""

    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="feedback"
    )
    anonymous_id = models.CharField(max_length=128, blank=True)
    score = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True)
    context = models.JSONField(
        default=dict, blank=True, help_text="Where it was given: page, order, journey stage."
    )
    journey_stage = models.CharField(
        max_length=20, blank=True, help_text="The customer's lifecycle stage when they answered."
    )
    sentiment = models.FloatField(null=True, blank=True, help_text="VADER compound, -1 to 1.")
    sentiment_label = models.CharField(max_length=10, blank=True)
    key_phrases = models.JSONField(default=list, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["created_at"], name="feedback_created"),
            models.Index(
                fields=["created_at"], condition=Q(scored_at__isnull=True), name="feedback_unscored"
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(score__lte=10), name="feedback_score_0_10"),
        ]

    def __str__(self) -> str:
        return f"{self.score}/10"
