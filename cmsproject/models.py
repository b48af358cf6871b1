from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiKey(models.Model):
    """A server-to-server credential. Only a hash of the secret is stored; the key is shown once."""

    class Scope(models.TextChoices):
        EVENTS_WRITE = "events:write", "Write events"
        CUSTOMERS_READ = "customers:read", "Read customers"
        CUSTOMERS_WRITE = "customers:write", "Write customers"
        CUSTOMERS_IMPERSONATE = "customers:impersonate", "Issue customer tokens"
        CONTENT_READ = "content:read", "Read content"
        CONTENT_WRITE = "content:write", "Write content"

    name = models.CharField(max_length=120)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_secret = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class AuditEntry(models.Model):
    """Who did what to which object, from where. Append-only; pruned after the retention period."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Survives the actor's deletion and names non-user actors such as API keys.
    actor_label = models.CharField(max_length=160)
    action = models.CharField(max_length=120)
    object_type = models.CharField(max_length=120, blank=True)
    object_id = models.CharField(max_length=120, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["object_type", "object_id", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.object_type}:{self.object_id}"
