"""Criteria → one SQL query selecting every customer who matches: the bulk path. The semantics are
the criteria language's (`segmentation.criteria`, its docstring); `segmentation.evaluation` is
the Python twin for one subject, and a property test holds the two to the same answers.

The rule becomes one boolean expression in the WHERE clause of a Customer query, built from:

- attribute tests on the customer's columns and its `attributes` JSON (typed by JSON kind:
  `jsonb_typeof` in PostgreSQL, `json_type` in SQLite, so a text is never compared as a number);
- event aggregates as correlated scalar subqueries from `analytics.selectors`
  (`customer_event_aggregate`), read through the roll-ups' (customer, day) and the events'
  (customer, timestamp) indexes;
- references: a dynamic segment's rules compiled in place (recursively, same query), a static
  segment as a correlated EXISTS on its current stays.

Every test is wrapped as `CASE WHEN <test> THEN TRUE ELSE FALSE END`, so a NULL (a missing value,
an aggregate of no events) is false and never reaches a NOT: `not` inverts exactly, as in Python.
Building the query reads the segments a rule refers to (one query per level of references);
running it is one query. The SQL is written for the default database's vendor (SQLite or
PostgreSQL), as the roll-ups' is.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import BooleanField, DateTimeField, Expression, F, QuerySet, Value

from analytics.selectors import customer_event_aggregate, json_decimal
from customers.models import Customer
from customers.selectors import customers_personalizable
from segmentation.criteria import (
    BLANK_IS_MISSING,
    CORE_ATTRIBUTES,
    MAX_REFERENCE_DEPTH,
    ORDERING_OPS,
    datetime_value,
    event_aggregate_of,
)
from segmentation.models import Segment
from segmentation.selectors import segment_customer_is_member, segments_referenced

SQL_OPS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
ALWAYS_VALUED = frozenset({"count", "sum", "distinct"})  # 0 without events, never NULL


def customers_matching(*, rules: dict[str, Any], now: datetime) -> QuerySet[Customer]:
    """The customers who match `rules` at `now`, as one query (customers erased or refusing
    personalization never match)."""
    compiler = _Compiler(now=now, postgres=connection.vendor == "postgresql")
    compiler.load_references(rules)
    return customers_personalizable().filter(compiler.condition(rules, level=0, trail=()))


def customers_matching_each(
    *, rules: Mapping[str, dict[str, Any]], now: datetime
) -> dict[str, set[int]]:
    """{key: ids of the customers who match its rules}, for several rules in one scan of the
    customers (one query, one boolean column per rule). Bulk recompute of many segments, and
    the property test's batteries of conditions."""
    compiler = _Compiler(now=now, postgres=connection.vendor == "postgresql")
    compiler.load_references(*rules.values())
    keys = list(rules)
    columns = {
        f"matches_{n}": compiler.condition(rules[key], level=0, trail=())
        for n, key in enumerate(keys)
    }
    found: dict[str, set[int]] = {key: set() for key in keys}
    if not keys:
        return found
    for pk, *flags in customers_personalizable().annotate(**columns).values_list("pk", *columns):
        for key, flag in zip(keys, flags, strict=True):
            if flag:
                found[key].add(pk)
    return found


class Sql(Expression):
    """SQL text and expressions in order, e.g. `Sql("(", a, " AND ", b, ")")`: strings are SQL
    (never values: those travel as `Value` parameters), the rest are compiled in place, so
    columns follow Django's aliases when the query becomes a subquery."""

    def __init__(self, *parts: Any) -> None:
        super().__init__(output_field=BooleanField())
        self.parts = parts

    def get_source_expressions(self) -> list[Any]:
        return [part for part in self.parts if not isinstance(part, str)]

    def set_source_expressions(self, exprs: list[Any]) -> None:
        replaced = iter(exprs)
        self.parts = tuple(p if isinstance(p, str) else next(replaced) for p in self.parts)

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        sql, params = [], []
        for part in self.parts:
            if isinstance(part, str):
                sql.append(part)
            else:
                part_sql, part_params = compiler.compile(part)
                sql.append(part_sql)
                params.extend(part_params)
        return "".join(sql), params


TRUE, FALSE = Sql("TRUE"), Sql("FALSE")


def _two_valued(*test: Any) -> Sql:
    return Sql("CASE WHEN ", *test, " THEN TRUE ELSE FALSE END")


def _joined(parts: list[Sql], glue: str) -> Sql:
    pieces: list[Any] = ["("]
    for index, part in enumerate(parts):
        pieces += [glue] if index else []
        pieces.append(part)
    return Sql(*pieces, ")")


def _kind(value: Any) -> str | None:
    if type(value) is bool:
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "datetime"
    return "number" if json_decimal(value) is not None else None


class _Compiler:
    def __init__(self, *, now: datetime, postgres: bool) -> None:
        self.now, self.postgres = now, postgres
        self.segments: dict[str, Segment] = {}

    def load_references(self, *trees: dict[str, Any]) -> None:
        """The segments the rules refer to, level by level (one query per level)."""
        self.segments = segments_referenced(*trees, known=self.segments)

    def condition(self, node: dict[str, Any], *, level: int, trail: tuple[str, ...]) -> Sql:
        if "all" in node:
            return _joined(
                [self.condition(c, level=level, trail=trail) for c in node["all"]], " AND "
            )
        if "any" in node:
            return _joined(
                [self.condition(c, level=level, trail=trail) for c in node["any"]], " OR "
            )
        if "not" in node:
            return Sql("NOT ", self.condition(node["not"], level=level, trail=trail))
        if "attribute" in node:
            return self.attribute(node)
        if "event" in node:
            return self.event(node)
        if "segment" in node:
            return self.segment(node["segment"], level=level, trail=trail)
        return FALSE

    # References ----------------------------------------------------------------------------------
    def segment(self, key: str, *, level: int, trail: tuple[str, ...]) -> Sql:
        segment = self.segments.get(key)
        if segment is None or level >= MAX_REFERENCE_DEPTH or key in trail:
            return FALSE
        if segment.kind != Segment.Kind.DYNAMIC:
            return Sql(segment_customer_is_member(segment_id=segment.pk))
        return self.condition(segment.rules, level=level + 1, trail=(*trail, key))

    # Events --------------------------------------------------------------------------------------
    def event(self, node: dict[str, Any]) -> Sql:
        wanted, op = event_aggregate_of(node), node["op"]
        if op == "exists":
            if wanted.aggregate in ALWAYS_VALUED:
                return TRUE
            return _two_valued(
                customer_event_aggregate(wanted=wanted, now=self.now), " IS NOT NULL"
            )
        value = json_decimal(node.get("value"))
        if value is None:
            return FALSE
        sign = "<>" if op == "ne" else SQL_OPS[op]
        if wanted.aggregate == "avg":  # avg op v  ⇔  Σ(x - v) op 0
            found = customer_event_aggregate(wanted=wanted, now=self.now, centered_on=value)
            return _two_valued(found, f" {sign} 0")
        found = customer_event_aggregate(wanted=wanted, now=self.now)
        return _two_valued(found, f" {sign} ", *self.number(value))

    # Attributes ----------------------------------------------------------------------------------
    def attribute(self, node: dict[str, Any]) -> Sql:
        name, op, value = node["attribute"], node["op"], node.get("value")
        if name.startswith("attributes."):
            return self.json_attribute(name.removeprefix("attributes."), op, value)
        info = CORE_ATTRIBUTES.get(name)
        if info is None:
            return FALSE
        column = F(name)
        stored: tuple[Any, ...] = (
            ("NULLIF(", column, ", '')") if name in BLANK_IS_MISSING else (column,)
        )
        kind = {"datetime": "datetime", "number": "number"}.get(info.type, "string")

        def operand(item: Any) -> tuple[Any, ...] | None:
            if kind == "datetime":
                try:
                    item = datetime_value(item)
                except (TypeError, ValueError, AttributeError):
                    return None
            return self.operand(kind, item)

        return self.test(
            op, value, exists=(*stored, " IS NOT NULL"), read=lambda _: stored, operand=operand
        )

    def json_attribute(self, key: str, op: str, value: Any) -> Sql:
        column = F("attributes")
        if self.postgres:
            typeof = ("jsonb_typeof(", column, " -> ", Value(key), ")")
            text = (column, " ->> ", Value(key))
            casts = {"number": "numeric", "boolean": "boolean"}

            def read(kind: str) -> tuple[Any, ...]:
                json_kind = {"string": "string", "number": "number", "boolean": "boolean"}[kind]
                got = ("CASE WHEN ", *typeof, f" = '{json_kind}' THEN ")
                if kind == "string":
                    return (*got, *text, " END")
                return (*got, "CAST(", *text, f" AS {casts[kind]}) END")

        else:
            path = Value(f'$."{key}"')
            typeof = ("json_type(", column, ", ", path, ")")
            extract = ("json_extract(", column, ", ", path, ")")

            def read(kind: str) -> tuple[Any, ...]:
                if kind == "boolean":
                    return ("CASE ", *typeof, " WHEN 'true' THEN 1 WHEN 'false' THEN 0 END")
                kinds = "('text')" if kind == "string" else "('integer', 'real')"
                return ("CASE WHEN ", *typeof, f" IN {kinds} THEN ", *extract, " END")

        def operand(item: Any) -> tuple[Any, ...] | None:
            kind = _kind(item)
            return None if kind in (None, "datetime") else self.operand(kind, item)

        return self.test(op, value, exists=(*typeof, " <> 'null'"), read=read, operand=operand)

    def test(self, op: str, value: Any, *, exists: tuple, read: Any, operand: Any) -> Sql:
        """One attribute test. `exists`: SQL true when there is a value; `read(kind)`: the stored
        value when it is of that kind, else NULL; `operand(v)`: (kind, SQL) of a rule's value."""
        if op == "exists":
            return _two_valued(*exists)
        if op in {"ne", "not_in"}:  # has a value, and it is not eq / in
            positive = self.test(
                "in" if op == "not_in" else "eq", value, exists=exists, read=read, operand=operand
            )
            return Sql("(", _two_valued(*exists), " AND NOT ", positive, ")")
        if op == "in":
            items = value if isinstance(value, list) else []
            by_kind: dict[str, list[tuple[Any, ...]]] = {}
            for item in items:
                found = operand(item)
                if found is not None:
                    by_kind.setdefault(found[0], []).append(found[1])
            if not by_kind:
                return FALSE
            tests: list[Any] = []
            for kind, sqls in by_kind.items():
                listed: list[Any] = []
                for index, sql in enumerate(sqls):
                    listed += [", "] if index else []
                    listed += sql
                tests.append(Sql(*read(kind), " IN (", *listed, ")"))
            return _two_valued(_joined(tests, " OR "))
        found = operand(value)
        if found is None:
            return FALSE
        kind, sql = found
        if op == "contains":
            if kind != "string":
                return FALSE
            position = "strpos" if self.postgres else "instr"
            return _two_valued(f"{position}(", *read("string"), ", ", *sql, ") > 0")
        if op not in SQL_OPS:
            return FALSE
        stored = read(kind)
        if kind == "string" and op in ORDERING_OPS and self.postgres:
            stored = ("(", *stored, ') COLLATE "C"')  # code point order, as Python's
        return _two_valued(*stored, f" {SQL_OPS[op]} ", *sql)

    def operand(self, kind: str, value: Any) -> tuple[str, tuple[Any, ...]] | None:
        """A rule's value as SQL of its kind, or None when it is not of that kind."""
        if _kind(value) != kind:
            return None
        if kind == "number":
            return kind, self.number(json_decimal(value))
        if kind == "datetime":
            return kind, (Value(value, output_field=DateTimeField()),)
        return kind, (Value(value),)

    def number(self, value: Decimal | None) -> tuple[Any, ...]:
        # Text cast to a number: exact in PostgreSQL; SQLite compares texts after numbers.
        return ("CAST(", Value(str(value)), " AS NUMERIC)")
