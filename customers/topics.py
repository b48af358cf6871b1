"""Live topics of customers. `customer:me` is each caller's own stream.

A logged-in caller listens on `user:<id>`; an anonymous browser on `anonymous:<its id>`.
Segment changes and notifications are published to those streams (`customer_stream_for`).

`session:<token>` carries a cross-device session's `session.state` events (customers.sessions).
The token in the topic is the capability: any socket that knows it may listen, as any caller
that knows it may read the state over REST.
"""

from __future__ import annotations

from cmsproject.realtime import Principal, topics
from customers.sessions import SESSION_TOKEN_PATTERN


def customer_stream_for(*, user_id: int | None = None, anonymous_id: str | None = None) -> str:
    if user_id is not None:
        return f"user:{user_id}"
    if anonymous_id:
        return f"anonymous:{anonymous_id}"
    raise ValueError("A customer stream needs a user id or an anonymous id.")


def _my_stream(principal: Principal, params: dict[str, str]) -> str | None:
    if principal.user is not None:
        return customer_stream_for(user_id=principal.user.pk)
    if principal.anonymous_id:
        return customer_stream_for(anonymous_id=principal.anonymous_id)
    return None


topics.register(
    r"customer:me",
    authorize=lambda principal, params: _my_stream(principal, params) is not None,
    resolve=_my_stream,
    description="segments.changed and notification events for the caller",
)


def _has_principal(principal: Principal, params: dict[str, str]) -> bool:
    # Like every per-visitor topic: the socket must say who it is (JWT, cookie or anonymous id).
    return principal.user is not None or bool(principal.anonymous_id)


topics.register(
    rf"session:(?P<token>{SESSION_TOKEN_PATTERN})",
    authorize=_has_principal,
    description="session.state events ({version, state, updated_at}) for holders of the token",
)
