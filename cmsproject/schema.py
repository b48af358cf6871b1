"""The root GraphQL schema, assembled from each app's own queries (the Saleor way).

An app exposes `<App>Queries` / `<App>Mutations` in its `graphql.py`; this file is the only place
that lists them. Order matters only for the generated SDL.
"""

from __future__ import annotations

import graphene

from analytics.graphql import AnalyticsQueries
from cmsproject.graphql_types import PlatformQueries
from customers.graphql import CustomerQueries


class Query(AnalyticsQueries, CustomerQueries, PlatformQueries, graphene.ObjectType):
    pass


schema = graphene.Schema(query=Query)
