"""`/graphql/`: limits reject before execution, auth is the REST auth, errors never leak."""

from __future__ import annotations

import graphene
import pytest
from django.test import override_settings
from graphql import build_schema, parse, validate
from rest_framework_simplejwt.tokens import AccessToken

from cmsproject.graphql import CmsGraphQLView, QueryLimitsRule
from cmsproject.services import api_key_create

pytestmark = pytest.mark.django_db

# A recursive schema: the only way to write a valid query of any depth.
RECURSIVE = build_schema("""
type Node { name: String  child: Node  children(first: Int): [Node] }
type Query { node: Node }
""")


def nested(depth: int) -> str:
    """`{ node { child { ... { name } } } }` with `depth` levels of selection sets."""
    inner = "name"
    for _ in range(depth - 1):
        inner = f"child {{ {inner} }}"
    return f"{{ node {{ {inner} }} }}"


def limit_errors(query: str) -> list[str]:
    return [error.message for error in validate(RECURSIVE, parse(query), [QueryLimitsRule])]


def test_depth_ten_is_allowed():
    assert limit_errors(nested(10)) == []


def test_depth_eleven_is_rejected():
    assert limit_errors(nested(11)) == ["Operation 'anonymous' has depth 11, over the limit of 10."]


def test_depth_through_fragments_counts():
    chain = "name"
    for _ in range(10):
        chain = f"child {{ {chain} }}"
    query = f"{{ node {{ ...A }} }} fragment A on Node {{ {chain} }}"

    assert limit_errors(query) == ["Operation 'anonymous' has depth 11, over the limit of 10."]


def test_fragment_cycles_and_unknown_fragments_do_not_crash_the_rule():
    cyclic = "{ node { ...A } } fragment A on Node { ...B } fragment B on Node { ...A }"

    assert limit_errors(cyclic) == []
    assert limit_errors("{ node { ...Missing } }") == []


@override_settings(CMS_GRAPHQL_MAX_COST=1000)
def test_wide_lists_multiply_cost_and_are_rejected():
    query = "{ node { children(first: 100) { children(first: 100) { name } } } }"

    assert limit_errors(query) == ["Operation 'anonymous' costs 10102, over the limit of 1000."]


def post(client, query: str, **headers):
    return client.post("/graphql/", {"query": query}, content_type="application/json", **headers)


def test_typename_answers(client):
    response = post(client, "{ __typename }")

    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


def test_a_query_over_the_depth_limit_executes_nothing(client, monkeypatch):
    executed = []
    monkeypatch.setattr("cmsproject.graphql.execute", lambda *a, **k: executed.append(1))
    query = "{ viewer " + "{ username " * 11 + "}" * 12  # 11 nested selection sets

    response = post(client, query)

    body = response.json()
    assert response.status_code == 400
    assert "data" not in body
    assert any("depth 11" in error["message"] for error in body["errors"])
    assert executed == []


def test_standard_validation_still_applies(client):
    response = post(client, "{ viewer { username { nope } } }")

    assert response.status_code == 400
    assert "must not have a selection" in response.json()["errors"][0]["message"]


def test_a_repeated_query_is_parsed_and_validated_once(client, monkeypatch):
    from cmsproject import graphql as endpoint

    parsed = []
    real_parse = endpoint.parse
    monkeypatch.setattr(endpoint, "parse", lambda q: parsed.append(q) or real_parse(q))
    endpoint._document_checked.cache_clear()
    query = "query Twice { __typename }"

    answers = [post(client, query).json() for _ in range(3)]

    assert parsed == [query]
    assert answers == [{"data": {"__typename": "Query"}}] * 3


def test_a_kept_document_is_validated_again_when_a_limit_changes(client):
    query = "{ viewer { kind } }"
    assert post(client, query).status_code == 200

    with override_settings(CMS_GRAPHQL_MAX_DEPTH=0):
        response = post(client, query)

    assert response.status_code == 400
    assert "depth 1" in response.json()["errors"][0]["message"]


def test_a_very_long_query_is_not_kept(client, monkeypatch):
    from cmsproject import graphql as endpoint

    endpoint._document_checked.cache_clear()
    query = "{ __typename }" + " " * endpoint.LONGEST_QUERY_KEPT

    assert post(client, query).status_code == 200
    assert endpoint._document_checked.cache_info().currsize == 0


def test_a_kept_syntax_error_is_still_a_400(client):
    for _ in range(2):
        response = post(client, "{ viewer { ")

        assert response.status_code == 400
        assert "Syntax Error" in response.json()["errors"][0]["message"]


def test_a_mutation_over_get_is_refused_with_a_kept_document(client):
    query = "mutation { __typename }"
    post(client, query)

    response = client.get("/graphql/", {"query": query})

    assert response.status_code == 405


def test_viewer_is_the_jwt_user(client, superuser):
    token = AccessToken.for_user(superuser)

    response = post(
        client, "{ viewer { kind username isStaff } }", HTTP_AUTHORIZATION=f"Bearer {token}"
    )

    assert response.json()["data"]["viewer"] == {
        "kind": "user",
        "username": superuser.username,
        "isStaff": True,
    }


def test_viewer_is_the_api_key(client):
    _key, raw = api_key_create(name="k", scopes=["content:read"], created_by=None)

    response = post(client, "{ viewer { kind scopes } }", HTTP_AUTHORIZATION=f"Api-Key {raw}")

    assert response.json()["data"]["viewer"] == {"kind": "api_key", "scopes": ["content:read"]}


def test_bad_token_is_401_problem(client):
    response = post(client, "{ __typename }", HTTP_AUTHORIZATION="Bearer garbage")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_graphiql_is_not_served_when_debug_is_off(client):
    response = client.get("/graphql/", HTTP_ACCEPT="text/html")

    assert b"graphiql" not in response.content.lower()


def test_resolver_crash_is_masked_and_logged(caplog):
    class Boom(graphene.ObjectType):
        fail = graphene.String()

        def resolve_fail(root, info):
            raise RuntimeError("password=hunter2 at db-host:5432")

    result = graphene.Schema(query=Boom).execute("{ fail }")
    formatted = CmsGraphQLView.format_error(result.errors[0])

    assert formatted["message"] == "Internal server error"
    assert "hunter2" not in str(formatted)
    assert "hunter2" in caplog.text
