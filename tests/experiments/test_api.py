"""Experiments and flags through REST, as a client uses them: create and start, assignments
for 10,000 units, exposures and conversions through the events API and the real drain, the
statistics job, results against reference figures, transitions, phases and bad input."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from rest_framework.test import APIClient
from scipy import stats

from analytics.services import Caller, events_accept
from experiments.bucketing import in_traffic, variant_index
from experiments.models import Experiment, ExperimentPhase
from experiments.services import experiments_results_compute_running
from segmentation.services import segment_create

pytestmark = pytest.mark.django_db(transaction=True)
PROBLEM = "application/problem+json"
SERVER = Caller(may_name_any_user=True)


@pytest.fixture
def catalog(db):
    from analytics.demo import demo_load

    demo_load()  # event types, among them `purchase`


@pytest.fixture
def generous(settings):
    settings.CMS_THROTTLE_RATES = {key: "1000000/min" for key in settings.CMS_THROTTLE_RATES}


def experiment_body(**overrides):
    body = {
        "key": "checkout-copy",
        "name": "Checkout copy",
        "variants": [{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}],
        "traffic": 1.0,
        "segment": None,
        "metric": {"event": "purchase", "window_hours": 72},
        "analysis": {"method": "fixed", "alpha": 0.05, "min_exposures": 10},
    }
    body.update(overrides)
    return body


def error_attrs(response):
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith(PROBLEM)
    return {error["attr"] for error in response.json()["errors"]}


def test_create_start_and_assign_10000_units(staff_client, catalog, generous):
    weights = [0.2, 0.3, 0.5]
    variants = [
        {"key": key, "weight": weight} for key, weight in zip(("a", "b", "c"), weights, strict=True)
    ]
    created = staff_client.post(
        "/api/v1/experiments/", experiment_body(variants=variants), format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "draft"
    started = staff_client.patch(
        "/api/v1/experiments/checkout-copy/", {"status": "running"}, format="json"
    )
    assert started.json()["status"] == "running" and started.json()["phase"] == 1

    anonymous = APIClient()
    answers = {}
    for index in range(10_000):
        unit = f"visitor-{index}"
        response = anonymous.get(f"/api/v1/experiments/checkout-copy/assignment/?unit={unit}")
        answers[unit] = response.json()["variant"]
    counts = Counter(answers.values())
    observed = [counts[key] for key in ("a", "b", "c")]
    assert stats.chisquare(observed, [10_000 * w for w in weights]).pvalue > 0.001
    for unit, variant in list(answers.items())[:500]:
        again = anonymous.get(f"/api/v1/experiments/checkout-copy/assignment/?unit={unit}")
        assert again.json()["variant"] == variant
        assert variant == ("a", "b", "c")[variant_index("checkout-copy", unit, weights)]


def test_traffic_and_segment_targeting(staff_client, catalog, generous):
    segment_create(key="testers", name="Testers", kind="static")
    staff_client.post(
        "/api/v1/experiments/",
        experiment_body(key="half", traffic=0.5, status="running"),
        format="json",
    )
    inside = [
        APIClient().get(f"/api/v1/experiments/half/assignment/?unit=u{index}").json()
        for index in range(400)
    ]
    for index, answer in enumerate(inside):
        expected_in = in_traffic("half", f"u{index}", 0.5)
        assert (answer["variant"] is not None) == expected_in
        assert answer["reason"] == ("assigned" if expected_in else "outside-traffic")

    staff_client.post(
        "/api/v1/experiments/",
        experiment_body(key="targeted", segment="testers", status="running"),
        format="json",
    )
    answer = APIClient().get("/api/v1/experiments/targeted/assignment/?unit=stranger").json()
    assert answer == {"experiment": "targeted", "variant": None, "reason": "not-in-segment"}


def reference_fixed(ca, na, cb, nb, alpha=0.05):
    """Welch's t test on the delta-method variance of the relative uplift, written out."""
    pa, pb = ca / na, cb / nb
    va, vb = pa * (1 - pa), pb * (1 - pb)
    lift = pb / pa - 1
    var = vb / (nb * pa**2) + va * pb**2 / (na * pa**4)
    dof = (va / na + vb / nb) ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    half = stats.t(dof).ppf(1 - alpha / 2) * math.sqrt(var)
    p = 2 * stats.t(dof).sf(abs(lift) / math.sqrt(var))
    chance = stats.norm.cdf(lift / math.sqrt(var))
    return {
        "uplift": lift,
        "ci_low": lift - half,
        "ci_high": lift + half,
        "p_value": p,
        "chance_to_win": chance,
        "rate": pb,
    }


def send(events):
    result = events_accept(events=events, caller=SERVER)
    assert result.accepted == len(events), result.rejected


def test_exposures_and_conversions_to_results(staff_client, catalog, drain, generous):
    staff_client.post("/api/v1/experiments/", experiment_body(status="running"), format="json")
    # 60 units: the variant from the hash; conversions: a fixed pattern, some outside the window
    # or before the exposure (which must not count); some units exposed twice.
    expected = {"control": [0, 0], "treatment": [0, 0]}
    events = []
    for index in range(300):
        unit = f"anon-{index}"
        variant = (
            APIClient()
            .get(f"/api/v1/experiments/checkout-copy/assignment/?unit={unit}")
            .json()["variant"]
        )
        exposure = {
            "type": "experiment_exposure",
            "anonymousId": unit,
            "properties": {"experiment": "checkout-copy", "variant": variant},
        }
        events.append(exposure)
        if index % 4 == 0:
            events.append(dict(exposure))  # a repeat exposure counts once
        expected[variant][0] += 1
        converts = index % 3 == 0 if variant == "control" else index % 5 in (0, 1)
        if converts:
            events.append({"type": "purchase", "anonymousId": unit, "properties": {"amount": 10}})
            expected[variant][1] += 1
    send(events)
    drain()
    assert experiments_results_compute_running() == 1
    body = staff_client.get("/api/v1/experiments/checkout-copy/results/").json()
    rows = {row["key"]: row for row in body["variants"]}
    for key, (exposures, conversions) in expected.items():
        assert (rows[key]["exposures"], rows[key]["conversions"]) == (exposures, conversions)
    reference = reference_fixed(*expected["control"][::-1], *expected["treatment"][::-1])
    for name, value in reference.items():
        assert rows["treatment"][name] == pytest.approx(value, abs=1e-4), name
    assert body["method"] == "fixed"
    assert body["srm"]["ok"] is True and body["computed_at"]
    assert rows["control"]["uplift"] is None


def test_conversions_count_only_inside_the_window_after_the_first_exposure(
    staff_client, catalog, drain, generous
):
    from datetime import timedelta

    from django.utils import timezone

    staff_client.post(
        "/api/v1/experiments/",
        experiment_body(status="running", metric={"event": "purchase", "window_hours": 1}),
        format="json",
    )
    now = timezone.now()
    Experiment.objects.filter(key="checkout-copy").update(phase_started_at=now - timedelta(hours=4))

    def at(minutes):
        return (now - timedelta(hours=3) + timedelta(minutes=minutes)).isoformat()

    def exposure(unit, minutes):
        variant = (
            APIClient()
            .get(f"/api/v1/experiments/checkout-copy/assignment/?unit={unit}")
            .json()["variant"]
        )
        return variant, {
            "type": "experiment_exposure",
            "anonymousId": unit,
            "timestamp": at(minutes),
            "properties": {"experiment": "checkout-copy", "variant": variant},
        }

    cases = {"inside": (1, 30), "before": (1, -1), "after-window": (1, 62)}
    events, variants = [], {}
    for unit, (exposed_at, bought_at) in cases.items():
        variants[unit], event = exposure(unit, exposed_at)
        purchase = {"type": "purchase", "anonymousId": unit, "timestamp": at(bought_at)}
        events += [event, {**purchase, "properties": {"amount": 5}}]
    send(events)
    drain()
    experiments_results_compute_running()
    rows = staff_client.get("/api/v1/experiments/checkout-copy/results/").json()["variants"]
    assert sum(row["conversions"] for row in rows) == 1
    assert sum(row["exposures"] for row in rows) == 3


def test_weights_of_a_running_experiment_change_only_with_a_restart(staff_client, catalog):
    staff_client.post("/api/v1/experiments/", experiment_body(status="running"), format="json")
    new = [{"key": "control", "weight": 0.3}, {"key": "treatment", "weight": 0.7}]
    refused = staff_client.patch(
        "/api/v1/experiments/checkout-copy/", {"variants": new}, format="json"
    )
    assert refused.status_code == 409 and refused["Content-Type"].startswith(PROBLEM)
    assert Experiment.objects.get().variants[0]["weight"] == 0.5
    renamed = staff_client.patch(
        "/api/v1/experiments/checkout-copy/", {"name": "Checkout wording"}, format="json"
    )
    assert renamed.status_code == 200
    restarted = staff_client.patch(
        "/api/v1/experiments/checkout-copy/", {"variants": new, "restart": True}, format="json"
    )
    assert restarted.status_code == 200 and restarted.json()["phase"] == 2
    phases = list(ExperimentPhase.objects.order_by("number"))
    assert [phase.number for phase in phases] == [1, 2]
    assert phases[0].ended_at is not None and phases[0].variants[0]["weight"] == 0.5


def test_transitions_are_enforced_and_archiving_keeps_results(staff_client, catalog):
    staff_client.post("/api/v1/experiments/", experiment_body(), format="json")
    url = "/api/v1/experiments/checkout-copy/"
    assert staff_client.patch(url, {"status": "paused"}, format="json").status_code == 409
    for status in ("running", "paused", "running", "completed"):
        response = staff_client.patch(url, {"status": status}, format="json")
        assert response.status_code == 200, (status, response.content)
    staff_client.post(url + "results/")
    before = staff_client.get(url + "results/").json()
    assert staff_client.patch(url, {"status": "running"}, format="json").status_code == 409
    assert staff_client.patch(url, {"status": "archived"}, format="json").status_code == 200
    after = staff_client.get(url + "results/").json()
    assert after["variants"] == before["variants"] and after["status"] == "archived"
    assert staff_client.patch(url, {"traffic": 0.5}, format="json").status_code == 409
    assert staff_client.delete(url).status_code == 405  # ended experiments are never deleted


def test_declared_winner_is_served_to_everyone(staff_client, catalog):
    staff_client.post("/api/v1/experiments/", experiment_body(status="running"), format="json")
    url = "/api/v1/experiments/checkout-copy/"
    unknown = staff_client.post(url + "winner/", {"variant": "nope"}, format="json")
    assert error_attrs(unknown) == {"variant"}
    declared = staff_client.post(url + "winner/", {"variant": "treatment"}, format="json")
    assert declared.json()["status"] == "completed" and declared.json()["winner"] == "treatment"
    for index in range(50):
        answer = APIClient().get(url + f"assignment/?unit=u{index}").json()
        assert answer["variant"] == "treatment" and answer["reason"] == "winner"


@pytest.mark.parametrize(
    ("overrides", "attr"),
    [
        ({"variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.6}]}, "variants"),
        (
            {"variants": [{"key": "a", "weight": 0.5}, {"key": "a", "weight": 0.5}]},
            "variants[1].key",
        ),
        ({"variants": [{"key": "a", "weight": 1}]}, "variants"),
        (
            {"variants": [{"key": "A b", "weight": 0.5}, {"key": "b", "weight": 0.5}]},
            "variants[0].key",
        ),
        ({"metric": {"event": "teleported"}}, "metric.event"),
        ({"segment": "no-such-segment"}, "segment"),
        ({"traffic": 1.5}, "traffic"),
        ({"traffic": -0.1}, "traffic"),
        ({"analysis": {"alpha": 0.9}}, "analysis.alpha"),
        ({"analysis": {"method": "bayes-ish"}}, "analysis.method"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(staff_client, catalog, overrides, attr):
    response = staff_client.post(
        "/api/v1/experiments/", experiment_body(**overrides), format="json"
    )
    assert attr in error_attrs(response)
    assert not Experiment.objects.exists()


def test_who_may_call_what(api_client, staff_client, catalog):
    staff_client.post("/api/v1/experiments/", experiment_body(status="running"), format="json")
    assert api_client.get("/api/v1/experiments/").status_code in (401, 403)
    assert api_client.get("/api/v1/experiments/checkout-copy/results/").status_code in (401, 403)
    assert api_client.post(
        "/api/v1/experiments/", experiment_body(key="x"), format="json"
    ).status_code in (401, 403)
    assert (
        api_client.get("/api/v1/experiments/checkout-copy/assignment/?unit=u1").status_code == 200
    )
    missing = api_client.get("/api/v1/experiments/checkout-copy/assignment/")
    assert error_attrs(missing) == {"unit"}
    long_unit = api_client.get("/api/v1/experiments/checkout-copy/assignment/?unit=" + "x" * 300)
    assert error_attrs(long_unit) == {"unit"}
    assert api_client.get("/api/v1/experiments/nope/assignment/?unit=u").status_code == 404


# --- Flags ----------------------------------------------------------------------------------------
def test_flags_evaluate_for_a_unit_and_the_kill_switch_acts_at_once(
    staff_client, catalog, generous
):
    assert (
        staff_client.post(
            "/api/v1/flags/", {"key": "new-nav", "name": "New nav", "enabled": True}, format="json"
        ).status_code
        == 201
    )
    staff_client.post(
        "/api/v1/flags/",
        {"key": "half", "name": "Half", "enabled": True, "rollout": 0.5},
        format="json",
    )
    staff_client.post(
        "/api/v1/flags/",
        {
            "key": "theme",
            "name": "Theme",
            "kind": "multivariate",
            "enabled": True,
            "variants": [{"key": "blue", "weight": 0.5}, {"key": "green", "weight": 0.5}],
        },
        format="json",
    )
    values = [APIClient().get(f"/api/v1/flags/?unit=u{index}").json() for index in range(400)]
    assert all(value["new-nav"] is True for value in values)
    assert 0.4 < sum(value["half"] for value in values) / 400 < 0.6
    assert {value["theme"] for value in values} == {"blue", "green"}
    staff_client.patch("/api/v1/flags/new-nav/", {"enabled": False}, format="json")
    assert APIClient().get("/api/v1/flags/?unit=u1").json()["new-nav"] is False


def test_flag_bad_input_and_permissions(api_client, staff_client, catalog):
    assert api_client.get("/api/v1/flags/").status_code in (401, 403)
    assert api_client.post(
        "/api/v1/flags/", {"key": "x", "name": "X"}, format="json"
    ).status_code in (401, 403)
    bad = staff_client.post(
        "/api/v1/flags/", {"key": "x", "name": "X", "rollout": 2}, format="json"
    )
    assert error_attrs(bad) == {"rollout"}
    bad = staff_client.post(
        "/api/v1/flags/",
        {
            "key": "x",
            "name": "X",
            "kind": "multivariate",
            "variants": [{"key": "a", "weight": 0.2}],
        },
        format="json",
    )
    assert "variants" in error_attrs(bad)
    assert error_attrs(
        staff_client.post(
            "/api/v1/flags/", {"key": "x", "name": "X", "segment": "ghost"}, format="json"
        )
    ) == {"segment"}
    assert error_attrs(api_client.get("/api/v1/flags/?unit=")) == {"unit"}


def test_a_targeted_segment_cannot_be_deleted(staff_client, catalog):
    segment_create(key="testers", name="Testers", kind="static")
    staff_client.post("/api/v1/experiments/", experiment_body(segment="testers"), format="json")
    refused = staff_client.delete("/api/v1/segments/testers/")
    assert refused.status_code == 409, refused.content


def test_anonymous_assignment_and_flags_are_throttled_and_need_no_sql_when_warm(
    staff_client, catalog, settings, django_assert_num_queries
):
    staff_client.post("/api/v1/experiments/", experiment_body(status="running"), format="json")
    staff_client.post(
        "/api/v1/flags/", {"key": "nav", "name": "Nav", "enabled": True}, format="json"
    )
    settings.CMS_THROTTLE_RATES = {**settings.CMS_THROTTLE_RATES, "anon": "4/min"}
    anonymous = APIClient()
    url = "/api/v1/experiments/checkout-copy/assignment/?unit=u1"
    first = anonymous.get(url).json()  # warms the rules cache
    flags = anonymous.get("/api/v1/flags/?unit=u1").json()
    with django_assert_num_queries(0):
        again = anonymous.get(url)
        flags_again = anonymous.get("/api/v1/flags/?unit=u1")
    assert again.json() == first and first["reason"] == "assigned"
    assert flags_again.json() == flags == {"nav": True}
    throttled = anonymous.get(url)
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) >= 1
    assert throttled["Content-Type"].startswith(PROBLEM)
