"""REST views of engagement: orders (staff, API keys), support tickets (staff, API keys, and a
customer for their own), and the customer's notification inbox (customer JWT only).

Each view parses, checks permission, calls one service or selector of `customers.orders`,
`customers.tickets` or `customers.notifications`, and shapes the answer.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.urls import path
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import generics, serializers, status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cmsproject.auth import HasApiKeyScope, StaffModelPermission, request_api_key
from cmsproject.errors import FieldError, Forbidden, NotFound, ValidationError
from cmsproject.models import ApiKey
from cmsproject.pagination import CursorPagination
from customers.models import (
    Customer,
    Notification,
    Order,
    OrderLine,
    Ticket,
    TicketStatusChange,
)
from customers.notifications import customer_inbox, notification_message, notifications_mark_read
from customers.orders import order_get, order_list, order_place
from customers.selectors import customer_for_user, customer_get
from customers.services import customers_read_audit
from customers.tickets import (
    ticket_create,
    ticket_get,
    ticket_list,
    ticket_moves_from,
    ticket_update,
)

PROBLEM = OpenApiResponse(description="application/problem+json")
READ_SCOPE, WRITE_SCOPE = ApiKey.Scope.CUSTOMERS_READ, ApiKey.Scope.CUSTOMERS_WRITE
# Orders and tickets are customer data: API keys reach them with the customers scopes.
SCOPES = {
    "GET": READ_SCOPE,
    "HEAD": READ_SCOPE,
    "OPTIONS": READ_SCOPE,
    "POST": WRITE_SCOPE,
    "PATCH": WRITE_SCOPE,
}
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
INBOX_READ_IDS_MAX = 500


def _amount(**kwargs: Any) -> serializers.DecimalField:
    # Any precision is taken here; the service says what is wrong with it (sign, places).
    return serializers.DecimalField(max_digits=None, decimal_places=None, **kwargs)


def _money(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=14, decimal_places=2, read_only=True, help_text="A decimal string.", **kwargs
    )


def _caller_customer(request: Request) -> Customer | None:
    """The customer behind a customer login (never staff, never an API key), read once."""
    if not hasattr(request, "_cms_customer"):
        user = request.user
        mine = None
        if request_api_key(request) is None and not getattr(user, "is_staff", False):
            mine = customer_for_user(user=user)
        request._cms_customer = mine
    return request._cms_customer


class CustomerCaller(BasePermission):
    """A customer (customer JWT) on the methods the view lets customers use on their own data."""

    message = "A customer may only read and open their own tickets."

    def has_permission(self, request: Any, view: Any) -> bool:
        methods = getattr(view, "customer_methods", frozenset())
        return request.method in methods and _caller_customer(request) is not None


# --- Orders ------------------------------------------------------------------------------------
class OrderLineInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=200)
    quantity = serializers.IntegerField(help_text="At least 1.")
    unit_price = _amount(help_text="Non-negative, at most 2 decimal places.")


class OrderPlaceSerializer(serializers.Serializer):
    customer = serializers.IntegerField(
        required=False, help_text="The customer's id; or give `customer_external_id`."
    )
    customer_external_id = serializers.CharField(
        required=False, max_length=255, help_text="The site's user id of the customer."
    )
    external_id = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=100,
        help_text="The shop's order number. Posting it again returns the order (200), once.",
    )
    currency = serializers.CharField(max_length=3, help_text="ISO 4217, e.g. `EUR`.")
    lines = serializers.ListField(child=OrderLineInputSerializer(), help_text="1 to 200 lines.")
    tax = _amount(required=False, default=0)
    shipping = _amount(required=False, default=0)
    discount = _amount(required=False, default=0)
    total = _amount(help_text="Must equal Σ quantity·unit_price + tax + shipping - discount.")


class OrderLineSerializer(serializers.ModelSerializer):
    unit_price = _money()
    line_total = _money()

    class Meta:
        model = OrderLine
        fields = ["sku", "name", "quantity", "unit_price", "line_total"]
        read_only_fields = fields


class OrderSerializer(serializers.ModelSerializer):
    lines = OrderLineSerializer(many=True, read_only=True)
    subtotal = _money()
    tax = _money()
    shipping = _money()
    discount = _money()
    total = _money()

    class Meta:
        model = Order
        fields = [
            "id",
            "external_id",
            "customer",
            "status",
            "currency",
            "subtotal",
            "tax",
            "shipping",
            "discount",
            "total",
            "placed_at",
            "created_at",
            "lines",
        ]
        read_only_fields = fields


@extend_schema_field(OpenApiTypes.INT)
class CustomerIdFilter(django_filters.NumberFilter):
    """A customer id: a whole number in the database's range. NumberFilter alone takes decimals
    and any magnitude, and `?customer=1e80` reached the database as a 500."""

    field_class = forms.IntegerField

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(field_name="customer_id", min_value=1, max_value=2**63 - 1, **kwargs)


class OrderFilter(django_filters.FilterSet):
    customer = CustomerIdFilter()
    external_id = django_filters.CharFilter()

    class Meta:
        model = Order
        fields: list[str] = []


class OrderAccess:
    """Staff with the Order model permission for the method, or an API key with the scope."""

    permission_classes = (StaffModelPermission | HasApiKeyScope,)
    permission_model = Order
    required_scope = SCOPES


class OrderListApi(OrderAccess, generics.ListAPIView):
    serializer_class = OrderSerializer
    pagination_class = CursorPagination
    filter_backends = (DjangoFilterBackend,)
    filterset_class = OrderFilter

    def get_queryset(self) -> Any:
        return order_list()

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        customers_read_audit(
            actor=request.user,
            customer_ids=sorted({order.customer_id for order in page}),
            via="rest.orders.list",
        )
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        request=OrderPlaceSerializer,
        responses={
            201: OrderSerializer,
            200: OpenApiResponse(OrderSerializer, description="The order number was placed."),
            400: PROBLEM,
            409: PROBLEM,
        },
        description="Places an order: stored with its lines, `order.created` sent to webhooks, "
        "a confirmation to the customer on their channels, a `purchase` event appended.",
    )
    def post(self, request: Request) -> Response:
        body = OrderPlaceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        placed = order_place(
            customer_id=data.get("customer"),
            customer_external_id=data.get("customer_external_id"),
            external_id=data.get("external_id"),
            currency=data["currency"],
            lines=data["lines"],
            tax=data["tax"],
            shipping=data["shipping"],
            discount=data["discount"],
            total=data["total"],
        )
        return Response(
            OrderSerializer(order_get(order_id=placed.order.pk)).data,
            status=status.HTTP_201_CREATED if placed.created else status.HTTP_200_OK,
        )


class OrderDetailApi(OrderAccess, APIView):
    @extend_schema(responses={200: OrderSerializer, 404: PROBLEM})
    def get(self, request: Request, pk: int) -> Response:
        order = order_get(order_id=pk)
        customers_read_audit(
            actor=request.user, customer_ids=[order.customer_id], via="rest.orders.detail"
        )
        return Response(OrderSerializer(order).data)


# --- Tickets -----------------------------------------------------------------------------------
class TicketStatusChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = TicketStatusChange
        fields = ["from_status", "to_status", "note", "changed_by", "changed_at"]
        read_only_fields = fields


class TicketSerializer(serializers.ModelSerializer):
    """One shape for lists and details (one component, so its enums get readable names)."""

    history = TicketStatusChangeSerializer(many=True, read_only=True)
    moves = serializers.SerializerMethodField(help_text="The statuses it may move to now.")

    class Meta:
        model = Ticket
        fields = [
            "id",
            "customer",
            "subject",
            "description",
            "status",
            "priority",
            "order",
            "created_at",
            "updated_at",
            "history",
            "moves",
        ]
        read_only_fields = fields

    def get_moves(self, ticket: Ticket) -> list[str]:
        return ticket_moves_from(ticket.status)

    def to_representation(self, ticket: Ticket) -> dict[str, Any]:
        data = super().to_representation(ticket)
        if self.context.get("for_customer"):
            # Which agent moved it is the shop's business, not the customer's.
            for change in data["history"]:
                change.pop("changed_by", None)
        return data


class TicketOpenSerializer(serializers.Serializer):
    """What a customer sends to open a ticket: it is always their own."""

    subject = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    order = serializers.IntegerField(required=False, allow_null=True, help_text="Their order.")


class TicketCreateSerializer(TicketOpenSerializer):
    """What staff and API keys send: for a customer, with a priority."""

    customer = serializers.IntegerField(help_text="Staff and API keys: whose ticket it is.")
    priority = serializers.ChoiceField(
        choices=Ticket.Priority.choices, required=False, default=Ticket.Priority.NORMAL
    )


class TicketUpdateSerializer(serializers.Serializer):
    status = serializers.CharField(
        required=False, help_text="Move to this status (see `moves`); a bad move is a 409."
    )
    note = serializers.CharField(required=False, allow_blank=True, default="")
    priority = serializers.CharField(required=False)


class TicketFilter(django_filters.FilterSet):
    customer = CustomerIdFilter()
    status = django_filters.ChoiceFilter(choices=Ticket.Status.choices)

    class Meta:
        model = Ticket
        fields: list[str] = []


def _ticket_owner(request: Request) -> int | None:
    """None for staff and API keys, who see every ticket (the permissions let them in); the
    calling customer's id for a customer, who sees their own."""
    if request_api_key(request) is not None or request.user.is_staff:
        return None
    customer = _caller_customer(request)
    if customer is None:  # not reachable past the permissions; refuse rather than show all
        raise Forbidden("Only staff, API keys and customers may see tickets.")
    return customer.pk


class TicketAccess:
    permission_classes = (StaffModelPermission | HasApiKeyScope | CustomerCaller,)
    permission_model = Ticket
    required_scope = SCOPES


class TicketListApi(TicketAccess, generics.ListAPIView):
    customer_methods = READ_METHODS | {"POST"}
    serializer_class = TicketSerializer
    pagination_class = CursorPagination
    filter_backends = (DjangoFilterBackend,)
    filterset_class = TicketFilter

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI generator, no caller
            return Ticket.objects.none()
        owner = _ticket_owner(self.request)
        # A customer's `?customer=` cannot widen this: the filter narrows their own tickets.
        return ticket_list(customer_id=owner)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        for_customer = _ticket_owner(request) is not None
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        if not for_customer:
            customers_read_audit(
                actor=request.user,
                customer_ids=sorted({ticket.customer_id for ticket in page}),
                via="rest.tickets.list",
            )
        data = TicketSerializer(page, many=True, context={"for_customer": for_customer}).data
        return self.get_paginated_response(data)

    @extend_schema(
        request=TicketCreateSerializer,
        responses={201: TicketSerializer, 400: PROBLEM, 403: PROBLEM},
        description="Staff and API keys open a ticket for `customer`; a customer (JWT) opens "
        "one of their own (`customer` and `priority` are then not read).",
    )
    def post(self, request: Request) -> Response:
        owner = _ticket_owner(request)
        serializer = TicketOpenSerializer if owner is not None else TicketCreateSerializer
        body = serializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if owner is not None:
            customer = _caller_customer(request)
        else:
            customer = _customer_named(data["customer"])
        ticket = ticket_create(
            customer=customer,
            subject=data["subject"],
            description=data["description"],
            priority=data.get("priority", Ticket.Priority.NORMAL),
            order_id=data.get("order"),
            created_by=request.user,
        )
        return Response(
            _ticket_detail(ticket_get(ticket_id=ticket.pk), for_customer=owner is not None),
            status=status.HTTP_201_CREATED,
        )


def _customer_named(customer_id: int) -> Customer:
    """The customer a body names: an unknown one is a bad field (400), not a missing page."""
    try:
        return customer_get(customer_id=customer_id)
    except NotFound as exc:
        raise ValidationError(
            "No such customer.",
            errors=[FieldError("customer", "does_not_exist", "No such customer.")],
        ) from exc


def _ticket_detail(ticket: Ticket, *, for_customer: bool) -> dict[str, Any]:
    return TicketSerializer(ticket, context={"for_customer": for_customer}).data


class TicketDetailApi(TicketAccess, APIView):
    customer_methods = READ_METHODS

    @extend_schema(responses={200: TicketSerializer, 404: PROBLEM})
    def get(self, request: Request, pk: int) -> Response:
        owner = _ticket_owner(request)
        ticket = ticket_get(ticket_id=pk, customer_id=owner)
        if owner is None:
            customers_read_audit(
                actor=request.user, customer_ids=[ticket.customer_id], via="rest.tickets.detail"
            )
        return Response(_ticket_detail(ticket, for_customer=owner is not None))

    @extend_schema(
        request=TicketUpdateSerializer,
        responses={200: TicketSerializer, 400: PROBLEM, 404: PROBLEM, 409: PROBLEM},
        description="Staff and API keys: move the ticket (`status`, with an optional `note`) "
        "and/or change its `priority`.",
    )
    def patch(self, request: Request, pk: int) -> Response:
        ticket = ticket_get(ticket_id=pk)
        body = TicketUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        ticket_update(
            ticket=ticket,
            changed_by=request.user,
            status=data.get("status"),
            note=data["note"],
            priority=data.get("priority"),
        )
        return Response(_ticket_detail(ticket_get(ticket_id=pk), for_customer=False))


# --- The customer's notification inbox (customer JWT) ------------------------------------------
class NotificationSerializer(serializers.Serializer):
    """As `customers.notifications.notification_message` shapes it (inbox and socket alike)."""

    id = serializers.IntegerField()
    kind = serializers.CharField()
    title = serializers.CharField()
    body = serializers.CharField()
    data = serializers.DictField()
    created_at = serializers.DateTimeField()
    read_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, notification: Notification) -> dict[str, Any]:
        return notification_message(notification)


class NotificationsReadSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), max_length=INBOX_READ_IDS_MAX
    )


class InboxPagination(CursorPagination):
    page_size = 20


class MeInboxBase(APIView):
    """Only the token's own customer: no customer id is read from the request, so there is no
    way to name another customer's notifications."""

    permission_classes = (IsAuthenticated,)

    def me(self, request: Request) -> Customer:
        customer = _caller_customer(request)
        if customer is None:
            raise Forbidden("This endpoint needs a customer's token; this caller is no customer.")
        return customer


class MeNotificationListApi(MeInboxBase, generics.ListAPIView):
    serializer_class = NotificationSerializer
    pagination_class = InboxPagination

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI generator, no caller
            return Notification.objects.none()
        unread = self.request.query_params.get("unread", "").lower() in {"1", "true", "yes"}
        return customer_inbox(customer=self.me(self.request), unread=unread)

    @extend_schema(
        parameters=[OpenApiParameter("unread", bool, description="`1`: only those not read.")],
        responses={200: NotificationSerializer(many=True), 401: PROBLEM, 403: PROBLEM},
        description="The caller's in-app notifications, newest first, cursor-paginated.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class MeNotificationsReadApi(MeInboxBase):
    @extend_schema(
        request=NotificationsReadSerializer,
        responses={
            200: OpenApiResponse(
                {"type": "object", "properties": {"marked": {"type": "integer"}}},
                description="How many of the caller's unread notifications are now read.",
            ),
            400: PROBLEM,
            401: PROBLEM,
            403: PROBLEM,
        },
        description="Marks the caller's notifications with these ids read; other ids are "
        "left alone, without saying whether they exist.",
    )
    def post(self, request: Request) -> Response:
        customer = self.me(request)
        body = NotificationsReadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(
            {"marked": notifications_mark_read(customer=customer, ids=body.validated_data["ids"])}
        )


urlpatterns = [
    path("orders/", OrderListApi.as_view(), name="order-list"),
    path("orders/<int:pk>/", OrderDetailApi.as_view(), name="order-detail"),
    path("tickets/", TicketListApi.as_view(), name="ticket-list"),
    path("tickets/<int:pk>/", TicketDetailApi.as_view(), name="ticket-detail"),
    path("me/notifications/", MeNotificationListApi.as_view(), name="me-notification-list"),
    path("me/notifications/read/", MeNotificationsReadApi.as_view(), name="me-notifications-read"),
]
