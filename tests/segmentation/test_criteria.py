"""The criteria language's schema and validation: every error names its path."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from cmsproject.errors import ValidationError
from segmentation.criteria import (
    AGGREGATE_OPS,
    AGGREGATES,
    CRITERIA_SCHEMA,
    MAX_CONDITIONS,
    MAX_REFERENCE_DEPTH,
    OPS,
    OPS_BY_TYPE,
    criteria_catalog,
    criteria_clean,
    criteria_events,
    criteria_segment_refs,
)
from segmentation.models import Segment
from tests.segmentation.conftest import API_EXAMPLE

pytestmark = pytest.mark.django_db


def errors_of(rules, **kwargs) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        criteria_clean(rules, **kwargs)
    assert caught.value.status == 400
    assert caught.value.errors[0].attr in caught.value.detail  # the summary names the path
    return [(error.attr, error.code) for error in caught.value.errors]


def test_the_schema_is_a_valid_2020_12_schema_and_accepts_the_api_example():
    Draft202012Validator.check_schema(CRITERIA_SCHEMA)
    assert list(Draft202012Validator(CRITERIA_SCHEMA).iter_errors(API_EXAMPLE)) == []
    assert CRITERIA_SCHEMA["$defs"]["attribute"]["properties"]["op"]["enum"] == list(OPS)
    assert CRITERIA_SCHEMA["$defs"]["event"]["properties"]["aggregate"]["enum"] == list(AGGREGATES)


def test_the_api_example_is_valid_and_comes_back_unchanged(catalog):
    Segment.objects.create(key="churned", name="Churned", kind="static")
    assert criteria_clean(API_EXAMPLE, segment_key="vip") == API_EXAMPLE


def test_an_event_test_without_aggregate_counts(catalog):
    cleaned = criteria_clean({"event": "purchase", "op": "gte", "value": 2})
    assert cleaned == {"event": "purchase", "aggregate": "count", "op": "gte", "value": 2}


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([], [("rules", "invalid_type")]),
        ({}, [("rules", "invalid_condition")]),
        ({"nothing": 1}, [("rules", "invalid_condition")]),
        ({"all": []}, [("rules.all", "too_few")]),
        ({"any": [{"all": [{"not": 3}]}]}, [("rules.any[0].all[0].not", "invalid_type")]),
        (
            {"attribute": "email", "op": "eq", "value": "x", "extra": 1},
            [("rules.extra", "unknown_field")],
        ),
        ({"attribute": "email", "op": "like", "value": "x"}, [("rules.op", "invalid_choice")]),
        ({"attribute": "email", "op": "eq"}, [("rules.value", "required")]),
        ({"attribute": "email", "op": "exists", "value": 1}, [("rules.value", "not_allowed")]),
        ({"attribute": "email", "op": "in", "value": "x"}, [("rules.value", "invalid_type")]),
        ({"attribute": "email", "op": "in", "value": []}, [("rules.value", "too_few")]),
        ({"attribute": "email", "op": "eq", "value": ["x"]}, [("rules.value", "invalid_type")]),
        ({"attribute": "email", "op": "eq", "value": None}, [("rules.value", "invalid_type")]),
        ({"attribute": "a b", "op": "exists"}, [("rules.attribute", "invalid_format")]),
        ({"event": "purchase", "op": "gt", "value": "1"}, [("rules.value", "invalid_type")]),
        ({"event": "purchase", "op": "gt", "value": True}, [("rules.value", "invalid_type")]),
        (
            {"event": "purchase", "aggregate": "median", "op": "gt", "value": 1},
            [("rules.aggregate", "invalid_choice")],
        ),
        (
            {"event": "purchase", "aggregate": "sum", "op": "gt", "value": 1},
            [("rules.property", "required")],
        ),
        (
            {"event": "purchase", "property": "amount", "op": "gt", "value": 1},
            [("rules.property", "not_allowed")],
        ),
        (
            {"event": "purchase", "aggregate": "last_seen_days", "property": "a", "op": "exists"},
            [("rules.property", "not_allowed")],
        ),
        (
            {"event": "purchase", "within_days": 0, "op": "gt", "value": 1},
            [("rules.within_days", "too_small")],
        ),
        (
            {"event": "purchase", "within_days": 1.5, "op": "gt", "value": 1},
            [("rules.within_days", "invalid_type")],
        ),
        (
            {"event": "purchase", "aggregate": "sum", "property": 'a"b', "op": "gt", "value": 1},
            [("rules.property", "invalid_format")],
        ),
        ({"segment": "Not A Key"}, [("rules.segment", "invalid_format")]),
    ],
)
def test_structure_errors_name_the_path(rules, expected):
    assert errors_of(rules) == expected


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ({"attribute": "nickname", "op": "exists"}, ("rules.attribute", "unknown_attribute")),
        (
            {"all": [{"attribute": "attributes.shoe_size", "op": "exists"}]},
            ("rules.all[0].attribute", "unknown_attribute"),
        ),
        ({"attribute": "attributes.age", "op": "contains", "value": 1}, ("rules.op", "invalid_op")),
        ({"attribute": "email", "op": "gt", "value": "m"}, ("rules.op", "invalid_op")),
        (
            {"attribute": "attributes.newsletter", "op": "in", "value": [True]},
            ("rules.op", "invalid_op"),
        ),
        (
            {"attribute": "attributes.age", "op": "eq", "value": "3"},
            ("rules.value", "invalid_value"),
        ),
        (
            {"attribute": "attributes.age", "op": "eq", "value": 3.5},
            ("rules.value", "invalid_value"),
        ),
        (
            {"attribute": "attributes.score", "op": "gt", "value": True},
            ("rules.value", "invalid_value"),
        ),
        (
            {"attribute": "attributes.newsletter", "op": "eq", "value": 1},
            ("rules.value", "invalid_value"),
        ),
        (
            {"attribute": "attributes.city", "op": "eq", "value": 1},
            ("rules.value", "invalid_value"),
        ),
        (
            {"attribute": "attributes.birthday", "op": "lt", "value": "2026-02-30"},
            ("rules.value", "invalid_value"),
        ),
        (
            {"attribute": "last_seen", "op": "lt", "value": "2026-02-01T10:00:00"},
            ("rules.value", "invalid_value"),
        ),
        (
            {"attribute": "attributes.plan", "op": "in", "value": ["pro", "gold"]},
            ("rules.value[1]", "invalid_value"),
        ),
        (
            {"attribute": "loyalty_tier", "op": "eq", "value": "diamond"},
            ("rules.value", "invalid_value"),
        ),
        ({"event": "signup", "op": "gte", "value": 1}, ("rules.event", "unknown_event")),
        (
            {
                "event": "product_view",
                "aggregate": "distinct",
                "property": "price",
                "op": "gt",
                "value": 1,
            },
            ("rules.property", "not_tracked"),
        ),
        (
            {
                "event": "product_view",
                "aggregate": "max",
                "property": "colour",
                "op": "gt",
                "value": 1,
            },
            ("rules.property", "unknown_property"),
        ),
        (
            {
                "event": "product_view",
                "aggregate": "sum",
                "property": "category",
                "op": "gt",
                "value": 1,
            },
            ("rules.property", "invalid_property"),
        ),
        ({"segment": "nobody-made-this"}, ("rules.segment", "unknown_segment")),
    ],
)
def test_meaning_errors_name_the_path(catalog, rules, expected):
    assert errors_of(rules) == [expected]


def test_every_error_is_reported_at_once(catalog):
    rules = {
        "all": [
            {"attribute": "nickname", "op": "exists"},
            {"event": "signup", "op": "gte", "value": 1},
            {"segment": "nobody"},
        ]
    }
    assert errors_of(rules) == [
        ("rules.all[0].attribute", "unknown_attribute"),
        ("rules.all[1].event", "unknown_event"),
        ("rules.all[2].segment", "unknown_segment"),
    ]


def test_an_undeclared_property_of_an_open_schema_is_accepted(catalog):
    # purchase's schema lists `amount` but does not close the set.
    rules = {"event": "purchase", "aggregate": "max", "property": "tax", "op": "gt", "value": 1}
    assert criteria_clean(rules)["property"] == "tax"


# --- Every op and aggregate, accepted or refused as designed --------------------------------------
VALUES = {
    "string": ("attributes.city", "Paris"),
    "enum": ("attributes.plan", "pro"),
    "integer": ("attributes.age", 30),
    "number": ("attributes.score", 2.5),
    "boolean": ("attributes.newsletter", True),
    "date": ("attributes.birthday", "2000-01-31"),
    "datetime": ("last_seen", "2026-01-31T09:00:00Z"),
}


@pytest.mark.parametrize("kind", list(VALUES))
@pytest.mark.parametrize("op", OPS)
def test_each_op_on_each_attribute_type(catalog, kind, op):
    name, value = VALUES[kind]
    rules = {"attribute": name, "op": op}
    if op in {"in", "not_in"}:
        rules["value"] = [value]
    elif op != "exists":
        rules["value"] = value
    if op in OPS_BY_TYPE[kind]:
        assert criteria_clean(rules) == rules
    else:
        assert errors_of(rules) == [("rules.op", "invalid_op")]


@pytest.mark.parametrize("aggregate", AGGREGATES)
@pytest.mark.parametrize("op", OPS)
def test_each_op_on_each_aggregate(catalog, aggregate, op):
    rules = {"event": "product_view", "aggregate": aggregate, "op": op, "within_days": 30}
    if aggregate in {"sum", "avg", "min", "max"}:
        rules["property"] = "price"
    elif aggregate == "distinct":
        rules["property"] = "category"
    if op != "exists":
        rules["value"] = [1] if op in {"in", "not_in"} else 1
    if op in AGGREGATE_OPS:
        assert criteria_clean(rules) == rules
    else:
        assert ("rules.op", "invalid_choice") in errors_of(rules)


def test_core_columns_are_typed(catalog):
    for rules in (
        {"attribute": "loyalty_tier", "op": "in", "value": ["gold", "none"]},
        {"attribute": "lifecycle_stage", "op": "eq", "value": "churned"},
        {"attribute": "total_spend", "op": "gte", "value": 99.5},
        {"attribute": "created_at", "op": "lt", "value": "2026-01-01T00:00:00+01:00"},
        {"attribute": "email", "op": "contains", "value": "@example."},
        {"attribute": "external_id", "op": "exists"},
    ):
        assert criteria_clean(rules) == rules


# --- Size, references, cycles ---------------------------------------------------------------------
def test_a_rule_holds_at_most_the_maximum_of_conditions(catalog):
    condition = {"attribute": "email", "op": "exists"}
    assert criteria_clean({"all": [condition] * (MAX_CONDITIONS - 1)})
    too_many = {"all": [{"any": [condition] * 50}, {"any": [condition] * 50}]}
    assert errors_of(too_many) == [("rules", "too_many")]


def test_a_segment_cannot_refer_to_itself(catalog):
    assert errors_of({"not": {"segment": "vip"}}, segment_key="vip") == [
        ("rules.not.segment", "cycle")
    ]


def test_a_cycle_through_other_segments_is_refused_with_its_path(catalog):
    Segment.objects.create(key="a", name="A", rules={"segment": "b"})
    Segment.objects.create(key="b", name="B", rules={"any": [{"segment": "vip"}]})
    with pytest.raises(ValidationError) as caught:
        criteria_clean({"all": [{"segment": "a"}]}, segment_key="vip")
    (error,) = caught.value.errors
    assert (error.attr, error.code) == ("rules.all[0].segment", "cycle")
    assert "vip → a → b → vip" in error.detail


def test_a_cycle_among_stored_segments_is_refused(catalog):
    Segment.objects.create(key="a", name="A", rules={"segment": "b"})
    Segment.objects.create(key="b", name="B", rules={"segment": "a"})
    assert errors_of({"segment": "a"}) == [("rules.segment", "cycle")]


def test_a_static_segment_ends_a_chain(catalog):
    # A static segment's rules are not read: its members are set by hand.
    Segment.objects.create(key="hand-picked", name="H", kind="static", rules={"segment": "vip"})
    assert criteria_clean({"segment": "hand-picked"}, segment_key="vip")


def test_references_nest_at_most_the_maximum_depth(catalog):
    keys = [f"level-{n}" for n in range(1, MAX_REFERENCE_DEPTH + 2)]
    for key, ref in zip(keys, [*keys[1:], None], strict=True):
        rules = {"segment": ref} if ref else {"attribute": "email", "op": "exists"}
        Segment.objects.create(key=key, name=key, rules=rules)
    # level-2 … level-6: five segments deep.
    assert criteria_clean({"segment": keys[1]})
    with pytest.raises(ValidationError) as caught:
        criteria_clean({"segment": keys[0]})
    (error,) = caught.value.errors
    assert (error.attr, error.code) == ("rules.segment", "too_deep")
    assert " → ".join(keys) in error.detail


def test_references_expand_to_a_bounded_size(catalog):
    fifty = {"all": [{"attribute": "email", "op": "exists"}] * 49}
    Segment.objects.create(key="wide", name="Wide", rules=fifty)
    Segment.objects.create(key="wider", name="Wider", rules={"all": [{"segment": "wide"}] * 40})
    assert errors_of({"any": [{"segment": "wider"}] * 2}) == [("rules", "too_many")]


def test_refs_and_events_of_a_rule():
    assert criteria_segment_refs(API_EXAMPLE) == {"churned"}
    assert criteria_events(API_EXAMPLE) == {"purchase", "product_view", "cart_abandoned"}
    assert criteria_segment_refs({"weird": [1, {"segment": "x"}]}) == set()  # tolerant


def test_the_catalog_lists_what_the_editor_may_offer(catalog):
    Segment.objects.create(key="churned", name="Churned", kind="static")
    found = criteria_catalog()
    by_name = {a["name"]: a for a in found["attributes"]}
    assert by_name["attributes.plan"] == {
        "name": "attributes.plan",
        "type": "enum",
        "ops": list(OPS_BY_TYPE["enum"]),
        "choices": ["free", "pro", "team"],
        "description": "Plan",
    }
    assert by_name["attributes.birthday"]["type"] == "date"
    assert by_name["loyalty_tier"]["choices"][0] == "none"
    assert {"name": "product_view", "distinct_properties": ["category"]} in found["events"]
    assert found["segments"] == ["churned"]
