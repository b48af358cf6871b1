"""Which segments one subject is in, evaluated in Python: the incremental path, run right after a
subject's events land. The semantics are the criteria language's (`segmentation.criteria`, its
docstring); `segmentation.compiler` is the SQL twin for every customer, and a property test holds
the two to the same answers.

The subject's facts are loaded once for all the segments at hand, in a bounded number of queries
whatever the number of segments and conditions: the customer (1), the segments referred to
that were not given (1 per level of references, at most `MAX_REFERENCE_DEPTH`), the event
aggregates every rule reads (at most 2: roll-ups, and raw events for avg/min/max), and the
static segments the subject is in (1). Then every rule is a walk over those facts in memory.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from analytics.selectors import EventAggregate, Mean, json_decimal, subject_event_aggregates
from customers.models import Customer
from customers.selectors import customers_personalizable
from segmentation.criteria import (
    BLANK_IS_MISSING,
    CORE_ATTRIBUTES,
    MAX_REFERENCE_DEPTH,
    criteria_walk,
    datetime_value,
    event_aggregate_of,
)
from segmentation.models import Segment
from segmentation.selectors import segments_referenced, subject_static_segment_keys

COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
# Exact decimal arithmetic, as PostgreSQL's numeric: no rounding at 28 digits.
PRECISION = 200


def subject_segments_evaluate(
    *, subject: str, segments: Iterable[Segment], now: datetime
) -> set[str]:
    """The keys of the given segments that `subject` (`c:<customer id>` or `a:<anonymous id>`)
    is in at `now`: dynamic ones by their rules, static ones by their stored members. A customer
    who is erased or refuses personalization is in none."""
    segments = list(segments)
    facts = _Facts.load(subject=subject, given=segments, trees=None, now=now)
    if not facts.eligible:
        return set()
    return {
        segment.key
        for segment in segments
        if (
            facts.holds(segment.rules, level=0, trail=())
            if segment.kind == Segment.Kind.DYNAMIC
            else segment.key in facts.static_keys
        )
    }


def subject_matches(*, subject: str, rules: dict[str, Any], now: datetime) -> bool:
    """Whether `subject` satisfies `rules` at `now` (previews, tests)."""
    facts = _Facts.load(subject=subject, given=[], trees=[rules], now=now)
    return facts.eligible and facts.holds(rules, level=0, trail=())


def _subject_parts(subject: str) -> tuple[str, str]:
    kind, _, ident = subject.partition(":")
    if (kind == "c" and ident.isdigit()) or (kind == "a" and ident):
        return kind, ident
    raise ValueError(f"Not a subject: {subject!r} (expected c:<customer id> or a:<anonymous id>)")


@dataclass
class _Facts:
    subject: str
    now: datetime
    eligible: bool = True
    customer: Customer | None = None  # None: an anonymous subject, which has no attributes
    segments: dict[str, Segment] = field(default_factory=dict)
    aggregates: dict[EventAggregate, Any] = field(default_factory=dict)
    static_keys: set[str] = field(default_factory=set)

    @classmethod
    def load(
        cls,
        *,
        subject: str,
        given: list[Segment],
        trees: list[dict[str, Any]] | None,
        now: datetime,
    ) -> _Facts:
        kind, ident = _subject_parts(subject)
        facts = cls(subject=subject, now=now, segments={s.key: s for s in given})
        if kind == "c":
            facts.customer = customers_personalizable().filter(pk=int(ident)).first()
            if facts.customer is None:
                facts.eligible = False
                return facts
        if trees is None:
            trees = [s.rules for s in given if s.kind == Segment.Kind.DYNAMIC]
        facts._load_references(trees)
        reachable = [*trees, *(s.rules for s in facts._dynamic())]
        wanted = {
            event_aggregate_of(node)
            for tree in reachable
            for _, node in criteria_walk(tree)
            if isinstance(node.get("event"), str)
        }
        facts.aggregates = subject_event_aggregates(subject=subject, wanted=wanted, now=now)
        if any(s.kind == Segment.Kind.STATIC for s in facts.segments.values()):
            facts.static_keys = subject_static_segment_keys(subject=subject)
        return facts

    def _dynamic(self) -> list[Segment]:
        return [s for s in self.segments.values() if s.kind == Segment.Kind.DYNAMIC]

    def _load_references(self, trees: list[dict[str, Any]]) -> None:
        """The segments the rules refer to, level by level: one query per level."""
        self.segments = segments_referenced(*trees, known=self.segments)

    # Evaluation ----------------------------------------------------------------------------------
    def holds(self, node: dict[str, Any], *, level: int, trail: tuple[str, ...]) -> bool:
        if "all" in node:
            return all(self.holds(child, level=level, trail=trail) for child in node["all"])
        if "any" in node:
            return any(self.holds(child, level=level, trail=trail) for child in node["any"])
        if "not" in node:
            return not self.holds(node["not"], level=level, trail=trail)
        if "attribute" in node:
            return self._attribute(node)
        if "event" in node:
            return self._event(node)
        if "segment" in node:
            return self._segment(node["segment"], level=level, trail=trail)
        return False

    def _attribute(self, node: dict[str, Any]) -> bool:
        name, op, value = node["attribute"], node["op"], node.get("value")
        stored = _attribute_value(self.customer, name)
        info = CORE_ATTRIBUTES.get(name)
        if info is not None and info.type == "datetime":
            value = [_instant(v) for v in value] if isinstance(value, list) else _instant(value)
        return value_test(stored, op, value)

    def _event(self, node: dict[str, Any]) -> bool:
        found = self.aggregates.get(event_aggregate_of(node))
        op = node["op"]
        if op == "exists":
            return found is not None
        if found is None:
            return False
        value = json_decimal(node.get("value"))
        if value is None:
            return False
        with localcontext(prec=PRECISION):
            if isinstance(found, Mean):  # avg op v  ⇔  Σ(x - v) op 0
                left, right = found.total - value * found.count, Decimal(0)
            else:
                left, right = Decimal(found), value
            return left != right if op == "ne" else COMPARE[op](left, right)

    def _segment(self, key: str, *, level: int, trail: tuple[str, ...]) -> bool:
        segment = self.segments.get(key)
        if segment is None or level >= MAX_REFERENCE_DEPTH or key in trail:
            return False
        if segment.kind != Segment.Kind.DYNAMIC:
            return key in self.static_keys
        return self.holds(segment.rules, level=level + 1, trail=(*trail, key))


def _attribute_value(customer: Customer | None, name: str) -> Any:
    """The stored value, or None when there is none (absent, JSON null, blank core text)."""
    if customer is None:
        return None
    if name.startswith("attributes."):
        attributes = customer.attributes
        return (
            attributes.get(name.removeprefix("attributes."))
            if isinstance(attributes, dict)
            else None
        )
    if name not in CORE_ATTRIBUTES:
        return None
    value = getattr(customer, name)
    return None if name in BLANK_IS_MISSING and value == "" else value


def _instant(value: Any) -> Any:
    """A rule's ISO 8601 value as an instant; anything else stays as it is (and equals no
    instant, as in SQL)."""
    try:
        return datetime_value(value)
    except (TypeError, ValueError, AttributeError):
        return value


def _operand(value: Any) -> tuple[str, Any] | None:
    """A value with its kind; values compare only within a kind. Numbers as exact decimals."""
    if type(value) is bool:
        return ("boolean", value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, datetime):
        return ("datetime", value)
    number = json_decimal(value)
    return None if number is None else ("number", number)


def value_test(stored: Any, op: str, value: Any) -> bool:
    """One attribute test on a stored value (None: missing), two-valued."""
    if stored is None:
        return False
    if op == "exists":
        return True
    if op == "ne":
        return not value_test(stored, "eq", value)
    if op == "not_in":
        return not value_test(stored, "in", value)
    if op == "in":
        return any(value_test(stored, "eq", item) for item in value)
    if op == "contains":
        return isinstance(stored, str) and isinstance(value, str) and value in stored
    left, right = _operand(stored), _operand(value)
    if left is None or right is None or left[0] != right[0] or op not in COMPARE:
        return False
    return COMPARE[op](left[1], right[1])
