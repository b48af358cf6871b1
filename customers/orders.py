"""Orders: placing one (checked, stored, announced, confirmed to the customer) and reading them.

Placing an order is one transaction: the order and its lines, the `order.created` webhook
deliveries, the customer's confirmation (`customers.notifications.notify`) and, last, the
`purchase` event appended to the event pipeline (its drain adds the amount to the customer's
spend and re-evaluates their segments). The append is last so that when the buffer refuses it
(Redis away) nothing else is kept either; the event's id is `order-<pk>`, so were the commit
itself to fail after the append, the drain would store that purchase only once however often the
order is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import pycountry
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from cmsproject.errors import Conflict, FieldError, NotFound, ValidationError
from customers.models import Customer, Order, OrderLine
from customers.notifications import Message, notify

log = logging.getLogger(__name__)

ORDER_LINES_MAX = 200
LINE_QUANTITY_MAX = 1_000_000
CENT = Decimal("0.01")
# The columns are DECIMAL(14, 2).
AMOUNT_MAX = Decimal("999999999999.99")
ORDER_AMOUNTS = ("tax", "shipping", "discount", "total")
PURCHASE_EVENT = "purchase"


@dataclass(frozen=True)
class PlacedOrder:
    order: Order
    created: bool  # False: the order number was placed before; nothing was done this time


# --- Checks ----------------------------------------------------------------------------------
def _amount(value: Any, attr: str, errors: list[FieldError]) -> Decimal | None:
    """A non-negative amount with at most two decimal places, or None (the error recorded)."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float, str)):
        errors.append(FieldError(attr, "invalid", "A decimal number is required."))
        return None
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        errors.append(FieldError(attr, "invalid", "A decimal number is required."))
        return None
    if not amount.is_finite():
        errors.append(FieldError(attr, "invalid", "A decimal number is required."))
    elif amount < 0:
        errors.append(FieldError(attr, "min_value", "Must not be negative."))
    elif amount != amount.quantize(CENT):
        errors.append(FieldError(attr, "max_decimal_places", "At most 2 decimal places."))
    elif amount > AMOUNT_MAX:
        errors.append(FieldError(attr, "max_value", f"At most {AMOUNT_MAX}."))
    else:
        return amount.quantize(CENT)
    return None


def _currency(value: Any, errors: list[FieldError]) -> str:
    code = value.strip().upper() if isinstance(value, str) else ""
    if len(code) != 3 or not code.isalpha() or pycountry.currencies.get(alpha_3=code) is None:
        errors.append(
            FieldError("currency", "invalid", f"{value!r} is not an ISO 4217 currency code.")
        )
    return code


def _text(line: Mapping[str, Any], field: str, attr: str, limit: int, errors: list) -> str:
    value = line.get(field)
    if not isinstance(value, str) or not value.strip():
        errors.append(FieldError(attr, "required", "This field is required."))
        return ""
    if len(value) > limit:
        errors.append(FieldError(attr, "max_length", f"At most {limit} characters."))
    return value.strip()


def _lines(lines: Any, errors: list[FieldError]) -> list[OrderLine]:
    if not isinstance(lines, Sequence) or isinstance(lines, str) or not lines:
        errors.append(FieldError("lines", "required", "An order needs at least one line."))
        return []
    if len(lines) > ORDER_LINES_MAX:
        errors.append(
            FieldError("lines", "max_length", f"At most {ORDER_LINES_MAX} lines per order.")
        )
        return []
    checked = []
    for index, line in enumerate(lines):
        at = f"lines[{index}]"
        if not isinstance(line, Mapping):
            errors.append(FieldError(at, "invalid", "A line is an object."))
            continue
        sku = _text(line, "sku", f"{at}.sku", 100, errors)
        name = _text(line, "name", f"{at}.name", 200, errors)
        quantity = line.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            errors.append(FieldError(f"{at}.quantity", "invalid", "A whole number is required."))
            quantity = None
        elif not 1 <= quantity <= LINE_QUANTITY_MAX:
            errors.append(
                FieldError(f"{at}.quantity", "min_value", f"From 1 to {LINE_QUANTITY_MAX}.")
            )
            quantity = None
        unit_price = _amount(line.get("unit_price"), f"{at}.unit_price", errors)
        if quantity is not None and unit_price is not None:
            checked.append(
                OrderLine(
                    sku=sku,
                    name=name,
                    quantity=quantity,
                    unit_price=unit_price,
                    line_total=unit_price * quantity,
                )
            )
    return checked


def _customer(
    customer_id: int | None, customer_external_id: str | None, errors: list[FieldError]
) -> Customer | None:
    """The buyer, locked until commit (an erasure running at the same time waits, or wins and
    the order is refused). Named by our id or by the site's user id, exactly one of them."""
    if (customer_id is None) == (not customer_external_id):
        errors.append(
            FieldError(
                "customer", "required", "Name the customer by `customer` or `customer_external_id`."
            )
        )
        return None
    attr = "customer" if customer_id is not None else "customer_external_id"
    customers = Customer.objects.select_for_update()
    if customer_id is not None:
        customer = customers.filter(pk=customer_id).first()
    else:
        customer = customers.filter(external_id=customer_external_id).first()
    if customer is None:
        errors.append(FieldError(attr, "does_not_exist", "No such customer."))
    elif customer.erased_at is not None:
        errors.append(FieldError(attr, "erased", "This customer was erased."))
    elif not customer.external_id:
        # The purchase event (and so spend and segments) is keyed by the site's user id.
        errors.append(
            FieldError(attr, "no_external_id", "The customer has no external_id (site user id).")
        )
    else:
        return customer
    return None


# --- Placing an order --------------------------------------------------------------------------
def order_place(
    *,
    currency: str,
    lines: Sequence[Mapping[str, Any]],
    total: Any,
    customer_id: int | None = None,
    customer_external_id: str | None = None,
    external_id: str | None = None,
    tax: Any = 0,
    shipping: Any = 0,
    discount: Any = 0,
) -> PlacedOrder:
    """Check, store and announce an order (see the module's docstring).

    Idempotent by `external_id` (the shop's order number): placing a number already placed for
    the same customer returns that order and does nothing else; for another customer it is a
    Conflict. Every bad field is reported at once (`ValidationError`, nothing written).
    """
    external_id = (external_id or "").strip() or None
    with transaction.atomic():
        errors: list[FieldError] = []
        customer = _customer(customer_id, customer_external_id, errors)
        code = _currency(currency, errors)
        order_lines = _lines(lines, errors)
        given = {"tax": tax, "shipping": shipping, "discount": discount, "total": total}
        amounts = {name: _amount(value, name, errors) for name, value in given.items()}
        if external_id is not None and len(external_id) > 100:
            errors.append(FieldError("external_id", "max_length", "At most 100 characters."))
        lines_valid = bool(order_lines) and len(order_lines) == len(lines)
        if lines_valid and None not in amounts.values():
            _totals_check(order_lines, amounts, errors)
        if errors:
            raise ValidationError("The order has invalid fields.", errors=errors)
        assert customer is not None

        if external_id is not None:
            placed = Order.objects.filter(external_id=external_id).first()
            if placed is not None:
                return PlacedOrder(_placed_again(placed, customer), created=False)
        order = Order(
            customer=customer,
            external_id=external_id,
            currency=code,
            subtotal=sum((line.line_total for line in order_lines), Decimal(0)),
            placed_at=timezone.now(),
            **amounts,
        )
        try:
            with transaction.atomic():  # a savepoint: a lost race on the number is not an error
                order.save()
        except IntegrityError:
            placed = Order.objects.filter(external_id=external_id).first()
            if placed is None:
                raise
            return PlacedOrder(_placed_again(placed, customer), created=False)
        for line in order_lines:
            line.order = order
        OrderLine.objects.bulk_create(order_lines)
        _order_announce(order, order_lines, customer)
    return PlacedOrder(order, created=True)


def _totals_check(
    lines: list[OrderLine], amounts: Mapping[str, Decimal | None], errors: list[FieldError]
) -> None:
    subtotal = sum((line.line_total for line in lines), Decimal(0))
    if subtotal > AMOUNT_MAX:
        errors.append(FieldError("lines", "max_value", f"The subtotal exceeds {AMOUNT_MAX}."))
        return
    tax, shipping, discount, total = (amounts[name] for name in ORDER_AMOUNTS)
    assert tax is not None and shipping is not None and discount is not None and total is not None
    expected = subtotal + tax + shipping - discount
    if expected < 0:
        errors.append(
            FieldError("discount", "max_value", "The discount exceeds subtotal + tax + shipping.")
        )
    if total != expected:
        errors.append(
            FieldError(
                "total",
                "mismatch",
                f"total must be subtotal + tax + shipping - discount = {subtotal} + {tax} + "
                f"{shipping} - {discount} = {expected}; got {total}.",
            )
        )


def _placed_again(order: Order, customer: Customer) -> Order:
    if order.customer_id != customer.pk:
        raise Conflict(
            "This order number was placed for another customer.",
            errors=[FieldError("external_id", "conflict", "Placed for another customer.")],
        )
    return order


def _order_announce(order: Order, lines: list[OrderLine], customer: Customer) -> None:
    """Webhooks, the customer's confirmation and the purchase event, in the order's
    transaction (the first two are sent after commit; the event goes last, see the module)."""
    from analytics.services import Caller, events_accept
    from content.webhooks import webhooks_dispatch

    webhooks_dispatch(
        event="order.created",
        payload=order_payload(order, lines),
        key=f"order:{order.pk}:created",
    )
    notify(
        customer=customer,
        key=f"order:{order.pk}:created",
        message=Message(
            kind="order.created",
            title="Order confirmed",
            body=order_confirmation_text(order, lines),
            data={
                "order": order.pk,
                "external_id": order.external_id,
                "total": str(order.total),
                "currency": order.currency,
            },
        ),
    )
    accepted = events_accept(
        events=[
            {
                "id": f"order-{order.pk}",
                "type": PURCHASE_EVENT,
                "userId": customer.external_id,
                "timestamp": order.placed_at.isoformat(),
                "properties": {
                    "amount": float(order.total),
                    "currency": order.currency,
                    "order_id": order.pk,
                    "items": sum(line.quantity for line in lines),
                },
            }
        ],
        caller=Caller(may_name_any_user=True),
    )
    if accepted.rejected:
        # Our own event refused: the `purchase` event type's schema (edited in the admin) no
        # longer accepts what orders send. Refused loudly: an order whose spend never counts
        # would put segments and reports quietly wrong.
        log.error("purchase event of order %s rejected: %s", order.pk, accepted.rejected)
        raise Conflict(
            "The `purchase` event type's schema refuses the purchase event of orders; "
            "fix the event type first.",
            errors=[
                FieldError(f"purchase_event.{error['attr']}", error["code"], error["detail"])
                for rejection in accepted.rejected
                for error in rejection["errors"]
            ],
        )


def order_payload(order: Order, lines: Sequence[OrderLine] | None = None) -> dict[str, Any]:
    """An order as webhooks and the API show it."""
    lines = list(order.lines.all()) if lines is None else lines
    return {
        "id": order.pk,
        "external_id": order.external_id,
        "customer": order.customer_id,
        "status": order.status,
        "currency": order.currency,
        "subtotal": str(order.subtotal),
        "tax": str(order.tax),
        "shipping": str(order.shipping),
        "discount": str(order.discount),
        "total": str(order.total),
        "placed_at": order.placed_at.isoformat(),
        "lines": [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unit_price": str(line.unit_price),
                "line_total": str(line.line_total),
            }
            for line in lines
        ],
    }


def order_confirmation_text(order: Order, lines: Sequence[OrderLine]) -> str:
    """The confirmation as plain text: it goes by email, SMS and in-app alike."""
    currency = order.currency
    rows = [f"Thank you for your order {order.external_id or f'#{order.pk}'}.", ""]
    rows += [
        f"{line.quantity} x {line.name} ({line.sku}) at {line.unit_price} {currency}: "
        f"{line.line_total} {currency}"
        for line in lines
    ]
    rows += ["", f"Subtotal: {order.subtotal} {currency}"]
    rows += [
        f"{label}: {sign}{amount} {currency}"
        for label, sign, amount in (
            ("Tax", "", order.tax),
            ("Shipping", "", order.shipping),
            ("Discount", "-", order.discount),
        )
        if amount
    ]
    rows.append(f"Total: {order.total} {currency}")
    return "\n".join(rows)


# --- Reads -----------------------------------------------------------------------------------
def order_list(
    *, customer_id: int | None = None, external_id: str | None = None
) -> QuerySet[Order]:
    """Orders with their lines prefetched: a page of any size costs two queries."""
    orders = Order.objects.prefetch_related("lines")
    if customer_id is not None:
        orders = orders.filter(customer_id=customer_id)
    if external_id:
        orders = orders.filter(external_id=external_id)
    return orders


def order_get(*, order_id: int) -> Order:
    order = order_list().filter(pk=order_id).first()
    if order is None:
        raise NotFound(f"No order has the id {order_id}.")
    return order


def customer_orders_recent(*, customer_id: int, limit: int = 20) -> list[Order]:
    return list(Order.objects.filter(customer_id=customer_id)[:limit])
