"""Live topics of analytics: counters for staff dashboards."""

from cmsproject.realtime import topics

topics.register(
    r"analytics:live",
    authorize=lambda principal, params: principal.is_staff,
    description="live event counters (staff)",
)
