"""The segment criteria language (API.md "Segments"): its JSON Schema, its validation, and what a
rule reads.

A rule is a tree. Groups: `{"all": [...]}` (every condition holds), `{"any": [...]}` (one
does), `{"not": condition}`. Tests:

- `{"attribute": name, "op": op, "value": v}`: a customer's core column (`email`, `name`,
  `external_id`, `loyalty_tier`, `lifecycle_stage`, `last_seen`, `total_spend`, `created_at`) or
  a marketer-defined attribute (`attributes.<key>`, typed by its `AttributeDefinition`);
- `{"event": type, "aggregate": a, "property": p, "within_days": n, "op": op, "value": v}`: an
  aggregate of the subject's events of one type (`count` when `aggregate` is left out);
- `{"segment": key}`: membership of another segment.

Semantics, shared by the Python evaluator (`segmentation.evaluation`, one subject) and the SQL
compiler (`segmentation.compiler`, every customer), which a property test holds to the same
answers:

- Two-valued logic. Every test is true or false, never unknown: a missing value (an attribute
  absent or JSON null, a blank core text column, a null `last_seen`, an anonymous subject's
  attributes, an avg/min/max/last_seen_days over no events) makes every op false except that
  `exists` asks exactly "is there a value". So `ne` and `not_in` are false on a missing value,
  and `not` inverts exactly: `{"not": {"attribute": "attributes.city", "op": "eq", ...}}` holds
  for a customer without a city. The SQL wraps every test in `CASE WHEN … THEN TRUE ELSE FALSE`
  so NULL never reaches a `NOT`.
- Comparisons are typed by JSON kind: a value compares only with a stored value of its own kind
  (number, string, boolean), so `eq 5` is false on the string "5" and `gt 5` is false on a text;
  `ne v` is "has a value and it is not `eq v`", `not_in` likewise. Numbers compare as exact
  decimals (`analytics.selectors.json_decimal`); texts by code point (PostgreSQL `COLLATE "C"`);
  `last_seen`/`created_at` as instants (the value is ISO 8601 with a zone); date attributes as
  their ISO text. `contains` is a case-sensitive substring test on texts (case folding differs
  between SQLite, PostgreSQL and Python; an exact test agrees everywhere). No attribute type
  holds a list yet, so list membership is not offered.
- Event aggregates, windows and their sources are defined in `analytics.selectors` (the block
  "Segment rules"): `within_days` N is the last N UTC calendar days including today, relative to
  an explicit `now`; count/sum/distinct/last_seen_days read the daily roll-ups, avg/min/max raw
  events; no events gives count = sum = distinct = 0 and no value for the others. `distinct`
  needs a property the event type marks for distinct counts (else 400: the roll-ups do not keep
  its values). Aggregates take the comparison ops and `exists`.
- `{"segment": key}` holds when the subject is in that segment: by the referenced segment's own
  rules when it is dynamic (evaluated recursively, in the same query), by its current stored
  members when it is static. A reference to a segment that no longer exists, deeper than
  `MAX_REFERENCE_DEPTH`, or in a cycle is false (validation refuses all three; the evaluators
  only guard).
- Who can be a member: customers not erased and not refusing `personalization` consent
  (`customers.selectors.customers_personalizable`), and anonymous subjects (`a:<id>`, in the
  Python evaluator only; bulk evaluation is over customers).

Limits bound the cost: at most `MAX_CONDITIONS` conditions in a rule, references at most
`MAX_REFERENCE_DEPTH` levels deep, at most `MAX_EXPANDED_CONDITIONS` conditions once every
dynamic reference is expanded.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

from analytics.selectors import EVENT_AGGREGATES, EventAggregate, event_type_catalog
from cmsproject.errors import FieldError, ValidationError
from content.schema import _explain, format_checker, json_path
from customers.models import LifecycleStage, LoyaltyTier
from customers.selectors import customer_attributes_schema
from segmentation.models import SEGMENT_KEY_VALIDATOR, Segment

OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists")
ORDERING_OPS = ("gt", "gte", "lt", "lte")
LIST_OPS = ("in", "not_in")
AGGREGATES = EVENT_AGGREGATES
PROPERTY_AGGREGATES = ("sum", "avg", "min", "max", "distinct")
NUMERIC_PROPERTY_AGGREGATES = ("sum", "avg", "min", "max")
AGGREGATE_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "exists")

MAX_CONDITIONS = 100
MAX_REFERENCE_DEPTH = 5
MAX_EXPANDED_CONDITIONS = 1000
MAX_WITHIN_DAYS = 3650
MAX_LIST_VALUES = 1000

# Attribute types: the definition types (customers.AttributeDefinition) and the core columns'.
OPS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "string": ("eq", "ne", "in", "not_in", "contains", "exists"),
    "enum": ("eq", "ne", "in", "not_in", "exists"),
    "integer": ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists"),
    "number": ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists"),
    "boolean": ("eq", "ne", "exists"),
    "date": ("eq", "ne", "gt", "gte", "lt", "lte", "exists"),
    "datetime": ("eq", "ne", "gt", "gte", "lt", "lte", "exists"),
}


@dataclass(frozen=True)
class AttributeInfo:
    name: str
    type: str
    choices: tuple[Any, ...] = ()
    description: str = ""

    @property
    def column(self) -> str | None:
        """The Customer column, or None for `attributes.<key>` (a key of the JSON column)."""
        return None if self.name.startswith("attributes.") else self.name

    @property
    def key(self) -> str:
        return self.name.removeprefix("attributes.")


CORE_ATTRIBUTES: dict[str, AttributeInfo] = {
    info.name: info
    for info in (
        AttributeInfo("email", "string", description="Email address (blank: no value)."),
        AttributeInfo("name", "string", description="Name (blank: no value)."),
        AttributeInfo("external_id", "string", description="The site's own user id."),
        AttributeInfo("loyalty_tier", "enum", tuple(LoyaltyTier.values), "Loyalty tier."),
        AttributeInfo("lifecycle_stage", "enum", tuple(LifecycleStage.values), "Lifecycle stage."),
        AttributeInfo("last_seen", "datetime", description="Time of the latest event."),
        AttributeInfo("total_spend", "number", description="Total of purchases."),
        AttributeInfo("created_at", "datetime", description="When the profile was created."),
    )
}
# Texts where blank means "no value" (Django stores a blank text as '').
BLANK_IS_MISSING = frozenset(
    name for name, info in CORE_ATTRIBUTES.items() if info.type in {"string", "enum"}
)

SEGMENT_KEY_PATTERN = SEGMENT_KEY_VALIDATOR.regex.pattern
ATTRIBUTE_PATTERN = r"^(attributes\.)?[A-Za-z0-9_-]{1,64}$"
EVENT_PATTERN = r"^[-a-zA-Z0-9_]{1,100}$"
# Kept plain so a property name needs no escaping in an SQLite JSON path.
PROPERTY_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}$"

# --- The JSON Schema ------------------------------------------------------------------------------
_NO_KIND = "criteria:no-kind"
_NOT_TAKEN = "criteria:not-taken"
# A field this op or aggregate does not take (not `false`: its errors would lose their path).
_ABSENT: dict[str, Any] = {"$comment": _NOT_TAKEN, "not": {}}
_SCALAR: dict[str, Any] = {"type": ["string", "number", "boolean"]}


def _kind_chain(kinds: list[str]) -> dict[str, Any]:
    """if all → all, else if any → any, … else: not a condition. `if`/`then` (not `oneOf`) keeps
    an error inside a condition at its own path."""
    if not kinds:  # an object of no known kind (a non-object only gets the type error)
        return {"if": {"type": "object"}, "then": {"$comment": _NO_KIND, "not": {}}}
    kind, rest = kinds[0], kinds[1:]
    return {
        "if": {"type": "object", "required": [kind]},
        "then": {"$ref": f"#/$defs/{kind}"},
        "else": _kind_chain(rest),
    }


CRITERIA_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:cms:segment-criteria:v1",
    "title": "Segment criteria",
    "description": (
        "A tree of conditions deciding who is in a dynamic segment. Groups combine conditions "
        "(all, any, not); tests read a customer attribute, an aggregate of the subject's events, "
        "or membership of another segment. Every test is true or false: a missing value makes "
        "every op false except `exists`, so `not` inverts exactly. Windows (`within_days`) are "
        "the last N calendar days in UTC, today included. Customers who refused "
        "personalization are never members."
    ),
    "$ref": "#/$defs/condition",
    "$defs": {
        "condition": {
            "title": "Condition",
            "description": "A group (all, any, not) or a test (attribute, event, segment).",
            "type": "object",
            **_kind_chain(["all", "any", "not", "attribute", "event", "segment"]),
        },
        "all": {
            "title": "All of",
            "description": "Holds when every condition holds.",
            "type": "object",
            "required": ["all"],
            "additionalProperties": False,
            "properties": {
                "all": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_CONDITIONS,
                    "items": {"$ref": "#/$defs/condition"},
                }
            },
        },
        "any": {
            "title": "Any of",
            "description": "Holds when at least one condition holds.",
            "type": "object",
            "required": ["any"],
            "additionalProperties": False,
            "properties": {
                "any": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_CONDITIONS,
                    "items": {"$ref": "#/$defs/condition"},
                }
            },
        },
        "not": {
            "title": "Not",
            "description": "Holds when the condition does not.",
            "type": "object",
            "required": ["not"],
            "additionalProperties": False,
            "properties": {"not": {"$ref": "#/$defs/condition"}},
        },
        "attribute": {
            "title": "Attribute test",
            "description": (
                "Compares a customer attribute: a core column or `attributes.<key>` of an "
                "attribute definition. The attribute's type decides the ops and values allowed."
            ),
            "type": "object",
            "required": ["attribute", "op"],
            "additionalProperties": False,
            "properties": {
                "attribute": {
                    "type": "string",
                    "pattern": ATTRIBUTE_PATTERN,
                    "description": "A core column, or `attributes.<key>`.",
                    "examples": [*CORE_ATTRIBUTES, "attributes.newsletter"],
                },
                "op": {
                    "enum": list(OPS),
                    "description": (
                        "eq/ne: equal or not (ne needs a value); gt/gte/lt/lte: numbers, dates "
                        "and times; in/not_in: one of a list or not; contains: substring of a "
                        "text, case-sensitive; exists: has a value (takes no value)."
                    ),
                    "x-ops-by-type": {name: list(ops) for name, ops in OPS_BY_TYPE.items()},
                },
                "value": {"description": "A value of the attribute's type; a list for in/not_in."},
            },
            "allOf": [
                {
                    "if": {"required": ["op"], "properties": {"op": {"const": "exists"}}},
                    "then": {"properties": {"value": _ABSENT}},
                    "else": {"required": ["value"]},
                },
                {
                    "if": {"required": ["op"], "properties": {"op": {"enum": list(LIST_OPS)}}},
                    "then": {
                        "properties": {
                            "value": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": MAX_LIST_VALUES,
                                "items": _SCALAR,
                            }
                        }
                    },
                    "else": {"properties": {"value": _SCALAR}},
                },
            ],
        },
        "event": {
            "title": "Event aggregate test",
            "description": (
                "Compares an aggregate of the subject's events of one type, over the last "
                "`within_days` days (UTC, today included) or all time. With no events, count, "
                "sum and distinct are 0 and the others have no value (the test is false)."
            ),
            "type": "object",
            "required": ["event", "op"],
            "additionalProperties": False,
            "properties": {
                "event": {
                    "type": "string",
                    "pattern": EVENT_PATTERN,
                    "description": "An event type's name.",
                },
                "aggregate": {
                    "enum": list(AGGREGATES),
                    "default": "count",
                    "description": (
                        "count: events; sum/avg/min/max: of a numeric property; distinct: "
                        "distinct values of a property the event type marks for distinct counts; "
                        "last_seen_days: whole days since the latest such event."
                    ),
                },
                "property": {
                    "type": "string",
                    "pattern": PROPERTY_PATTERN,
                    "description": "The event property (sum, avg, min, max, distinct).",
                },
                "within_days": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_WITHIN_DAYS,
                    "description": "The last N calendar days (UTC), today included.",
                },
                "op": {"enum": list(AGGREGATE_OPS)},
                "value": {"type": "number"},
            },
            "allOf": [
                {
                    "if": {
                        "required": ["aggregate"],
                        "properties": {"aggregate": {"enum": list(PROPERTY_AGGREGATES)}},
                    },
                    "then": {"required": ["property"]},
                    "else": {"properties": {"property": _ABSENT}},
                },
                {
                    "if": {"required": ["op"], "properties": {"op": {"const": "exists"}}},
                    "then": {"properties": {"value": _ABSENT}},
                    "else": {"required": ["value"]},
                },
            ],
        },
        "segment": {
            "title": "Segment membership",
            "description": (
                "Holds when the subject is in that segment: by its rules if dynamic, by its "
                "stored members if static. References nest at most "
                f"{MAX_REFERENCE_DEPTH} deep and may not form a cycle."
            ),
            "type": "object",
            "required": ["segment"],
            "additionalProperties": False,
            "properties": {"segment": {"type": "string", "pattern": SEGMENT_KEY_PATTERN}},
        },
    },
}
_validator = Draft202012Validator(CRITERIA_SCHEMA, format_checker=format_checker)


# --- Walking a rule -------------------------------------------------------------------------------
def criteria_walk(rules: Any, path: str = "rules") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every condition of a rule with its path, depth first. Tolerates any JSON (stored rules of
    other segments are walked before they are trusted)."""
    if not isinstance(rules, dict):
        return
    yield path, rules
    for group in ("all", "any"):
        children = rules.get(group)
        if isinstance(children, list):
            for index, child in enumerate(children):
                yield from criteria_walk(child, f"{path}.{group}[{index}]")
    if "not" in rules:
        yield from criteria_walk(rules["not"], f"{path}.not")


def criteria_segment_refs(rules: Any) -> set[str]:
    """The keys of the segments a rule refers to directly (not those their rules refer to)."""
    return {
        node["segment"] for _, node in criteria_walk(rules) if isinstance(node.get("segment"), str)
    }


def criteria_events(rules: Any) -> set[str]:
    """The event types a rule reads directly, so incremental evaluation can skip segments an
    event cannot change. References are not followed: a rule that refers to segments also
    depends on theirs (walk `criteria_segment_refs`)."""
    return {node["event"] for _, node in criteria_walk(rules) if isinstance(node.get("event"), str)}


def event_aggregate_of(node: dict[str, Any]) -> EventAggregate:
    """What an event test reads (both evaluators ask `analytics.selectors` for it)."""
    return EventAggregate(
        event_type=node["event"],
        aggregate=node.get("aggregate", "count"),
        property=node.get("property"),
        within_days=node.get("within_days"),
    )


def datetime_value(value: str) -> datetime:
    """The instant of an ISO 8601 value (with a zone) compared with `last_seen`/`created_at`."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- Attributes -----------------------------------------------------------------------------------
def criteria_attributes() -> dict[str, AttributeInfo]:
    """Every attribute a rule may test: the core columns, then `attributes.<key>` per definition
    (one query)."""
    found = dict(CORE_ATTRIBUTES)
    for key, schema in customer_attributes_schema()["properties"].items():
        if "enum" in schema:
            kind, choices = "enum", tuple(schema["enum"])
        elif schema.get("format") == "date":
            kind, choices = "date", ()
        else:
            kind, choices = schema["type"], ()
        name = f"attributes.{key}"
        found[name] = AttributeInfo(name, kind, choices, schema.get("title", ""))
    return found


def criteria_catalog() -> dict[str, Any]:
    """What the rule editor may offer now: attributes with their types and ops, event types with
    the properties marked for distinct counts, segment keys. (`CRITERIA_SCHEMA` is the static
    grammar; this is the vocabulary.)"""
    return {
        "attributes": [
            {
                "name": info.name,
                "type": info.type,
                "ops": list(OPS_BY_TYPE[info.type]),
                **({"choices": list(info.choices)} if info.choices else {}),
                "description": info.description,
            }
            for info in criteria_attributes().values()
        ],
        "events": [
            {"name": info.name, "distinct_properties": list(info.distinct_properties)}
            for info in event_type_catalog().values()
        ],
        "aggregates": list(AGGREGATES),
        "segments": list(Segment.objects.order_by("key").values_list("key", flat=True)),
    }


# --- Validation -----------------------------------------------------------------------------------
def criteria_clean(rules: Any, *, segment_key: str | None = None, path: str = "rules") -> dict:
    """Valid, normalized rules (`aggregate` spelled out), or `ValidationError` (400) whose errors
    name each offending path (`rules.all[1].value`): the structure by `CRITERIA_SCHEMA`, then the
    meaning: unknown attributes, events and segments, ops and values that do not fit the
    attribute's type, properties not tracked for distinct counts, cycles through `segment_key`
    (the segment being saved), references nested too deep, rules too large."""
    errors = _schema_errors(rules, path)
    if errors:
        raise _invalid(errors)
    cleaned = copy.deepcopy(rules)
    for _, node in criteria_walk(cleaned, path):
        if "event" in node:
            node.setdefault("aggregate", "count")
            if "within_days" in node:
                node["within_days"] = int(node["within_days"])
    errors = _Semantics(path=path, segment_key=segment_key).errors(cleaned)
    if errors:
        raise _invalid(errors)
    return cleaned


def _invalid(errors: list[FieldError]) -> ValidationError:
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ValidationError(f"Invalid criteria at {first.attr}: {first.detail}{more}", errors=errors)


def _schema_errors(rules: Any, path: str) -> list[FieldError]:
    found: list[FieldError] = []
    for error in sorted(_validator.iter_errors(rules), key=lambda e: list(map(str, e.path))):
        found.extend(_explain_criteria(error, path))
    return list(dict.fromkeys(found))


def _explain_criteria(error: SchemaError, prefix: str) -> Iterator[FieldError]:
    at = json_path(error.absolute_path, prefix)
    if error.validator == "not" and error.schema.get("$comment") == _NO_KIND:
        yield FieldError(
            at,
            "invalid_condition",
            "Not a condition: expected one of all, any, not, attribute, event, segment.",
        )
    elif error.validator == "not" and error.schema.get("$comment") == _NOT_TAKEN:
        field = error.absolute_path[-1] if error.absolute_path else ""
        detail = {
            "value": "`exists` takes no value.",
            "property": "Only sum, avg, min, max and distinct take a property.",
        }.get(str(field), "Not allowed here.")
        yield FieldError(at, "not_allowed", detail)
    else:
        yield from _explain(error, prefix)


class _Semantics:
    """The checks a schema cannot make: they need attribute definitions, event types and the
    stored segments (one query each; references one query per level)."""

    def __init__(self, *, path: str, segment_key: str | None) -> None:
        self.path, self.segment_key = path, segment_key
        self.found: list[FieldError] = []

    def error(self, attr: str, code: str, detail: str) -> None:
        self.found.append(FieldError(attr, code, detail))

    def errors(self, rules: dict[str, Any]) -> list[FieldError]:
        nodes = list(criteria_walk(rules, self.path))
        if len(nodes) > MAX_CONDITIONS:
            self.error(
                self.path,
                "too_many",
                f"A rule holds at most {MAX_CONDITIONS} conditions; this one has {len(nodes)}.",
            )
            return self.found
        attributes = criteria_attributes() if any("attribute" in n for _, n in nodes) else {}
        catalog = event_type_catalog() if any("event" in n for _, n in nodes) else {}
        references: list[tuple[str, str]] = []
        for at, node in nodes:
            if "attribute" in node:
                self.attribute(at, node, attributes)
            elif "event" in node:
                self.event(at, node, catalog)
            elif "segment" in node:
                references.append((f"{at}.segment", node["segment"]))
        if references:
            _References(self, rules).check(references)
        return list(dict.fromkeys(self.found))

    # Attributes ---------------------------------------------------------------------------------
    def attribute(self, at: str, node: dict[str, Any], known: dict[str, AttributeInfo]) -> None:
        info = known.get(node["attribute"])
        if info is None:
            self.error(
                f"{at}.attribute",
                "unknown_attribute",
                f"No attribute is called {node['attribute']!r}: use a core column "
                f"({', '.join(CORE_ATTRIBUTES)}) or attributes.<key> of an attribute definition.",
            )
            return
        op = node["op"]
        if op not in OPS_BY_TYPE[info.type]:
            self.error(
                f"{at}.op",
                "invalid_op",
                f"{op!r} does not apply to {info.name} ({info.type}); use one of: "
                f"{', '.join(OPS_BY_TYPE[info.type])}.",
            )
            return
        if op == "exists":
            return
        if op in LIST_OPS:
            for index, value in enumerate(node["value"]):
                self.attribute_value(f"{at}.value[{index}]", info, value)
        else:
            self.attribute_value(f"{at}.value", info, node["value"])

    def attribute_value(self, at: str, info: AttributeInfo, value: Any) -> None:
        problem = _value_problem(info, value)
        if problem:
            self.error(at, "invalid_value", problem)

    # Events -------------------------------------------------------------------------------------
    def event(self, at: str, node: dict[str, Any], catalog: dict[str, Any]) -> None:
        info = catalog.get(node["event"])
        if info is None:
            known = ", ".join(sorted(catalog)) or "none yet"
            self.error(
                f"{at}.event",
                "unknown_event",
                f"No event type is called {node['event']!r} (known: {known}).",
            )
            return
        aggregate, prop = node["aggregate"], node.get("property")
        if aggregate == "distinct" and prop not in info.distinct_properties:
            self.error(
                f"{at}.property",
                "not_tracked",
                f"Property {prop!r} is not tracked for distinct counts; mark it on the event "
                f"type {info.name!r} (distinct properties) first.",
            )
        if prop is not None and isinstance(info.schema, dict):
            self.event_property(f"{at}.property", info, aggregate, prop)
        value = node.get("value")
        if isinstance(value, float) and not math.isfinite(value):
            self.error(f"{at}.value", "invalid_value", "A finite number.")

    def event_property(self, at: str, info: Any, aggregate: str, prop: str) -> None:
        """Against the event type's schema, when it says enough: a property it closes out, or a
        numeric aggregate of a property it types as something other than a number."""
        declared = info.schema.get("properties")
        if not isinstance(declared, dict):
            return
        if prop not in declared:
            if info.schema.get("additionalProperties") is False:
                self.error(
                    at,
                    "unknown_property",
                    f"Events of type {info.name!r} have no property {prop!r}.",
                )
            return
        types = declared[prop].get("type") if isinstance(declared[prop], dict) else None
        types = [types] if isinstance(types, str) else types
        if (
            aggregate in NUMERIC_PROPERTY_AGGREGATES
            and isinstance(types, list)
            and not {"number", "integer"} & set(types)
        ):
            self.error(
                at,
                "invalid_property",
                f"{aggregate} needs a number; {prop!r} of {info.name!r} is "
                f"{' or '.join(map(str, types))}.",
            )


def _json_kind(value: Any) -> str:
    if type(value) is bool:
        return "boolean"
    if type(value) in (int, float):
        return "number"
    if type(value) is str:
        return "string"
    return type(value).__name__


def _value_problem(info: AttributeInfo, value: Any) -> str | None:
    """Why this value cannot be compared with the attribute, or None."""
    kind = _json_kind(value)
    if info.type == "enum":
        if not any(_json_kind(c) == kind and c == value for c in info.choices):
            return f"Must be one of: {', '.join(map(str, info.choices))}."
        return None
    if info.type in {"number", "integer"}:
        if kind != "number" or not math.isfinite(value):
            return f"Expected a number, got {kind}."
        if info.type == "integer" and value != int(value):
            return "Expected a whole number."
        return None
    if info.type == "boolean":
        return None if kind == "boolean" else f"Expected true or false, got {kind}."
    if info.type == "string":
        return None if kind == "string" else f"Expected text, got {kind}."
    if info.type == "date":
        try:
            if kind == "string" and len(value) == 10:
                date.fromisoformat(value)
                return None
        except ValueError:
            pass
        return "Expected a date, YYYY-MM-DD."
    if info.type == "datetime":
        try:
            if kind == "string" and datetime_value(value).tzinfo is not None:
                return None
        except ValueError:
            pass
        return "Expected an ISO 8601 date and time with a zone, e.g. 2026-01-31T09:00:00Z."
    return None


class _References:
    """Segment references: each must exist, none may lead back to the segment being saved (or
    into any cycle), chains stay within `MAX_REFERENCE_DEPTH`, and the rule expanded with every
    dynamic reference within `MAX_EXPANDED_CONDITIONS`. The stored segments are read level by
    level (one query each), never more than one level past the limit."""

    def __init__(self, semantics: _Semantics, rules: dict[str, Any]) -> None:
        self.semantics, self.rules = semantics, rules
        self.stored: dict[str, tuple[str, Any]] = {}  # key: (kind, rules)

    def load(self, keys: set[str]) -> None:
        frontier, levels = keys, 0
        while frontier and levels <= MAX_REFERENCE_DEPTH:
            rows = Segment.objects.filter(key__in=frontier).values_list("key", "kind", "rules")
            for key, kind, rules in rows:
                self.stored[key] = (kind, rules)
            frontier = {
                ref
                for key in frontier
                if key in self.stored
                for ref in self.refs(key)
                if ref not in self.stored
            }
            levels += 1

    def refs(self, key: str) -> set[str]:
        kind, rules = self.stored[key]
        return criteria_segment_refs(rules) if kind == Segment.Kind.DYNAMIC else set()

    def check(self, references: list[tuple[str, str]]) -> None:
        self.load({key for _, key in references})
        error = self.semantics.error
        own = self.semantics.segment_key
        for at, key in references:
            if key == own:
                error(at, "cycle", f"A segment cannot refer to itself ({own!r}).")
            elif key not in self.stored:
                error(at, "unknown_segment", f"No segment has the key {key!r}.")
            elif (loop := self.cycle_from(key, own)) is not None:
                error(at, "cycle", f"The reference makes a cycle: {' → '.join(loop)}.")
            elif (chain := self.deepest(key)) and len(chain) > MAX_REFERENCE_DEPTH:
                error(
                    at,
                    "too_deep",
                    f"Segment references nest at most {MAX_REFERENCE_DEPTH} deep: "
                    f"{' → '.join(chain)}.",
                )
        if not self.semantics.found:
            total = len(list(criteria_walk(self.rules))) + sum(
                self.expanded_size(key) - 1 for _, key in references
            )
            if total > MAX_EXPANDED_CONDITIONS:
                error(
                    self.semantics.path,
                    "too_many",
                    f"With the segments it refers to, this rule has {total} conditions; at most "
                    f"{MAX_EXPANDED_CONDITIONS}.",
                )

    def cycle_from(self, start: str, own: str | None) -> list[str] | None:
        """A path of references from `start` back to `own` (the segment being saved) or into a
        loop among stored segments, or None. Depth-first with a visited set: linear."""
        visited: set[str] = set()

        def visit(key: str, trail: list[str]) -> list[str] | None:
            for ref in sorted(self.refs(key)) if key in self.stored else ():
                if ref == own or ref in trail:
                    return [*trail, ref]
                if ref not in visited:
                    visited.add(ref)
                    found = visit(ref, [*trail, ref])
                    if found:
                        return found
            return None

        return visit(start, [*([own] if own else []), start])

    def deepest(self, start: str) -> list[str]:
        """The longest chain of references from `start` (itself included), cut one past the
        limit. Only called once cycles are ruled out."""
        memo: dict[str, list[str]] = {}

        def chain(key: str, depth: int) -> list[str]:
            if depth > MAX_REFERENCE_DEPTH or key not in self.stored:
                return [key]
            if key not in memo:
                tails = [chain(ref, depth + 1) for ref in sorted(self.refs(key))]
                memo[key] = [key, *max(tails, key=len, default=[])]
            return memo[key]

        return chain(start, 1)

    def expanded_size(self, key: str, memo: dict[str, int] | None = None) -> int:
        """Conditions of a reference once expanded (a static segment's reference counts one)."""
        memo = {} if memo is None else memo
        if key not in memo:
            kind, rules = self.stored.get(key, (Segment.Kind.STATIC, None))
            if kind != Segment.Kind.DYNAMIC:
                memo[key] = 1
            else:
                memo[key] = 0  # guards a loop not reported (it cannot be: checked before)
                own = len(list(criteria_walk(rules)))
                refs = [n["segment"] for _, n in criteria_walk(rules) if "segment" in n]
                memo[key] = 1 + own + sum(self.expanded_size(r, memo) - 1 for r in refs)
        return memo[key]
