"""Who may read and write content through the APIs (REST and GraphQL share it)."""

from __future__ import annotations

from typing import Any

from cmsproject.auth import request_api_key
from cmsproject.models import ApiKey

READ, WRITE = ApiKey.Scope.CONTENT_READ, ApiKey.Scope.CONTENT_WRITE
# The API key scope each method needs on content endpoints.
SCOPES = {
    "GET": READ,
    "HEAD": READ,
    "OPTIONS": READ,
    "POST": WRITE,
    "PUT": WRITE,
    "PATCH": WRITE,
    "DELETE": WRITE,
}


def is_editor(request: Any) -> bool:
    """Editors see working copies: staff who may view entries, or a key that may write content.
    Everyone else (anonymous, customers, `content:read` keys) sees published payloads only."""
    key = request_api_key(request)
    if key is not None:
        return key.has_scope(WRITE)
    user = request.user
    return bool(
        user and user.is_authenticated and user.is_staff and user.has_perm("content.view_entry")
    )
