"""Live topics of experiments: result updates for staff."""

from cmsproject.realtime import topics

topics.register(
    r"experiment:(?P<key>[A-Za-z0-9_.-]{1,100})",
    authorize=lambda principal, params: principal.is_staff,
    description="experiment results as they are recomputed (staff)",
)
