"""Erasure of a customer's personal data, the right to be forgotten (`DELETE /customers/<id>/`).

The row stays, blanked and stamped `erased_at`, so what is not personal (tier, stage, spend, the
anonymized events and roll-ups) still counts in reports, and a second request finds it erased.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from analytics.privacy import events_anonymize_customer
from cmsproject.audit import audit_record
from cmsproject.errors import NotFound
from customers.models import (
    AnonymousId,
    Consent,
    Customer,
    Feedback,
    Notification,
    Ticket,
    TicketStatusChange,
)
from customers.selectors import anonymous_link_forget


def customer_erase(*, customer: Customer, actor: Any, request: HttpRequest | None = None) -> None:
    """Blank the customer's personal data, anonymize their events, disable their login, audit.

    All or nothing, in one transaction. Erasing an erased customer does nothing (no second audit
    entry): clients retry DELETEs, and a retry is not a new erasure.
    """
    with transaction.atomic():
        # The row lock makes two concurrent erasures of one customer run one after the other, so
        # the second sees `erased_at` and stops.
        locked = Customer.objects.select_for_update().filter(pk=customer.pk).first()
        if locked is None:
            raise NotFound(f"Customer {customer.pk} does not exist.")
        if locked.erased_at is not None:
            customer.refresh_from_db()
            return

        # Read before deleting: events recorded under these ids before identify are theirs too.
        anonymous_ids = list(
            AnonymousId.objects.filter(customer=locked).values_list("value", flat=True)
        )
        anonymized = events_anonymize_customer(customer_id=locked.pk, anonymous_ids=anonymous_ids)
        Consent.objects.filter(customer=locked).delete()
        AnonymousId.objects.filter(customer=locked).delete()
        transaction.on_commit(lambda: anonymous_link_forget(anonymous_ids=anonymous_ids))
        login_disabled = _login_disable(locked.user) if locked.user_id else False
        engagement = _engagement_erase(locked, anonymous_ids)

        locked.email = ""
        locked.name = ""
        locked.external_id = None
        locked.attributes = {}
        locked.preferences = {}
        locked.user = None
        locked.erased_at = timezone.now()
        locked.save(
            update_fields=[
                "email",
                "name",
                "external_id",
                "attributes",
                "preferences",
                "user",
                "erased_at",
                "updated_at",
            ]
        )
        audit_record(
            actor=actor,
            action="customers.erase",
            object_type="customers.customer",
            object_id=str(locked.pk),
            # Never str(customer): that is the email being erased.
            object_repr=f"customer {locked.pk}",
            details={
                "events": anonymized.events,
                "rollups": anonymized.rollups,
                "anonymous_ids": len(anonymous_ids),
                "login_disabled": login_disabled,
                **engagement,
            },
            request=request,
        )
    customer.refresh_from_db()


ERASED_TEXT = "[erased]"


def _engagement_erase(customer: Customer, anonymous_ids: list[str]) -> dict[str, int]:
    """Blank what the customer wrote or was told; keep what was done and when (statuses, times,
    scores, amounts), so reports and the tickets' timelines still add up. Returns the counts.

    Orders are kept whole: they are financial records a shop must keep for its books (tax law
    outlives a deletion request, GDPR Art. 17(3)(b)), amounts and lines alike (the lines are
    what was sold, the audit trail of the amounts). Nothing in them names the person once the
    profile is blanked: the delivery address, payment details and the like are not stored here.
    """
    notifications = Notification.objects.filter(customer=customer)
    # Unsent ones would go out to a blanked address (or not at all): settled as skipped.
    notifications.filter(status=Notification.Status.PENDING).update(
        status=Notification.Status.SKIPPED, reason="the customer was erased"
    )
    blanked_notifications = notifications.update(title="", body="", data={})
    tickets = Ticket.objects.filter(customer=customer)
    blanked_tickets = tickets.update(subject=ERASED_TEXT, description=ERASED_TEXT)
    # Agents' notes are about the customer ("sent the photo of the broken mug to ada@...").
    TicketStatusChange.objects.filter(ticket__customer=customer).exclude(note="").update(
        note=ERASED_TEXT
    )
    # Feedback given before identify (under an anonymous id of theirs) is theirs too.
    feedback = Feedback.objects.filter(customer=customer)
    if anonymous_ids:
        feedback = Feedback.objects.filter(Q(customer=customer) | Q(anonymous_id__in=anonymous_ids))
    blanked_feedback = feedback.update(comment="", key_phrases=[], anonymous_id="", context={})
    return {
        "notifications": blanked_notifications,
        "tickets": blanked_tickets,
        "feedback": blanked_feedback,
    }


def _login_disable(user: AbstractBaseUser) -> bool:
    """Disable and blank the customer's login. Returns whether it was disabled.

    A staff account is only unlinked, never disabled: erasing a customer profile (an API key with
    `customers:write` may) must not be a way to lock a staff member out of the admin.
    """
    if getattr(user, "is_staff", False):
        return False
    user.set_unusable_password()
    user.is_active = False
    # The username is often the email address; it must stay unique, hence a random one.
    setattr(user, user.USERNAME_FIELD, f"erased-{uuid.uuid4().hex}")
    setattr(user, user.get_email_field_name(), "")
    for field in ("first_name", "last_name"):
        if hasattr(user, field):
            setattr(user, field, "")
    user.save()
    return True
