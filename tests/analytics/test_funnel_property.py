"""The funnel's one SQL query agrees with an exhaustive search in Python, on random histories.

Runs in both passes (SQLite and PostgreSQL): the query leans on each backend's datetime
arithmetic and text/timestamp comparisons, which is where the two could disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.models import Event
from analytics.reports import funnel
from customers.models import Customer

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
TYPES = ("a", "b", "c")
COMMON_TYPES = ("a", "b")  # drawn half the time: steps repeat and chains form
CUSTOMERS = 2
# Subjects 0-1 are customers, 2-3 anonymous ids, 4 an erased event (nobody's).
SUBJECTS = CUSTOMERS + 2 + 1
MINUTES = 8  # few distinct moments: ties and events on the window edge are common


@dataclass(frozen=True)
class Drawn:
    type: str
    subject: int
    minute: int
    stray_anonymous_id: int | None  # a customer's event may still carry an anonymous id


events_strategy = st.lists(
    st.builds(
        Drawn,
        type=st.sampled_from(COMMON_TYPES) | st.sampled_from(TYPES),
        subject=st.integers(0, SUBJECTS - 1),
        minute=st.integers(0, MINUTES),
        stray_anonymous_id=st.none() | st.integers(0, 1),
    ),
    min_size=8,
    max_size=30,
)
bound_strategy = st.none() | st.integers(0, MINUTES)


def reference_counts(
    events: list[tuple[str, object, datetime]],
    steps: list[str],
    window: timedelta,
    start: datetime | None,
    end: datetime | None,
) -> list[int]:
    """For each subject, the deepest step reachable by any chain of its events (every chain is
    tried, not just the earliest match), entering at its first in-range first step."""
    by_subject: dict[object, list[tuple[str, datetime]]] = {}
    for kind, subject, moment in events:
        if subject is not None:
            by_subject.setdefault(subject, []).append((kind, moment))
    counts = [0] * len(steps)
    for history in by_subject.values():
        entries = [
            moment
            for kind, moment in history
            if kind == steps[0]
            and (start is None or moment >= start)
            and (end is None or moment < end)
        ]
        if not entries:
            continue
        entered = min(entries)
        deadline = entered + window

        def deepest(done: int, after: datetime, history=history, deadline=deadline) -> int:
            if done == len(steps):
                return done
            return max(
                [done]
                + [
                    deepest(done + 1, moment)
                    for kind, moment in history
                    if kind == steps[done] and after < moment < deadline
                ]
            )

        for index in range(deepest(1, entered)):
            counts[index] += 1
    return counts


@st.composite
def windows(draw: st.DrawFn, drawn: list[Drawn]) -> int:
    """Minutes; often exactly the gap between two events of one subject: an off-by-one at the
    window's end hides there."""
    gaps = sorted(
        {
            later.minute - earlier.minute
            for earlier in drawn
            for later in drawn
            if later.subject == earlier.subject and later.minute > earlier.minute
        }
    )
    return draw(
        st.sampled_from(gaps) | st.integers(1, MINUTES) if gaps else st.integers(1, MINUTES)
    )


@pytest.mark.django_db
@settings(max_examples=50, deadline=None)
@given(
    drawn=events_strategy,
    steps=st.lists(st.sampled_from(COMMON_TYPES) | st.sampled_from(TYPES), min_size=2, max_size=4),
    first=bound_strategy,
    last=bound_strategy,
    data=st.data(),
)
def test_funnel_matches_an_exhaustive_search(drawn, steps, first, last, data):
    window_minutes = data.draw(windows(drawn), label="window_minutes")
    start = None if first is None else T0 + timedelta(minutes=first)
    end = None if last is None else T0 + timedelta(minutes=last)
    if start is not None and end is not None and start >= end:
        start, end = end - timedelta(minutes=1), start + timedelta(minutes=1)
    window = timedelta(minutes=window_minutes)

    # Each example in its own savepoint, rolled back: every example starts from empty tables.
    with transaction.atomic():
        assert not Event.objects.exists()
        customers = [Customer.objects.create(external_id=f"c{n}") for n in range(CUSTOMERS)]
        rows, history = [], []
        for index, item in enumerate(drawn):
            moment = T0 + timedelta(minutes=item.minute)
            if item.subject < CUSTOMERS:
                customer = customers[item.subject]
                stray = item.stray_anonymous_id
                anonymous_id = "" if stray is None else f"anon{stray}"
                subject: object = ("customer", customer.pk)
            elif item.subject < SUBJECTS - 1:
                customer, anonymous_id = None, f"anon{item.subject - CUSTOMERS}"
                subject = ("anonymous", anonymous_id)
            else:
                customer, anonymous_id, subject = None, "", None
            rows.append(
                Event(
                    id=f"e{index}",
                    type=item.type,
                    customer=customer,
                    anonymous_id=anonymous_id,
                    timestamp=moment,
                    received_at=moment,
                )
            )
            history.append((item.type, subject, moment))
        Event.objects.bulk_create(rows)

        result = funnel(steps=steps, window=window, start=start, end=end)

        transaction.set_rollback(True)

    expected = reference_counts(history, steps, window, start, end)
    assert [step.step for step in result] == steps
    assert [step.count for step in result] == expected
    assert [step.conversion_rate for step in result] == [
        count / expected[0] if expected[0] else 0.0 for count in expected
    ]
