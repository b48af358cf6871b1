"""Content as data: types and components are rows, entries are validated JSON.

- `Component` and `EntryType` hold field definitions (`content.schema` turns them into JSON
  Schema); adding a type, a field or a component needs no migration.
- `Entry` holds the working copy (what editors see) and `live`, the published payload (what
  anonymous readers, caches and sockets see). Editing a published entry changes only the working
  copy; the live payload changes on the next publish.
- `Revision` is every save, numbered per entry, with its full JSON; any one can be restored.
- `MediaAsset` and `Rendition` are uploaded files and their resized copies.
- `WebhookEndpoint` and `WebhookDelivery` are outgoing webhooks and the log of every attempt.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

API_ID_VALIDATOR = RegexValidator(
    r"^[a-z][a-z0-9_]{0,62}$",
    "Lower-case letters, digits and underscores, starting with a letter (at most 63).",
)


class Component(models.Model):
    """A named set of typed fields that a block in a dynamic zone fills in (hero, faq, ...)."""

    api_id = models.CharField(max_length=63, unique=True, validators=[API_ID_VALIDATOR])
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    fields = models.JSONField(default=list, help_text="Field definitions, as in the API.")
    builtin = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["api_id"]

    def __str__(self) -> str:
        return self.name


class EntryType(models.Model):
    """A content type: a collection of entries (`product`) or a single one (`homepage`)."""

    class Kind(models.TextChoices):
        COLLECTION = "collection", "Collection"
        SINGLE = "single", "Single"

    api_id = models.CharField(max_length=63, unique=True, validators=[API_ID_VALIDATOR])
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.COLLECTION)
    description = models.TextField(blank=True)
    fields = models.JSONField(default=list, help_text="Field definitions, as in the API.")
    zones = models.JSONField(
        default=list, help_text='Dynamic zones: [{"name", "components": [api_id, ...]}].'
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["api_id"]
        verbose_name = "content type"

    def __str__(self) -> str:
        return self.name


class EntryStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    PUBLISHED = "published", "Published"
    ARCHIVED = "archived", "Archived"


class Entry(models.Model):
    type = models.ForeignKey(EntryType, on_delete=models.PROTECT, related_name="entries")
    slug = models.SlugField(max_length=200)
    locale = models.CharField(max_length=16)
    status = models.CharField(max_length=12, choices=EntryStatus.choices, default="draft")

    # The working copy: what the editor saved last.
    fields = models.JSONField(default=dict, blank=True)
    zones = models.JSONField(default=dict, blank=True)
    audience = models.JSONField(default=list, blank=True, help_text="Segment keys.")
    lifecycle_stage = models.CharField(max_length=32, blank=True)
    language = models.CharField(max_length=16, blank=True)

    # The published payload, or null while nothing is live. Public reads and filters use only this.
    live = models.JSONField(null=True, blank=True, editable=False)
    live_revision = models.PositiveIntegerField(null=True, blank=True, editable=False)
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    first_published_at = models.DateTimeField(null=True, blank=True, editable=False)
    publish_at = models.DateTimeField(
        null=True, blank=True, help_text="When a scheduled entry goes live."
    )
    scheduled_revision = models.PositiveIntegerField(null=True, blank=True, editable=False)

    revision = models.PositiveIntegerField(default=0, editable=False, help_text="Latest revision.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["type", "slug", "locale"]
        verbose_name_plural = "entries"
        constraints = [
            models.UniqueConstraint(
                fields=["type", "slug", "locale"], name="content_entry_unique_slug_locale"
            ),
        ]
        indexes = [
            models.Index(fields=["type", "status", "locale"], name="content_entry_type_status"),
            models.Index(fields=["status", "publish_at"], name="content_entry_due"),
        ]

    def __str__(self) -> str:
        return f"{self.type.api_id}/{self.slug} ({self.locale})"

    @property
    def has_unpublished_changes(self) -> bool:
        return self.live_revision is None or self.live_revision != self.revision


class Revision(models.Model):
    class Kind(models.TextChoices):
        CREATE = "create", "Created"
        SAVE = "save", "Saved"
        RESTORE = "restore", "Restored"

    entry = models.ForeignKey(Entry, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.SAVE)
    data = models.JSONField(help_text="The whole working copy at this revision.")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    restored_from = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["entry", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["entry", "number"], name="content_revision_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.entry} r{self.number}"


class MediaAsset(models.Model):
    class Status(models.TextChoices):
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    file = models.FileField(upload_to="originals/%Y/%m/")
    original_filename = models.CharField(max_length=255)
    mime_type = models.CharField(max_length=64)
    format = models.CharField(max_length=16, help_text="Image format as detected from content.")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size = models.PositiveBigIntegerField(help_text="Bytes, after EXIF was stripped.")
    checksum = models.CharField(max_length=64, db_index=True, help_text="SHA-256 of the file.")
    alt = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PROCESSING)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "media asset"

    def __str__(self) -> str:
        return self.original_filename


class Rendition(models.Model):
    asset = models.ForeignKey(MediaAsset, on_delete=models.CASCADE, related_name="renditions")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=16)
    file = models.FileField(upload_to="renditions/%Y/%m/")
    size = models.PositiveBigIntegerField()

    class Meta:
        ordering = ["asset", "format", "width"]
        constraints = [
            models.UniqueConstraint(
                fields=["asset", "width", "format"], name="content_rendition_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.asset} {self.width}w {self.format}"


class WebhookEvent(models.TextChoices):
    CONTENT_PUBLISHED = "content.published", "Content published"
    CONTENT_UPDATED = "content.updated", "Content updated"
    CONTENT_UNPUBLISHED = "content.unpublished", "Content unpublished"
    CONTENT_DELETED = "content.deleted", "Content deleted"
    MEDIA_UPLOADED = "media.uploaded", "Media uploaded"


class WebhookEndpoint(models.Model):
    name = models.CharField(max_length=120, blank=True)
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=128, help_text="Signs each delivery (HMAC-SHA256).")
    events = models.JSONField(default=list, help_text="Event names this endpoint receives.")
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or self.url


class WebhookDelivery(models.Model):
    """One event for one endpoint; `attempts` counts tries, each logged in `log`."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (gave up)"

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=64)
    payload = models.JSONField()
    idempotency_key = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint}"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    number = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField()
    attempted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number}: {self.status_code or self.error}"
