"""The segment admin through Django's test client: the rule editor's page and what it embeds,
saving through the services (errors come back by path, nothing saved), the live count's preview
view, permissions, static members from a CSV file, and deletion through the service.

What the editor does in the browser is tests/e2e/test_rule_editor_browser.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from customers.models import Customer
from segmentation.models import Segment, SegmentMembership
from segmentation.services import segment_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:segmentation_segment_add")
PREVIEW_URL = reverse("admin:segmentation_segment_preview")
CONFIG_SCRIPT = re.compile(
    r'<script id="rule-editor-config" type="application/json">(.*?)</script>', re.S
)
BIG_GOLD_SPENDERS = {
    "all": [
        {
            "event": "purchase",
            "aggregate": "sum",
            "property": "amount",
            "within_days": 90,
            "op": "gt",
            "value": 500,
        },
        {"attribute": "loyalty_tier", "op": "in", "value": ["gold", "platinum"]},
    ]
}


def change_url(segment: Segment) -> str:
    return reverse("admin:segmentation_segment_change", args=[segment.pk])


def editor_config(response: Any) -> dict[str, Any]:
    found = CONFIG_SCRIPT.search(response.content.decode())
    assert found, "the page embeds no #rule-editor-config"
    return json.loads(found.group(1))


def form_post(client: Client, url: str, *, rules: Any, **fields: str) -> Any:
    """What the page submits: its inputs plus the editor's hidden `rules`."""
    data = {"key": "big-spenders", "name": "Big spenders", "description": "", "kind": "dynamic"}
    data.update(fields)
    data["rules"] = rules if isinstance(rules, str) else json.dumps(rules)
    return client.post(url, data)


def preview(client: Client, body: Any) -> Any:
    return client.post(PREVIEW_URL, json.dumps(body), content_type="application/json")


def user_with(*codenames: str):
    user = UserFactory(is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="segmentation", codename__in=codenames)
    )
    return user


@pytest.fixture
def admin_client(client: Client, superuser) -> Client:
    client.force_login(superuser)
    return client


@pytest.fixture
def churned(db) -> Segment:
    return segment_create(key="churned", name="Churned", kind=Segment.Kind.STATIC)


# --- The page ------------------------------------------------------------------------------------
def test_the_add_page_embeds_what_conditions_can_test(admin_client, catalog, churned):
    response = admin_client.get(ADD_URL)

    assert response.status_code == 200
    config = editor_config(response)
    attributes = {a["name"]: a for a in config["catalog"]["attributes"]}
    assert attributes["loyalty_tier"]["type"] == "enum"
    assert attributes["loyalty_tier"]["label"] == "Loyalty tier"
    assert {"value": "gold", "label": "Gold"} in attributes["loyalty_tier"]["choices"]
    assert (
        "in" in attributes["loyalty_tier"]["ops"] and "gt" not in attributes["loyalty_tier"]["ops"]
    )
    assert attributes["total_spend"]["type"] == "number"
    assert attributes["attributes.newsletter"]["type"] == "boolean"
    assert attributes["attributes.newsletter"]["group"] == "attributes"
    assert [c["value"] for c in attributes["attributes.plan"]["choices"]] == ["free", "pro", "team"]
    events = {e["name"]: e for e in config["catalog"]["events"]}
    assert events["purchase"]["numeric_properties"] == ["amount"]
    assert events["product_view"]["numeric_properties"] == ["price"]
    assert events["product_view"]["distinct_properties"] == ["category"]
    assert "last_seen_days" in config["catalog"]["aggregates"]
    assert "distinct" in config["catalog"]["property_aggregates"]
    assert "in" not in config["catalog"]["aggregate_ops"]
    assert config["catalog"]["segments"] == [
        {"key": "churned", "name": "Churned", "kind": "static"}
    ]
    assert config["preview_url"] == PREVIEW_URL
    assert config["segment_key"] is None
    assert config["readonly"] is False
    # the library and the editor, served from here (no CDN)
    page = response.content.decode()
    assert "segmentation/vendor/jquery-querybuilder/query-builder.standalone.js" in page
    assert "segmentation/rule_editor.js" in page
    assert "//cdn" not in page and "https://" not in page.split("</head>")[0]


def test_the_change_page_holds_the_stored_rules_and_offers_other_segments_only(
    admin_client, catalog, churned
):
    segment = segment_create(key="big-spenders", name="Big spenders", rules=BIG_GOLD_SPENDERS)

    response = admin_client.get(change_url(segment))

    assert response.status_code == 200
    hidden = re.search(
        r'<input type="hidden" name="rules" id="id_rules" value="([^"]*)"',
        response.content.decode(),
    )
    assert hidden, "no hidden rules input"
    assert json.loads(hidden.group(1).replace("&quot;", '"')) == BIG_GOLD_SPENDERS
    config = editor_config(response)
    assert config["segment_key"] == "big-spenders"
    assert [s["key"] for s in config["catalog"]["segments"]] == ["churned"]


# --- Saving --------------------------------------------------------------------------------------
def test_saving_creates_the_segment_through_the_service(
    admin_client, catalog, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as after_commit:
        response = form_post(admin_client, ADD_URL, rules=BIG_GOLD_SPENDERS)

    assert response.status_code == 302, response.content.decode()[:2000]
    segment = Segment.objects.get(key="big-spenders")
    assert segment.rules == BIG_GOLD_SPENDERS
    assert segment.kind == Segment.Kind.DYNAMIC
    assert len(after_commit) == 1  # the service's recompute, once (not twice: the check is undone)


def test_a_bad_rule_comes_back_with_its_path_and_saves_nothing(admin_client, catalog):
    rules = {
        "all": [
            BIG_GOLD_SPENDERS["all"][0],
            {"attribute": "loyalty_tier", "op": "in", "value": ["gold", "diamond"]},
        ]
    }

    response = form_post(admin_client, ADD_URL, rules=rules)

    assert response.status_code == 200
    assert not Segment.objects.exists()
    page = response.content.decode()
    assert "rules.all[1].value[1]" in page
    config = editor_config(response)
    assert [e["attr"] for e in config["errors"]] == ["rules.all[1].value[1]"]
    # what was built is shown again, not lost
    assert "diamond" in page


def test_changing_the_rules_updates_the_segment(admin_client, catalog):
    segment = segment_create(key="big-spenders", name="Big spenders", rules=BIG_GOLD_SPENDERS)
    gold_only = {"attribute": "loyalty_tier", "op": "eq", "value": "gold"}

    response = form_post(admin_client, change_url(segment), rules=gold_only, name="Gold")

    assert response.status_code == 302
    segment.refresh_from_db()
    assert (segment.name, segment.rules) == ("Gold", gold_only)


def test_a_taken_key_is_refused_on_the_key_input(admin_client, catalog):
    segment_create(key="big-spenders", name="Other", rules=BIG_GOLD_SPENDERS)

    response = form_post(admin_client, ADD_URL, rules=BIG_GOLD_SPENDERS)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["key"]
    assert Segment.objects.count() == 1


def test_a_reference_to_itself_is_refused_as_a_cycle(admin_client, catalog):
    segment = segment_create(key="big-spenders", name="Big spenders", rules=BIG_GOLD_SPENDERS)

    response = form_post(
        admin_client, change_url(segment), rules={"not": {"segment": "big-spenders"}}
    )

    assert response.status_code == 200
    assert [e["attr"] for e in editor_config(response)["errors"]] == ["rules.not.segment"]
    segment.refresh_from_db()
    assert segment.rules == BIG_GOLD_SPENDERS


def test_a_static_segment_saves_without_rules_whatever_the_editor_holds(admin_client, catalog):
    response = form_post(admin_client, ADD_URL, rules=BIG_GOLD_SPENDERS, kind="static", key="vip")

    assert response.status_code == 302
    assert Segment.objects.get(key="vip").rules == {}


# --- The live count ------------------------------------------------------------------------------
@pytest.fixture
def customers(db) -> dict[str, Customer]:
    return {
        tier: Customer.objects.create(
            email=f"{tier}@example.com", name=tier.title(), loyalty_tier=tier
        )
        for tier in ("gold", "platinum", "silver")
    }


def test_the_preview_counts_who_matches_and_shows_a_sample(admin_client, catalog, customers):
    rules = {"attribute": "loyalty_tier", "op": "in", "value": ["gold", "platinum"]}

    response = preview(admin_client, {"rules": rules})

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [row["email"] for row in body["sample"]] == ["platinum@example.com", "gold@example.com"]
    assert set(body["sample"][0]) == {"id", "email", "name", "loyalty_tier"}


def test_the_preview_of_an_unfinished_rule_names_the_paths(admin_client, catalog):
    rules = {"all": [{"event": "purchase", "aggregate": "sum", "op": "gt", "value": 5}]}

    response = preview(admin_client, {"rules": rules, "segment": None})

    assert response.status_code == 400
    assert [e["attr"] for e in response.json()["errors"]] == ["rules.all[0].property"]


def test_the_preview_catches_a_reference_back_to_the_segment_being_edited(admin_client, catalog):
    segment_create(key="big-spenders", name="Big spenders", rules=BIG_GOLD_SPENDERS)

    response = preview(
        admin_client, {"rules": {"segment": "big-spenders"}, "segment": "big-spenders"}
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "cycle"


def test_the_preview_needs_the_view_permission(client, catalog, customers):
    rules = {"attribute": "loyalty_tier", "op": "eq", "value": "gold"}
    client.force_login(user_with())
    assert preview(client, {"rules": rules}).status_code == 403

    client.force_login(user_with("view_segment"))
    assert preview(client, {"rules": rules}).json()["count"] == 1


def test_the_preview_needs_the_csrf_token(superuser, catalog):
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)

    response = preview(
        client, {"rules": {"attribute": "loyalty_tier", "op": "eq", "value": "gold"}}
    )

    assert response.status_code == 403


def test_the_preview_takes_only_a_post_of_json(admin_client):
    assert admin_client.get(PREVIEW_URL).status_code == 405
    response = admin_client.post(PREVIEW_URL, "not json", content_type="application/json")
    assert response.status_code == 400


# --- Permissions ---------------------------------------------------------------------------------
def test_a_view_only_user_sees_the_editor_read_only_and_cannot_save(client, catalog):
    segment = segment_create(key="big-spenders", name="Big spenders", rules=BIG_GOLD_SPENDERS)
    client.force_login(user_with("view_segment"))

    response = client.get(change_url(segment))

    assert response.status_code == 200
    assert editor_config(response)["readonly"] is True
    assert "segmentation/rule_editor.js" in response.content.decode()
    assert form_post(client, change_url(segment), rules={}).status_code == 403
    segment.refresh_from_db()
    assert segment.rules == BIG_GOLD_SPENDERS


# --- Static members ------------------------------------------------------------------------------
def test_members_of_a_static_segment_come_from_a_csv_file(admin_client, customers):
    vip = segment_create(key="vip", name="VIP", kind=Segment.Kind.STATIC)
    url = reverse("admin:segmentation_segment_import", args=[vip.pk])
    assert url in admin_client.get(change_url(vip)).content.decode()
    upload = SimpleUploadedFile(
        "vip.csv", b"email\ngold@example.com\nnobody@example.com\n", content_type="text/csv"
    )

    response = admin_client.post(url, {"file": upload}, follow=True)

    assert response.redirect_chain[-1][0] == change_url(vip)
    [message] = [str(m) for m in response.context["messages"]]
    assert "1 customer(s) in the file matched" in message and "nobody@example.com" in message
    members = SegmentMembership.objects.filter(segment=vip, exited_at__isnull=True)
    assert [m.customer_id for m in members] == [customers["gold"].pk]


def test_a_csv_without_a_known_column_is_explained_on_the_file_input(admin_client):
    vip = segment_create(key="vip", name="VIP", kind=Segment.Kind.STATIC)
    upload = SimpleUploadedFile("vip.csv", b"name\nAda\n", content_type="text/csv")

    response = admin_client.post(
        reverse("admin:segmentation_segment_import", args=[vip.pk]), {"file": upload}
    )

    assert response.status_code == 200
    assert "email" in str(response.context["form"].errors["file"])


def test_a_dynamic_segment_takes_no_csv(admin_client, catalog):
    segment = segment_create(key="big-spenders", name="Big spenders", rules=BIG_GOLD_SPENDERS)

    response = admin_client.get(reverse("admin:segmentation_segment_import", args=[segment.pk]))

    assert response.status_code == 302
    assert "Import members" not in admin_client.get(change_url(segment)).content.decode()


# --- Deleting ------------------------------------------------------------------------------------
def test_a_segment_others_refer_to_is_protected_from_deletion(admin_client, catalog, churned):
    segment_create(key="loyal", name="Loyal", rules={"not": {"segment": "churned"}})
    url = reverse("admin:segmentation_segment_delete", args=[churned.pk])

    page = admin_client.get(url).content.decode()
    assert "loyal" in page

    admin_client.post(url, {"post": "yes"})
    assert Segment.objects.filter(key="churned").exists()


@pytest.mark.embedded  # tasks run in-process here; in services mode a worker would take it
@pytest.mark.django_db(transaction=True)
def test_the_recompute_action_evaluates_the_selected_segments(client, superuser):
    from segmentation.models import Segment, SegmentMembership
    from tests.factories import CustomerFactory

    gold = CustomerFactory(loyalty_tier="gold")
    segment = Segment.objects.create(
        key="gold", name="Gold", rules={"attribute": "loyalty_tier", "op": "eq", "value": "gold"}
    )
    client.force_login(superuser)
    response = client.post(
        "/admin/segmentation/segment/",
        {"action": "recompute_now", "_selected_action": [segment.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert SegmentMembership.objects.get(exited_at__isnull=True).customer_id == gold.pk
