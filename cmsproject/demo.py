"""Demo data for `make run`: idempotent, so every start can load it again safely.

Each app that has demo data exposes `demo_load()` in its own `demo.py`; this module only knows
the order. The staff login is ensured here too because `make run` prints it.
"""

from __future__ import annotations

import importlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from cmsproject.roles import ROLE_PERMISSIONS, roles_sync

APPS_WITH_DEMO = ["content", "customers", "analytics", "segmentation", "experiments"]


@dataclass(frozen=True)
class StaffLogin:
    username: str
    password: str
    generated: bool


def _password_file() -> Path:
    return Path(settings.VAR_DIR) / "admin-password"


def admin_ensure() -> StaffLogin:
    """A superuser from CMS_ADMIN_USER / CMS_ADMIN_PASSWORD, else `admin` with a generated
    password kept (mode 600) in the project's var/ folder so every start can print it."""
    username = os.environ.get("CMS_ADMIN_USER") or "admin"
    password = os.environ.get("CMS_ADMIN_PASSWORD")
    generated = password is None
    if generated:
        path = _password_file()
        if path.exists() and path.read_text().strip():
            password = path.read_text().strip()
        else:
            password = secrets.token_urlsafe(12)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(password + "\n")
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=username)
    user.is_staff = user.is_superuser = user.is_active = True
    if not user.check_password(password):
        user.set_password(password)
    user.save()
    return StaffLogin(username=username, password=password, generated=generated)


def demo_staff_ensure(password: str) -> list[str]:
    """One staff login per role (marketer, developer, analyst) so each role can be tried."""
    user_model = get_user_model()
    created = []
    for role in ROLE_PERMISSIONS:
        username = role.lower()
        user, _ = user_model.objects.get_or_create(username=username)
        user.is_staff, user.is_active = True, True
        if not user.check_password(password):
            user.set_password(password)
        user.save()
        user.groups.add(Group.objects.get(name=role))
        created.append(username)
    return created


@transaction.atomic
def demo_load_all(*, staff_password: str) -> list[str]:
    roles_sync()
    loaded = ["staff: " + ", ".join(demo_staff_ensure(staff_password))]
    for app in APPS_WITH_DEMO:
        try:
            module = importlib.import_module(f"{app}.demo")
        except ModuleNotFoundError as exc:
            if exc.name != f"{app}.demo":
                raise
            continue
        loaded.append(f"{app}: {module.demo_load()}")
    from cmsproject.storefront import demo_api_key

    demo_api_key()  # the storefront backend's key, made now rather than on the first purchase
    return loaded
