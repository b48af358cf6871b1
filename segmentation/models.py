"""Segments and who is in them.

A segment is dynamic (its `rules`, the criteria language of API.md, decide) or static (members
are set by hand or CSV). Membership is kept as stays: a row per time a subject entered, closed by
`exited_at` when it left, so "who is in it now" is the open rows and the history is all of them.
Subjects are customers (`c:<id>`) or anonymous ids not yet linked (`a:<id>`), as in the events'
roll-ups, so an anonymous visitor can be personalized by its own history.
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

SEGMENT_KEY_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,62}$",
    "Lower-case letters, digits, '-' and '_', starting with a letter or digit (at most 63).",
)


class Segment(models.Model):
    class Kind(models.TextChoices):
        DYNAMIC = "dynamic", "Dynamic (rules)"
        STATIC = "static", "Static (chosen members)"

    key = models.CharField(max_length=63, unique=True, validators=[SEGMENT_KEY_VALIDATOR])
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DYNAMIC)
    rules = models.JSONField(default=dict, blank=True, help_text="Criteria (dynamic segments).")
    member_count = models.PositiveIntegerField(default=0, editable=False)
    evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SegmentMembership(models.Model):
    """One stay of a subject in a segment."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    subject = models.CharField(max_length=140, help_text="`c:<customer id>` or `a:<anonymous id>`")
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    entered_at = models.DateTimeField()
    exited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-entered_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["segment", "subject"],
                condition=Q(exited_at__isnull=True),
                name="one_open_membership_per_subject",
            )
        ]
        indexes = [
            # "Who is in segment X now": the admin's filter, members lists, bulk recompute.
            models.Index(fields=["segment", "exited_at", "customer"], name="membership_current"),
            # "Which segments is this subject in now": delivery, the profile page, `me`.
            models.Index(fields=["subject", "exited_at"], name="membership_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} in {self.segment_id}"
