"""Field definitions → JSON Schema, and validation errors → paths a client can act on.

A content type or component defines its fields as data (`{"name", "type", "required", ...}`).
`entry_schema` turns a type and the components it may use into one JSON Schema for the whole entry
body; dynamic zones use `if`/`then` on each block's `component`, so an error inside a block keeps
its exact path (`zones.body[1].data.heading`). Block variants are partial: a variant's `data` is
merged over the block's default data, so its schema is the component's without `required`.

Everything here is pure: no database access. `content.services` loads the definitions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from graphene.utils.str_converters import to_camel_case
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError as SchemaError

from cmsproject.errors import FieldError

FIELD_TYPES = (
    "string",
    "text",
    "richtext",
    "integer",
    "number",
    "boolean",
    "datetime",
    "enum",
    "media",
    "reference",
    "json",
    "component",
)
# The flattened GraphQL object of an entry has these; a field of the same name would shadow one.
RESERVED_FIELD_NAMES = frozenset(
    {
        "id",
        "type",
        "slug",
        "locale",
        "status",
        "fields",
        "zones",
        "audience",
        "lifecycle_stage",
        "language",
        "publish_at",
        "published_at",
        "first_published_at",
        "created_at",
        "updated_at",
        "revision",
        "live_revision",
    }
)
NAME_PATTERN = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"
SEGMENT_KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
SLUG_PATTERN = r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$"
MAX_BLOCKS_PER_ZONE = 100
MAX_REPEATED_ITEMS = 100
DEFAULT_MAX_LENGTH = {"string": 255, "text": 20_000, "richtext": 200_000}

FIELD_DEFINITION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "type"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": NAME_PATTERN, "maxLength": 63},
        "type": {"enum": list(FIELD_TYPES)},
        "required": {"type": "boolean"},
        "label": {"type": "string", "maxLength": 120},
        "help_text": {"type": "string", "maxLength": 500},
        "max_length": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
        "min": {"type": "number"},
        "max": {"type": "number"},
        "choices": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1, "maxLength": 100},
        },
        "to": {"type": "string", "pattern": NAME_PATTERN},
        "component": {"type": "string", "pattern": NAME_PATTERN},
        "repeatable": {"type": "boolean"},
        "max_items": {"type": "integer", "minimum": 1, "maximum": MAX_REPEATED_ITEMS},
    },
    "allOf": [
        {"if": {"properties": {"type": {"const": "enum"}}}, "then": {"required": ["choices"]}},
        {"if": {"properties": {"type": {"const": "reference"}}}, "then": {"required": ["to"]}},
        {
            "if": {"properties": {"type": {"const": "component"}}},
            "then": {"required": ["component"]},
        },
    ],
}
FIELDS_SCHEMA = {"type": "array", "maxItems": 200, "items": FIELD_DEFINITION_SCHEMA}
ZONES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": 20,
    "items": {
        "type": "object",
        "required": ["name", "components"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": NAME_PATTERN, "maxLength": 63},
            "label": {"type": "string", "maxLength": 120},
            "components": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"type": "string", "pattern": NAME_PATTERN},
            },
            "max_blocks": {"type": "integer", "minimum": 1, "maximum": MAX_BLOCKS_PER_ZONE},
        },
    },
}

format_checker = FormatChecker(formats=())


@format_checker.checks("date-time", raises=ValueError)
def _is_datetime_with_zone(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("a time zone is required")
    return True


# --- Definitions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Definitions:
    """What validation needs to know: each component's fields, by api_id."""

    components: Mapping[str, list[dict[str, Any]]]


def definition_errors(
    *,
    fields: Any,
    zones: Any = None,
    definitions: Definitions,
    type_ids: Iterable[str],
    owner: str,
) -> list[FieldError]:
    """Problems with a type's or a component's own definition (not with entries)."""
    errors = list(schema_errors(Draft202012Validator(FIELDS_SCHEMA), fields, prefix="fields"))
    if zones is not None:
        errors += schema_errors(Draft202012Validator(ZONES_SCHEMA), zones, prefix="zones")
    if errors:
        return errors
    known_types = set(type_ids)
    seen: dict[str, str] = {}
    for index, field in enumerate(fields):
        path = f"fields[{index}]"
        name = field["name"]
        camel = to_camel_case(name)
        if name in RESERVED_FIELD_NAMES:
            errors.append(FieldError(f"{path}.name", "reserved", f"'{name}' is reserved."))
        if camel in seen:
            errors.append(
                FieldError(f"{path}.name", "duplicate", f"'{name}' clashes with '{seen[camel]}'.")
            )
        seen[camel] = name
        if field["type"] == "reference" and field["to"] not in known_types:
            errors.append(
                FieldError(f"{path}.to", "unknown_type", f"No content type '{field['to']}'.")
            )
        if field["type"] == "component":
            target = field["component"]
            if target not in definitions.components:
                errors.append(
                    FieldError(
                        f"{path}.component", "unknown_component", f"No component '{target}'."
                    )
                )
            elif target == owner or owner in _nested_components(target, definitions):
                errors.append(
                    FieldError(
                        f"{path}.component",
                        "cycle",
                        f"'{target}' contains '{owner}': components cannot nest in a cycle.",
                    )
                )
        if "min" in field and "max" in field and field["min"] > field["max"]:
            errors.append(FieldError(f"{path}.min", "invalid", "min is greater than max."))
    zone_names: set[str] = set()
    for index, zone in enumerate(zones or []):
        if zone["name"] in zone_names or to_camel_case(zone["name"]) in seen:
            errors.append(
                FieldError(f"zones[{index}].name", "duplicate", f"'{zone['name']}' is taken.")
            )
        zone_names.add(zone["name"])
        for position, api_id in enumerate(zone["components"]):
            if api_id not in definitions.components:
                errors.append(
                    FieldError(
                        f"zones[{index}].components[{position}]",
                        "unknown_component",
                        f"No component '{api_id}'.",
                    )
                )
    return errors


def _nested_components(api_id: str, definitions: Definitions) -> set[str]:
    found: set[str] = set()
    pending = [api_id]
    while pending:
        for field in definitions.components.get(pending.pop(), []):
            target = field.get("component")
            if field.get("type") == "component" and target and target not in found:
                found.add(target)
                pending.append(target)
    return found


# --- Definitions → JSON Schema -------------------------------------------------------------------
def field_schema(field: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    kind = field["type"]
    if kind in ("string", "text", "richtext"):
        schema: dict[str, Any] = {
            "type": "string",
            "maxLength": field.get("max_length", DEFAULT_MAX_LENGTH[kind]),
        }
    elif kind in ("integer", "number"):
        schema = {"type": kind}
        if "min" in field:
            schema["minimum"] = field["min"]
        if "max" in field:
            schema["maximum"] = field["max"]
    elif kind == "boolean":
        schema = {"type": "boolean"}
    elif kind == "datetime":
        schema = {"type": "string", "format": "date-time"}
    elif kind == "enum":
        schema = {"enum": list(field["choices"])}
    elif kind in ("media", "reference"):
        schema = {"type": "integer", "minimum": 1}
    elif kind == "component":
        item = {"$ref": f"#/$defs/{'partial' if partial else 'full'}.{field['component']}"}
        schema = (
            {"type": "array", "maxItems": field.get("max_items", MAX_REPEATED_ITEMS), "items": item}
            if field.get("repeatable")
            else item
        )
    else:  # json
        schema = {}
    if field.get("help_text") or field.get("label"):
        schema["description"] = field.get("label") or field.get("help_text")
    return schema


def object_schema(fields: list[dict[str, Any]], *, partial: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {field["name"]: field_schema(field, partial=partial) for field in fields},
    }
    required = [field["name"] for field in fields if field.get("required")]
    if required and not partial:
        schema["required"] = required
    return schema


def component_defs(api_ids: Iterable[str], definitions: Definitions) -> dict[str, Any]:
    """`$defs` for these components and every component nested in them, full and partial."""
    wanted = set(api_ids)
    for api_id in list(wanted):
        wanted |= _nested_components(api_id, definitions)
    defs: dict[str, Any] = {}
    for api_id in sorted(wanted & set(definitions.components)):
        fields = definitions.components[api_id]
        defs[f"full.{api_id}"] = object_schema(fields)
        defs[f"partial.{api_id}"] = object_schema(fields, partial=True)
    return defs


def block_schema(components: list[str], max_blocks: int) -> dict[str, Any]:
    segment_keys = {
        "type": "array",
        "minItems": 1,
        "maxItems": 20,
        "uniqueItems": True,
        "items": {"type": "string", "pattern": SEGMENT_KEY_PATTERN},
    }
    block = {
        "type": "object",
        "required": ["component", "data"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,40}$"},
            "component": {"enum": components},
            "data": {"type": "object"},
            "variants": {
                "type": "array",
                "maxItems": 20,
                "items": {
                    "type": "object",
                    "required": ["segments", "data"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,40}$"},
                        "name": {"type": "string", "maxLength": 120},
                        "segments": segment_keys,
                        "data": {"type": "object"},
                    },
                },
            },
            # An A/B test of the block: each variant's partial `data` (control usually has
            # none: it is the default). Resolved per visitor by experiments' bucketing.
            "experiment": {
                "type": "object",
                "required": ["key"],
                "additionalProperties": False,
                "properties": {
                    "key": {"type": "string", "pattern": SEGMENT_KEY_PATTERN},
                    "variants": {
                        "type": "object",
                        "maxProperties": 10,
                        "propertyNames": {"pattern": SEGMENT_KEY_PATTERN},
                        "additionalProperties": {"type": "object"},
                    },
                },
            },
            # The block is shown only to visitors for whom this feature flag is on.
            "flag": {"type": "string", "pattern": SEGMENT_KEY_PATTERN},
        },
        "allOf": [
            {
                "if": {"properties": {"component": {"const": api_id}}, "required": ["component"]},
                "then": {
                    "properties": {
                        "data": {"$ref": f"#/$defs/full.{api_id}"},
                        "variants": {
                            "items": {"properties": {"data": {"$ref": f"#/$defs/partial.{api_id}"}}}
                        },
                        "experiment": {
                            "properties": {
                                "variants": {
                                    "additionalProperties": {"$ref": f"#/$defs/partial.{api_id}"}
                                }
                            }
                        },
                    }
                },
            }
            for api_id in components
        ],
    }
    return {"type": "array", "maxItems": max_blocks, "items": block}


def entry_schema(
    *,
    fields: list[dict[str, Any]],
    zones: list[dict[str, Any]],
    definitions: Definitions,
    lifecycle_stages: Iterable[str],
) -> dict[str, Any]:
    """The JSON Schema of an entry body (`fields`, `zones` and the personalization attributes)."""
    used = {field["component"] for field in fields if field["type"] == "component"}
    for zone in zones:
        used |= set(zone["components"])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "fields": object_schema(fields),
            "zones": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    zone["name"]: block_schema(
                        list(zone["components"]), zone.get("max_blocks", MAX_BLOCKS_PER_ZONE)
                    )
                    for zone in zones
                },
            },
            "audience": {
                "type": "array",
                "maxItems": 50,
                "uniqueItems": True,
                "items": {"type": "string", "pattern": SEGMENT_KEY_PATTERN},
            },
            "lifecycle_stage": {"enum": ["", *lifecycle_stages]},
            "language": {"type": "string", "pattern": r"^$|^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"},
        },
        "$defs": component_defs(used, definitions),
    }


def entry_validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=format_checker)


# --- Errors → paths ------------------------------------------------------------------------------
ERROR_CODES = {
    "type": "invalid_type",
    "enum": "invalid_choice",
    "const": "invalid_choice",
    "maxLength": "too_long",
    "minLength": "too_short",
    "maximum": "too_large",
    "minimum": "too_small",
    "maxItems": "too_many",
    "minItems": "too_few",
    "uniqueItems": "duplicate",
    "pattern": "invalid_format",
    "format": "invalid_format",
}


def json_path(parts: Iterable[str | int], prefix: str = "") -> str:
    path = prefix
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def schema_errors(
    validator: Draft202012Validator, instance: Any, *, prefix: str = ""
) -> list[FieldError]:
    """Every schema violation as a FieldError whose `attr` is the offending path."""
    found: list[FieldError] = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path))):
        found.extend(_explain(error, prefix))
    # if/then errors can repeat the same leaf through two routes; keep each once, in order.
    return list(dict.fromkeys(found))


def _explain(error: SchemaError, prefix: str) -> Iterator[FieldError]:
    path = json_path(error.absolute_path, prefix)
    if error.validator == "required":
        for name in error.validator_value:
            if isinstance(error.instance, dict) and name not in error.instance:
                yield FieldError(json_path([name], path), "required", "This field is required.")
    elif error.validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        for name in error.instance:
            if name not in allowed:
                yield FieldError(json_path([name], path), "unknown_field", "Unknown field.")
    elif path.endswith(".component") and error.validator == "enum":
        yield FieldError(
            path,
            "not_allowed",
            f"Component {error.instance!r} is not allowed here; allowed: "
            f"{', '.join(map(str, error.validator_value))}.",
        )
    else:
        yield FieldError(path, ERROR_CODES.get(str(error.validator), "invalid"), _message(error))


def _message(error: SchemaError) -> str:
    if error.validator == "type":
        return f"Expected {error.validator_value}, got {type(error.instance).__name__}."
    if error.validator == "enum":
        return f"Must be one of: {', '.join(map(str, error.validator_value))}."
    return re.sub(r"^.{200,}$", "Invalid value.", error.message)


# --- Walking an entry by its definitions ---------------------------------------------------------
REMOVE = object()  # returned by a visitor to drop the field
Visitor = Callable[[str, Mapping[str, Any], Any], Any]


def transform_object(
    obj: Any, fields: list[dict[str, Any]], definitions: Definitions, visit: Visitor, path: str
) -> Any:
    """Call `visit(path, field definition, value)` for every defined field present in `obj`,
    nested components first; the visitor returns the new value or REMOVE. Tolerates bad shapes
    (they are the schema's to report), so it can run before validation."""
    if not isinstance(obj, dict):
        return obj
    out = dict(obj)
    for field in fields:
        name = field["name"]
        if name not in out:
            continue
        value = out[name]
        field_path = f"{path}.{name}"
        if field["type"] == "component" and value is not None:
            nested = definitions.components.get(field["component"], [])
            if isinstance(value, list):
                value = [
                    transform_object(item, nested, definitions, visit, f"{field_path}[{index}]")
                    for index, item in enumerate(value)
                ]
            else:
                value = transform_object(value, nested, definitions, visit, field_path)
        new_value = visit(field_path, field, value)
        if new_value is REMOVE:
            del out[name]
        else:
            out[name] = new_value
    return out


def transform_document(
    document: dict[str, Any],
    *,
    fields: list[dict[str, Any]],
    definitions: Definitions,
    visit: Visitor,
) -> dict[str, Any]:
    """`transform_object` over an entry: its fields, and each block's data, its segment
    variants' data and its experiment variants' data."""
    out = dict(document)
    if "fields" in out:
        out["fields"] = transform_object(out["fields"], fields, definitions, visit, "fields")
    zones = out.get("zones")
    if not isinstance(zones, dict):
        return out
    new_zones: dict[str, Any] = {}
    for zone_name, blocks in zones.items():
        if not isinstance(blocks, list):
            new_zones[zone_name] = blocks
            continue
        new_blocks = []
        for index, block in enumerate(blocks):
            component = block.get("component") if isinstance(block, dict) else None
            if isinstance(component, str) and component in definitions.components:
                block_fields = definitions.components[component]
                path = f"zones.{zone_name}[{index}]"
                block = dict(block)
                if "data" in block:
                    block["data"] = transform_object(
                        block["data"], block_fields, definitions, visit, f"{path}.data"
                    )
                if isinstance(block.get("variants"), list):
                    block["variants"] = [
                        {
                            **variant,
                            "data": transform_object(
                                variant.get("data"),
                                block_fields,
                                definitions,
                                visit,
                                f"{path}.variants[{position}].data",
                            ),
                        }
                        if isinstance(variant, dict) and "data" in variant
                        else variant
                        for position, variant in enumerate(block["variants"])
                    ]
                experiment = block.get("experiment")
                if isinstance(experiment, dict) and isinstance(experiment.get("variants"), dict):
                    block["experiment"] = {
                        **experiment,
                        "variants": {
                            key: transform_object(
                                data,
                                block_fields,
                                definitions,
                                visit,
                                f"{path}.experiment.variants.{key}",
                            )
                            for key, data in experiment["variants"].items()
                        },
                    }
            new_blocks.append(block)
        new_zones[zone_name] = new_blocks
    out["zones"] = new_zones
    return out


def drop_nulls(path: str, field: Mapping[str, Any], value: Any) -> Any:
    """null means absent: an optional field is stored only when it has a value."""
    return REMOVE if value is None else value


def configured_locales() -> list[str]:
    return list(settings.CMS_LOCALES)
