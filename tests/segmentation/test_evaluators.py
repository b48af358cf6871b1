"""Both evaluators against hand-written expectations on the seeded world (tests/segmentation/
conftest.py): one test per kind of condition. `world.selects` runs the SQL compiler and the
Python evaluator, asserts they agree on customers, and returns who matched (customers by name,
plus anonymous ids, which only the Python evaluator sees).

Nobody below ever includes dee (refused personalization) or eve (erased), though their data
would match many rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from customers.models import Customer
from segmentation.compiler import customers_matching
from segmentation.evaluation import subject_matches, subject_segments_evaluate
from segmentation.models import Segment, SegmentMembership
from tests.segmentation.conftest import NOW

pytestmark = pytest.mark.django_db
EVERYONE = {"ada", "bob", "cy", "fay"}


def attr(name, op, value=None):
    node = {"attribute": name, "op": op}
    return node if op == "exists" else {**node, "value": value}


def ev(event, aggregate="count", op="gte", value=None, **extra):
    node = {"event": event, "aggregate": aggregate, "op": op, **extra}
    return node if op == "exists" else {**node, "value": value}


# --- Attributes -----------------------------------------------------------------------------------
def test_enum_column_in_a_list(world):
    assert world.selects(attr("loyalty_tier", "in", ["gold", "platinum"])) == {"ada", "bob"}
    assert world.selects(attr("loyalty_tier", "not_in", ["gold", "platinum"])) == {"cy", "fay"}
    assert world.selects(attr("loyalty_tier", "eq", "none")) == {"fay"}


def test_boolean_attribute_eq_and_ne_are_false_without_a_value(world):
    assert world.selects(attr("attributes.newsletter", "eq", True)) == {"ada"}
    # fay's "yes" is a value, of another kind: not equal to true.
    assert world.selects(attr("attributes.newsletter", "ne", True)) == {"bob", "fay"}


def test_not_of_a_missing_value_is_true(world):
    rules = {"not": attr("attributes.newsletter", "eq", True)}
    assert world.selects(rules) == {"bob", "cy", "fay", "visitor-1"}


def test_exists_sees_null_as_no_value(world):
    assert world.selects(attr("attributes.city", "exists")) == {"ada", "bob"}
    assert world.selects({"not": attr("attributes.city", "exists")}) == {"cy", "fay", "visitor-1"}


def test_numbers_compare_only_with_numbers(world):
    assert world.selects(attr("attributes.age", "gte", 18)) == {"ada"}  # fay's "40" is text
    assert world.selects(attr("attributes.age", "lt", 18)) == {"bob"}
    assert world.selects(attr("attributes.score", "eq", 7.5)) == {"ada"}
    assert world.selects(attr("attributes.age", "in", [17, 36])) == {"ada", "bob"}
    assert world.selects(attr("attributes.age", "not_in", [17])) == {"ada", "fay"}


def test_contains_is_a_case_sensitive_substring(world):
    assert world.selects(attr("email", "contains", "example.org")) == {"bob"}
    assert world.selects(attr("email", "contains", "EXAMPLE")) == set()
    assert world.selects(attr("name", "contains", "Love")) == {"ada"}
    assert world.selects(attr("attributes.city", "contains", "ari")) == {"bob"}


def test_blank_core_text_is_no_value(world):
    assert world.selects(attr("email", "exists")) == {"ada", "bob", "fay"}
    assert world.selects(attr("email", "ne", "ada@example.com")) == {"bob", "fay"}


def test_enum_attribute(world):
    assert world.selects(attr("attributes.plan", "eq", "pro")) == {"ada"}
    assert world.selects(attr("attributes.plan", "not_in", ["free"])) == {"ada"}


def test_date_attribute_compares_as_iso_text(world):
    assert world.selects(attr("attributes.birthday", "lt", "2000-01-01")) == {"ada"}
    assert world.selects(attr("attributes.birthday", "gt", "2000-01-01")) == set()


def test_datetime_columns_compare_as_instants(world):
    assert world.selects(attr("last_seen", "gte", "2026-03-14T00:00:00Z")) == {"ada"}
    assert world.selects(attr("last_seen", "lt", "2026-03-14T10:00:00+00:00")) == {"fay"}
    assert world.selects(attr("last_seen", "eq", "2026-03-14T11:00:00+01:00")) == {"ada"}
    assert world.selects({"not": attr("last_seen", "exists")}) == {"bob", "cy", "visitor-1"}


def test_total_spend(world):
    assert world.selects(attr("total_spend", "gt", 500)) == {"ada"}
    assert world.selects(attr("total_spend", "lte", 100)) == {"bob", "cy", "fay"}


# --- Event aggregates -----------------------------------------------------------------------------
def test_count_within_one_day_is_today_only(world):
    today = ev("cart_abandoned", within_days=1, value=1)
    two_days = ev("cart_abandoned", within_days=2, value=1)
    assert world.selects(today) == {"ada", "visitor-1"}  # bob's was at 23:59 yesterday
    assert world.selects(two_days) == {"ada", "bob", "visitor-1"}


def test_events_after_now_do_not_count(world):
    # fay's abandoned cart is stamped tomorrow (a fast clock): not in any window, nor all time.
    assert world.selects(ev("cart_abandoned", value=1)) == {"ada", "bob", "visitor-1"}
    later = NOW + timedelta(days=1)
    assert "fay" in world.selects(ev("cart_abandoned", value=1), now=later)


def test_count_of_zero_matches_those_without_events(world):
    assert world.selects(ev("purchase", op="eq", value=0)) == {"cy", "fay", "visitor-1"}


def test_sum_over_ninety_days_ignores_old_and_non_numeric_amounts(world):
    rules = ev("purchase", "sum", "gt", 500, property="amount", within_days=90)
    assert world.selects(rules) == {"ada"}  # 300 + 250
    assert world.selects({**rules, "within_days": 200, "op": "gte", "value": 100}) == {"ada", "bob"}
    assert world.selects({**rules, "op": "eq", "value": 0}) == {"bob", "cy", "fay", "visitor-1"}


def test_window_edges_day_n_minus_one_and_n(world):
    # ada's 300 was 10 days ago at 00:00: the 11th day back counts it, the 10th does not.
    ten = ev("purchase", "sum", "eq", 250, property="amount", within_days=10)
    eleven = {**ten, "within_days": 11, "value": 550}
    assert world.selects(ten) == {"ada"}
    assert world.selects(eleven) == {"ada"}
    assert world.selects({**ten, "aggregate": "min", "value": 250}) == {"ada"}
    assert world.selects({**eleven, "aggregate": "min", "value": 300}) == set()
    assert world.selects({**eleven, "aggregate": "min", "value": 250}) == {"ada"}


def test_avg_compares_without_rounding(world):
    rules = ev("purchase", "avg", "gte", 275, property="amount")
    assert world.selects(rules) == {"ada"}  # (300 + 250) / 2 = 275 exactly
    assert world.selects({**rules, "op": "gt"}) == set()
    assert world.selects({**rules, "op": "eq", "value": 100}) == {"bob"}  # "12" is not a number
    assert world.selects({**rules, "op": "ne", "value": 100}) == {"ada"}  # no value: false


def test_avg_of_thirds_is_exact(world):
    bob = world.customers["bob"]
    from tests.segmentation.conftest import days_ago, event, store

    store([event("purchase", days_ago(0), customer=bob, amount=a) for a in (1, 1, 2)])
    # avg = 4/3 exactly: a division would round it to the value written here and call it equal.
    rules = ev("purchase", "avg", "eq", 1.3333333333333333, property="amount", within_days=1)
    assert world.selects(rules) == set()
    assert world.selects({**rules, "op": "gt"}) == {"bob"}
    assert world.selects({**rules, "op": "lt", "value": 1.3333333333333335}) == {"bob"}


def test_min_and_max_and_their_absence(world):
    assert world.selects(ev("purchase", "max", "gte", 300, property="amount")) == {"ada"}
    assert world.selects(ev("purchase", "min", "lt", 200, property="amount")) == {"bob"}
    assert world.selects(ev("purchase", "min", "exists", property="amount")) == {"ada", "bob"}
    absent = {"not": ev("purchase", "max", "exists", property="amount")}
    assert world.selects(absent) == {"cy", "fay", "visitor-1"}
    # Only a JSON number counts: bob's purchase of "12" this week has no amount.
    assert world.selects(ev("purchase", "max", "exists", property="amount", within_days=7)) == {
        "ada"
    }


def test_distinct_categories_this_week(world):
    rules = ev("product_view", "distinct", "gte", 3, property="category", within_days=7)
    assert world.selects(rules) == {"ada", "visitor-1"}
    assert world.selects({**rules, "op": "eq", "value": 1}) == {"fay"}  # shoes twice
    assert world.selects({**rules, "within_days": 9, "op": "eq", "value": 2}) == {"fay"}
    assert world.selects({**rules, "op": "eq", "value": 0}) == {"bob", "cy"}


def test_last_seen_days(world):
    rules = ev("purchase", "last_seen_days", "lte", 1)
    assert world.selects(rules) == {"ada"}  # bought yesterday
    assert world.selects({**rules, "value": 5}) == {"ada", "bob"}  # any purchase counts
    assert world.selects({**rules, "op": "gt", "value": 7}) == set()
    assert world.selects({"not": ev("purchase", "last_seen_days", "exists")}) == {
        "cy",
        "fay",
        "visitor-1",
    }


def test_the_api_example(world):
    """API.md's example, with `churned` a static segment nobody is in."""
    Segment.objects.create(key="churned", name="Churned", kind="static")
    rules = {
        "all": [
            {"attribute": "loyalty_tier", "op": "in", "value": ["gold", "platinum"]},
            ev("purchase", "sum", "gt", 500, property="amount", within_days=90),
            ev("product_view", "distinct", "gte", 3, property="category", within_days=7),
            ev("cart_abandoned", "count", "gte", 1, within_days=1),
            {
                "any": [
                    {"attribute": "attributes.newsletter", "op": "eq", "value": True},
                    {"not": {"segment": "churned"}},
                ]
            },
        ]
    }
    assert world.selects(rules) == {"ada"}


# --- Groups and references ------------------------------------------------------------------------
def test_all_any_not(world):
    gold = attr("loyalty_tier", "eq", "gold")
    teen = attr("attributes.age", "lt", 18)
    assert world.selects({"any": [gold, teen]}) == {"ada", "bob"}
    assert world.selects({"all": [gold, {"not": teen}]}) == {"ada"}
    assert world.selects({"not": {"any": [gold, teen]}}) == {"cy", "fay", "visitor-1"}


def test_a_dynamic_reference_uses_the_segment_rules(world):
    Segment.objects.create(key="buyers", name="Buyers", rules=ev("purchase", value=1))
    Segment.objects.create(
        key="gold-buyers",
        name="Gold buyers",
        rules={"all": [{"segment": "buyers"}, attr("loyalty_tier", "eq", "gold")]},
    )
    assert world.selects({"segment": "buyers"}) == {"ada", "bob"}
    assert world.selects({"segment": "gold-buyers"}) == {"ada"}
    assert world.selects({"not": {"segment": "gold-buyers"}}) == {"bob", "cy", "fay", "visitor-1"}


def test_a_static_reference_uses_the_current_members(world):
    vips = Segment.objects.create(key="vips", name="VIPs", kind="static")
    for name, exited in (("bob", None), ("dee", None), ("fay", NOW)):
        c = world.customers[name]
        SegmentMembership.objects.create(
            segment=vips, subject=f"c:{c.pk}", customer=c, entered_at=NOW, exited_at=exited
        )
    SegmentMembership.objects.create(segment=vips, subject="a:visitor-1", entered_at=NOW)
    assert world.selects({"segment": "vips"}) == {"bob", "visitor-1"}
    assert world.selects({"not": {"segment": "vips"}}) == {"ada", "cy", "fay"}


def test_a_missing_segment_selects_nobody(world):
    assert world.selects({"segment": "gone"}) == set()
    assert world.selects({"not": {"segment": "gone"}}) == EVERYONE | {"visitor-1"}


def test_refused_and_erased_customers_are_never_members(world):
    assert world.selects(attr("loyalty_tier", "exists")) == EVERYONE
    dee = world.customers["dee"]
    assert not subject_matches(subject=f"c:{dee.pk}", rules=attr("loyalty_tier", "exists"), now=NOW)


# --- Cost -----------------------------------------------------------------------------------------
def test_one_subject_costs_the_same_queries_for_any_number_of_segments(
    world, django_assert_max_num_queries
):
    Segment.objects.create(key="buyers", name="Buyers", rules=ev("purchase", value=1))
    Segment.objects.create(key="vips", name="VIPs", kind="static")
    kinds = [
        attr("loyalty_tier", "in", ["gold"]),
        ev("purchase", "sum", "gt", 500, property="amount", within_days=90),
        ev("purchase", "avg", "gt", 5, property="amount"),
        ev("product_view", "distinct", "gte", 3, property="category", within_days=7),
        {"not": {"segment": "buyers"}},
        {"segment": "vips"},
    ]
    few = [Segment(key=f"s{n}", name="s", rules=kinds[n % len(kinds)]) for n in range(3)]
    many = [
        Segment(key=f"m{n}", name="m", rules={"all": kinds[: 1 + n % len(kinds)]})
        for n in range(60)
    ]
    ada = world.customers["ada"]
    # customer, referenced segments (1 level), roll-ups, raw events, static memberships
    with django_assert_max_num_queries(5):
        assert subject_segments_evaluate(subject=f"c:{ada.pk}", segments=few, now=NOW) == {
            "s0",
            "s1",
            "s2",
            "s3",
        } & {"s0", "s1", "s2"}
    with django_assert_max_num_queries(5):
        found = subject_segments_evaluate(subject=f"c:{ada.pk}", segments=many, now=NOW)
    assert found == {s.key for s in many if len(s.rules["all"]) <= 4}


def test_the_bulk_query_is_one_query(world, django_assert_num_queries):
    Segment.objects.create(key="buyers", name="Buyers", rules=ev("purchase", value=1))
    Segment.objects.create(key="vips", name="VIPs", kind="static")
    rules = {
        "all": [
            {"segment": "buyers"},
            {"not": {"segment": "vips"}},
            ev("purchase", "avg", "gt", 5, property="amount"),
        ]
    }
    matching = customers_matching(rules=rules, now=NOW)
    with django_assert_num_queries(1):
        assert world.names(set(matching.values_list("pk", flat=True))) == {"ada", "bob"}


def test_the_bulk_query_works_as_a_subquery(world):
    matching = customers_matching(rules=ev("purchase", "min", "exists", property="amount"), now=NOW)
    outer = Customer.objects.filter(pk__in=matching.values("pk"), loyalty_tier="gold")
    assert world.names(set(outer.values_list("pk", flat=True))) == {"ada"}
