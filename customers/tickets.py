"""Support tickets: opening one, moving it between statuses, reading them.

Every move is checked against `TICKET_MOVES` (the one table of allowed moves), kept as a
`TicketStatusChange` (who, when, a note), announced to webhooks (`ticket.updated`), and a move
to `awaiting_customer` tells the customer in the app (their inbox and open sockets).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from cmsproject.errors import Conflict, FieldError, NotFound, ValidationError
from customers.models import Customer, Order, Ticket, TicketStatusChange
from customers.notifications import Message, notify

Status = Ticket.Status

# from -> the statuses a ticket may move to. Anything else is a 409.
TICKET_MOVES: dict[str, frozenset[str]] = {
    Status.OPEN: frozenset(
        {Status.IN_PROGRESS, Status.AWAITING_CUSTOMER, Status.RESOLVED, Status.CLOSED}
    ),
    Status.IN_PROGRESS: frozenset({Status.AWAITING_CUSTOMER, Status.RESOLVED, Status.CLOSED}),
    Status.AWAITING_CUSTOMER: frozenset({Status.IN_PROGRESS, Status.RESOLVED, Status.CLOSED}),
    Status.RESOLVED: frozenset({Status.CLOSED, Status.OPEN}),  # reopened
    Status.CLOSED: frozenset({Status.OPEN}),
}
SUBJECT_MAX = 200
DESCRIPTION_MAX = 10_000
NOTE_MAX = 5_000


def ticket_moves_from(status: str) -> list[str]:
    """The statuses a ticket in `status` may move to, in the order of `Ticket.Status`."""
    allowed = TICKET_MOVES.get(status, frozenset())
    return [value for value in Status.values if value in allowed]


def _text_errors(value: Any, attr: str, limit: int, *, required: bool) -> list[FieldError]:
    if not isinstance(value, str):
        return [FieldError(attr, "invalid", "A string is required.")]
    if required and not value.strip():
        return [FieldError(attr, "required", "This field may not be blank.")]
    if len(value) > limit:
        return [FieldError(attr, "max_length", f"At most {limit} characters.")]
    return []


def _priority_errors(priority: Any) -> list[FieldError]:
    if priority in Ticket.Priority.values:
        return []
    choices = ", ".join(Ticket.Priority.values)
    return [FieldError("priority", "invalid_choice", f"One of: {choices}.")]


def ticket_create_check(
    *,
    customer: Customer,
    subject: Any,
    description: Any = "",
    priority: Any = Ticket.Priority.NORMAL,
    order_id: int | None = None,
) -> Order | None:
    """Raise ValidationError naming each bad field of a new ticket (the admin form shows them
    the way the API answers them); returns the ticket's order, if any."""
    errors = [
        *_text_errors(subject, "subject", SUBJECT_MAX, required=True),
        *_text_errors(description, "description", DESCRIPTION_MAX, required=False),
        *_priority_errors(priority),
    ]
    if customer.erased_at is not None:
        errors.append(FieldError("customer", "erased", "This customer was erased."))
    order = None
    if order_id is not None:
        # Another customer's order is "no such order": its existence is not theirs to learn.
        order = Order.objects.filter(pk=order_id, customer=customer).first()
        if order is None:
            errors.append(FieldError("order", "does_not_exist", "No such order of this customer."))
    if errors:
        raise ValidationError("The ticket has invalid fields.", errors=errors)
    return order


def ticket_create(
    *,
    customer: Customer,
    subject: str,
    description: str = "",
    priority: str = Ticket.Priority.NORMAL,
    order_id: int | None = None,
    created_by: Any = None,
) -> Ticket:
    """Open a ticket for `customer` (an `open` history row records who opened it)."""
    order = ticket_create_check(
        customer=customer,
        subject=subject,
        description=description,
        priority=priority,
        order_id=order_id,
    )
    with transaction.atomic():
        ticket = Ticket.objects.create(
            customer=customer,
            subject=subject.strip(),
            description=description,
            priority=priority,
            order=order,
        )
        change = TicketStatusChange.objects.create(
            ticket=ticket,
            from_status="",
            to_status=ticket.status,
            changed_by=_user_or_none(created_by),
            changed_at=timezone.now(),
        )
        _ticket_announce(ticket, change)
    return ticket


def ticket_update(
    *,
    ticket: Ticket,
    changed_by: Any,
    status: str | None = None,
    note: str = "",
    priority: str | None = None,
) -> Ticket:
    """Change a ticket's priority and/or move it to `status` (checked against TICKET_MOVES:
    a move it does not allow, or to the status it has, is a Conflict). The row is locked, so two
    agents moving one ticket at once are checked one after the other."""
    errors = _text_errors(note, "note", NOTE_MAX, required=False)
    if status is not None and status not in Status.values:
        choices = ", ".join(Status.values)
        errors.append(FieldError("status", "invalid_choice", f"One of: {choices}."))
    if priority is not None:
        errors += _priority_errors(priority)
    if note and status is None:
        errors.append(FieldError("note", "invalid", "A note goes with a status move."))
    if errors:
        raise ValidationError("The ticket change has invalid fields.", errors=errors)
    with transaction.atomic():
        locked = Ticket.objects.select_for_update().filter(pk=ticket.pk).first()
        if locked is None:
            raise NotFound(f"No ticket has the id {ticket.pk}.")
        fields = ["updated_at"]
        if priority is not None and priority != locked.priority:
            locked.priority = priority
            fields.append("priority")
        change = None
        if status is not None:
            change = _ticket_move(locked, status, changed_by=changed_by, note=note)
            fields.append("status")
        if len(fields) > 1:
            locked.save(update_fields=fields)
        if change is not None:
            _ticket_announce(locked, change)
    return locked


def _ticket_move(ticket: Ticket, status: str, *, changed_by: Any, note: str) -> TicketStatusChange:
    if status not in TICKET_MOVES.get(ticket.status, frozenset()):
        allowed = ", ".join(ticket_moves_from(ticket.status)) or "none"
        raise Conflict(
            f"A ticket cannot move from {ticket.status} to {status}.",
            errors=[
                FieldError(
                    "status",
                    "invalid_move",
                    f"From {ticket.status} a ticket may move to: {allowed}.",
                )
            ],
        )
    change = TicketStatusChange.objects.create(
        ticket=ticket,
        from_status=ticket.status,
        to_status=status,
        note=note,
        changed_by=_user_or_none(changed_by),
        changed_at=timezone.now(),
    )
    ticket.status = status
    return change


def _user_or_none(user: Any) -> Any:
    """Staff and customers have user rows; API keys and anonymous callers do not."""
    if user is None or not getattr(user, "is_authenticated", False) or user.pk is None:
        return None
    return user


def _ticket_announce(ticket: Ticket, change: TicketStatusChange) -> None:
    from content.webhooks import webhooks_dispatch

    webhooks_dispatch(
        event="ticket.updated",
        payload={
            **ticket_payload(ticket),
            "change": {
                "from_status": change.from_status or None,
                "to_status": change.to_status,
                "changed_at": change.changed_at.isoformat(),
            },
        },
        key=f"ticket:{ticket.pk}:change:{change.pk}",
    )
    if change.to_status == Status.AWAITING_CUSTOMER:
        notify(
            customer=ticket.customer,
            key=f"ticket:{ticket.pk}:awaiting:{change.pk}",
            message=Message(
                kind="ticket.awaiting_customer",
                title=f"We need your reply on ticket #{ticket.pk}",
                body=change.note or f"Your ticket “{ticket.subject}” is waiting for your reply.",
                data={"ticket": ticket.pk, "status": ticket.status, "subject": ticket.subject},
                channels=("in_app",),
            ),
        )


def ticket_payload(ticket: Ticket) -> dict[str, Any]:
    """A ticket as webhooks see it: ids and status, not the customer's words."""
    return {
        "id": ticket.pk,
        "customer": ticket.customer_id,
        "status": ticket.status,
        "priority": ticket.priority,
        "order": ticket.order_id,
        "updated_at": (ticket.updated_at or timezone.now()).isoformat(),
    }


# --- Reads -----------------------------------------------------------------------------------
def ticket_list(*, customer_id: int | None = None, status: str | None = None) -> QuerySet[Ticket]:
    tickets = Ticket.objects.prefetch_related("history")
    if customer_id is not None:
        tickets = tickets.filter(customer_id=customer_id)
    if status:
        tickets = tickets.filter(status=status)
    return tickets


def ticket_get(*, ticket_id: int, customer_id: int | None = None) -> Ticket:
    """One ticket with its history; with `customer_id`, only that customer's (another's is
    not found, so its existence is not revealed)."""
    tickets = ticket_list(customer_id=customer_id).select_related("customer")
    ticket = tickets.filter(pk=ticket_id).first()
    if ticket is None:
        raise NotFound(f"No ticket has the id {ticket_id}.")
    return ticket


def customer_tickets_recent(*, customer_id: int, limit: int = 20) -> list[Ticket]:
    return list(Ticket.objects.filter(customer_id=customer_id)[:limit])
