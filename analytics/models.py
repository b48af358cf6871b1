"""Events (append-only), their types, and the roll-ups dashboards and segments read."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.fields.json import KeyTransform


class JourneyStage(models.TextChoices):
    AWARENESS = "awareness", "Awareness"
    CONSIDERATION = "consideration", "Consideration"
    ACTION = "action", "Action"


class EventType(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    schema = models.JSONField(
        null=True, blank=True, help_text="JSON Schema that every event's properties must match."
    )
    journey_stage = models.CharField(
        max_length=20, choices=JourneyStage.choices, blank=True, default=""
    )
    distinct_properties = models.JSONField(
        default=list,
        blank=True,
        help_text="Properties whose distinct values are rolled up per customer and day "
        "(segment rules such as 'viewed 3 categories').",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Event(models.Model):
    """One behaviour event. Written only by the drain worker, in batches; never updated except
    to link an anonymous history to its customer or to anonymize on erasure."""

    id = models.CharField(max_length=64, primary_key=True)
    type = models.CharField(max_length=100)
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    anonymous_id = models.CharField(max_length=128, blank=True, default="")
    properties = models.JSONField(default=dict)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["type", "timestamp"], name="event_type_time"),
            models.Index(fields=["customer", "timestamp"], name="event_customer_time"),
            models.Index(fields=["anonymous_id", "timestamp"], name="event_anonymous_time"),
            # Experiment results read one experiment's exposures among every experiment's.
            models.Index(
                KeyTransform("experiment", "properties"),
                "timestamp",
                condition=Q(type="experiment_exposure"),
                name="event_exposure_experiment",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class Interval(models.TextChoices):
    MINUTE = "minute", "Minute"
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


class EventRollup(models.Model):
    """Events of one type in one time bucket: how many, and how many distinct subjects."""

    event_type = models.CharField(max_length=100)
    interval = models.CharField(max_length=10, choices=Interval.choices)
    bucket = models.DateTimeField()
    count = models.PositiveBigIntegerField(default=0)
    uniques = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "event roll-up"
        # Marketers find the journey report (the roll-ups' admin page, with charts) by this name.
        verbose_name_plural = "journey reports"
        constraints = [
            models.UniqueConstraint(
                fields=["event_type", "interval", "bucket"], name="one_rollup_per_bucket"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.interval} {self.bucket:%Y-%m-%d %H:%M}"


class SubjectDailyRollup(models.Model):
    """Per subject (a customer, or an anonymous id not yet linked), type and day: how many events,
    the sums of their numeric properties and the distinct values of marked properties. Segment
    rules read these instead of raw events."""

    subject = models.CharField(max_length=140, help_text="`c:<customer id>` or `a:<anonymous id>`")
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    day = models.DateField()
    event_type = models.CharField(max_length=100)
    count = models.PositiveIntegerField(default=0)
    count_added = models.PositiveIntegerField(
        default=0,
        help_text="Events the latest drain write added: a row whose count equals it was created "
        "by that write (how the drain counts subjects new to a day; RETURNING shows the new row "
        "only).",
    )
    sums = models.JSONField(default=dict)
    distinct = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subject", "day", "event_type"], name="one_daily_rollup_per_subject"
            )
        ]
        indexes = [
            models.Index(fields=["event_type", "day"], name="daily_type_day"),
            models.Index(fields=["customer", "day"], name="daily_customer_day"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} {self.event_type} {self.day}"


class SubjectHourlyRollup(models.Model):
    """Per type, hour and subject: how many events, and in which minutes of the hour (bit m of
    `minutes` is minute m). The drain counts the unique subjects of minute and hour buckets from
    these instead of rescanning events: a subject is new to an hour when its row is created, and
    new to a minute when the minute's bit is first set.

    Keyed by type and hour first, so a batch of recent events writes to the few index pages of the
    current hours, and a recount finds an hour's rows without another index."""

    pk = models.CompositePrimaryKey("event_type", "hour", "subject")
    event_type = models.CharField(max_length=100)
    hour = models.DateTimeField()
    subject = models.CharField(max_length=140, help_text="`c:<customer id>` or `a:<anonymous id>`")
    count = models.PositiveIntegerField(default=0)
    minutes = models.BigIntegerField(default=0, help_text="Bit m is set: events in minute m.")
    minutes_added = models.BigIntegerField(
        default=0,
        help_text="The bits the latest write set: the drain reads them back from the upsert "
        "(RETURNING shows the new row only), which tells it the minutes new to this subject.",
    )

    def __str__(self) -> str:
        return f"{self.subject} {self.event_type} {self.hour:%Y-%m-%d %H:00}"


class DroppedEvents(models.Model):
    """Accepted events the drain did not store, and why (e.g. the customer refused analytics)."""

    day = models.DateField()
    reason = models.CharField(max_length=40)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "dropped events"
        constraints = [
            models.UniqueConstraint(fields=["day", "reason"], name="one_drop_count_per_day")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.reason}: {self.count}"
