"""The customer's notification inbox (`/api/v1/me/notifications/`, customer JWT only: no way to
name another customer's), and erasure of what orders, tickets, notifications and feedback hold
of a customer."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from rest_framework.test import APIClient

from cmsproject.models import AuditEntry
from cmsproject.services import api_key_create
from customers.erasure import customer_erase
from customers.models import (
    AnonymousId,
    Customer,
    Feedback,
    Notification,
    Order,
    OrderLine,
    Ticket,
    TicketStatusChange,
)
from customers.notifications import Message, notify
from customers.orders import order_place
from customers.services import customer_token_issue
from customers.tasks import notification_deliver_task
from customers.tickets import ticket_create, ticket_update
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)

INBOX = "/api/v1/me/notifications/"
READ = "/api/v1/me/notifications/read/"
PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
def tasks_inline(settings) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CMS_EMBEDDED_TASKS_INLINE = True


def customer_client(customer: Customer) -> APIClient:
    client = APIClient()
    token = customer_token_issue(external_id=customer.external_id)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def tell(customer: Customer, key: str, title: str = "Hello", **message: Any) -> list:
    return notify(
        customer=customer,
        key=key,
        message=Message(
            kind=message.pop("kind", "test.note"),
            title=title,
            body=f"{title}, body",
            data=message.pop("data", {}),
            **message,
        ),
    )


# --- the inbox ---------------------------------------------------------------------------------
def test_the_inbox_lists_the_callers_in_app_notifications_newest_first():
    customer, stranger = CustomerFactory(), CustomerFactory()
    for n in range(3):
        tell(customer, f"k{n}", title=f"Note {n}")  # in_app and email (the defaults)
    tell(stranger, "theirs", title="Not yours")

    body = customer_client(customer).get(INBOX).json()

    assert [item["title"] for item in body["results"]] == ["Note 2", "Note 1", "Note 0"]
    assert set(body["results"][0]) == {
        "id",
        "kind",
        "title",
        "body",
        "data",
        "created_at",
        "read_at",
    }
    assert body["next"] is None


def test_the_inbox_pages_by_cursor_and_filters_unread():
    customer = CustomerFactory(preferences={"channels": ["in_app"]})
    rows = [tell(customer, f"k{n}", title=f"Note {n}")[0] for n in range(5)]
    client = customer_client(customer)
    client.post(READ, {"ids": [rows[4].pk, rows[3].pk]}, format="json")

    first = client.get(INBOX, {"page_size": 3}).json()
    second = client.get(first["next"]).json()
    unread = client.get(INBOX, {"unread": 1}).json()

    assert [n["title"] for n in first["results"] + second["results"]] == [
        "Note 4",
        "Note 3",
        "Note 2",
        "Note 1",
        "Note 0",
    ]
    assert [n["title"] for n in unread["results"]] == ["Note 2", "Note 1", "Note 0"]


def test_skipped_notifications_are_not_in_the_inbox():
    customer = CustomerFactory(preferences={"channels": ["in_app"]})
    Notification.objects.create(
        customer=customer,
        key="old:in_app",
        kind="test",
        channel="in_app",
        title="Skipped",
        body="",
        status="skipped",
        reason="the customer was erased",
    )

    assert customer_client(customer).get(INBOX).json()["results"] == []


def test_marking_read_touches_only_the_callers_notifications():
    customer, stranger = CustomerFactory(), CustomerFactory()
    [mine, _email] = tell(customer, "mine")
    [theirs, _] = tell(stranger, "theirs")

    response = customer_client(customer).post(
        READ, {"ids": [mine.pk, theirs.pk, 999999]}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == {"marked": 1}
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.read_at is not None
    assert theirs.read_at is None
    again = customer_client(customer).post(READ, {"ids": [mine.pk]}, format="json")
    assert again.json() == {"marked": 0}  # already read: its read_at stays the first one


def test_there_is_no_way_to_read_another_customers_notifications():
    customer, stranger = CustomerFactory(), CustomerFactory()
    [theirs, _] = tell(stranger, "theirs", title="Secret")
    client = customer_client(customer)

    by_id = client.get(f"{INBOX}{theirs.pk}/")
    by_query = client.get(INBOX, {"customer": stranger.pk, "id": theirs.pk})

    assert by_id.status_code == 404
    assert by_id["Content-Type"] == PROBLEM
    assert by_query.json()["results"] == []
    assert "Secret" not in by_id.content.decode() + by_query.content.decode()


def test_staff_api_keys_and_anonymous_callers_have_no_inbox(staff_client, api_client):
    _, raw = api_key_create(name="crm", scopes=["customers:read"], created_by=None)
    keyed = APIClient()
    keyed.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")

    assert api_client.get(INBOX).status_code == 401
    assert api_client.post(READ, {"ids": [1]}, format="json").status_code == 401
    assert staff_client.get(INBOX).status_code == 403
    assert staff_client.post(READ, {"ids": [1]}, format="json").status_code == 403
    assert keyed.get(INBOX).status_code == 403


@pytest.mark.parametrize(
    ("body", "attr"),
    [({}, "ids"), ({"ids": "1,2"}, "ids"), ({"ids": [0]}, "ids[0]"), ({"ids": ["x"]}, "ids[0]")],
)
def test_a_bad_read_request_is_a_400_naming_the_field(body, attr):
    response = customer_client(CustomerFactory()).post(READ, body, format="json")

    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert attr in [error["attr"] for error in response.json()["errors"]]


def test_a_message_kind_may_name_its_channels_over_the_customers_choice():
    customer = CustomerFactory(preferences={"channels": ["email", "sms"]})

    rows = tell(customer, "ticket:1:awaiting:1", channels=("in_app",))

    assert [(row.channel, Notification.objects.get(pk=row.pk).status) for row in rows] == [
        ("in_app", "sent")
    ]
    assert mail.outbox == []


# --- erasure -----------------------------------------------------------------------------------
@pytest.fixture
def engaged(events_buffer) -> Customer:
    """A customer with an order, a ticket moved with a note, notifications sent and pending,
    feedback given as a customer and before identify (under an anonymous id of theirs)."""
    customer = CustomerFactory(email="ada@example.com", preferences={"channels": ["in_app"]})
    AnonymousId.objects.create(customer=customer, value="anon-ada")
    order_place(
        customer_id=customer.pk,
        external_id="ADA-1",
        currency="GBP",
        lines=[{"sku": "ENG-1", "name": "Analytical engine", "quantity": 1, "unit_price": "500"}],
        total="500.00",
    )
    ticket = ticket_create(customer=customer, subject="Ada's engine", description="At 12 St James")
    ticket_update(ticket=ticket, changed_by=None, status="awaiting_customer", note="Ada, call us")
    Notification.objects.create(
        customer=customer,
        key="pending:email",
        kind="order.created",
        channel="email",
        title="For Ada",
        body="Dear Ada",
        data={"name": "Ada"},
    )
    Feedback.objects.create(customer=customer, score=9, comment="Ada loves it", key_phrases=["ada"])
    Feedback.objects.create(anonymous_id="anon-ada", score=3, comment="Ada was anonymous")
    return customer


def test_erasure_blanks_notifications_tickets_and_feedback_and_keeps_orders(engaged):
    bystander = CustomerFactory()
    bystander_ticket = ticket_create(customer=bystander, subject="Mine stays")
    Feedback.objects.create(customer=bystander, score=7, comment="Stays")

    customer_erase(customer=engaged, actor=None)

    notifications = Notification.objects.filter(customer=engaged)
    assert notifications.count() == 3  # order confirmation, ticket message, the pending email
    assert set(notifications.values_list("title", "body")) == {("", "")}
    assert [n.data for n in notifications] == [{}, {}, {}]
    assert notifications.get(key="pending:email").status == "skipped"
    ticket = Ticket.objects.get(customer=engaged)
    assert (ticket.subject, ticket.description, ticket.status) == (
        "[erased]",
        "[erased]",
        "awaiting_customer",
    )
    notes = TicketStatusChange.objects.filter(ticket=ticket).values_list("note", flat=True)
    assert sorted(notes) == ["", "[erased]"]
    feedback = Feedback.objects.exclude(customer=bystander).order_by("pk")
    assert [(f.score, f.comment, f.key_phrases, f.anonymous_id) for f in feedback] == [
        (9, "", [], ""),
        (3, "", [], ""),
    ]
    # Orders are the shop's financial records: kept whole.
    order = Order.objects.get(customer=engaged)
    assert (order.external_id, order.total) == ("ADA-1", Decimal("500.00"))
    assert list(OrderLine.objects.values_list("name", flat=True)) == ["Analytical engine"]
    # Nobody else's data is touched.
    bystander_ticket.refresh_from_db()
    assert bystander_ticket.subject == "Mine stays"
    assert Feedback.objects.get(customer=bystander).comment == "Stays"
    entry = AuditEntry.objects.get(action="customers.erase")
    assert (entry.details["notifications"], entry.details["tickets"]) == (3, 1)
    assert entry.details["feedback"] == 2


def test_a_pending_notification_of_an_erased_customer_is_never_sent(engaged):
    pending = Notification.objects.get(key="pending:email")

    customer_erase(customer=engaged, actor=None)
    notification_deliver_task.apply(args=[pending.pk])

    pending.refresh_from_db()
    assert (pending.status, pending.sent_at) == ("skipped", None)
    assert mail.outbox == []


def test_an_erased_customer_gets_no_new_notifications(engaged):
    customer_erase(customer=engaged, actor=None)
    engaged.refresh_from_db()

    rows = tell(engaged, "after:erasure", title="Still there?")

    assert {(row.status, row.reason) for row in rows} == {("skipped", "the customer was erased")}
    assert mail.outbox == []


def test_a_notification_whose_task_was_lost_is_sent_by_the_sweep_once():
    from datetime import timedelta

    from django.utils import timezone

    from customers.notifications import notifications_pending_resend

    customer = CustomerFactory(email="lost@example.com", preferences={"channels": ["email"]})
    lost = Notification.objects.create(
        customer=customer,
        key="lost:1:email",
        kind="order.created",
        channel="email",
        title="Order confirmed",
        body="Thanks",
        status=Notification.Status.PENDING,
    )
    ancient = Notification.objects.create(
        customer=customer,
        key="lost:2:email",
        kind="order.created",
        channel="email",
        title="Old",
        body="Old",
        status=Notification.Status.PENDING,
    )
    now = timezone.now()
    Notification.objects.filter(pk=lost.pk).update(created_at=now - timedelta(hours=1))
    Notification.objects.filter(pk=ancient.pk).update(created_at=now - timedelta(days=3))
    fresh = notify(
        customer=customer,
        key="fresh:1",
        message=Message(kind="order.created", title="New", body="New", data={}),
    )[0]
    mail.outbox.clear()

    assert notifications_pending_resend() == 1
    assert [m.subject for m in mail.outbox] == ["Order confirmed"]
    assert notifications_pending_resend() == 0  # sent: nothing more
    lost.refresh_from_db()
    ancient.refresh_from_db()
    assert lost.status == Notification.Status.SENT
    assert ancient.status == Notification.Status.FAILED and "gave up" in ancient.reason
    assert Notification.objects.get(pk=fresh.pk).status == Notification.Status.SENT
    assert len(mail.outbox) == 1
