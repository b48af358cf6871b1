"""GraphQL: `experiment(key:) { results }` for staff, `flags(unit:)` for anyone."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from experiments.models import Experiment
from experiments.services import experiment_create, experiment_results_compute, flag_create

pytestmark = pytest.mark.django_db(transaction=True)
QUERY = """{ experiment(key: "hero-copy") { key status phase
  results { method winner variants { key exposures conversions rate uplift reason }
            srm { pValue ok } } } }"""


@pytest.fixture
def experiment(db):
    from analytics.demo import demo_load

    demo_load()
    experiment = experiment_create(
        key="hero-copy", name="Hero", metric_event="purchase", status=Experiment.Status.RUNNING
    )
    experiment_results_compute(experiment=experiment)
    return experiment


def graphql(client, query):
    return client.post("/graphql/", {"query": query}, format="json").json()


def test_staff_read_results(staff_client, experiment):
    body = graphql(staff_client, QUERY)
    assert "errors" not in body, body
    results = body["data"]["experiment"]["results"]
    assert results["method"] == "sequential"
    assert [row["key"] for row in results["variants"]] == ["control", "treatment"]
    assert results["variants"][1]["uplift"] is None and results["variants"][1]["reason"]
    assert results["srm"]["ok"] is True


def test_anonymous_may_not_read_results_but_may_read_flags(experiment):
    refused = graphql(APIClient(), QUERY)
    assert refused["data"]["experiment"] is None and refused["errors"]
    flag_create(key="new-nav", name="New nav", enabled=True)
    flags = graphql(APIClient(), '{ flags(unit: "u1") }')
    assert flags["data"]["flags"] == {"new-nav": True}
    empty = graphql(APIClient(), '{ flags(unit: "") }')
    assert empty["errors"]
