"""Orders through `POST /api/v1/orders/`: stored with their lines, confirmed to the customer on
their channels (exactly once, whatever is retried), announced to webhooks, and counted in the
customer's spend through the real event pipeline. Bad input is refused whole, naming the field.

Enqueued tasks run inline in both passes (`tasks_inline`); the services pass has its own test
with a real worker (test_engagement_worker.py).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemEmailBackend
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from cmsproject.roles import roles_sync
from cmsproject.services import api_key_create
from content.models import WebhookDelivery
from content.webhooks import webhook_endpoint_create
from customers.models import Consent, Customer, Notification, Order, OrderLine
from customers.notifications import notification_deliver
from customers.orders import order_place
from customers.tasks import notification_deliver_task
from tests.content.webhook_receiver import webhook_receiver  # noqa: F401 - a fixture
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

ORDERS = "/api/v1/orders/"
PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
def tasks_inline(settings, events_buffer) -> None:
    """Sends run here at once, in both passes; events go to the pass's real (emptied) buffer."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CMS_EMBEDDED_TASKS_INLINE = True


@pytest.fixture
def email_customer(db) -> Customer:
    """Prefers email only, and said yes to it."""
    customer = CustomerFactory(preferences={"channels": ["email"]})
    Consent.objects.create(customer=customer, purpose="email", granted=True)
    return customer


def order_body(buyer: Customer | None = None, /, **changes: Any) -> dict[str, Any]:
    """Subtotal 2 x 12.50 + 1 x 5.00 = 30.00; + 6.00 tax + 4.50 shipping - 3.00 = 37.50."""
    body = {
        "customer": buyer.pk if buyer else None,
        "external_id": "A-1001",
        "currency": "EUR",
        "lines": [
            {"sku": "MUG-1", "name": "Blue mug", "quantity": 2, "unit_price": "12.50"},
            {"sku": "TEA-7", "name": "Green tea", "quantity": 1, "unit_price": 5},
        ],
        "tax": "6.00",
        "shipping": 4.5,
        "discount": "3",
        "total": "37.50",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


class FlakyEmailBackend(LocmemEmailBackend):
    """The mail server is away for the first `failures_left` sends (an OSError, as smtplib
    raises), then delivers to `mail.outbox`."""

    failures_left = 0

    def send_messages(self, messages: Any) -> int:
        if FlakyEmailBackend.failures_left > 0:
            FlakyEmailBackend.failures_left -= 1
            raise ConnectionRefusedError("Connection refused by the mail server")
        return super().send_messages(messages)


# --- placing an order --------------------------------------------------------------------------
def test_an_order_is_stored_with_its_lines_and_amounts(staff_client, email_customer):
    response = staff_client.post(ORDERS, order_body(email_customer), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["customer"] == email_customer.pk
    assert (body["external_id"], body["currency"], body["status"]) == ("A-1001", "EUR", "placed")
    assert [body[k] for k in ("subtotal", "tax", "shipping", "discount", "total")] == [
        "30.00",
        "6.00",
        "4.50",
        "3.00",
        "37.50",
    ]
    assert body["lines"] == [
        {
            "sku": "MUG-1",
            "name": "Blue mug",
            "quantity": 2,
            "unit_price": "12.50",
            "line_total": "25.00",
        },
        {
            "sku": "TEA-7",
            "name": "Green tea",
            "quantity": 1,
            "unit_price": "5.00",
            "line_total": "5.00",
        },
    ]
    assert staff_client.get(f"{ORDERS}{body['id']}/").json() == body


def test_a_customer_who_chose_email_and_consented_gets_exactly_one_email(
    staff_client, email_customer, events_buffer
):
    response = staff_client.post(ORDERS, order_body(email_customer), format="json")
    assert response.status_code == 201

    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == [email_customer.email]
    assert email.subject == "Order confirmed"
    assert "2 x Blue mug (MUG-1) at 12.50 EUR: 25.00 EUR" in email.body
    assert "Total: 37.50 EUR" in email.body
    [row] = Notification.objects.filter(customer=email_customer)  # email only: no in-app row
    assert (row.channel, row.status, row.attempts) == ("email", "sent", 1)
    assert row.data == {
        "order": response.json()["id"],
        "external_id": "A-1001",
        "total": "37.50",
        "currency": "EUR",
    }

    # The task again (a redelivered message), the service again, and the order posted again.
    notification_deliver_task.apply(args=[row.pk])
    assert notification_deliver(notification_id=row.pk) == "sent"
    again = staff_client.post(ORDERS, order_body(email_customer), format="json")

    assert again.status_code == 200
    assert again.json() == response.json()
    assert len(mail.outbox) == 1
    assert Order.objects.count() == 1
    assert OrderLine.objects.count() == 2
    assert Notification.objects.count() == 1
    assert events_buffer.pending_count() == 1  # one purchase event, not two


def test_a_customer_who_refused_email_gets_none_and_the_row_says_why(staff_client):
    customer = CustomerFactory(preferences={"channels": ["email"]})
    Consent.objects.create(customer=customer, purpose="email", granted=False)

    response = staff_client.post(ORDERS, order_body(customer), format="json")

    assert response.status_code == 201
    assert mail.outbox == []
    [row] = Notification.objects.filter(customer=customer)
    assert (row.channel, row.status, row.reason) == (
        "email",
        "skipped",
        "the customer refused email",
    )
    notification_deliver_task.apply(args=[row.pk])  # a stray task sends nothing either
    assert mail.outbox == []


def test_without_chosen_channels_the_confirmation_goes_in_app_and_by_email(staff_client):
    customer = CustomerFactory()  # no preferences, no consent answer: a transactional message

    staff_client.post(ORDERS, order_body(customer), format="json")

    rows = Notification.objects.filter(customer=customer).order_by("channel")
    assert [(row.channel, row.status) for row in rows] == [("email", "sent"), ("in_app", "sent")]
    assert len(mail.outbox) == 1


def test_a_temporary_smtp_failure_is_retried_and_the_email_sent_once(
    settings, staff_client, email_customer
):
    settings.EMAIL_BACKEND = f"{FlakyEmailBackend.__module__}.FlakyEmailBackend"
    FlakyEmailBackend.failures_left = 1

    response = staff_client.post(ORDERS, order_body(email_customer), format="json")

    assert response.status_code == 201
    assert FlakyEmailBackend.failures_left == 0  # the first attempt did fail
    assert len(mail.outbox) == 1
    row = Notification.objects.get(customer=email_customer)
    assert (row.status, row.attempts, row.reason) == ("sent", 2, "")
    notification_deliver_task.apply(args=[row.pk])
    assert len(mail.outbox) == 1


def test_the_purchase_event_reaches_the_drain_and_the_spend_grows(
    staff_client, email_customer, drain
):
    from analytics.models import Event

    email_customer.total_spend = Decimal("100.00")
    email_customer.save(update_fields=["total_spend"])

    order_id = staff_client.post(ORDERS, order_body(email_customer), format="json").json()["id"]
    drain()

    email_customer.refresh_from_db()
    assert email_customer.total_spend == Decimal("137.50")
    assert email_customer.lifecycle_stage == "customer"
    event = Event.objects.get(id=f"order-{order_id}")
    assert (event.type, event.customer_id) == ("purchase", email_customer.pk)
    assert event.properties == {
        "amount": 37.5,
        "currency": "EUR",
        "order_id": order_id,
        "items": 3,
    }
    # Posting the order number again appends nothing: the spend does not grow twice.
    staff_client.post(ORDERS, order_body(email_customer), format="json")
    drain()
    email_customer.refresh_from_db()
    assert email_customer.total_spend == Decimal("137.50")


def test_webhooks_hear_order_created(staff_client, email_customer, webhook_receiver):  # noqa: F811
    webhook_endpoint_create(url=webhook_receiver.url, events=["order.created"], secret="s" * 20)

    order_id = staff_client.post(ORDERS, order_body(email_customer), format="json").json()["id"]

    [request] = webhook_receiver.wait_for(1)
    document = request.json()
    assert request.signature_is_valid("s" * 20)
    assert document["event"] == "order.created"
    assert (document["data"]["id"], document["data"]["total"]) == (order_id, "37.50")
    assert [line["sku"] for line in document["data"]["lines"]] == ["MUG-1", "TEA-7"]


def test_the_customer_may_be_named_by_the_sites_user_id(staff_client, email_customer):
    body = order_body(customer_external_id=email_customer.external_id)
    del body["external_id"]  # no order number: every post is a new order

    first = staff_client.post(ORDERS, body, format="json")
    second = staff_client.post(ORDERS, body, format="json")

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["customer"] == email_customer.pk
    assert first.json()["external_id"] is None
    assert Order.objects.filter(customer=email_customer).count() == 2


def test_an_order_number_of_another_customer_is_a_conflict(staff_client, email_customer):
    staff_client.post(ORDERS, order_body(email_customer), format="json")
    stranger = CustomerFactory()

    response = staff_client.post(ORDERS, order_body(stranger), format="json")

    assert response.status_code == 409
    assert response["Content-Type"] == PROBLEM
    assert [e["attr"] for e in response.json()["errors"]] == ["external_id"]
    assert not Order.objects.filter(customer=stranger).exists()


# --- refused input: 4xx naming the field, nothing written, nothing appended, nothing sent ------
def _lines(n: int) -> list[dict[str, Any]]:
    return [{"sku": f"S{i}", "name": "Pin", "quantity": 1, "unit_price": "1.00"} for i in range(n)]


BAD_ORDERS = {
    "negative total": ({"total": "-1.00"}, "total"),
    "unknown currency": ({"currency": "XXQ"}, "currency"),
    "total mismatch": ({"total": "40.00"}, "total"),
    "quantity 0": (
        {"lines": [{"sku": "MUG-1", "name": "Blue mug", "quantity": 0, "unit_price": "30.00"}]},
        "lines[0].quantity",
    ),
    "three decimals in a price": (
        {"lines": [{"sku": "MUG-1", "name": "Blue mug", "quantity": 1, "unit_price": "30.005"}]},
        "lines[0].unit_price",
    ),
    "three decimals in the tax": ({"tax": "6.001", "total": "37.501"}, "tax"),
    "negative shipping": ({"shipping": "-4.50", "total": "28.50"}, "shipping"),
    "no lines": ({"lines": []}, "lines"),
    "201 lines": ({"lines": _lines(201), "total": "208.50"}, "lines"),
    "a line without a sku": (
        {"lines": [{"name": "Blue mug", "quantity": 1, "unit_price": "30.00"}]},
        "lines[0].sku",
    ),
    "a quantity in words": (
        {"lines": [{"sku": "M", "name": "Blue mug", "quantity": "two", "unit_price": "1"}]},
        "lines[0].quantity",
    ),
    "a discount larger than the order": ({"discount": "50.00", "total": "0.00"}, "discount"),
    "unknown customer": ({"customer": 987654321}, "customer"),
    "unknown site user": (
        {"customer": None, "customer_external_id": "nobody-here"},
        "customer_external_id",
    ),
    "no customer": ({"customer": None}, "customer"),
    "no currency": ({"currency": None}, "currency"),
    "two ways to name the customer": ({"customer_external_id": "site-user-0"}, "customer"),
}


@pytest.mark.parametrize(("changes", "attr"), BAD_ORDERS.values(), ids=BAD_ORDERS.keys())
def test_bad_orders_are_refused_naming_the_field_and_change_nothing(
    staff_client, email_customer, events_buffer, changes, attr
):
    response = staff_client.post(ORDERS, order_body(email_customer, **changes), format="json")

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == PROBLEM
    assert attr in [error["attr"] for error in response.json()["errors"]]
    assert not Order.objects.exists()
    assert not OrderLine.objects.exists()
    assert not Notification.objects.exists()
    assert not WebhookDelivery.objects.exists()
    assert events_buffer.pending_count() == 0
    assert mail.outbox == []


def test_every_bad_field_is_named_at_once(staff_client, email_customer):
    response = staff_client.post(
        ORDERS, order_body(email_customer, currency="XXQ", tax="-1", total="-2"), format="json"
    )

    assert {e["attr"] for e in response.json()["errors"]} == {"currency", "tax", "total"}


@pytest.mark.embedded
def test_when_the_event_buffer_is_away_the_order_is_a_503_and_nothing_is_kept(
    staff_client, email_customer, events_buffer
):
    # The buffer file cannot be opened (a directory stands in its place): appends fail as they
    # do on a full or read-only disk.
    events_buffer.path.unlink()
    events_buffer.path.mkdir()

    response = staff_client.post(ORDERS, order_body(email_customer), format="json")

    assert response.status_code == 503
    assert response["Content-Type"] == PROBLEM
    assert not Order.objects.exists()
    assert not Notification.objects.exists()
    assert mail.outbox == []
    events_buffer.path.rmdir()


@pytest.mark.parametrize(
    ("customer_changes", "code"),
    [({"erased": True}, "erased"), ({"external_id": None}, "no_external_id")],
)
def test_an_erased_customer_or_one_without_a_site_id_cannot_order(
    staff_client, customer_changes, code
):
    from django.utils import timezone

    customer = CustomerFactory(
        external_id=customer_changes.get("external_id", "site-x"),
        erased_at=timezone.now() if customer_changes.get("erased") else None,
    )

    response = staff_client.post(ORDERS, order_body(customer), format="json")

    assert response.status_code == 400
    assert [(e["attr"], e["code"]) for e in response.json()["errors"]] == [("customer", code)]
    assert not Order.objects.exists()


def test_the_service_refuses_what_the_api_refuses(email_customer, events_buffer):
    from cmsproject.errors import ValidationError

    with pytest.raises(ValidationError) as refused:
        order_place(
            customer_id=email_customer.pk,
            currency="EUR",
            lines=[{"sku": "A", "name": "A", "quantity": 1, "unit_price": Decimal("1.001")}],
            total=Decimal("1.001"),
        )
    assert {e.attr for e in refused.value.errors} == {"lines[0].unit_price", "total"}
    assert events_buffer.pending_count() == 0


# --- who may ---------------------------------------------------------------------------------
def test_api_keys_place_orders_with_customers_write_and_read_with_customers_read(
    email_customer,
):
    _, writer = api_key_create(name="shop", scopes=["customers:write"], created_by=None)
    _, reader = api_key_create(name="crm", scopes=["customers:read"], created_by=None)
    _, events_only = api_key_create(name="tag", scopes=["events:write"], created_by=None)

    def client(raw: str) -> APIClient:
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
        return api

    assert (
        client(events_only).post(ORDERS, order_body(email_customer), format="json").status_code
        == 403
    )
    assert client(reader).post(ORDERS, order_body(email_customer), format="json").status_code == 403
    placed = client(writer).post(ORDERS, order_body(email_customer), format="json")
    assert placed.status_code == 201
    assert client(reader).get(f"{ORDERS}{placed.json()['id']}/").status_code == 200
    assert client(events_only).get(ORDERS).status_code == 403


def test_a_marketer_reads_orders_but_does_not_place_them(email_customer):
    roles_sync()
    marketer = UserFactory(is_staff=True)
    marketer.groups.add(Group.objects.get(name="Marketer"))
    client = APIClient()
    client.force_authenticate(marketer)

    assert client.post(ORDERS, order_body(email_customer), format="json").status_code == 403
    assert client.get(ORDERS).status_code == 200


def test_customers_and_anonymous_callers_cannot_reach_orders(api_client, email_customer):
    from customers.services import customer_token_issue

    assert api_client.get(ORDERS).status_code == 401
    token = customer_token_issue(external_id=email_customer.external_id)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api_client.get(ORDERS).status_code == 403
    assert api_client.post(ORDERS, order_body(email_customer), format="json").status_code == 403


# --- reading ------------------------------------------------------------------------------------
def _place(customer: Customer, number: str) -> Order:
    return order_place(
        customer_id=customer.pk,
        external_id=number,
        currency="USD",
        lines=[{"sku": "A", "name": "A", "quantity": 1, "unit_price": "10.00"}],
        total="10.00",
    ).order


def test_the_list_filters_by_customer_and_pages_by_cursor(staff_client, email_customer):
    other = CustomerFactory()
    mine = [_place(email_customer, f"M-{n}") for n in range(3)]
    _place(other, "O-1")

    first = staff_client.get(ORDERS, {"customer": email_customer.pk, "page_size": 2}).json()
    second = staff_client.get(first["next"]).json()

    numbers = [o["external_id"] for o in first["results"] + second["results"]]
    assert numbers == [order.external_id for order in reversed(mine)]  # newest first
    assert second["next"] is None
    assert staff_client.get(ORDERS, {"external_id": "O-1"}).json()["results"][0]["customer"] == (
        other.pk
    )


def test_listing_orders_costs_the_same_queries_for_more_orders(staff_client, email_customer):
    _place(email_customer, "Q-1")
    with CaptureQueriesContext(connection) as few:
        assert len(staff_client.get(ORDERS).json()["results"]) == 1
    for n in range(2, 7):
        _place(CustomerFactory(), f"Q-{n}")
    with CaptureQueriesContext(connection) as many:
        assert len(staff_client.get(ORDERS).json()["results"]) == 6

    assert len(many) == len(few)


def test_the_admin_shows_orders_and_notifications_read_only(admin_client, email_customer):
    order = _place(email_customer, "ADM-1")

    listing = admin_client.get(reverse("admin:customers_order_changelist"))
    page = admin_client.get(reverse("admin:customers_order_change", args=[order.pk]))
    notifications = admin_client.get(reverse("admin:customers_notification_changelist"))

    assert (listing.status_code, page.status_code, notifications.status_code) == (200, 200, 200)
    assert "ADM-1" in listing.content.decode()
    assert 'name="_save"' not in page.content.decode()  # a financial record: no save button
    assert "Order confirmed" not in notifications.content.decode()  # the list shows kinds
    assert "order.created" in notifications.content.decode()
    assert admin_client.get(reverse("admin:customers_order_add")).status_code == 403


def test_an_unknown_order_is_a_404_problem(staff_client):
    response = staff_client.get(f"{ORDERS}424242/")

    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM
