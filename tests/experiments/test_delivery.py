"""Content blocks bound to experiments and flags, through the delivery endpoint: the variant
from the hash, exposures recorded server-side once per unit, flags hiding blocks, the winner
served to everyone once declared, consent respected."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from analytics.models import Event
from content.services import entry_create, entry_publish
from customers.models import Consent
from customers.services import customer_token_issue
from experiments.bucketing import variant_index
from experiments.models import Experiment
from experiments.services import (
    experiment_create,
    experiment_declare_winner,
    flag_create,
    flag_update,
)
from tests.content.conftest import faq, hero, homepage_type  # noqa: F401 - fixture
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/deliver/homepage/home/"
CONTROL, TREATMENT = "Hello", "Hello, try our new range"


@pytest.fixture
def catalog(db):
    from analytics.demo import demo_load

    demo_load()


@pytest.fixture
def experiment(catalog):
    return experiment_create(
        key="hero-copy",
        name="Hero copy",
        variants=[{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}],
        metric_event="purchase",
        status=Experiment.Status.RUNNING,
    )


@pytest.fixture
def home(homepage_type):  # noqa: F811 - the imported fixture
    bound = hero(CONTROL)
    bound["experiment"] = {"key": "hero-copy", "variants": {"treatment": {"heading": TREATMENT}}}
    gated = faq(("New?", "Yes."))
    gated["flag"] = "faq-v2"
    entry = entry_create(
        entry_type=homepage_type,
        body={"slug": "home", "fields": {"hero_title": "Home"}, "zones": {"body": [bound, gated]}},
    )
    return entry_publish(entry=entry)


def expected_variant(unit: str) -> str:
    return ("control", "treatment")[variant_index("hero-copy", unit, [0.5, 0.5])]


def deliver(client: APIClient, **headers):
    response = client.get(URL, **headers)
    assert response.status_code == 200, response.content
    return response.json()


def test_each_visitor_gets_the_hashed_variant_and_meta_says_which(experiment, home, events_buffer):
    seen = set()
    for index in range(40):
        unit = f"browser-{index}"
        body = deliver(APIClient(), HTTP_X_ANONYMOUS_ID=unit)
        variant = expected_variant(unit)
        seen.add(variant)
        assert body["meta"]["experiments"] == {"hero-copy": variant}
        heading = body["data"]["zones"]["body"][0]["data"]["heading"]
        assert heading == (TREATMENT if variant == "treatment" else CONTROL)
        assert "experiment" not in str(body["data"])  # bindings never leave the server
    assert seen == {"control", "treatment"}


def test_exposures_are_recorded_once_per_unit(experiment, home, drain):
    for _ in range(3):
        deliver(APIClient(), HTTP_X_ANONYMOUS_ID="browser-1")
    customer = CustomerFactory(external_id="site-9")
    token = customer_token_issue(external_id="site-9")
    deliver(APIClient(), HTTP_AUTHORIZATION=f"Bearer {token}")
    drain()
    exposures = Event.objects.filter(type="experiment_exposure").order_by("anonymous_id")
    assert [(e.customer_id, e.anonymous_id, e.properties["variant"]) for e in exposures] == [
        (customer.pk, "", expected_variant("site-9")),
        (None, "browser-1", expected_variant("browser-1")),
    ]
    assert exposures[0].properties["experiment"] == "hero-copy"


def test_a_caller_with_no_id_sees_the_default_and_is_not_counted(experiment, home, drain):
    body = deliver(APIClient())
    assert body["meta"]["experiments"] == {}
    assert body["data"]["zones"]["body"][0]["data"]["heading"] == CONTROL
    drain()
    assert not Event.objects.filter(type="experiment_exposure").exists()


def test_the_declared_winner_is_served_to_everyone_without_exposures(experiment, home, drain):
    experiment_declare_winner(experiment=experiment, variant="treatment")
    for headers in ({}, {"HTTP_X_ANONYMOUS_ID": "browser-1"}, {"HTTP_X_ANONYMOUS_ID": "b-2"}):
        body = deliver(APIClient(), **headers)
        assert body["data"]["zones"]["body"][0]["data"]["heading"] == TREATMENT
        assert body["meta"]["experiments"] == {"hero-copy": "treatment"}
    drain()
    assert not Event.objects.filter(type="experiment_exposure").exists()


def test_a_paused_experiment_shows_the_default(experiment, home):
    from experiments.services import experiment_transition

    experiment_transition(experiment=experiment, status=Experiment.Status.PAUSED)
    body = deliver(APIClient(), HTTP_X_ANONYMOUS_ID="browser-1")
    assert body["data"]["zones"]["body"][0]["data"]["heading"] == CONTROL
    assert body["meta"]["experiments"] == {}


def test_a_block_needing_a_flag_shows_only_while_it_is_on(experiment, home):
    def components(**headers):
        body = deliver(APIClient(), HTTP_X_ANONYMOUS_ID="browser-1", **headers)
        return [block["component"] for block in body["data"]["zones"]["body"]]

    assert components() == ["hero"]  # an unknown flag hides its block
    flag = flag_create(key="faq-v2", name="FAQ v2", enabled=True)
    assert components() == ["hero", "faq"]
    flag_update(flag=flag, enabled=False)  # the kill switch
    assert components() == ["hero"]


def test_a_customer_who_refused_personalization_takes_part_in_no_experiment(
    experiment, home, drain
):
    customer = CustomerFactory(external_id="site-3")
    Consent.objects.create(customer=customer, purpose="personalization", granted=False)
    token = customer_token_issue(external_id="site-3")
    body = deliver(APIClient(), HTTP_AUTHORIZATION=f"Bearer {token}")
    assert body["meta"]["experiments"] == {}
    drain()
    assert not Event.objects.filter(type="experiment_exposure").exists()


def test_experiment_variant_data_is_validated_with_its_path(homepage_type, staff_client):  # noqa: F811
    bound = hero(CONTROL)
    bound["experiment"] = {"key": "hero-copy", "variants": {"treatment": {"headline": "typo"}}}
    response = staff_client.post(
        "/api/v1/content/homepage/",
        {"slug": "bad", "fields": {"hero_title": "Bad"}, "zones": {"body": [bound]}},
        format="json",
    )
    assert response.status_code == 400, response.content
    attrs = {error["attr"] for error in response.json()["errors"]}
    assert any(attr.startswith("zones.body[0].experiment.variants.treatment") for attr in attrs), (
        attrs
    )
