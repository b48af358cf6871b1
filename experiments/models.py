"""Experiments, their phases, and feature flags.

An experiment's variants, weights, traffic and seed are fixed while it runs: changing them starts
a new phase (`ExperimentPhase`), and results count only the current phase's exposures, so units
bucketed under the old split never mix with the new one. Nothing is deleted when an experiment
ends: completing keeps its results and winner, archiving only hides it from the running lists.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

KEY_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,62}$",
    "Lower-case letters, digits, '-' and '_', starting with a letter or digit (at most 63).",
)
SHARE = [MinValueValidator(0.0), MaxValueValidator(1.0)]


class Experiment(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        RUNNING = "running"
        PAUSED = "paused"
        COMPLETED = "completed"
        ARCHIVED = "archived"

    class Method(models.TextChoices):
        SEQUENTIAL = "sequential"
        FIXED = "fixed"

    key = models.CharField(max_length=63, unique=True, validators=[KEY_VALIDATOR])
    name = models.CharField(max_length=120)
    hypothesis = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    seed = models.CharField(max_length=100, blank=True, help_text="Hash seed; empty: the key.")
    variants = models.JSONField(
        default=list, help_text='[{"key": "control", "weight": 0.5}, ...]; the first is control.'
    )
    traffic = models.FloatField(default=1.0, validators=SHARE)
    segment = models.ForeignKey(
        "segmentation.Segment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Only members take part; everyone else sees the default.",
    )
    metric_event = models.CharField(max_length=100)
    metric_window_hours = models.PositiveIntegerField(default=72)
    method = models.CharField(max_length=10, choices=Method.choices, default=Method.SEQUENTIAL)
    alpha = models.FloatField(default=0.05)
    min_exposures = models.PositiveIntegerField(default=100)
    min_runtime_hours = models.FloatField(default=0.0)
    phase = models.PositiveIntegerField(default=0, help_text="0 until started.")
    phase_started_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    winner = models.CharField(max_length=63, blank=True)
    winner_source = models.CharField(
        max_length=10, blank=True, help_text="`rule` (the statistics job) or `manual`."
    )
    results = models.JSONField(null=True, blank=True, help_text="The latest results snapshot.")
    results_computed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status"], name="experiment_status")]

    def __str__(self) -> str:
        return self.name

    @property
    def hash_seed(self) -> str:
        return self.seed or self.key

    @property
    def variant_keys(self) -> list[str]:
        return [variant["key"] for variant in self.variants]


class ExperimentPhase(models.Model):
    """One period of an experiment with fixed variants, weights and traffic, and the results it
    ended with."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="phases")
    number = models.PositiveIntegerField()
    variants = models.JSONField()
    traffic = models.FloatField()
    seed = models.CharField(max_length=100)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    results = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["experiment", "number"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "number"], name="experiment_phase_unique")
        ]

    def __str__(self) -> str:
        return f"{self.experiment.key} phase {self.number}"


class FeatureFlag(models.Model):
    class Kind(models.TextChoices):
        BOOLEAN = "boolean"
        MULTIVARIATE = "multivariate"

    key = models.CharField(max_length=63, unique=True, validators=[KEY_VALIDATOR])
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.BOOLEAN)
    enabled = models.BooleanField(
        default=False, help_text="The kill switch: off means off for everyone, at once."
    )
    rollout = models.FloatField(
        default=1.0, validators=SHARE, help_text="Share of units that get it."
    )
    segment = models.ForeignKey(
        "segmentation.Segment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Only members get it.",
    )
    variants = models.JSONField(
        default=list, blank=True, help_text='Multivariate: [{"key": "blue", "weight": 0.5}, ...]'
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.name
