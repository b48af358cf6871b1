"""The audit log: staff admin actions and API writes (actor, action, object, time, IP).

- Admin actions: Django's admin writes a `LogEntry` for every add/change/delete; we copy each
  into `AuditEntry` with the IP of the request in flight (held in a context variable).
- API writes: `AuditMiddleware` records every successful unsafe request to the API. Views that
  must never write per request (event ingestion) opt out with `audit_writes = False`.
- Services call `audit_record` for what the two above cannot see (exports, personal-data reads).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.http import HttpRequest, HttpResponse

from cmsproject.models import AuditEntry

logger = logging.getLogger(__name__)

_current_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar(
    "cms_audit_request", default=None
)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ADMIN_ACTIONS = {ADDITION: "admin.add", CHANGE: "admin.change", DELETION: "admin.delete"}


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def actor_of(user: Any) -> tuple[Any, str]:
    """(user row or None, label) for any principal: a user, an API key principal, anonymous."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None, "anonymous"
    api_key = getattr(user, "api_key", None)
    if api_key is not None:
        return None, f"api-key:{api_key.prefix}"
    return user, user.get_username()


def audit_record(
    *,
    actor: Any,
    action: str,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    details: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> AuditEntry:
    user, label = actor_of(actor)
    return AuditEntry.objects.create(
        actor=user,
        actor_label=label,
        action=action,
        object_type=object_type[:120],
        object_id=str(object_id)[:120],
        object_repr=object_repr[:200],
        details=details or {},
        ip=client_ip(request or _current_request.get()),
    )


def audit_admin_log_entry(sender: type, instance: LogEntry, created: bool, **kwargs: Any) -> None:
    if not created:
        return
    content_type = instance.content_type
    audit_record(
        actor=instance.user,
        action=ADMIN_ACTIONS.get(instance.action_flag, "admin.other"),
        object_type=f"{content_type.app_label}.{content_type.model}" if content_type else "",
        object_id=instance.object_id or "",
        object_repr=instance.object_repr,
        details={"message": instance.get_change_message()} if instance.change_message else {},
    )


class AuditMiddleware:
    """Records successful API writes; holds the request for `audit_record` callers meanwhile.

    Runs natively under WSGI and ASGI; under ASGI only a write that is audited pays the hop to a
    thread for its INSERT.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self._acall(request)
        token = _current_request.set(request)
        try:
            response = self.get_response(request)
        finally:
            _current_request.reset(token)
        if _is_audited_write(request, response):
            _record_api_write(request, response)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        token = _current_request.set(request)
        try:
            response = await self.get_response(request)
        finally:
            _current_request.reset(token)
        if _is_audited_write(request, response):
            await sync_to_async(_record_api_write)(request, response)
        return response


def _is_audited_write(request: HttpRequest, response: HttpResponse) -> bool:
    if request.method not in UNSAFE_METHODS or response.status_code >= 400:
        return False
    match = request.resolver_match
    if match is None or not request.path.startswith("/api/"):
        return False
    view_class = getattr(match.func, "cls", None) or getattr(match.func, "view_class", None)
    return getattr(view_class, "audit_writes", True)


def _record_api_write(request: HttpRequest, response: HttpResponse) -> None:
    # DRF authenticates inside the view, so the actor is on the response's renderer context
    # request, not on the Django request the middleware holds.
    drf_request = getattr(response, "renderer_context", {}).get("request")
    actor = getattr(drf_request, "user", None) or getattr(request, "user", None)
    if actor is None or not actor.is_authenticated:
        return
    match = request.resolver_match
    audit_record(
        actor=actor,
        action=f"api.{request.method.lower()}",
        object_type=match.view_name,
        object_id=str(match.kwargs.get("pk") or match.kwargs.get("prefix") or ""),
        object_repr=request.path,
        details={"status": response.status_code},
        request=request,
    )
