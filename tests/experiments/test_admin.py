"""The experiments and flags admin through Django's test client: adding an experiment through
the service (errors beside the inputs, nothing saved), status moves, the restart of a started
split, the results page (table, SRM warning, chart data), recompute, declaring a winner,
archiving (never deleting), what a read-only Analyst may do, and the flags' kill switch.

What the row editor and the charts do in a browser is tests/e2e/test_experiments_browser.py."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from itertools import count
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from analytics.models import Event, EventType
from analytics.reports import EXPOSURE_EVENT
from analytics.selectors import event_type_catalog_forget
from experiments.models import Experiment, ExperimentPhase, FeatureFlag
from experiments.selectors import flag_rules
from experiments.services import (
    experiment_create,
    experiment_results_compute,
    experiment_transition,
    flag_create,
)
from segmentation.models import Segment
from segmentation.services import segment_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:experiments_experiment_add")
LIST_URL = reverse("admin:experiments_experiment_changelist")
FLAGS_URL = reverse("admin:experiments_featureflag_changelist")
FLAG_ADD_URL = reverse("admin:experiments_featureflag_add")
HALVES = [{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}]
CONFIG_SCRIPT = re.compile(
    r'<script id="id_variants_config" type="application/json">(.*?)</script>', re.S
)
DATA_SCRIPT = re.compile(
    r'<script id="experiment-results-data" type="application/json">(.*?)</script>', re.S
)
_event_ids = count()


def change_url(experiment: Experiment) -> str:
    return reverse("admin:experiments_experiment_change", args=[experiment.pk])


def results_url(experiment: Experiment) -> str:
    return reverse("admin:experiments_experiment_results", args=[experiment.pk])


def status_url(experiment: Experiment) -> str:
    return reverse("admin:experiments_experiment_status", args=[experiment.pk])


def recompute_url(experiment: Experiment) -> str:
    return reverse("admin:experiments_experiment_recompute", args=[experiment.pk])


def winner_url(experiment: Experiment) -> str:
    return reverse("admin:experiments_experiment_winner", args=[experiment.pk])


def form_data(**fields: Any) -> dict[str, str]:
    """What the page submits: its inputs plus the row editor's hidden `variants`."""
    data = {
        "key": "hero-test",
        "name": "Hero test",
        "hypothesis": "A bolder hero sells more.",
        "variants": HALVES,
        "traffic": "1",
        "seed": "",
        "segment_key": "",
        "metric_event": "purchase",
        "metric_window_hours": "72",
        "method": "sequential",
        "alpha": "0.05",
        "min_exposures": "100",
        "min_runtime_hours": "0",
    }
    data.update(fields)
    if not isinstance(data["variants"], str):
        data["variants"] = json.dumps(data["variants"])
    return data


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def form_errors(response: Any) -> dict[str, Any]:
    return response.context["adminform"].form.errors


def staff_in(role: str):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def expose(experiment: Experiment, counts: dict[str, int], conversions: dict[str, int]) -> None:
    """Exposure events as the drain stores them (anonymous units, one exposure each), and the
    metric event for the first `conversions[variant]` units of each variant."""
    now = timezone.now()
    rows = []
    for variant, exposed in counts.items():
        for index in range(exposed):
            unit = f"{experiment.key}-{variant}-{index}"
            rows.append(
                Event(
                    id=f"ev-{next(_event_ids)}",
                    type=EXPOSURE_EVENT,
                    anonymous_id=unit,
                    properties={"experiment": experiment.key, "variant": variant},
                    timestamp=now,
                    received_at=now,
                )
            )
            if index < conversions.get(variant, 0):
                rows.append(
                    Event(
                        id=f"ev-{next(_event_ids)}",
                        type=experiment.metric_event,
                        anonymous_id=unit,
                        properties={"amount": 10},
                        timestamp=now + timedelta(minutes=5),
                        received_at=now,
                    )
                )
    Event.objects.bulk_create(rows)


@pytest.fixture
def admin_client(client: Client, superuser) -> Client:
    client.force_login(superuser)
    return client


@pytest.fixture
def catalog(db) -> None:
    EventType.objects.create(name="purchase")
    EventType.objects.create(name="add_to_cart")
    event_type_catalog_forget()


@pytest.fixture
def vip(db) -> Segment:
    return segment_create(key="vip", name="VIP", kind=Segment.Kind.STATIC)


@pytest.fixture
def experiment(catalog) -> Experiment:
    return experiment_create(
        key="hero-test", name="Hero test", metric_event="purchase", variants=HALVES
    )


@pytest.fixture
def running(experiment) -> Experiment:
    return experiment_transition(experiment=experiment, status=Experiment.Status.RUNNING)


# --- Adding ------------------------------------------------------------------------------------
def test_the_add_page_offers_the_row_editor_the_segments_and_the_event_types(
    admin_client, catalog, vip
):
    response = admin_client.get(ADD_URL)

    assert response.status_code == 200
    page = response.content.decode()
    assert "experiments/variants_editor.js" in page
    form = response.context["adminform"].form
    assert json.loads(form["variants"].value()) == HALVES  # control and treatment to start from
    assert ("vip", "VIP (vip)") in form.fields["segment_key"].choices
    events = [value for value, _ in form.fields["metric_event"].choices]
    assert {"purchase", "add_to_cart"} <= set(events)
    assert EXPOSURE_EVENT not in events  # an exposure is no conversion
    config = json.loads(CONFIG_SCRIPT.search(page).group(1))
    assert config == {"minimum": 2, "control_first": True, "kind_input": None, "errors": []}


def test_an_experiment_added_through_the_form_is_saved_by_the_service(admin_client, catalog, vip):
    thirds = [{"key": k, "weight": 1 / 3} for k in ("control", "bold", "calm")]

    response = admin_client.post(
        ADD_URL,
        form_data(variants=thirds, segment_key="vip", traffic="0.5", metric_event="purchase"),
    )

    assert response.status_code == 302, form_errors(response)
    experiment = Experiment.objects.get(key="hero-test")
    assert experiment.variants == thirds
    assert (experiment.segment, experiment.traffic) == (vip, 0.5)
    assert (experiment.metric_event, experiment.status) == ("purchase", Experiment.Status.DRAFT)


def test_weights_not_summing_to_one_are_refused_beside_the_variants_and_nothing_is_saved(
    admin_client, catalog
):
    response = admin_client.post(
        ADD_URL,
        form_data(variants=[{"key": "control", "weight": 0.5}, {"key": "b", "weight": 0.4}]),
    )

    assert response.status_code == 200
    assert "must sum to 1" in str(form_errors(response)["variants"])
    assert not Experiment.objects.exists()
    # what was built is shown again, not lost
    assert "&quot;b&quot;" in response.content.decode()


def test_a_duplicate_variant_key_is_marked_on_its_row(admin_client, catalog):
    twice = [{"key": "control", "weight": 0.5}, {"key": "control", "weight": 0.5}]

    response = admin_client.post(ADD_URL, form_data(variants=twice))

    assert response.status_code == 200
    assert form_errors(response)["variants"] == ["Variant 2, key: 'control' is listed twice."]
    config = json.loads(CONFIG_SCRIPT.search(response.content.decode()).group(1))
    assert [error["attr"] for error in config["errors"]] == ["variants[1].key"]
    assert not Experiment.objects.exists()


def test_traffic_outside_zero_to_one_is_refused_on_the_traffic_input(admin_client, catalog):
    response = admin_client.post(ADD_URL, form_data(traffic="1.5"))

    assert response.status_code == 200
    assert "A number in [0, 1]." in str(form_errors(response)["traffic"])
    assert not Experiment.objects.exists()


def test_a_bad_alpha_lands_on_the_alpha_input(admin_client, catalog):
    response = admin_client.post(ADD_URL, form_data(alpha="0.7"))

    assert response.status_code == 200
    assert "Between 0 and 0.5." in str(form_errors(response)["alpha"])


def test_a_taken_key_is_refused_on_the_key_input(admin_client, experiment):
    response = admin_client.post(ADD_URL, form_data(name="Another"))

    assert response.status_code == 200
    assert "exists" in str(form_errors(response)["key"])
    assert Experiment.objects.count() == 1


def test_a_malformed_key_is_refused_on_the_key_input(admin_client, catalog):
    response = admin_client.post(ADD_URL, form_data(key="Hero Test!"))

    assert response.status_code == 200
    assert form_errors(response)["key"]
    assert not Experiment.objects.exists()


# --- Status moves ------------------------------------------------------------------------------
def test_the_start_button_starts_the_experiment_in_phase_one(admin_client, experiment):
    page = admin_client.get(change_url(experiment)).content.decode()
    assert 'name="action" value="start"' in page
    assert 'value="pause"' not in page

    response = admin_client.post(status_url(experiment), {"action": "start"}, follow=True)

    experiment.refresh_from_db()
    assert (experiment.status, experiment.phase) == (Experiment.Status.RUNNING, 1)
    assert response.redirect_chain[-1][0] == change_url(experiment)
    assert messages_of(response) == ["“Hero test” is now running."]
    page = response.content.decode()
    assert 'value="pause"' in page and 'value="complete"' in page
    assert results_url(experiment) in page  # the results link, once started
    logged = LogEntry.objects.get(object_id=str(experiment.pk))  # and so in the audit log
    assert logged.get_change_message() == "Start: now running."


def test_a_move_the_status_machine_refuses_is_shown_as_an_error_message(admin_client, running):
    response = admin_client.post(status_url(running), {"action": "archive"}, follow=True)

    assert messages_of(response) == ["An experiment cannot go from running to archived."]
    running.refresh_from_db()
    assert running.status == Experiment.Status.RUNNING


def test_the_list_actions_move_the_selected_experiments(admin_client, experiment):
    response = admin_client.post(
        LIST_URL, {"action": "start_selected", "_selected_action": [experiment.pk]}, follow=True
    )

    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.RUNNING
    assert messages_of(response) == ["Start: hero-test."]


def test_status_moves_take_only_a_post(admin_client, experiment):
    assert admin_client.get(status_url(experiment)).status_code == 405


# --- Changing a started experiment -------------------------------------------------------------
def test_changing_the_split_of_a_started_experiment_needs_the_restart_box(admin_client, running):
    skewed = [{"key": "control", "weight": 0.2}, {"key": "treatment", "weight": 0.8}]

    refused = admin_client.post(change_url(running), form_data(variants=skewed))

    assert refused.status_code == 200
    errors = form_errors(refused)
    assert "re-buckets its units" in str(errors["__all__"])
    assert errors["restart"] == ["Tick this to save these changes as a new phase."]
    running.refresh_from_db()
    assert (running.variants, running.phase) == (HALVES, 1)

    restarted = admin_client.post(change_url(running), form_data(variants=skewed, restart="on"))

    assert restarted.status_code == 302, form_errors(restarted)
    running.refresh_from_db()
    assert (running.variants, running.phase) == (skewed, 2)
    first = ExperimentPhase.objects.get(experiment=running, number=1)
    assert first.ended_at is not None and first.variants == HALVES


def test_saving_a_started_experiment_without_touching_the_split_needs_no_restart(
    admin_client, catalog
):
    # Thirds come back from the page as percentages a rounding away: still the same split.
    thirds = [{"key": k, "weight": 1 / 3} for k in ("control", "bold", "calm")]
    experiment = experiment_create(
        key="hero-test", name="Hero test", metric_event="purchase", variants=thirds
    )
    experiment_transition(experiment=experiment, status=Experiment.Status.RUNNING)
    posted = [{"key": k, "weight": 0.333333333333} for k in ("control", "bold", "calm")]

    response = admin_client.post(
        change_url(experiment), form_data(variants=posted, name="Hero test, renamed")
    )

    assert response.status_code == 302, form_errors(response)
    experiment.refresh_from_db()
    assert (experiment.name, experiment.phase, experiment.variants) == (
        "Hero test, renamed",
        1,
        thirds,
    )


def test_the_change_page_lists_the_phases_read_only(admin_client, running):
    page = admin_client.get(change_url(running)).content.decode()

    assert "Phases" in page
    assert "control 50 % · treatment 50 %" in page
    assert 'name="restart"' in page  # a started experiment offers the restart box


# --- Results -----------------------------------------------------------------------------------
def test_the_results_page_warns_of_a_sample_ratio_mismatch(admin_client, running):
    expose(running, {"control": 300, "treatment": 100}, {"control": 30, "treatment": 10})
    experiment_results_compute(experiment=running)

    response = admin_client.get(results_url(running))

    assert response.status_code == 200
    page = response.content.decode()
    assert 'class="errornote srm-warning" role="alert"' in page
    assert "Sample ratio mismatch" in page
    rows = {row["key"]: row for row in response.context["rows"]}
    assert (rows["control"]["exposures"], rows["treatment"]["exposures"]) == (300, 100)
    assert rows["control"]["rate"] == "10.00 %"
    assert "SRM detected" in response.context["results"]["decision"]


def test_the_results_page_shows_the_figures_the_charts_data_and_no_warning_when_the_split_holds(
    admin_client, running
):
    expose(running, {"control": 200, "treatment": 200}, {"control": 20, "treatment": 40})
    experiment_results_compute(experiment=running)

    response = admin_client.get(results_url(running))

    page = response.content.decode()
    assert "srm-warning" not in page
    assert "Method" in page and "sequential" in page
    rows = {row["key"]: row for row in response.context["rows"]}
    assert rows["treatment"]["uplift"] == "+100.00 %"
    assert rows["treatment"]["p_value"] != "—"
    assert rows["control"]["reason"] == "control"
    data = json.loads(DATA_SCRIPT.search(page).group(1))
    assert [v["key"] for v in data["variants"]] == ["control", "treatment"]
    control = data["variants"][0]
    assert control["rate"] == pytest.approx(0.1)
    # the rate's interval: 0.1 ± 1.96·√(0.1·0.9/200)
    assert control["rate_low"] == pytest.approx(0.1 - 0.04158, abs=1e-4)
    assert control["rate_high"] == pytest.approx(0.1 + 0.04158, abs=1e-4)
    assert data["variants"][1]["ci_low"] is not None
    assert data["history"][-1][1] == [200, 200]
    assert "analytics/vendor/chartjs/chart.umd.min.js" in page
    assert 'id="experiment-rate-chart"' in page and 'id="experiment-exposures-chart"' in page


def test_a_figure_that_cannot_be_computed_shows_its_reason(admin_client, running):
    expose(running, {"control": 50, "treatment": 50}, {"control": 0, "treatment": 5})
    experiment_results_compute(experiment=running)

    response = admin_client.get(results_url(running))

    rows = {row["key"]: row for row in response.context["rows"]}
    assert rows["treatment"]["p_value"] == "—"
    assert "relative uplift is undefined" in rows["treatment"]["reason"]
    assert "relative uplift is undefined" in response.content.decode()


def test_the_results_page_escapes_what_people_typed(admin_client, catalog):
    experiment = experiment_create(
        key="xss", name="<script>alert(1)</script>", metric_event="purchase", variants=HALVES
    )

    page = admin_client.get(results_url(experiment)).content.decode()

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_recompute_button_counts_the_exposures_so_far(admin_client, running):
    expose(running, {"control": 20, "treatment": 22}, {"control": 2, "treatment": 3})

    response = admin_client.post(recompute_url(running), {"next": "results"}, follow=True)

    assert response.redirect_chain[-1][0] == results_url(running)
    assert messages_of(response) == ["Results recomputed."]
    running.refresh_from_db()
    assert [v["exposures"] for v in running.results["variants"]] == [20, 22]
    assert "Recompute now" in response.content.decode()


def test_recomputing_a_draft_is_refused_with_a_message(admin_client, experiment):
    response = admin_client.post(recompute_url(experiment), follow=True)

    assert messages_of(response) == ["The experiment has not started: there is nothing to compute."]


def test_declaring_a_winner_completes_the_experiment_and_shows_the_winner(admin_client, running):
    expose(running, {"control": 20, "treatment": 20}, {"control": 2, "treatment": 4})
    experiment_results_compute(experiment=running)

    response = admin_client.post(
        winner_url(running), {"variant": "treatment", "next": "results"}, follow=True
    )

    running.refresh_from_db()
    assert (running.winner, running.winner_source) == ("treatment", "manual")
    assert running.status == Experiment.Status.COMPLETED
    assert messages_of(response) == ["“treatment” is the winner; everyone sees it from now on."]
    page = response.content.decode()
    assert '<dd class="experiment-results-winner"><strong>treatment</strong> (manual)' in page
    assert response.context["rows"][1]["winner"] is True


def test_an_unknown_winner_is_refused_with_a_message(admin_client, running):
    response = admin_client.post(winner_url(running), {"variant": "nope"}, follow=True)

    assert messages_of(response) == ["No variant 'nope' here."]
    running.refresh_from_db()
    assert running.winner == ""


def test_a_closed_phase_keeps_its_results_page(admin_client, running):
    expose(running, {"control": 30, "treatment": 30}, {"control": 3, "treatment": 3})
    experiment_results_compute(experiment=running)
    admin_client.post(
        change_url(running),
        form_data(
            variants=[{"key": "control", "weight": 0.3}, {"key": "treatment", "weight": 0.7}],
            restart="on",
        ),
    )

    response = admin_client.get(results_url(running) + "?phase=1")

    assert response.status_code == 200
    assert response.context["closed_phase"].number == 1
    assert [row["exposures"] for row in response.context["rows"]] == [30, 30]
    assert response.context["can_change"] is False  # a closed phase is history
    assert "Recompute now" not in response.content.decode()
    assert (
        results_url(running) + "?phase=1" in admin_client.get(change_url(running)).content.decode()
    )


# --- Archiving, never deleting -----------------------------------------------------------------
def test_an_archived_experiment_stays_listed_read_only_and_cannot_be_deleted(admin_client, running):
    admin_client.post(winner_url(running), {"variant": "control"})

    response = admin_client.post(status_url(running), {"action": "archive"}, follow=True)

    running.refresh_from_db()
    assert running.status == Experiment.Status.ARCHIVED
    assert messages_of(response)[-1] == "“Hero test” is now archived."
    listed = admin_client.get(LIST_URL, {"status__exact": "archived"})
    assert [e.key for e in listed.context["cl"].result_list] == ["hero-test"]
    delete = reverse("admin:experiments_experiment_delete", args=[running.pk])
    assert admin_client.get(delete).status_code == 403
    actions = admin_client.get(LIST_URL).context["action_form"].fields["action"].choices
    assert "delete_selected" not in [name for name, _ in actions]
    # the settings are final: shown, not offered
    form = admin_client.get(change_url(running)).context["adminform"].form
    assert "variants" not in form.fields and "name" not in form.fields
    Experiment.objects.get(pk=running.pk)


# --- Permissions -------------------------------------------------------------------------------
def test_a_marketer_adds_and_starts_an_experiment(client, catalog):
    client.force_login(staff_in("Marketer"))

    added = client.post(ADD_URL, form_data())
    experiment = Experiment.objects.get(key="hero-test")
    started = client.post(status_url(experiment), {"action": "start"})

    assert (added.status_code, started.status_code) == (302, 302)
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.RUNNING


def test_an_analyst_sees_the_results_but_may_press_no_button(client, running):
    expose(running, {"control": 20, "treatment": 20}, {"control": 2, "treatment": 4})
    experiment_results_compute(experiment=running)
    client.force_login(staff_in("Analyst"))

    page = client.get(results_url(running))

    assert page.status_code == 200
    assert page.context["can_change"] is False
    content = page.content.decode()
    assert "Recompute now" not in content and "Declare winner" not in content
    assert client.get(change_url(running)).status_code == 200
    assert client.post(recompute_url(running)).status_code == 403
    assert client.post(winner_url(running), {"variant": "treatment"}).status_code == 403
    assert client.post(status_url(running), {"action": "pause"}).status_code == 403
    assert client.post(change_url(running), form_data(name="Renamed")).status_code == 403
    running.refresh_from_db()
    assert (running.status, running.winner, running.name) == ("running", "", "Hero test")


def test_the_buttons_need_the_csrf_token(superuser, running):
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)

    assert client.post(status_url(running), {"action": "pause"}).status_code == 403
    assert client.post(winner_url(running), {"variant": "treatment"}).status_code == 403
    running.refresh_from_db()
    assert (running.status, running.winner) == ("running", "")


def test_staff_without_the_view_permission_do_not_see_results(client, running):
    client.force_login(UserFactory(is_staff=True))

    assert client.get(results_url(running)).status_code == 403


# --- Lists ------------------------------------------------------------------------------------
def test_the_lists_cost_the_same_queries_for_one_row_or_many(
    admin_client, catalog, vip, django_assert_num_queries
):
    def add(index: int) -> None:
        experiment_create(
            key=f"e-{index}", name=f"E {index}", metric_event="purchase", segment="vip"
        )
        flag_create(key=f"f-{index}", name=f"F {index}", segment="vip")

    add(0)
    queries = {}
    for url in (LIST_URL, FLAGS_URL):
        admin_client.get(url)  # warm: the session, content types
        with CaptureQueriesContext(connection) as one_row:
            admin_client.get(url)
        queries[url] = len(one_row)

    for index in range(1, 6):
        add(index)

    for url in (LIST_URL, FLAGS_URL):
        with django_assert_num_queries(queries[url]):
            response = admin_client.get(url)
        assert response.context["cl"].result_count == 6


# --- Flags -------------------------------------------------------------------------------------
def flag_form(**fields: Any) -> dict[str, str]:
    data = {
        "key": "new-checkout",
        "name": "New checkout",
        "description": "",
        "kind": "boolean",
        "enabled": "on",
        "rollout": "1",
        "segment_key": "",
        "variants": "[]",
    }
    data.update(fields)
    if not isinstance(data["variants"], str):
        data["variants"] = json.dumps(data["variants"])
    return data


def test_the_kill_switch_in_the_flag_list_saves_through_the_service(
    admin_client, db, django_capture_on_commit_callbacks
):
    flag = flag_create(key="new-checkout", name="New checkout", enabled=True)
    assert flag_rules()["new-checkout"].enabled is True  # cached for the hot path

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            FLAGS_URL,
            {
                "form-TOTAL_FORMS": "1",
                "form-INITIAL_FORMS": "1",
                "form-0-id": str(flag.pk),
                "_save": "Save",
            },
        )

    assert response.status_code == 302
    flag.refresh_from_db()
    assert flag.enabled is False
    assert flag_rules()["new-checkout"].enabled is False  # the cache forgot it


def test_the_kill_action_turns_flags_off_for_everyone(
    admin_client, db, django_capture_on_commit_callbacks
):
    flag = flag_create(key="new-checkout", name="New checkout", enabled=True)
    flag_rules()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            FLAGS_URL, {"action": "kill", "_selected_action": [flag.pk]}, follow=True
        )

    assert messages_of(response) == ["Killed 1 flag(s): off for everyone now."]
    assert flag_rules()["new-checkout"].enabled is False
    admin_client.post(FLAGS_URL, {"action": "turn_on", "_selected_action": [flag.pk]})
    flag.refresh_from_db()
    assert flag.enabled is True


def test_a_multivariate_flag_is_added_with_its_variants(admin_client, vip):
    colours = [{"key": "blue", "weight": 0.5}, {"key": "green", "weight": 0.5}]

    response = admin_client.post(
        FLAG_ADD_URL, flag_form(kind="multivariate", variants=colours, segment_key="vip")
    )

    assert response.status_code == 302, form_errors(response)
    flag = FeatureFlag.objects.get(key="new-checkout")
    assert (flag.kind, flag.variants, flag.segment) == ("multivariate", colours, vip)


def test_a_boolean_flag_drops_what_the_hidden_editor_still_holds(admin_client, db):
    leftover = [{"key": "blue", "weight": 0.5}, {"key": "green", "weight": 0.5}]

    response = admin_client.post(FLAG_ADD_URL, flag_form(variants=leftover))

    assert response.status_code == 302, form_errors(response)
    assert FeatureFlag.objects.get(key="new-checkout").variants == []


def test_a_multivariate_flag_with_bad_weights_is_refused_beside_the_variants(admin_client, db):
    response = admin_client.post(
        FLAG_ADD_URL,
        flag_form(
            kind="multivariate",
            variants=[{"key": "blue", "weight": 0.3}, {"key": "green", "weight": 0.3}],
        ),
    )

    assert response.status_code == 200
    assert "must sum to 1" in str(form_errors(response)["variants"])
    assert not FeatureFlag.objects.exists()


def test_the_flag_page_hides_the_variants_of_a_boolean_flag_by_its_kind_select(admin_client, db):
    page = admin_client.get(FLAG_ADD_URL).content.decode()

    config = json.loads(CONFIG_SCRIPT.search(page).group(1))
    assert config["kind_input"] == "id_kind"
