"""The content admin: entries with the zone editor, types and components, media, webhooks."""

from content.admin import entries, media, webhooks  # noqa: F401  (each registers its models)
