"""Platform services: API keys and audit retention. Keyword-only, typed, named <entity>_<action>."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import DatabaseError
from django.utils import timezone

from cmsproject.errors import FieldError, NotFound, ValidationError
from cmsproject.models import ApiKey, AuditEntry

logger = logging.getLogger(__name__)

API_KEY_MARK = "cms"
# last_used_at is written at most this often per key, so authentication is not a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash_secret(secret: str) -> str:
    # The secret is 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(
    *, name: str, scopes: list[str], created_by: AbstractBaseUser | None
) -> tuple[ApiKey, str]:
    """Create a key and return it with its full text, which is never retrievable again."""
    unknown = sorted(set(scopes) - set(ApiKey.Scope.values))
    if unknown:
        raise ValidationError(
            "Unknown scopes.",
            errors=[
                FieldError("scopes", "invalid-choice", f"Unknown scope {s!r}.") for s in unknown
            ],
        )
    if not scopes:
        raise ValidationError(
            "A key needs at least one scope.",
            errors=[FieldError("scopes", "required", "Give at least one scope.")],
        )
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        name=name,
        prefix=prefix,
        hashed_secret=_hash_secret(secret),
        scopes=sorted(set(scopes)),
        created_by=created_by,
    )
    return key, f"{API_KEY_MARK}_{prefix}_{secret}"


def api_key_revoke(*, prefix: str) -> ApiKey:
    key = ApiKey.objects.filter(prefix=prefix).first()
    if key is None:
        raise NotFound(f"No API key has the prefix {prefix!r}.")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    cache.delete(_key_cache_name(prefix))  # revocation takes effect at once, in every process
    return key


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The active key whose secret matches, or None. Constant-time on the secret."""
    mark, _, rest = raw_key.partition("_")
    prefix, _, secret = rest.partition("_")
    if mark != API_KEY_MARK or not prefix or not secret:
        return None
    key = _active_key(prefix)
    if key is None or not hmac.compare_digest(key.hashed_secret, _hash_secret(secret)):
        return None
    _api_key_touch(key)
    return key


# Keys are looked up on every server-to-server request (event ingestion above all), so an active
# key is cached with the time it was read. For CMS_API_KEY_CACHE_SECONDS it is used as it is; then
# it is read again, but the copy is kept for KEY_KNOWN_SECONDS: while the database is down, a key
# known to be active keeps working, so ingestion with an API key goes on through an outage as
# anonymous ingestion does. Revoking through the API forgets it at once; a key revoked otherwise
# stops working at its next read. Only keys that exist are cached, so guessing cannot fill it.
KEY_KNOWN_SECONDS = 3600


def _key_cache_name(prefix: str) -> str:
    return f"apikey:{prefix}"


def _active_key(prefix: str) -> ApiKey | None:
    name = _key_cache_name(prefix)
    known = cache.get(name)
    if not isinstance(known, tuple):  # nothing, or a value of an older format
        known = None
    if known is not None and time.time() - known[1] < settings.CMS_API_KEY_CACHE_SECONDS:
        return known[0]
    try:
        key = ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).first()
    except DatabaseError:
        if known is None:
            raise
        logger.warning("Database unavailable: API key %s served from its last reading", prefix)
        return known[0]
    if key is None:
        if known is not None:
            cache.delete(name)
        return None
    cache.set(name, (key, time.time()), KEY_KNOWN_SECONDS)
    return key


def _api_key_touch(key: ApiKey) -> None:
    marker = f"apikey-used:{key.prefix}"
    if cache.add(marker, 1, timeout=int(LAST_USED_RESOLUTION.total_seconds())):
        now = timezone.now()
        try:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        except DatabaseError:  # bookkeeping: not a reason to refuse a request in an outage
            cache.delete(marker)
            return
        key.last_used_at = now


def audit_prune(*, older_than_days: int | None = None) -> int:
    """Delete audit entries past the retention period; returns how many went."""
    days = older_than_days if older_than_days is not None else settings.CMS_AUDIT_RETENTION_DAYS
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = AuditEntry.objects.filter(created_at__lt=cutoff).delete()
    return deleted
