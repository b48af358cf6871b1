"""Settings come from the environment and fail fast when production needs are missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_settings(**env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "DATABASE_URL", "REDIS_URL"}
    }
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SERVICES_MODE, s.DATABASES['default']['ENGINE'], s.CACHES['default']['BACKEND']]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**clean, "DJANGO_SETTINGS_MODULE": "cmsproject.settings", **env},
        timeout=60,
    )


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS"])
def test_production_refuses_to_start_without(missing):
    env = {"SECRET_KEY": "k" * 50, "ALLOWED_HOSTS": "example.com"}
    del env[missing]

    result = load_settings(**env)

    assert result.returncode != 0
    assert f"{missing} is required when DEBUG is off" in result.stderr


def test_production_cookies_are_secure():
    result = load_settings(SECRET_KEY="k" * 50, ALLOWED_HOSTS="example.com")

    assert result.stdout.strip().startswith("[false, true, true")


def test_no_environment_means_embedded_mode():
    result = load_settings(DEBUG="1")

    assert result.stdout.strip() == (
        '[true, false, false, false, "django.db.backends.sqlite3", '
        '"django.core.cache.backends.locmem.LocMemCache"]'
    )


def test_database_and_redis_urls_mean_services_mode():
    result = load_settings(
        DEBUG="1", DATABASE_URL="postgres://u@db:5432/cms", REDIS_URL="redis://cache:6379/0"
    )

    assert result.stdout.strip() == (
        '[true, false, false, true, "django.db.backends.postgresql", '
        '"django_redis.cache.RedisCache"]'
    )


def test_a_malformed_boolean_is_refused_not_guessed():
    result = load_settings(DEBUG="maybe")

    assert "DEBUG must be a boolean" in result.stderr


@pytest.mark.django_db
def test_demo_data_loads_twice_without_duplicates():
    from analytics.models import EventType
    from cmsproject.demo import demo_load_all
    from customers.models import Customer

    first = demo_load_all(staff_password="pw-for-demo-staff")
    demo_load_all(staff_password="pw-for-demo-staff")

    assert any(line.startswith("customers:") for line in first)
    assert Customer.objects.filter(external_id__startswith="demo-").count() == 3
    assert EventType.objects.filter(name="purchase").count() == 1
