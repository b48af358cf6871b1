"""Live topics of content: `content:<type>:<slug>`, open to anyone, published content only.

Only publish, update (a new live version) and unpublish are sent, with the live payload, so a
draft can never reach a subscriber. Being public, they are replayed: a client that resumes with
`last_id` gets what it missed (cmsproject.realtime).
"""

from __future__ import annotations

from cmsproject.realtime import topics


def entry_topic(api_id: str, slug: str) -> str:
    return f"content:{api_id}:{slug}"


topics.register(
    r"content:(?P<type>[a-z][a-z0-9_]{0,62}):(?P<slug>[a-z0-9][a-z0-9_-]{0,199})",
    authorize=lambda principal, params: True,
    description="content.published, content.updated, content.unpublished of one entry",
    replay=True,
)
