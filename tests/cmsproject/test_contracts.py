"""The public contracts guard: the live schemas against the committed ones, and the comparators."""

from __future__ import annotations

import copy
from typing import Any

from cmsproject.contracts import (
    UPDATE_HINT,
    compare_with_committed,
    graphql_breaking_changes,
    graphql_sdl,
    openapi_breaking_changes,
    openapi_document,
)

ITEMS = "/api/v1/items/"


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _doc() -> dict[str, Any]:
    """A small document: a paginated list of items, and a create with a request body."""
    item = {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "title": {"type": "string"}},
        "required": ["id", "title"],
    }
    page = {
        "type": "object",
        "properties": {
            "next": {"type": "string", "nullable": True},
            "results": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
        },
        "required": ["results"],
    }
    item_request = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "note": {"type": "string"}},
        "required": ["title"],
    }
    return {
        "openapi": "3.0.3",
        "paths": {
            ITEMS: {
                "get": {
                    "parameters": [
                        {"in": "query", "name": "page", "required": False, "schema": {}},
                    ],
                    "responses": {"200": _json({"$ref": "#/components/schemas/PaginatedItemList"})},
                },
                "post": {
                    "requestBody": {
                        "required": True,
                        **_json({"$ref": "#/components/schemas/ItemRequest"}),
                    },
                    "responses": {"201": _json({"$ref": "#/components/schemas/Item"})},
                },
            },
            "/api/v1/health/": {"get": {"responses": {"200": {"description": ""}}}},
        },
        "components": {
            "schemas": {"Item": item, "PaginatedItemList": page, "ItemRequest": item_request},
        },
    }


SDL = """
type Query {
  viewer: Viewer
}

type Viewer {
  username: String!
  isStaff: Boolean!
}
"""


# --- The guard ------------------------------------------------------------------------------------
def test_live_contracts_have_no_breaking_change_against_committed_files():
    # given the committed contracts in cmsproject/api_contracts/
    # when the live OpenAPI document and GraphQL SDL are compared with them
    report = compare_with_committed()

    # then nothing a client relies on is gone
    assert not report.breaking, (
        "Breaking change to the public API contracts:\n"
        + "\n".join(f"  - {change}" for change in report.breaking)
        + f"\n{UPDATE_HINT}"
    )


def test_generating_the_contracts_twice_gives_the_same_documents():
    # given the live schemas
    # when they are generated twice
    # then the documents are identical (the committed files do not churn)
    assert openapi_document() == openapi_document()
    assert graphql_sdl() == graphql_sdl()


# --- OpenAPI comparator ---------------------------------------------------------------------------
def test_identical_documents_have_no_breaking_change():
    # given two copies of the same document
    # when compared
    # then nothing is reported
    assert openapi_breaking_changes(_doc(), _doc()) == []


def test_removed_path_is_breaking():
    # given a document where the health path is gone
    new = _doc()
    del new["paths"]["/api/v1/health/"]

    # when compared with the old one
    changes = openapi_breaking_changes(_doc(), new)

    # then the removed path is reported
    assert changes == ["/api/v1/health/: path removed"]


def test_removed_method_is_breaking():
    # given a document where the items path no longer takes POST
    new = _doc()
    del new["paths"][ITEMS]["post"]

    # when compared with the old one
    changes = openapi_breaking_changes(_doc(), new)

    # then the removed method is reported
    assert changes == [f"POST {ITEMS}: method removed"]


def test_request_field_that_became_required_is_breaking():
    # given a request schema where the optional `note` became required
    new = _doc()
    new["components"]["schemas"]["ItemRequest"]["required"] = ["note", "title"]

    # when compared with the old one
    changes = openapi_breaking_changes(_doc(), new)

    # then the field is reported on the operation that takes it
    assert changes == [f"POST {ITEMS}: request field 'note' became required"]


def test_new_required_request_field_is_breaking():
    # given a request schema with a new required `owner` field
    new = _doc()
    request = new["components"]["schemas"]["ItemRequest"]
    request["properties"]["owner"] = {"type": "string"}
    request["required"].append("owner")

    # when compared with the old one
    changes = openapi_breaking_changes(_doc(), new)

    # then the new required field is reported
    assert changes == [f"POST {ITEMS}: new required request field 'owner'"]


def test_removed_response_field_is_breaking_through_ref():
    # given the `Item` component, referenced by the create response, without `title`
    new = _doc()
    item = new["components"]["schemas"]["Item"]
    del item["properties"]["title"]
    item["required"] = ["id"]

    # when compared with the old one
    changes = openapi_breaking_changes(_doc(), new)

    # then the field is reported both in the paginated list items and in the create response
    assert changes == [
        f"GET {ITEMS}: response 200 field 'results[].title' removed",
        f"POST {ITEMS}: response 201 field 'title' removed",
    ]


def test_removed_response_field_is_breaking_in_inline_schema():
    # given an operation whose inline response schema loses a field
    old = _doc()
    old["paths"][ITEMS]["post"]["responses"]["201"] = _json(
        {"type": "object", "properties": {"id": {"type": "integer"}, "url": {"type": "string"}}}
    )
    new = copy.deepcopy(old)
    del new["paths"][ITEMS]["post"]["responses"]["201"]["content"]["application/json"]["schema"][
        "properties"
    ]["url"]

    # when compared
    changes = openapi_breaking_changes(old, new)

    # then the field is reported
    assert changes == [f"POST {ITEMS}: response 201 field 'url' removed"]


def test_response_field_no_longer_required_is_breaking():
    # given a response field that may now be absent
    new = _doc()
    new["components"]["schemas"]["Item"]["required"] = ["id"]

    # when compared with the old one
    changes = openapi_breaking_changes(_doc(), new)

    # then clients relying on it are warned
    assert f"POST {ITEMS}: response 201 field 'title' is no longer always present" in changes


def test_removed_success_status_is_breaking():
    # given a create that now answers 200 instead of 201
    new = _doc()
    responses = new["paths"][ITEMS]["post"]["responses"]
    responses["200"] = responses.pop("201")

    # when compared with the old one
    changes = openapi_breaking_changes(_doc(), new)

    # then the lost 201 is reported
    assert changes == [f"POST {ITEMS}: response 201 removed"]


def test_new_required_query_parameter_is_breaking():
    # given a list that now requires a `site` query parameter
    new = _doc()
    new["paths"][ITEMS]["get"]["parameters"].append(
        {"in": "query", "name": "site", "required": True, "schema": {"type": "string"}}
    )

    # when compared with the old one
    changes = openapi_breaking_changes(_doc(), new)

    # then the parameter is reported
    assert changes == [f"GET {ITEMS}: new required query parameter 'site'"]


def test_added_optional_field_is_not_breaking():
    # given an optional request field and a new response field
    new = _doc()
    new["components"]["schemas"]["ItemRequest"]["properties"]["tags"] = {"type": "array"}
    new["components"]["schemas"]["Item"]["properties"]["tags"] = {"type": "array"}

    # when compared with the old one
    changes = openapi_breaking_changes(_doc(), new)

    # then nothing is reported
    assert changes == []


def test_added_path_and_method_are_not_breaking():
    # given a new path and a new method on an existing one
    new = _doc()
    new["paths"]["/api/v1/tags/"] = {"get": {"responses": {"200": {"description": ""}}}}
    new["paths"]["/api/v1/health/"]["head"] = {"responses": {"200": {"description": ""}}}

    # when compared with the old one
    changes = openapi_breaking_changes(_doc(), new)

    # then nothing is reported
    assert changes == []


def test_recursive_schema_is_compared_without_looping():
    # given a component that refers to itself
    old = _doc()
    old["components"]["schemas"]["Item"]["properties"]["parent"] = {
        "$ref": "#/components/schemas/Item"
    }
    new = copy.deepcopy(old)
    del new["components"]["schemas"]["Item"]["properties"]["id"]

    # when compared
    changes = openapi_breaking_changes(old, new)

    # then the removal is reported once per operation, and the comparison ends
    assert changes == [
        f"GET {ITEMS}: response 200 field 'results[].id' removed",
        f"POST {ITEMS}: response 201 field 'id' removed",
    ]


# --- GraphQL comparator ---------------------------------------------------------------------------
def test_graphql_removed_field_is_breaking():
    # given a schema where `Viewer.isStaff` is gone
    new = SDL.replace("  isStaff: Boolean!\n", "")

    # when compared with the old one
    changes = graphql_breaking_changes(SDL, new)

    # then the removed field is reported
    assert changes == ["FIELD_REMOVED: Viewer.isStaff was removed."]


def test_graphql_added_field_is_not_breaking():
    # given a schema with a new nullable field on `Viewer`
    new = SDL.replace("  isStaff: Boolean!\n", "  isStaff: Boolean!\n  email: String\n")

    # when compared with the old one
    changes = graphql_breaking_changes(SDL, new)

    # then nothing is reported
    assert changes == []
