"""Live topics of customers. `customer:me` is each caller's own stream.

A logged-in caller listens on `user:<id>`; an anonymous browser on `anonymous:<its id>`.
Segment changes and notifications are published to those streams (`customer_stream_for`).
"""

from __future__ import annotations

from cmsproject.realtime import Principal, topics


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
