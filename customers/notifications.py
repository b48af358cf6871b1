"""Notifications: one function to send (`notify`), one adapter per channel.

`notify` decides, per channel, whether the customer gets the message (their chosen channels,
their consents) and writes one `Notification` row per channel keyed by the business event, so a
retried order or task never writes or sends a second one. Sending happens after commit, in a
Celery task with retries (`notification_deliver`), through the adapter that settings name for
the channel (`CMS_NOTIFICATION_CHANNELS`). Adding a channel is an adapter and a settings line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.module_loading import import_string

from cmsproject.celery import enqueue_on_commit
from cmsproject.realtime import publish
from customers.models import Consent, Customer, Notification

log = logging.getLogger(__name__)


class TemporaryFailure(Exception):
    """The channel may work later (a timeout, a 5xx): the task retries with backoff."""


class PermanentFailure(Exception):
    """Retrying cannot help (no address, rejected recipient): recorded as failed at once."""


class Channel:
    """An adapter: sends one notification. `consent` names the Consent purpose the channel
    needs (None: none, as for messages inside our own app)."""

    name: ClassVar[str] = ""
    consent: ClassVar[str | None] = None

    def send(self, notification: Notification) -> None:
        raise NotImplementedError


class EmailChannel(Channel):
    name = "email"
    consent = Consent.Purpose.EMAIL

    def send(self, notification: Notification) -> None:
        address = notification.customer.email
        if not address:
            raise PermanentFailure("The customer has no email address.")
        message = EmailMessage(
            subject=notification.title,
            body=notification.body,
            to=[address],
            # Mail servers and clients thread and deduplicate on it; it is also our key.
            headers={"X-Notification-Key": notification.key},
        )
        try:
            message.send()
        except OSError as exc:  # SMTP errors are OSErrors: the server may be back later
            raise TemporaryFailure(str(exc)) from exc


class InAppChannel(Channel):
    """Stored (the row is the inbox: `/api/v1/me/notifications/`) and pushed to the customer's
    open sockets as `notification` on `customer:me`."""

    name = "in_app"

    def send(self, notification: Notification) -> None:
        from customers.selectors import customer_streams

        message = notification_message(notification)
        for stream in customer_streams(customer_ids=[notification.customer_id]).get(
            notification.customer_id, []
        ):
            publish(stream, "notification", message)


class LogSmsChannel(Channel):
    """Stands in for an SMS provider: logs the text. A real adapter (an HTTP call to the
    provider) replaces it through CMS_NOTIFICATION_CHANNELS."""

    name = "sms"
    consent = Consent.Purpose.SMS

    def send(self, notification: Notification) -> None:
        phone = (notification.customer.attributes or {}).get("phone")
        if not phone:
            raise PermanentFailure("The customer has no phone number (attribute `phone`).")
        log.info("sms to %s: %s", phone, notification.body)


class WebhookChannel(Channel):
    """Hands the message to the site's own systems through the signed, retried outgoing
    webhooks (event `notification.created`), e.g. for a push service."""

    name = "webhook"

    def send(self, notification: Notification) -> None:
        from content.webhooks import webhooks_dispatch

        webhooks_dispatch(
            event="notification.created",
            payload={**notification_message(notification), "customer": notification.customer_id},
            key=f"notification:{notification.pk}",
        )


def channel_adapters() -> dict[str, Channel]:
    return {
        name: import_string(path)() for name, path in settings.CMS_NOTIFICATION_CHANNELS.items()
    }


def notification_message(notification: Notification) -> dict[str, Any]:
    """What a client sees of a notification (inbox and socket alike)."""
    return {
        "id": notification.pk,
        "kind": notification.kind,
        "title": notification.title,
        "body": notification.body,
        "data": notification.data,
        "created_at": notification.created_at.isoformat(),
        "read_at": notification.read_at.isoformat() if notification.read_at else None,
    }


@dataclass(frozen=True)
class Message:
    kind: str  # what happened: `order.created`, `ticket.awaiting_customer`
    title: str
    body: str
    data: Mapping[str, Any]
    # Transactional messages (an order confirmation) go unless the customer refused the
    # channel; marketing ones need the consent given.
    transactional: bool = True
    # The channels this kind of message goes on whatever the customer chose (a ticket waiting on
    # the customer is an in-app message only); None: the customer's channels. Consent still counts.
    channels: tuple[str, ...] | None = None


def _channels_for(
    customer: Customer, adapters: Mapping[str, Channel], message: Message
) -> list[str]:
    if message.channels is not None:
        wanted = message.channels
    else:
        chosen = (customer.preferences or {}).get("channels")
        wanted = chosen if chosen else settings.CMS_NOTIFICATION_DEFAULT_CHANNELS
    return [name for name in wanted if name in adapters]


def _refusal(
    customer: Customer, adapter: Channel, consents: dict[str, bool], message: Message
) -> str:
    if customer.erased_at is not None:
        return "the customer was erased"
    if adapter.consent is None:
        return ""
    given = consents.get(adapter.consent)
    if given is False:
        return f"the customer refused {adapter.consent}"
    if given is None and not message.transactional:
        return f"no {adapter.consent} consent for a marketing message"
    return ""


@transaction.atomic
def notify(*, customer: Customer, key: str, message: Message) -> list[Notification]:
    """Write the customer's notifications of one business event (`key`, e.g. `order:42:created`)
    and send them after commit. Idempotent: calling it again with the same key returns the same
    rows and sends nothing more. Channels the customer did not choose get no row; channels they
    refused get a `skipped` row with the reason."""
    adapters = channel_adapters()
    consents = dict(customer.consents.values_list("purpose", "granted"))
    rows = []
    for channel in _channels_for(customer, adapters, message):
        reason = _refusal(customer, adapters[channel], consents, message)
        row, created = Notification.objects.get_or_create(
            key=f"{key}:{channel}",
            defaults={
                "customer": customer,
                "kind": message.kind,
                "channel": channel,
                "title": message.title,
                "body": message.body,
                "data": dict(message.data),
                "status": Notification.Status.SKIPPED if reason else Notification.Status.PENDING,
                "reason": reason,
            },
        )
        if created and not reason:
            from customers.tasks import notification_deliver_task

            enqueue_on_commit(notification_deliver_task, row.pk)
        rows.append(row)
    return rows


def notification_deliver(*, notification_id: int, final_attempt: bool = False) -> str:
    """Send one pending notification through its channel's adapter; the outcome is recorded on
    the row. Runs in a task: a row already sent (a retried or duplicated task) is left alone,
    and the row is locked while sending so two workers cannot both send it. Raises
    TemporaryFailure for the task to retry, unless `final_attempt`."""
    retry: TemporaryFailure | None = None
    with transaction.atomic():
        notification = (
            Notification.objects.select_for_update()
            .select_related("customer")
            .filter(pk=notification_id)
            .first()
        )
        if notification is None or notification.status != Notification.Status.PENDING:
            return notification.status if notification else "missing"
        adapter = channel_adapters().get(notification.channel)
        notification.attempts += 1
        try:
            if adapter is None:
                raise PermanentFailure(f"No adapter for channel {notification.channel!r}.")
            adapter.send(notification)
        except PermanentFailure as exc:
            notification.status, notification.reason = Notification.Status.FAILED, str(exc)[:200]
        except TemporaryFailure as exc:
            notification.reason = str(exc)[:200]
            if final_attempt:
                notification.status = Notification.Status.FAILED
            else:
                retry = exc  # raised once the attempt is recorded: inside, it would roll back
        else:
            notification.status, notification.sent_at = Notification.Status.SENT, timezone.now()
            notification.reason = ""
        notification.save(update_fields=["attempts", "reason", "status", "sent_at"])
    if retry is not None:
        raise retry
    return notification.status


def customer_inbox(*, customer: Customer, unread: bool = False) -> QuerySet[Notification]:
    """The customer's in-app notifications (their inbox), newest first: those sent or on their
    way, not those skipped or failed."""
    inbox = Notification.objects.filter(
        customer=customer,
        channel="in_app",
        status__in=[Notification.Status.PENDING, Notification.Status.SENT],
    ).order_by("-id")
    return inbox.filter(read_at__isnull=True) if unread else inbox


def notifications_mark_read(*, customer: Customer, ids: Iterable[int]) -> int:
    return Notification.objects.filter(
        customer=customer, channel="in_app", pk__in=list(ids), read_at__isnull=True
    ).update(read_at=timezone.now())


# A pending row older than this has outlived its task's retries (5 s doubling, capped at 600 s,
# CMS_NOTIFICATION_MAX_ATTEMPTS times): its task was lost.
PENDING_LOST_AFTER = timedelta(minutes=30)
PENDING_GIVE_UP_AFTER = timedelta(days=2)


def notifications_pending_resend(*, now: datetime | None = None) -> int:
    """Enqueue again each notification still pending long after it was written (its task was
    lost with a worker); one that stayed pending for days is failed instead. Sending stays
    at-most-once: `notification_deliver` sends only a row that is still pending."""
    from customers.tasks import notification_deliver_task

    now = now or timezone.now()
    stale = Notification.objects.filter(
        status=Notification.Status.PENDING, created_at__lt=now - PENDING_LOST_AFTER
    )
    stale.filter(created_at__lt=now - PENDING_GIVE_UP_AFTER).update(
        status=Notification.Status.FAILED, reason="never sent: gave up after two days"
    )
    ids = list(stale.values_list("pk", flat=True)[:1000])
    for notification_id in ids:
        enqueue_on_commit(notification_deliver_task, notification_id)
    return len(ids)
