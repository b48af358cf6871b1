"""The root GraphQL schema, assembled from each app's own queries (the Saleor way).

An app exposes `<App>Queries` / `<App>Mutations` in its `graphql.py`; this file is the only place
that lists them. Order matters only for the generated SDL.

`schema` is the static schema (the committed SDL, the contracts tool). `/graphql/` serves
`schema_current()`: the static schema plus one root field per content type, rebuilt when the
content definitions change (see `schema_current`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import graphene

from analytics.graphql import AnalyticsQueries
from cmsproject.graphql_types import PlatformQueries
from content.graphql import ContentQueries, content_root_fields
from content.schema import Definitions
from content.selectors import entry_types_list
from content.services import definitions_current
from customers.graphql import CustomerQueries
from experiments.graphql import ExperimentQueries
from segmentation.graphql import SegmentationQueries


class Query(
    AnalyticsQueries,
    ContentQueries,
    CustomerQueries,
    ExperimentQueries,
    SegmentationQueries,
    PlatformQueries,
    graphene.ObjectType,
):
    pass


schema = graphene.Schema(query=Query)

STATIC_ROOT_FIELDS = frozenset(schema.graphql_schema.query_type.fields)
STATIC_TYPE_NAMES = frozenset(schema.graphql_schema.type_map)


@dataclass(frozen=True)
class _Built:
    definitions: Definitions
    schema: graphene.Schema


_built: _Built | None = None
_build_lock = threading.Lock()


def schema_current() -> graphene.Schema:
    """The schema for the content types as they are now; one cache read when nothing changed.

    `definitions_current()` returns the same object until the definitions version (shared by
    every process through the cache) moves, or this process changed a definition itself; a
    different object means: rebuild. Building takes milliseconds, so it is done at most once
    per change per process, under a lock so concurrent requests do not all build it.
    """
    global _built
    definitions = definitions_current()
    built = _built
    if built is not None and built.definitions is definitions:
        return built.schema
    with _build_lock:
        if _built is not None and _built.definitions is definitions:
            return _built.schema
        generated = content_root_fields(
            entry_types=entry_types_list(),
            taken_fields=STATIC_ROOT_FIELDS,
            taken_types=STATIC_TYPE_NAMES,
        )
        current = graphene.Schema(query=type("Query", (Query,), generated)) if generated else schema
        _built = _Built(definitions=definitions, schema=current)
        return current
