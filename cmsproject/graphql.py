"""The GraphQL endpoint: DRF auth and throttles in front, limits before execution, safe errors.

- Authentication and throttling are the REST ones (a DRF view wraps graphene's), so a token,
  API key or cookie means the same thing on both APIs.
- `QueryLimitsRule` rejects a document deeper than CMS_GRAPHQL_MAX_DEPTH or costlier than
  CMS_GRAPHQL_MAX_COST during validation, so nothing of it executes.
- `IntrospectionRule` refuses `__schema` and `__type` unless CMS_GRAPHQL_INTROSPECTION is on
  (the default only with DEBUG): production does not hand out a map of the API. `__typename`
  stays allowed. The schema object itself is untouched, so `cmsproject.contracts` still prints
  the SDL.
- A query's parsed and validated document is kept per process (`document_checked`): a storefront
  sends the same few queries over and over, and parsing and validating one cost about a third of
  a small query's time.
- Errors: domain errors keep their message and code; anything else becomes "Internal server
  error" with the traceback in the log only.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import graphene
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotAllowed
from graphene_django.constants import MUTATION_ERRORS_FLAG
from graphene_django.settings import graphene_settings
from graphene_django.views import GraphQLView, HttpError
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationType,
    ValidationRule,
    execute,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from graphql.language import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from cmsproject.errors import DomainError

logger = logging.getLogger(__name__)

# A list field asked for `first: n` multiplies the cost of what is selected under it. A variable
# page size is unknown at validation time, so it is costed at the largest page we serve.
PAGE_ARGUMENTS = ("first", "last")
ASSUMED_VARIABLE_PAGE = 100


class QueryLimitsRule(ValidationRule):
    def enter_operation_definition(self, node: OperationDefinitionNode, *args: Any) -> None:
        depth, cost = self._measure(node.selection_set, depth=0, seen=frozenset())
        name = node.name.value if node.name else "anonymous"
        for measured, value, limit, code in (
            ("has depth", depth, settings.CMS_GRAPHQL_MAX_DEPTH, "QUERY_TOO_DEEP"),
            ("costs", cost, settings.CMS_GRAPHQL_MAX_COST, "QUERY_TOO_COSTLY"),
        ):
            if value > limit:
                self.report_error(
                    GraphQLError(
                        f"Operation '{name}' {measured} {value}, over the limit of {limit}.",
                        node,
                        extensions={"code": code},
                    )
                )

    def _measure(
        self, selection_set: SelectionSetNode | None, depth: int, seen: frozenset[str]
    ) -> tuple[int, int]:
        """(deepest nesting below here, cost). Fragment cycles and unknown fragments are other
        rules' errors; here they simply stop the walk."""
        if selection_set is None:
            return depth, 0
        deepest, cost = depth, 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                introspection = selection.name.value.startswith("__")
                if selection.selection_set is None:
                    cost += 1
                    continue
                child_depth, child_cost = self._measure(
                    selection.selection_set, depth if introspection else depth + 1, seen
                )
                deepest = max(deepest, child_depth)
                cost += 1 + self._page_size(selection) * child_cost
            elif isinstance(selection, InlineFragmentNode):
                child_depth, child_cost = self._measure(selection.selection_set, depth, seen)
                deepest, cost = max(deepest, child_depth), cost + child_cost
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.context.get_fragment(name)
                if name in seen or not isinstance(fragment, FragmentDefinitionNode):
                    continue
                child_depth, child_cost = self._measure(
                    fragment.selection_set, depth, seen | {name}
                )
                deepest, cost = max(deepest, child_depth), cost + child_cost
        return deepest, cost

    @staticmethod
    def _page_size(field: FieldNode) -> int:
        for argument in field.arguments or ():
            if argument.name.value not in PAGE_ARGUMENTS:
                continue
            if isinstance(argument.value, IntValueNode):
                return max(1, int(argument.value.value))
            if isinstance(argument.value, VariableNode):
                return ASSUMED_VARIABLE_PAGE
        return 1


INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})


class IntrospectionRule(ValidationRule):
    """Refuses introspection when CMS_GRAPHQL_INTROSPECTION is off (read per request, like the
    limits). Fields inside fragments are visited too, so a fragment cannot smuggle it in."""

    def enter_field(self, node: FieldNode, *args: Any) -> None:
        if node.name.value in INTROSPECTION_FIELDS and not settings.CMS_GRAPHQL_INTROSPECTION:
            self.report_error(
                GraphQLError(
                    f"GraphQL introspection is disabled on this server ('{node.name.value}' was "
                    "asked for). The schema is published as SDL with the API contracts; "
                    "CMS_GRAPHQL_INTROSPECTION=1 turns introspection on.",
                    node,
                    extensions={"code": "INTROSPECTION_DISABLED"},
                )
            )


# graphql-core's validate() runs *only* the rules it is given: the specification's must be listed.
VALIDATION_RULES = (*specified_rules, QueryLimitsRule, IntrospectionRule)
# Documents kept per process, and the longest query kept: a client cannot fill memory with
# distinct huge queries (at most 256 x 20,000 characters); a longer query is checked every time.
DOCUMENTS_KEPT = 256
LONGEST_QUERY_KEPT = 20_000


def document_checked(
    schema: GraphQLSchema, query: str
) -> tuple[DocumentNode | None, list[GraphQLError]]:
    """The parsed document and its validation errors (a syntax error, the rules' errors, or none).

    Both depend only on the schema, the query text and the settings the rules read, so they are
    kept per (schema, query, settings); graphql-core never changes a document it executes."""
    limits = (
        settings.CMS_GRAPHQL_MAX_DEPTH,
        settings.CMS_GRAPHQL_MAX_COST,
        settings.CMS_GRAPHQL_INTROSPECTION,
    )
    if len(query) > LONGEST_QUERY_KEPT:
        return _document_checked.__wrapped__(schema, query, limits)
    return _document_checked(schema, query, limits)


@functools.lru_cache(maxsize=DOCUMENTS_KEPT)
def _document_checked(
    schema: GraphQLSchema, query: str, limits: tuple[Any, ...]
) -> tuple[DocumentNode | None, list[GraphQLError]]:
    try:
        document = parse(query)
    except GraphQLError as error:
        return None, [error]
    errors = validate(schema, document, VALIDATION_RULES, graphene_settings.MAX_VALIDATION_ERRORS)
    return document, errors


class CmsGraphQLView(GraphQLView):
    validation_rules = VALIDATION_RULES

    def execute_graphql_request(
        self,
        request: HttpRequest,
        data: Any,
        query: str | None,
        variables: Any,
        operation_name: str | None,
        show_graphiql: bool = False,
    ) -> ExecutionResult | None:
        """graphene's, with the document from `document_checked` instead of parsed and
        validated on every request."""
        if not query:
            if show_graphiql:
                return None
            raise HttpError(HttpResponseBadRequest("Must provide query string."))
        schema = self.schema.graphql_schema
        document, errors = document_checked(schema, query)
        if document is None:
            return ExecutionResult(data=None, errors=errors)
        operation = get_operation_ast(document, operation_name)
        if (
            request.method == "GET"
            and operation is not None
            and operation.operation != OperationType.QUERY
        ):
            if show_graphiql:
                return None
            raise HttpError(
                HttpResponseNotAllowed(
                    ["POST"],
                    f"Can only perform a {operation.operation.value} operation from a POST "
                    "request.",
                )
            )
        if errors:
            return ExecutionResult(data=None, errors=errors)
        options = {
            "root_value": self.get_root_value(request),
            "context_value": self.get_context(request),
            "variable_values": variables,
            "operation_name": operation_name,
            "middleware": self.get_middleware(request),
        }
        try:
            mutation = operation is not None and operation.operation == OperationType.MUTATION
            if mutation and graphene_settings.ATOMIC_MUTATIONS:
                with transaction.atomic():
                    result = execute(schema, document, **options)
                    if getattr(request, MUTATION_ERRORS_FLAG, False) is True:
                        transaction.set_rollback(True)
                    return result
            return execute(schema, document, **options)
        except Exception as error:  # as graphene: the error is formatted, never raised
            return ExecutionResult(errors=[error])

    def parse_body(self, request: HttpRequest) -> Any:
        try:
            return super().parse_body(request)
        except RecursionError:  # nested deeper than the JSON decoder follows: a bad body
            raise HttpError(
                HttpResponseBadRequest("POST body sent invalid JSON: nested too deeply.")
            ) from None

    @staticmethod
    def format_error(error: Exception) -> dict[str, Any]:
        original = getattr(error, "original_error", None)
        if isinstance(original, DomainError):
            formatted = GraphQLView.format_error(error)
            formatted["extensions"] = {"code": original.code, "status": int(original.status)}
            if original.errors:
                formatted["extensions"]["errors"] = [e.as_dict() for e in original.errors]
            return formatted
        if isinstance(error, GraphQLError) and original is None:
            # Syntax, validation and limit errors: about the query, safe to show as they are.
            return GraphQLView.format_error(error)
        if isinstance(error, HttpError):
            # The request is wrong (no query, a mutation over GET, bad JSON): the client's
            # mistake, with graphene's own message and status, not a server failure to log.
            return GraphQLView.format_error(error)
        logger.error("GraphQL resolver failed", exc_info=original or error)
        formatted = {"message": "Internal server error", "extensions": {"code": "INTERNAL"}}
        if isinstance(error, GraphQLError):
            formatted["path"] = error.path
        return formatted


class GraphQLApi(APIView):
    """`/graphql/`: the DRF view authenticates and throttles, graphene executes.

    `schema` is a schema, or a function returning the current one (content types add root
    fields at run time: see `cmsproject.schema.schema_current`). The graphene view is built once
    per schema object and reused until the function returns another.
    """

    permission_classes = (AllowAny,)
    # Session auth lets a logged-in admin use GraphiQL in DEBUG; DRF enforces CSRF for it.
    authentication_classes = (*api_settings.DEFAULT_AUTHENTICATION_CLASSES, SessionAuthentication)
    schema: graphene.Schema | Callable[[], graphene.Schema] | None = None  # set in urls.py
    audit_writes = False  # mutations are audited by the services they call

    _graphene: tuple[graphene.Schema | None, Any] | None = None

    def get(self, request: Any) -> HttpResponse:
        return self._execute(request)

    def post(self, request: Any) -> HttpResponse:
        return self._execute(request)

    def _execute(self, request: Any) -> HttpResponse:
        django_request: HttpRequest = request._request
        # Resolvers read the caller from the context (the Django request): give them DRF's.
        django_request.user = request.user
        django_request.auth = request.auth
        schema = self.schema if isinstance(self.schema, graphene.Schema) else None
        if schema is None and callable(self.schema):
            schema = self.schema()
        return self._graphene_view(schema)(django_request)

    @classmethod
    def _graphene_view(cls, schema: graphene.Schema | None) -> Any:
        cached = cls._graphene
        if cached is None or cached[0] is not schema:
            # Validation rules (limits) and error masking are the view class's: every schema
            # served gets them. A view without a schema uses graphene's SCHEMA setting.
            cached = (schema, CmsGraphQLView.as_view(schema=schema, graphiql=settings.DEBUG))
            cls._graphene = cached
        return cached[1]
