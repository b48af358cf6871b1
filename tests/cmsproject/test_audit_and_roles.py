"""Audit log (admin actions, API writes, retention) and staff roles."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from cmsproject.models import AuditEntry
from cmsproject.roles import ROLE_PERMISSIONS, roles_sync
from cmsproject.services import audit_prune
from cmsproject.tasks import audit_prune_task

pytestmark = pytest.mark.django_db


def test_api_write_is_audited_with_actor_action_and_ip(staff_client, superuser):
    staff_client.post(
        "/api/v1/api-keys/",
        {"name": "shop", "scopes": ["events:write"]},
        format="json",
        REMOTE_ADDR="203.0.113.7",
    )

    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.actor_label, entry.action) == (
        superuser,
        superuser.username,
        "api.post",
    )
    assert entry.object_type == "api-key-list"
    assert entry.ip == "203.0.113.7"


def test_revocation_is_audited_with_the_key_prefix(staff_client):
    prefix = staff_client.post(
        "/api/v1/api-keys/", {"name": "k", "scopes": ["content:read"]}, format="json"
    ).json()["prefix"]

    staff_client.delete(f"/api/v1/api-keys/{prefix}/")

    entry = AuditEntry.objects.get(action="api.delete")
    assert entry.object_id == prefix


def test_refused_writes_are_not_audited(staff_client):
    staff_client.post("/api/v1/api-keys/", {"name": "k", "scopes": ["nope"]}, format="json")

    assert not AuditEntry.objects.exists()


def test_admin_actions_are_audited_with_ip(admin_client, admin_user):
    admin_client.post("/admin/auth/group/add/", {"name": "Editors"}, REMOTE_ADDR="198.51.100.2")

    entry = AuditEntry.objects.get(action="admin.add")
    assert entry.actor == admin_user
    assert entry.object_type == "auth.group"
    assert entry.object_repr == "Editors"
    assert entry.ip == "198.51.100.2"


def test_audit_log_is_read_only_in_the_admin(admin_client, superuser):
    staff_post = admin_client.post("/admin/auth/group/add/", {"name": "x"})
    assert staff_post.status_code == 302
    entry = AuditEntry.objects.get()

    assert admin_client.get("/admin/cmsproject/auditentry/").status_code == 200
    assert admin_client.get("/admin/cmsproject/auditentry/add/").status_code == 403
    change_page = admin_client.get(f"/admin/cmsproject/auditentry/{entry.pk}/change/")
    assert change_page.status_code == 200 and b'type="submit" value="Save"' not in (
        change_page.content
    )


def _entry_aged(days: int) -> AuditEntry:
    entry = AuditEntry.objects.create(actor_label="x", action="api.post")
    AuditEntry.objects.filter(pk=entry.pk).update(created_at=timezone.now() - timedelta(days=days))
    return entry


def test_prune_deletes_entries_older_than_ninety_days_only():
    old, recent = _entry_aged(91), _entry_aged(89)

    assert audit_prune() == 1
    assert list(AuditEntry.objects.all()) == [recent]
    assert not AuditEntry.objects.filter(pk=old.pk).exists()


def test_prune_task_is_idempotent():
    _entry_aged(120)

    assert audit_prune_task.apply().get() == 1
    assert audit_prune_task.apply().get() == 0


def test_every_role_exists_as_a_group():
    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLE_PERMISSIONS)


def test_developers_manage_api_keys_and_marketers_do_not():
    developer = Group.objects.get(name="Developer").permissions
    marketer = Group.objects.get(name="Marketer").permissions

    assert developer.filter(codename="add_apikey").exists()
    assert not marketer.filter(content_type__app_label="cmsproject").exists()


def test_roles_give_nobody_the_audit_log_or_user_admin():
    for role in ROLE_PERMISSIONS:
        permissions = Group.objects.get(name=role).permissions
        assert not permissions.filter(codename__endswith="_auditentry").exists()
        assert not permissions.filter(content_type__app_label="auth").exists()


def test_role_sync_is_idempotent_and_restores_removed_permissions():
    developer = Group.objects.get(name="Developer")
    before = set(developer.permissions.values_list("codename", flat=True))
    developer.permissions.clear()

    roles_sync()
    roles_sync()

    assert set(developer.permissions.values_list("codename", flat=True)) == before


@pytest.mark.django_db(transaction=True)
async def test_api_writes_are_audited_on_the_async_path_too(async_client, superuser):
    """Under ASGI the middleware runs as a coroutine; the write must still be recorded."""
    from asgiref.sync import sync_to_async
    from rest_framework_simplejwt.tokens import AccessToken

    token = await sync_to_async(AccessToken.for_user)(superuser)

    response = await async_client.post(
        "/api/v1/api-keys",
        {"name": "k", "scopes": ["content:read"]},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 201  # the slashless path was resolved directly, too
    entry = await AuditEntry.objects.aget()
    assert (entry.actor_label, entry.action) == (superuser.username, "api.post")
