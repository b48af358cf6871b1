"""Staff groups and the model permissions each holds, declared once and synced after migrate.

Rules are by app (so a model added later to `content` is a Marketer's without touching this
file) with per-model exceptions. Re-running the sync is a no-op; it also removes permissions a
role no longer has, so this file stays the truth.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission

ALL = frozenset({"add", "change", "delete", "view"})
READ = frozenset({"view"})

# role -> {"app_label" or "app_label.model": actions}; a model rule overrides its app's rule.
ROLE_PERMISSIONS: dict[str, dict[str, frozenset[str]]] = {
    "Marketer": {
        "content": ALL,
        # Webhooks send content to other systems with a secret: set up by developers.
        "content.webhookendpoint": READ,
        "content.webhookdelivery": READ,
        "segmentation": ALL,
        "experiments": ALL,
        "customers": frozenset({"view", "change", "export"}),
        # Marketers run customer care in the admin: they open and move support tickets.
        "customers.ticket": frozenset({"view", "add", "change"}),
        "analytics": READ,
    },
    "Developer": {
        "content": ALL,
        "analytics": ALL,
        "customers": READ,
        "segmentation": READ,
        "experiments": READ,
        "cmsproject.apikey": ALL,
    },
    "Analyst": {
        "content": READ,
        "content.webhookendpoint": frozenset(),
        "content.webhookdelivery": frozenset(),
        "customers": frozenset({"view", "export"}),
        "analytics": READ,
        "segmentation": READ,
        "experiments": READ,
    },
}


def role_permissions(role: str) -> list[Permission]:
    rules = ROLE_PERMISSIONS[role]
    chosen = []
    for perm in Permission.objects.select_related("content_type"):
        app_label = perm.content_type.app_label
        model = perm.content_type.model
        actions = rules.get(f"{app_label}.{model}", rules.get(app_label, frozenset()))
        action = perm.codename.split("_", 1)[0]
        if perm.codename == f"{action}_{model}" and action in actions:
            chosen.append(perm)
    return chosen


def roles_sync() -> None:
    for role in ROLE_PERMISSIONS:
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(role_permissions(role))


def roles_sync_after_migrate(sender: Any, **kwargs: Any) -> None:
    # post_migrate fires once per installed app that has models; only after the last of those do
    # all permissions exist.
    with_models = [config for config in django_apps.get_app_configs() if config.models_module]
    if sender is with_models[-1]:
        roles_sync()
