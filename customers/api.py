"""REST views of customers: profiles (staff and API keys), the caller's own profile (customer
JWT), and attribute definitions (staff). Each view parses, checks permission, calls one service
or selector, and shapes the answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cmsproject.auth import HasApiKeyScope, StaffModelPermission, request_api_key
from cmsproject.errors import FieldError, Forbidden, ValidationError
from cmsproject.models import ApiKey
from cmsproject.pagination import CursorPagination
from customers.models import AttributeDefinition, Customer, LifecycleStage, LoyaltyTier
from customers.selectors import (
    attribute_definition_get,
    customer_for_user,
    customer_get,
    customer_list,
)
from customers.serializers import (
    AttributeDefinitionSerializer,
    AttributeDefinitionUpdateSerializer,
    CustomerSerializer,
    CustomerWriteSerializer,
    IdentifyRequestSerializer,
    IdentifyResultSerializer,
    MeSerializer,
)
from customers.services import (
    CONSENTS_SCHEMA,
    PREFERENCES_SCHEMA,
    attribute_definition_create,
    attribute_definition_delete,
    attribute_definition_update,
    consents_set,
    customer_create,
    customer_identify,
    customer_update,
    customers_read_audit,
)

PROBLEM = OpenApiResponse(description="application/problem+json")
READ_SCOPE = ApiKey.Scope.CUSTOMERS_READ
WRITE_SCOPE = ApiKey.Scope.CUSTOMERS_WRITE
CUSTOMER_SCOPES = {
    "GET": READ_SCOPE,
    "HEAD": READ_SCOPE,
    "OPTIONS": READ_SCOPE,
    "POST": WRITE_SCOPE,
    "PATCH": WRITE_SCOPE,
    "DELETE": WRITE_SCOPE,
}


class UtcDateTimeField(IsoDateTimeField):
    def to_python(self, value: Any) -> datetime | None:
        moment = super().to_python(value)
        try:
            # In UTC: PostgreSQL refuses offsets past ±15:59 that Python takes (a 500), and an
            # instant with no UTC date (before year 1, after 9999) is no time to compare with.
            return moment.astimezone(UTC) if moment is not None else None
        except OverflowError:
            raise forms.ValidationError(
                "Enter a time that exists in UTC.", code="invalid"
            ) from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class CustomerFilter(django_filters.FilterSet):
    loyalty_tier = django_filters.ChoiceFilter(choices=LoyaltyTier.choices)
    lifecycle_stage = django_filters.ChoiceFilter(choices=LifecycleStage.choices)
    # Case-insensitive: profiles written before emails were lower-cased must be found too.
    email = django_filters.CharFilter(lookup_expr="iexact")
    external_id = django_filters.CharFilter()
    last_seen_after = UtcDateTimeFilter(field_name="last_seen", lookup_expr="gte")
    last_seen_before = UtcDateTimeFilter(field_name="last_seen", lookup_expr="lt")

    class Meta:
        model = Customer
        fields: list[str] = []


class CustomerAccess:
    """Staff with the Customer model permission for the method, or an API key with the scope."""

    permission_classes = (StaffModelPermission | HasApiKeyScope,)
    permission_model = Customer
    required_scope = CUSTOMER_SCOPES


class CustomerListApi(CustomerAccess, generics.ListAPIView):
    serializer_class = CustomerSerializer
    pagination_class = CursorPagination
    filter_backends = (DjangoFilterBackend,)
    filterset_class = CustomerFilter

    def get_queryset(self) -> Any:
        return customer_list()

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        customers_read_audit(
            actor=request.user, customer_ids=[customer.pk for customer in page], via="rest.list"
        )
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        request=CustomerWriteSerializer,
        responses={201: CustomerSerializer, 400: PROBLEM, 409: PROBLEM},
    )
    def post(self, request: Request) -> Response:
        body = CustomerWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        customer = customer_create(**body.validated_data)
        return Response(CustomerSerializer(customer).data, status=status.HTTP_201_CREATED)


class CustomerDetailApi(CustomerAccess, APIView):
    @extend_schema(responses={200: CustomerSerializer, 404: PROBLEM})
    def get(self, request: Request, pk: int) -> Response:
        customer = customer_get(customer_id=pk)
        customers_read_audit(actor=request.user, customer_ids=[customer.pk], via="rest.detail")
        return Response(CustomerSerializer(customer).data)

    @extend_schema(
        request=CustomerWriteSerializer,
        responses={200: CustomerSerializer, 400: PROBLEM, 404: PROBLEM, 409: PROBLEM},
    )
    def patch(self, request: Request, pk: int) -> Response:
        customer = customer_get(customer_id=pk)
        body = CustomerWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        customer = customer_update(customer=customer, data=body.validated_data)
        return Response(CustomerSerializer(customer).data)

    @extend_schema(responses={204: None, 404: PROBLEM})
    def delete(self, request: Request, pk: int) -> Response:
        """Erase the customer's personal data and anonymize their events (idempotent)."""
        # Imported here: erasure (another module, analytics' event anonymization behind it)
        # loads only when a customer is erased, and cannot tie this module into an import cycle.
        from customers.erasure import customer_erase

        customer = customer_get(customer_id=pk, include_erased=True)
        customer_erase(customer=customer, actor=request.user, request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- The caller's own profile (customer JWT) -----------------------------------------------------
class MeApiBase(APIView):
    """The profile is the token's own: no id is taken from the request, so no other customer's
    profile can be reached."""

    permission_classes = (IsAuthenticated,)

    def me(self, request: Request) -> Customer:
        customer = customer_for_user(user=request.user)
        if customer is None:
            raise Forbidden("This endpoint needs a customer's token; this caller is no customer.")
        return customer


class MeApi(MeApiBase):
    @extend_schema(responses={200: MeSerializer, 401: PROBLEM, 403: PROBLEM})
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(self.me(request)).data)


class MePreferencesApi(MeApiBase):
    @extend_schema(
        request={"application/json": PREFERENCES_SCHEMA},
        responses={200: OpenApiResponse(PREFERENCES_SCHEMA), 400: PROBLEM, 403: PROBLEM},
        description="Merges the keys sent into the preferences (`null` removes a key) and "
        "returns them all.",
    )
    def patch(self, request: Request) -> Response:
        customer = customer_update(customer=self.me(request), data={"preferences": request.data})
        return Response(customer.preferences)


class MeConsentsApi(MeApiBase):
    @extend_schema(
        request={"application/json": CONSENTS_SCHEMA},
        responses={200: OpenApiResponse(CONSENTS_SCHEMA), 400: PROBLEM, 403: PROBLEM},
        description="Records an answer for each purpose sent; returns every answer on record.",
    )
    def put(self, request: Request) -> Response:
        return Response(consents_set(customer=self.me(request), consents=request.data))


# --- Attribute definitions (staff) ---------------------------------------------------------------
class AttributeDefinitionAccess:
    permission_classes = (StaffModelPermission,)
    permission_model = AttributeDefinition


class CustomerAttributeListApi(AttributeDefinitionAccess, generics.ListAPIView):
    queryset = AttributeDefinition.objects.all()
    serializer_class = AttributeDefinitionSerializer

    @extend_schema(
        request=AttributeDefinitionSerializer,
        responses={201: AttributeDefinitionSerializer, 400: PROBLEM, 409: PROBLEM},
    )
    def post(self, request: Request) -> Response:
        body = AttributeDefinitionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        definition = attribute_definition_create(**body.validated_data)
        return Response(
            AttributeDefinitionSerializer(definition).data, status=status.HTTP_201_CREATED
        )


class CustomerAttributeDetailApi(AttributeDefinitionAccess, APIView):
    @extend_schema(responses={200: AttributeDefinitionSerializer, 404: PROBLEM})
    def get(self, request: Request, key: str) -> Response:
        return Response(AttributeDefinitionSerializer(attribute_definition_get(key=key)).data)

    @extend_schema(
        request=AttributeDefinitionUpdateSerializer,
        responses={200: AttributeDefinitionSerializer, 400: PROBLEM, 404: PROBLEM, 409: PROBLEM},
    )
    def patch(self, request: Request, key: str) -> Response:
        definition = attribute_definition_get(key=key)
        body = AttributeDefinitionUpdateSerializer(definition, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        definition = attribute_definition_update(definition=definition, data=body.validated_data)
        return Response(AttributeDefinitionSerializer(definition).data)

    @extend_schema(responses={204: None, 404: PROBLEM, 409: PROBLEM})
    def delete(self, request: Request, key: str) -> Response:
        attribute_definition_delete(definition=attribute_definition_get(key=key))
        return Response(status=status.HTTP_204_NO_CONTENT)


class IdentifyApi(APIView):
    """Link a browser's anonymous id to a customer. A customer token may claim only its own
    `userId`; an API key with `customers:write` may name any."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(
        request=IdentifyRequestSerializer,
        responses={
            200: IdentifyResultSerializer,
            400: PROBLEM,
            401: PROBLEM,
            403: PROBLEM,
            409: PROBLEM,
        },
    )
    def post(self, request: Request) -> Response:
        body = IdentifyRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user_id = body.validated_data.get("userId")
        api_key = request_api_key(request)
        if api_key is not None:
            if not api_key.has_scope(ApiKey.Scope.CUSTOMERS_WRITE):
                raise Forbidden("This API key lacks the `customers:write` scope.")
            if not user_id:
                raise ValidationError(
                    "An API key must say whose id this is.",
                    errors=[FieldError("userId", "required", "This field is required.")],
                )
        else:
            me = customer_for_user(user=request.user)
            if me is None or not me.external_id:
                raise Forbidden("Only a customer token or an API key may identify.")
            if user_id and user_id != me.external_id:
                raise Forbidden("A customer token may only claim its own userId.")
            user_id = me.external_id
        customer, moved = customer_identify(
            anonymous_id=body.validated_data["anonymousId"],
            external_id=user_id,
            traits=body.validated_data.get("traits"),
        )
        return Response(
            {
                "customer": customer.pk,
                "anonymousId": body.validated_data["anonymousId"],
                "moved_events": moved,
            }
        )
