from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate

EXPOSURE_SCHEMA = {
    "type": "object",
    "required": ["experiment", "variant"],
    "properties": {
        "experiment": {"type": "string", "maxLength": 63},
        "variant": {"type": "string", "maxLength": 63},
    },
}


def exposure_event_type_ensure(sender: Any, **kwargs: Any) -> None:
    """Exposures are events of a known type, checked like any other (clients send them too).
    After every migrate, so a test database flush restores it."""
    from analytics.models import EventType
    from analytics.reports import EXPOSURE_EVENT
    from analytics.selectors import event_type_catalog_forget

    _, created = EventType.objects.get_or_create(
        name=EXPOSURE_EVENT,
        defaults={
            "description": "A unit saw an experiment's variant (server-side from delivery, or "
            "sent by an SDK).",
            "schema": EXPOSURE_SCHEMA,
        },
    )
    if created:
        event_type_catalog_forget()


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Experiments"

    def ready(self) -> None:
        from experiments import topics  # noqa: F401 - registers this app's live topics

        post_migrate.connect(exposure_event_type_ensure, sender=self)
