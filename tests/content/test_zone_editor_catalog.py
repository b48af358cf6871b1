"""What the entry editor page tells the zone editor about experiments and flags (the catalogue
its "A/B test" and "Show only when flag is on" selects offer), and that a block's experiment and
flag go through the admin's save and come back with their errors on their own paths."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from content.models import Entry, EntryType
from content.services import entry_create
from experiments.models import Experiment, FeatureFlag
from tests.content.conftest import hero
from tests.content.test_admin_entries import change_url, editor_config, editor_post, home_document

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor(client: Client, superuser) -> Client:
    client.force_login(superuser)
    return client


@pytest.fixture
def join_cta() -> Experiment:
    return Experiment.objects.create(
        key="join-cta",
        name="Join button",
        variants=[
            {"key": "control", "weight": 0.4},
            {"key": "discount", "weight": 0.3},
            {"key": "urgent", "weight": 0.3},
        ],
        metric_event="purchase",
        status=Experiment.Status.RUNNING,
    )


@pytest.fixture
def new_checkout() -> FeatureFlag:
    return FeatureFlag.objects.create(key="new-checkout", name="New checkout", enabled=True)


def hero_with_experiment(**extra: Any) -> dict[str, Any]:
    return {
        **hero("Hello"),
        "experiment": {"key": "join-cta", "variants": {"discount": {"heading": "10% off"}}},
        **extra,
    }


@pytest.fixture
def home(homepage_type: EntryType, superuser, join_cta, new_checkout) -> Entry:
    return entry_create(
        entry_type=homepage_type,
        body={
            "slug": "home",
            "locale": "en",
            **home_document(hero_with_experiment(flag="new-checkout")),
        },
        author=superuser,
    )


def test_the_editor_is_offered_every_experiment_with_its_variants_and_every_flag(
    editor, homepage_type, join_cta, new_checkout
):
    # Given a draft experiment besides the running one
    Experiment.objects.create(
        key="banner-copy",
        name="Banner copy",
        variants=[{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}],
        metric_event="purchase",
    )

    # When the add page is opened
    config = editor_config(editor.get(f"/admin/content/entry/add/?type={homepage_type.api_id}"))

    # Then the selects can offer both, control first, and the flag with its state
    assert config["options"]["experiments"] == [
        {
            "key": "banner-copy",
            "name": "Banner copy",
            "status": "draft",
            "variants": ["control", "treatment"],
        },
        {
            "key": "join-cta",
            "name": "Join button",
            "status": "running",
            "variants": ["control", "discount", "urgent"],
        },
    ]
    assert config["options"]["flags"] == [
        {"key": "new-checkout", "name": "New checkout", "enabled": True}
    ]


def test_the_change_page_hands_the_editor_the_blocks_experiment_and_flag(editor, home):
    config = editor_config(editor.get(change_url(home)))

    block = config["document"]["zones"]["body"][0]
    assert block["experiment"] == {
        "key": "join-cta",
        "variants": {"discount": {"heading": "10% off"}},
    }
    assert block["flag"] == "new-checkout"


def test_saving_keeps_the_experiment_and_flag_the_editor_posts(editor, home):
    # Given the editor's document with a second variant's data and the flag removed
    block = {**home.zones["body"][0]}
    block.pop("flag")
    block["experiment"] = {
        "key": "join-cta",
        "variants": {"discount": {"heading": "10% off"}, "urgent": {"heading": "Last day"}},
    }

    response = editor_post(editor, change_url(home), home_document(block))

    assert response.status_code == 302, response.content.decode()[:2000]
    home.refresh_from_db()
    assert home.zones["body"][0]["experiment"]["variants"]["urgent"] == {"heading": "Last day"}
    assert "flag" not in home.zones["body"][0]


def test_an_invalid_experiment_variant_and_flag_come_back_on_their_paths(editor, home):
    # Given a variant heading of the wrong type and a flag key that is not a key
    block = {**home.zones["body"][0], "flag": "Not A Key"}
    block["experiment"] = {"key": "join-cta", "variants": {"discount": {"heading": 42}}}
    revision = home.revision

    response = editor_post(editor, change_url(home), home_document(block))

    assert response.status_code == 200
    attrs = {error["attr"] for error in editor_config(response)["errors"]}
    assert "zones.body[0].experiment.variants.discount.heading" in attrs
    assert "zones.body[0].flag" in attrs
    home.refresh_from_db()
    assert home.revision == revision
