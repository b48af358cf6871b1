from __future__ import annotations

from celery import shared_task

from cmsproject.services import audit_prune


@shared_task
def audit_prune_task() -> int:
    """Idempotent: a second run finds nothing past the cutoff."""
    return audit_prune()
