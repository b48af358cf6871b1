"""GraphQL of customers: `me` for the calling customer, `customer(id:)` for staff and API keys."""

from __future__ import annotations

from typing import Any

import graphene
from graphene.types.generic import GenericScalar

from cmsproject.auth import request_api_key
from cmsproject.errors import Forbidden
from cmsproject.models import ApiKey
from customers.models import Customer
from customers.selectors import customer_consents, customer_for_user, customer_list
from customers.services import customers_read_audit


class SegmentRef(graphene.ObjectType):
    """A segment the customer is a member of."""

    key = graphene.String(required=True)
    name = graphene.String(required=True)


class CustomerProfileFields(graphene.ObjectType):
    """Fields both the customer and staff see."""

    class Meta:
        abstract = True

    id = graphene.ID(required=True)
    email = graphene.String(required=True)
    name = graphene.String(required=True)
    external_id = graphene.String()
    loyalty_tier = graphene.String(required=True)
    preferences = GenericScalar(required=True)
    consents = GenericScalar(
        required=True, description="`{purpose: granted}` for the purposes answered."
    )
    created_at = graphene.DateTime(required=True)
    segments = graphene.List(
        graphene.NonNull(SegmentRef),
        required=True,
        description="Segments the customer is in now.",
    )

    @staticmethod
    def resolve_consents(root: Customer, info: graphene.ResolveInfo) -> dict[str, bool]:
        return customer_consents(customer=root)

    @staticmethod
    def resolve_segments(root: Customer, info: graphene.ResolveInfo) -> list[SegmentRef]:
        from segmentation.selectors import customer_segments_current

        return [
            SegmentRef(key=segment.key, name=segment.name)
            for segment in customer_segments_current(customer_id=root.pk)
        ]


class Me(CustomerProfileFields):
    """The calling customer's own profile: not the marketers' attributes, spend or stage."""


class CustomerNode(CustomerProfileFields):
    """A customer profile as staff and API keys see it."""

    class Meta:
        name = "Customer"

    lifecycle_stage = graphene.String(required=True)
    attributes = GenericScalar(required=True)
    last_seen = graphene.DateTime()
    total_spend = graphene.Decimal(required=True)


def _may_read_customers(request: Any) -> bool:
    """The REST rule for reading customers: staff with the model permission, or an API key with
    `customers:read`."""
    api_key = request_api_key(request)
    if api_key is not None:
        return api_key.has_scope(ApiKey.Scope.CUSTOMERS_READ)
    user = getattr(request, "user", None)
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_staff
        and user.has_perm("customers.view_customer")
    )


class CustomerQueries(graphene.ObjectType):
    me = graphene.Field(Me, description="The calling customer (customer JWT); null for others.")
    customer = graphene.Field(
        CustomerNode,
        id=graphene.ID(required=True),
        description="Staff with the permission to view customers, or an API key with "
        "`customers:read`. Null when no such customer exists.",
    )

    @staticmethod
    def resolve_me(root: Any, info: graphene.ResolveInfo) -> Customer | None:
        return customer_for_user(user=getattr(info.context, "user", None))

    @staticmethod
    def resolve_customer(root: Any, info: graphene.ResolveInfo, id: str) -> Customer | None:
        request = info.context
        if not _may_read_customers(request):
            raise Forbidden("Reading customers needs staff permission or `customers:read`.")
        try:
            customer_id = int(id)
        except ValueError:
            return None  # ids are integers: no customer has this one
        customer = customer_list().filter(pk=customer_id).first()
        if customer is not None:
            customers_read_audit(
                actor=request.user, customer_ids=[customer.pk], via="graphql.customer"
            )
        return customer
