from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ContentConfig(AppConfig):
    name = "content"
    verbose_name = "Content"

    def ready(self) -> None:
        from content import topics  # noqa: F401 - registers this app's live topics

        post_migrate.connect(builtin_components_after_migrate, sender=self)


def builtin_components_after_migrate(sender: Any, **kwargs: Any) -> None:
    from content.builtin import builtin_components_ensure

    builtin_components_ensure()
