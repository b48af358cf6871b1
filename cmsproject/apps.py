from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CmsProjectConfig(AppConfig):
    name = "cmsproject"
    verbose_name = "Platform"

    def ready(self) -> None:
        from django.contrib.admin.models import LogEntry
        from django.db.models.signals import post_save

        from cmsproject import audit, openapi, roles  # noqa: F401 - openapi registers extensions

        post_migrate.connect(roles.roles_sync_after_migrate)
        post_save.connect(audit.audit_admin_log_entry, sender=LogEntry)
