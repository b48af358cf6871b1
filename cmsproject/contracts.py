"""The public API contracts (OpenAPI document, GraphQL SDL) and a guard against breaking them.

The committed copies live in `cmsproject/api_contracts/`; a test compares them with the live
schemas so that a breaking change cannot land by accident. An intended change is recorded with
`make schemas` (`python -m cmsproject.contracts --write`); `--check` reports breaking changes
and exits 1 if there are any.

Why the OpenAPI comparator is ours: no maintained Python library diffs two OpenAPI documents for
breaking changes, and oasdiff (the usual tool) is a Go binary we do not have here. It covers what
breaks our clients in practice; GraphQL uses graphql-core's own `find_breaking_changes`.

The OpenAPI comparator reports, for each operation present in the committed document:
- a removed path, a removed method;
- a request body that became required, a request field that became required or a new required
  one (`application/json` schemas, `$ref` and `allOf` resolved, nested objects and array items);
- a removed 2xx response, a 2xx response that no longer returns `application/json`, a removed
  response field or one that is no longer always present (paginated envelopes and arrays too);
- a new required parameter, or one that became required (query, header, cookie).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import build_schema, find_breaking_changes, print_schema

Doc = dict[str, Any]
Schema = dict[str, Any]

CONTRACTS_DIR = Path(__file__).resolve().parent / "api_contracts"
OPENAPI_PATH = CONTRACTS_DIR / "openapi.json"
GRAPHQL_PATH = CONTRACTS_DIR / "schema.graphql"

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
JSON_MEDIA_TYPE = "application/json"
UPDATE_HINT = "If the change is intended, run `make schemas` and commit cmsproject/api_contracts/."


# --- The live contracts ---------------------------------------------------------------------------
def openapi_document() -> Doc:
    """The OpenAPI document `/api/v1/schema/` serves, generated in-process, as plain JSON data.

    Generation is deterministic (same document in embedded and services mode, whatever the hash
    seed); the JSON round trip with sorted keys makes the dict itself canonical too.
    """
    from drf_spectacular.renderers import OpenApiJsonRenderer
    from drf_spectacular.settings import spectacular_settings

    generator = spectacular_settings.DEFAULT_GENERATOR_CLASS()
    document = generator.get_schema(request=None, public=spectacular_settings.SERVE_PUBLIC)
    plain = json.loads(OpenApiJsonRenderer().render(document))  # lazy strings, decimals...
    return json.loads(render_openapi(plain))


def graphql_sdl() -> str:
    """The GraphQL schema `/graphql/` serves, in SDL."""
    from cmsproject.schema import schema

    return print_schema(schema.graphql_schema)


def render_openapi(document: Doc) -> str:
    return json.dumps(document, sort_keys=True, indent=2) + "\n"


def render_sdl(sdl: str) -> str:
    return sdl.rstrip("\n") + "\n"


def write_contracts() -> list[Path]:
    CONTRACTS_DIR.mkdir(exist_ok=True)
    OPENAPI_PATH.write_text(render_openapi(openapi_document()), encoding="utf-8")
    GRAPHQL_PATH.write_text(render_sdl(graphql_sdl()), encoding="utf-8")
    return [OPENAPI_PATH, GRAPHQL_PATH]


@dataclass(frozen=True)
class ContractReport:
    breaking: list[str]
    changed: bool  # the live contracts differ from the committed files at all


def compare_with_committed() -> ContractReport:
    """The live contracts against the committed files (which must exist)."""
    committed_openapi = OPENAPI_PATH.read_text(encoding="utf-8")
    committed_sdl = GRAPHQL_PATH.read_text(encoding="utf-8")
    live_openapi, live_sdl = openapi_document(), graphql_sdl()
    openapi_changes = openapi_breaking_changes(json.loads(committed_openapi), live_openapi)
    graphql_changes = graphql_breaking_changes(committed_sdl, live_sdl)
    breaking = [f"OpenAPI: {c}" for c in openapi_changes] + [
        f"GraphQL: {c}" for c in graphql_changes
    ]
    live_files = (render_openapi(live_openapi), render_sdl(live_sdl))
    changed = (committed_openapi, committed_sdl) != live_files
    return ContractReport(breaking=breaking, changed=changed)


# --- GraphQL --------------------------------------------------------------------------------------
def graphql_breaking_changes(old_sdl: str, new_sdl: str) -> list[str]:
    changes = find_breaking_changes(build_schema(old_sdl), build_schema(new_sdl))
    return [f"{change.type.name}: {change.description}" for change in changes]


# --- OpenAPI --------------------------------------------------------------------------------------
def openapi_breaking_changes(old: Doc, new: Doc) -> list[str]:
    """What a client written against `old` would find broken in `new`."""
    changes: list[str] = []
    new_paths = new.get("paths", {})
    for path, old_item in sorted(old.get("paths", {}).items()):
        new_item = new_paths.get(path)
        if new_item is None:
            changes.append(f"{path}: path removed")
            continue
        for method in HTTP_METHODS:
            if method not in old_item:
                continue
            where = f"{method.upper()} {path}"
            if method not in new_item:
                changes.append(f"{where}: method removed")
                continue
            old_op = Operation(old, old_item, old_item[method])
            new_op = Operation(new, new_item, new_item[method])
            changes += [f"{where}: {change}" for change in _operation_changes(old_op, new_op)]
    return changes


@dataclass(frozen=True)
class Operation:
    doc: Doc  # the whole document, to resolve `$ref`
    path_item: Doc
    operation: Doc


def _operation_changes(old: Operation, new: Operation) -> list[str]:
    return [
        *_parameter_changes(old, new),
        *_request_changes(old, new),
        *_response_changes(old, new),
    ]


def _parameter_changes(old: Operation, new: Operation) -> list[str]:
    old_params, new_params = _parameters(old), _parameters(new)
    changes = []
    for (location, name), param in sorted(new_params.items()):
        if location == "path" or not param.get("required"):
            continue  # path parameters belong to the path itself
        if (location, name) not in old_params:
            changes.append(f"new required {location} parameter '{name}'")
        elif not old_params[(location, name)].get("required"):
            changes.append(f"{location} parameter '{name}' became required")
    return changes


def _parameters(op: Operation) -> dict[tuple[str, str], Doc]:
    """Path-level parameters, overridden by the operation's own (as OpenAPI specifies)."""
    params = [*op.path_item.get("parameters", []), *op.operation.get("parameters", [])]
    resolved = (_deref(op.doc, param) for param in params)
    return {(param.get("in", ""), param.get("name", "")): param for param in resolved}


def _request_changes(old: Operation, new: Operation) -> list[str]:
    old_body = _deref(old.doc, old.operation.get("requestBody", {}))
    new_body = _deref(new.doc, new.operation.get("requestBody", {}))
    changes = []
    if new_body.get("required") and not old_body.get("required"):
        changes.append("request body became required")
    old_schema, new_schema = _json_schema(old_body), _json_schema(new_body)
    if old_schema is None or new_schema is None:
        return changes
    for field, old_obj, new_obj in _object_pairs(old.doc, old_schema, new.doc, new_schema):
        old_props, old_required = old_obj.get("properties", {}), set(old_obj.get("required", []))
        for name in sorted(set(new_obj.get("required", [])) - old_required):
            label = _join(field, name)
            if name in old_props:
                changes.append(f"request field '{label}' became required")
            else:
                changes.append(f"new required request field '{label}'")
    return changes


def _response_changes(old: Operation, new: Operation) -> list[str]:
    new_responses = new.operation.get("responses", {})
    changes = []
    for status, old_response in sorted(old.operation.get("responses", {}).items()):
        if not str(status).startswith("2"):
            continue
        if status not in new_responses:
            changes.append(f"response {status} removed")
            continue
        old_schema = _json_schema(_deref(old.doc, old_response))
        new_schema = _json_schema(_deref(new.doc, new_responses[status]))
        if old_schema is None:
            continue
        if new_schema is None:
            changes.append(f"response {status} no longer returns {JSON_MEDIA_TYPE}")
            continue
        for field, old_obj, new_obj in _object_pairs(old.doc, old_schema, new.doc, new_schema):
            changes += [f"response {status} {c}" for c in _removed_fields(field, old_obj, new_obj)]
    return changes


def _removed_fields(field: str, old_obj: Schema, new_obj: Schema) -> list[str]:
    new_props, new_required = new_obj.get("properties", {}), set(new_obj.get("required", []))
    changes = []
    for name in sorted(old_obj.get("properties", {})):
        if name not in new_props:
            changes.append(f"field '{_join(field, name)}' removed")
        elif name in old_obj.get("required", []) and name not in new_required:
            changes.append(f"field '{_join(field, name)}' is no longer always present")
    return changes


# --- OpenAPI schema walking -----------------------------------------------------------------------
def _json_schema(body_or_response: Doc) -> Schema | None:
    media = body_or_response.get("content", {}).get(JSON_MEDIA_TYPE)
    return None if media is None else media.get("schema", {})


def _object_pairs(
    old_doc: Doc,
    old_schema: Schema,
    new_doc: Doc,
    new_schema: Schema,
    field: str = "",
    seen: frozenset[tuple[frozenset[str], frozenset[str]]] = frozenset(),
) -> Iterator[tuple[str, Schema, Schema]]:
    """Each (field path, old object schema, new object schema) reachable in both schemas.

    Follows `$ref`, `allOf`, properties kept in both and array `items` (shown as `results[]`),
    so a field removed from the items of a paginated envelope is found like a top-level one.
    """
    old_schema, old_refs = _flatten(old_doc, old_schema)
    new_schema, new_refs = _flatten(new_doc, new_schema)
    key = (old_refs, new_refs)
    if old_refs or new_refs:
        if key in seen:
            return  # a recursive schema: this pair is already being compared
        seen = seen | {key}
    if "items" in old_schema and "items" in new_schema:
        yield from _object_pairs(
            old_doc, old_schema["items"], new_doc, new_schema["items"], f"{field}[]", seen
        )
        return
    yield field, old_schema, new_schema
    new_props = new_schema.get("properties", {})
    for name, old_prop in sorted(old_schema.get("properties", {}).items()):
        if name in new_props:
            yield from _object_pairs(
                old_doc, old_prop, new_doc, new_props[name], _join(field, name), seen
            )


def _flatten(doc: Doc, schema: Schema) -> tuple[Schema, frozenset[str]]:
    """`schema` with `$ref` followed and `allOf` merged, and the refs that took."""
    refs: set[str] = set()
    while "$ref" in schema and schema["$ref"] not in refs:
        refs.add(schema["$ref"])
        schema = _lookup(doc, schema["$ref"])
    if "allOf" not in schema:
        return schema, frozenset(refs)
    merged: Schema = {key: value for key, value in schema.items() if key != "allOf"}
    properties = dict(merged.get("properties", {}))
    required = list(merged.get("required", []))
    for part in schema["allOf"]:
        part, part_refs = _flatten(doc, part)
        refs |= part_refs
        merged = {**part, **merged}
        properties.update(part.get("properties", {}))
        required += [name for name in part.get("required", []) if name not in required]
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = required
    return merged, frozenset(refs)


def _deref(doc: Doc, obj: Doc) -> Doc:
    """A parameter, request body or response, following a `$ref` to components."""
    seen: set[str] = set()
    while "$ref" in obj and obj["$ref"] not in seen:
        seen.add(obj["$ref"])
        obj = _lookup(doc, obj["$ref"])
    return obj


def _lookup(doc: Doc, ref: str) -> Doc:
    """A local JSON pointer (`#/components/schemas/ApiKey`); unknown refs resolve to `{}`."""
    if not ref.startswith("#/"):
        return {}
    node: Any = doc
    for token in ref[2:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or token not in node:
            return {}
        node = node[token]
    return node if isinstance(node, dict) else {}


def _join(field: str, name: str) -> str:
    return f"{field}.{name}" if field else name


# --- Command line ---------------------------------------------------------------------------------
def _setup_django() -> None:
    # A developer tool: the settings insist on these outside DEBUG, and nothing here is served.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cmsproject.settings")
    os.environ.setdefault("SECRET_KEY", "contracts-tool-not-served")
    os.environ.setdefault("ALLOWED_HOSTS", "localhost")
    import django

    django.setup()


def check() -> int:
    try:
        report = compare_with_committed()
    except FileNotFoundError as exc:
        print(f"Missing committed contract {exc.filename}. Run `make schemas`.", file=sys.stderr)
        return 1
    if report.breaking:
        print("Breaking changes to the public API contracts:", file=sys.stderr)
        for change in report.breaking:
            print(f"  - {change}", file=sys.stderr)
        print(UPDATE_HINT, file=sys.stderr)
        return 1
    if report.changed:
        print("Notice: the API contracts changed without breaking anything; run `make schemas`.")
    else:
        print("API contracts match the committed files.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cmsproject.contracts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the committed contracts")
    mode.add_argument("--check", action="store_true", help="exit 1 on a breaking change")
    args = parser.parse_args(argv)
    _setup_django()
    if args.check:
        return check()
    for path in write_contracts():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
