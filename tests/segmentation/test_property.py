"""The two evaluators agree, on random histories (Hypothesis):

- every event aggregate (each type, aggregate and window) has the same value in SQL (one
  correlated subquery per customer) as in Python (`analytics.selectors`);
- every attribute test (each attribute, op and value of a pool) selects the same customers;
- random rule trees select the same customers, the whole tree and each of its conditions, through
  `customers_matching` (WHERE), `customers_matching_each` (one scan) and, per subject,
  `subject_matches` and `subject_segments_evaluate` (facts loaded once for many segments).

They run in both passes (SQLite and PostgreSQL): the compiled SQL leans on each backend's JSON
functions, date arithmetic and NULL handling, which is where the evaluators could part. The
histories go through the drain's own writer (`analytics.rollups.events_store`), so the roll-ups
are the real ones. Values are drawn to collide: numbers of another kind ("12", true, 1 and 1.0),
null and absent attributes, events on the first and last day of each window, after `now`, of
anonymous subjects, of a customer who refused personalization and of an erased one. Amounts are
multiples of 1/8, exact in binary, so SQLite's doubles add them as exactly as PostgreSQL's
numerics do.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st

from analytics.selectors import (
    EventAggregate,
    Mean,
    customer_event_aggregate,
    subject_event_aggregates,
)
from customers.models import Consent, Customer
from segmentation.compiler import customers_matching, customers_matching_each
from segmentation.criteria import AGGREGATE_OPS, OPS_BY_TYPE, criteria_clean, criteria_walk
from segmentation.evaluation import subject_matches, subject_segments_evaluate
from segmentation.models import Segment, SegmentMembership
from tests.segmentation.conftest import NOW, event, store

CUSTOMERS = 4
ANONYMOUS = ("anon-1", "anon-2")
NOWS = (NOW, NOW.replace(hour=0, minute=0), NOW.replace(hour=23, minute=59, second=59))
WINDOWS = (None, 1, 2, 3, 7, 10, 11)
DAYS_AGO = (-1, 0, 0, 1, 1, 2, 2, 3, 6, 7, 9, 10, 30)  # each window's first and last day


def examples(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# --- Histories ------------------------------------------------------------------------------------
ATTRIBUTE_VALUES = {
    "newsletter": [True, False, "yes", None],
    "age": [17, 18, 36, 40.0, "40", None],
    "score": [0, 2.5, 7.5, -1, True],
    "city": ["London", "Paris", "paris", "Lond", "", 5, None],
    "birthday": ["1990-12-10", "2000-01-31", "2000-01-30", "not a date"],
    "plan": ["free", "pro", "team", 1],
}
attributes_strategy = st.fixed_dictionaries(
    {}, optional={key: st.sampled_from(values) for key, values in ATTRIBUTE_VALUES.items()}
)
customers_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "loyalty_tier": st.sampled_from(["none", "silver", "gold", "platinum"]),
            "email": st.sampled_from(["", "a@example.com", "b@example.org", "B@EXAMPLE.ORG"]),
            "total_spend": st.sampled_from([Decimal(0), Decimal("100"), Decimal("250.50")]),
            "last_seen": st.sampled_from([None, NOW - timedelta(days=1), NOW - timedelta(hours=1)]),
            "attributes": attributes_strategy,
            "refused": st.sampled_from([False, False, False, True]),
            "erased": st.sampled_from([False, False, False, False, True]),
            "vip": st.sampled_from([None, "in", "left"]),
        }
    ),
    min_size=CUSTOMERS,
    max_size=CUSTOMERS,
)
AMOUNTS = (0, 1, 2.5, 20.5, 80, 100, 250, 300.25)
PROPERTIES = {
    "purchase": st.fixed_dictionaries(
        {"amount": st.sampled_from([*AMOUNTS, *AMOUNTS, "12", True, None])}
    ),
    "product_view": st.fixed_dictionaries(
        {"category": st.sampled_from(["shoes", "hats", "bags", "1", 1, 1.0, True])},
        optional={"price": st.sampled_from([0, 5, 20.5, 80])},
    ),
    "cart_abandoned": st.just({}),
}
events_strategy = st.lists(
    st.tuples(
        st.sampled_from(sorted(PROPERTIES)).flatmap(
            lambda kind: st.tuples(st.just(kind), PROPERTIES[kind])
        ),
        # Whose: mostly customers, sometimes an anonymous id.
        st.sampled_from([*range(CUSTOMERS), *range(CUSTOMERS), CUSTOMERS, CUSTOMERS + 1]),
        st.sampled_from(DAYS_AGO),
        st.sampled_from([(0, 0), (9, 30), (23, 59)]),  # the edges of a day
    ),
    min_size=8,
    max_size=40,
)


def seed(drawn_customers, drawn_events, buyers_rules=None) -> list[Customer]:
    customers = []
    vips = Segment.objects.create(key="vips", name="VIPs", kind="static")
    for n, drawn in enumerate(drawn_customers):
        customer = Customer.objects.create(
            external_id=f"c{n}",
            email=drawn["email"] and f"{n}.{drawn['email']}",
            loyalty_tier=drawn["loyalty_tier"],
            total_spend=drawn["total_spend"],
            last_seen=drawn["last_seen"],
            attributes=drawn["attributes"],
            erased_at=NOW if drawn["erased"] else None,
        )
        if drawn["refused"]:
            Consent.objects.create(customer=customer, purpose="personalization", granted=False)
        if drawn["vip"]:
            SegmentMembership.objects.create(
                segment=vips,
                subject=f"c:{customer.pk}",
                customer=customer,
                entered_at=NOW - timedelta(days=2),
                exited_at=NOW - timedelta(days=1) if drawn["vip"] == "left" else None,
            )
        customers.append(customer)
    if buyers_rules is not None:
        Segment.objects.create(key="buyers", name="Buyers", rules=criteria_clean(buyers_rules))
    rows = []
    for (kind, properties), whose, days, (hour, minute) in drawn_events:
        day = NOW.date() - timedelta(days=days)
        at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
        if whose < CUSTOMERS:
            rows.append(event(kind, at, customer=customers[whose], **properties))
        else:
            rows.append(event(kind, at, anonymous_id=ANONYMOUS[whose - CUSTOMERS], **properties))
    store(rows)
    return customers


def eligible(customers, drawn_customers) -> list[Customer]:
    return [
        c
        for c, drawn in zip(customers, drawn_customers, strict=True)
        if not drawn["refused"] and not drawn["erased"]
    ]


def python_selects(customers, segments, now) -> dict[str, set[int]]:
    per_subject = {
        c.pk: subject_segments_evaluate(subject=f"c:{c.pk}", segments=segments, now=now)
        for c in customers
    }
    return {s.key: {pk for pk, keys in per_subject.items() if s.key in keys} for s in segments}


# --- 1. Event aggregates: the same values ---------------------------------------------------------
AGGREGATES = [
    EventAggregate(event_type, aggregate, prop, window)
    for event_type, aggregate, prop in (
        ("purchase", "count", None),
        ("purchase", "sum", "amount"),
        ("purchase", "avg", "amount"),
        ("purchase", "min", "amount"),
        ("purchase", "max", "amount"),
        ("purchase", "last_seen_days", None),
        ("product_view", "count", None),
        ("product_view", "distinct", "category"),
        ("product_view", "sum", "price"),
        ("product_view", "min", "price"),
        ("cart_abandoned", "count", None),
        ("cart_abandoned", "last_seen_days", None),
    )
    for window in WINDOWS
]


def comparable(value):
    """Python's value as the SQL column reads it: numbers as floats (exact here), an average as
    its sum (Σ(x - 0)) and count."""
    if isinstance(value, Mean):
        return (float(value.total), value.count)
    return None if value is None else float(value)


@pytest.mark.django_db
@examples(150)
@given(drawn_customers=customers_strategy, drawn_events=events_strategy, now=st.sampled_from(NOWS))
def test_every_event_aggregate_has_the_same_value(catalog, drawn_customers, drawn_events, now):
    with transaction.atomic():
        customers = seed(drawn_customers, drawn_events)
        columns = {}
        for n, wanted in enumerate(AGGREGATES):
            columns[f"a{n}"] = customer_event_aggregate(wanted=wanted, now=now)
            if wanted.aggregate == "avg":  # Σ(x - 1) = sum - count: the count, in SQL
                columns[f"n{n}"] = customer_event_aggregate(
                    wanted=wanted, now=now, centered_on=Decimal(1)
                )
        rows = Customer.objects.annotate(**columns).values("pk", *columns)
        in_sql = {row["pk"]: row for row in rows}
        in_python = {
            c.pk: subject_event_aggregates(subject=f"c:{c.pk}", wanted=AGGREGATES, now=now)
            for c in customers
        }
        transaction.set_rollback(True)

    note(f"purchases counted: {sum(bool(in_sql[c.pk]['a0']) for c in customers)} customers")
    for pk, values in in_python.items():
        for n, wanted in enumerate(AGGREGATES):
            sql = in_sql[pk][f"a{n}"]
            if wanted.aggregate == "avg" and sql is not None:
                sql = (float(sql), round(float(sql) - float(in_sql[pk][f"n{n}"])))
            elif sql is not None:
                sql = float(sql)
            assert comparable(values[wanted]) == sql, (wanted, pk)


# --- 2. Every attribute test: the same customers --------------------------------------------------
RULE_ATTRIBUTES = {
    "loyalty_tier": ("enum", ["none", "silver", "gold", "platinum"]),
    "email": ("string", ["1.a@example.com", "example.org", "EXAMPLE", "@"]),
    "total_spend": ("number", [0, 100, 250.5, 250.25]),
    "last_seen": ("datetime", ["2026-03-14T12:00:00Z", "2026-03-15T11:00:00+00:00"]),
    "attributes.newsletter": ("boolean", [True, False]),
    "attributes.age": ("integer", [17, 18, 36, 40]),
    "attributes.score": ("number", [0, 2.5, 7.5, -1]),
    "attributes.city": ("string", ["London", "Paris", "Lond", "ari", ""]),
    "attributes.birthday": ("date", ["1990-12-10", "2000-01-30", "2000-01-31"]),
    "attributes.plan": ("enum", ["free", "pro", "team"]),
}


_battery: list[dict] = []


def attribute_battery() -> list[dict]:
    """Every attribute, op and value of the pools, validated once."""
    if _battery:
        return _battery
    battery = []
    for name, (kind, values) in RULE_ATTRIBUTES.items():
        for op in OPS_BY_TYPE[kind]:
            if op == "exists":
                battery.append({"attribute": name, "op": op})
            elif op in {"in", "not_in"}:
                battery += [
                    {"attribute": name, "op": op, "value": values[:2]},
                    {"attribute": name, "op": op, "value": values[2:]},
                ]
            else:
                battery += [{"attribute": name, "op": op, "value": value} for value in values]
    _battery.extend(criteria_clean(rules) for rules in battery)
    return _battery


@pytest.mark.django_db
@examples(50)  # ~160 tests per example
@given(drawn_customers=customers_strategy)
def test_every_attribute_test_selects_the_same_customers(catalog, drawn_customers):
    with transaction.atomic():
        customers = seed(drawn_customers, [])
        battery = attribute_battery()
        with_not = [*battery, *({"not": rules} for rules in battery)]
        segments = [Segment(key=f"t{n}", name="t", rules=r) for n, r in enumerate(with_not)]
        in_sql = customers_matching_each(rules={s.key: s.rules for s in segments}, now=NOW)
        in_python = python_selects(customers, segments, NOW)
        transaction.set_rollback(True)

    for segment in segments:
        assert in_python[segment.key] == in_sql[segment.key], segment.rules


# --- 3. Random rules: the same customers ----------------------------------------------------------
EVENT_TESTS = {
    "purchase": {
        "count": None,
        "last_seen_days": None,
        **dict.fromkeys(("sum", "avg", "min", "max"), "amount"),
    },
    "product_view": {
        "count": None,
        "distinct": "category",
        **dict.fromkeys(("sum", "avg", "min", "max"), "price"),
    },
    "cart_abandoned": {"count": None, "last_seen_days": None},
}
# Thresholds near what the histories hold: small counts and days; amounts, their sums and means.
THRESHOLDS = {
    "count": [0, 1, 2, 3],
    "distinct": [0, 1, 2, 3],
    "last_seen_days": [0, 1, 2, 6, 7, 9, 10],
}
AMOUNT_THRESHOLDS = [0, 1, 2.5, 5, 20.5, 80, 100, 125.125, 250, 275.125, 300.25, 550.25]


@st.composite
def attribute_tests(draw):
    name = draw(st.sampled_from(sorted(RULE_ATTRIBUTES)))
    kind, values = RULE_ATTRIBUTES[name]
    op = draw(st.sampled_from(OPS_BY_TYPE[kind]))
    if op == "exists":
        return {"attribute": name, "op": op}
    if op in {"in", "not_in"}:
        chosen = draw(st.lists(st.sampled_from(values), min_size=1, max_size=3))
        return {"attribute": name, "op": op, "value": chosen}
    return {"attribute": name, "op": op, "value": draw(st.sampled_from(values))}


@st.composite
def event_tests(draw):
    name = draw(st.sampled_from(sorted(EVENT_TESTS)))
    aggregate = draw(st.sampled_from(sorted(EVENT_TESTS[name])))
    node = {"event": name, "aggregate": aggregate, "op": draw(st.sampled_from(AGGREGATE_OPS))}
    if EVENT_TESTS[name][aggregate]:
        node["property"] = EVENT_TESTS[name][aggregate]
    window = draw(st.sampled_from(WINDOWS))
    if window:
        node["within_days"] = window
    if node["op"] != "exists":
        node["value"] = draw(st.sampled_from(THRESHOLDS.get(aggregate, AMOUNT_THRESHOLDS)))
    return node


segment_tests = st.sampled_from([{"segment": "vips"}, {"segment": "buyers"}])
rules_strategy = st.recursive(
    attribute_tests() | event_tests() | event_tests() | segment_tests,
    lambda children: (
        st.builds(lambda c: {"all": c}, st.lists(children, min_size=1, max_size=3))
        | st.builds(lambda c: {"any": c}, st.lists(children, min_size=1, max_size=3))
        | st.builds(lambda c: {"not": c}, children)
    ),
    max_leaves=8,
)
referenced_rules = st.recursive(
    attribute_tests() | event_tests() | st.just({"segment": "vips"}),
    lambda children: (
        st.builds(lambda c: {"any": c}, st.lists(children, min_size=1, max_size=2))
        | st.builds(lambda c: {"not": c}, children)
    ),
    max_leaves=3,
)


@pytest.mark.django_db
@examples(200)
@given(
    drawn_customers=customers_strategy,
    drawn_events=events_strategy,
    rules=rules_strategy,
    buyers_rules=referenced_rules,
    now=st.sampled_from(NOWS),
)
def test_random_rules_select_the_same_customers(
    catalog, drawn_customers, drawn_events, rules, buyers_rules, now
):
    with transaction.atomic():
        customers = seed(drawn_customers, drawn_events, buyers_rules)
        rules = criteria_clean(rules)  # the generator writes valid rules only
        where = set(customers_matching(rules=rules, now=now).values_list("pk", flat=True))
        one_by_one = {
            c.pk for c in customers if subject_matches(subject=f"c:{c.pk}", rules=rules, now=now)
        }
        # Every condition of the tree is a segment of its own, so each test is compared alone
        # (a wrong atom cannot hide under an `any`).
        segments = [
            Segment(key=f"node-{n}", name=path, rules=node)
            for n, (path, node) in enumerate(criteria_walk(rules))
        ]
        segments += Segment.objects.filter(key__in=["buyers", "vips"])
        in_sql = customers_matching_each(
            rules={s.key: s.rules for s in segments if s.kind == Segment.Kind.DYNAMIC}, now=now
        )
        in_sql["vips"] = {  # static: its open stays, of customers who may be members
            c.pk
            for c, drawn in zip(customers, drawn_customers, strict=True)
            if drawn["vip"] == "in" and c in eligible(customers, drawn_customers)
        }
        in_python = python_selects(customers, segments, now)
        for anonymous_id in ANONYMOUS:  # the Python evaluator takes anonymous subjects too
            subject_matches(subject=f"a:{anonymous_id}", rules=rules, now=now)
        transaction.set_rollback(True)

    note(f"customers selected: {len(where)}")
    assert where == one_by_one == in_sql["node-0"]
    for segment in segments:
        assert in_python[segment.key] == in_sql[segment.key], (segment.name, segment.rules)
