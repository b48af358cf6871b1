"""The content admin through Django's test client: the entry editor (add, change, errors by path,
publish, unpublish), preview as a segment, revision history with restore, permissions, and the
definition admins (components, content types) saving through the services."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

from content.models import Component, Entry, EntryStatus, EntryType, Revision
from content.services import entry_create, entry_publish, entry_type_create, entry_update
from tests.content.conftest import faq, hero
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:content_entry_add")
PREVIEW_URL = reverse("admin:content_entry_preview")
CONFIG_SCRIPT = re.compile(
    r'<script id="entry-editor-config" type="application/json">(.*?)</script>', re.S
)


def change_url(entry: Entry) -> str:
    return reverse("admin:content_entry_change", args=[entry.pk])


def editor_config(response: Any) -> dict[str, Any]:
    found = CONFIG_SCRIPT.search(response.content.decode())
    assert found, "the page embeds no #entry-editor-config"
    return json.loads(found.group(1))


def editor_post(
    client: Client, url: str, document: dict[str, Any], action: str = "save", **meta: str
) -> Any:
    """What the editor page submits: its inputs plus the zone editor's hidden document."""
    data = {
        "slug": "home",
        "locale": "en",
        "audience": "",
        "lifecycle_stage": "",
        "language": "",
        "publish_at": "",
        **meta,
        "document": json.dumps(document),
        "_action": action,
    }
    return client.post(url, data)


def home_document(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"fields": {"hero_title": "Welcome"}, "zones": {"body": list(blocks)}}


@pytest.fixture
def editor(client: Client, superuser) -> Client:
    client.force_login(superuser)
    return client


@pytest.fixture
def home(homepage_type: EntryType, superuser) -> Entry:
    return entry_create(
        entry_type=homepage_type,
        body={"slug": "home", "locale": "en", **home_document(hero("Hello", vip="Hi VIP"))},
        author=superuser,
    )


def user_with(*codenames: str, groups: tuple[str, ...] = ()):
    user = UserFactory(is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="content", codename__in=codenames)
    )
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


# --- The editor ----------------------------------------------------------------------------------
def test_add_without_a_type_offers_the_types_to_choose_from(editor, homepage_type):
    response = editor.get(ADD_URL)

    assert response.status_code == 200
    assert f'href="?type={homepage_type.api_id}"' in response.content.decode()


def test_add_page_embeds_the_type_and_every_component_its_zones_need(editor, homepage_type):
    response = editor.get(ADD_URL, {"type": "homepage"})

    assert response.status_code == 200
    config = editor_config(response)
    assert config["type"]["zones"] == [{"name": "body", "components": ["hero", "faq"]}]
    assert set(config["components"]) == {"hero", "faq", "faq_item"}  # nested faq_item too
    assert config["document"] == {"fields": {}, "zones": {}}
    assert config["readonly"] is False
    assert "content/admin/zone_editor.js" in response.content.decode()


def test_posting_the_document_creates_a_draft_through_the_service(editor, homepage_type, superuser):
    response = editor_post(
        editor,
        f"{ADD_URL}?type=homepage",
        home_document(hero("Hello"), faq(("Shipping?", "Free"))),
        audience="vip, newsletter",
        lifecycle_stage="customer",
        language="en",
    )

    entry = Entry.objects.get(slug="home")
    assert response.status_code == 302
    assert response["Location"] == change_url(entry)
    assert entry.status == EntryStatus.DRAFT
    assert [block["component"] for block in entry.zones["body"]] == ["hero", "faq"]
    assert all(block["id"] for block in entry.zones["body"])  # the service assigned ids
    assert entry.audience == ["vip", "newsletter"]
    assert entry.lifecycle_stage == "customer"
    revision = Revision.objects.get(entry=entry)
    assert (revision.number, revision.kind, revision.author) == (1, "create", superuser)


def test_a_missing_required_heading_comes_back_on_its_path_and_saves_nothing(editor, homepage_type):
    response = editor_post(
        editor,
        f"{ADD_URL}?type=homepage",
        home_document(faq(("Shipping?", "Free")), {"component": "hero", "data": {}}),
    )

    assert response.status_code == 200
    assert not Entry.objects.exists()
    page = response.content.decode()
    assert "<code>zones.body[1].data.heading</code>: This field is required." in page
    config = editor_config(response)
    assert {"attr": "zones.body[1].data.heading", "detail": "This field is required."} in config[
        "errors"
    ]
    # The marketer's work is handed back to the editor, not lost.
    assert config["document"]["zones"]["body"][0]["component"] == "faq"


def test_a_bad_slug_is_shown_on_the_slug_input(editor, homepage_type):
    response = editor_post(editor, f"{ADD_URL}?type=homepage", home_document(), slug="Not a slug")

    assert response.status_code == 200
    assert not Entry.objects.exists()
    slug_errors = response.context["meta_form"].errors["slug"]
    assert slug_errors == ["Lower-case letters, digits, '-' and '_' (at most 200)."]


def test_change_page_shows_the_working_copy(editor, home):
    response = editor.get(change_url(home))

    assert response.status_code == 200
    config = editor_config(response)
    assert config["document"]["zones"] == home.zones
    assert config["options"]["segments"] == ["vip"]  # suggested for the preview
    assert 'value="home"' in response.content.decode()


def test_saving_changes_makes_a_new_revision(editor, home):
    response = editor_post(editor, change_url(home), home_document(hero("Changed")))

    home.refresh_from_db()
    assert response.status_code == 302
    assert home.revision == 2
    assert home.zones["body"][0]["data"] == {"heading": "Changed"}


def test_save_and_publish_makes_the_entry_live_in_the_new_order(editor, home):
    first, second = home.zones["body"][0], {"component": "faq", "data": faq(("Q", "A"))["data"]}
    response = editor_post(editor, change_url(home), home_document(second, first), "publish")

    home.refresh_from_db()
    assert response.status_code == 302
    assert home.status == EntryStatus.PUBLISHED
    assert home.live_revision == home.revision == 2
    assert [block["component"] for block in home.live["zones"]["body"]] == ["faq", "hero"]


def test_unpublish_takes_the_entry_down(editor, home, superuser):
    entry_publish(entry=home, actor=superuser)

    response = editor.post(change_url(home), {"_action": "unpublish"})

    home.refresh_from_db()
    assert response.status_code == 302
    assert home.live is None
    assert home.status == EntryStatus.ARCHIVED


def test_unpublishing_a_draft_explains_why_not(editor, home):
    response = editor.post(change_url(home), {"_action": "unpublish"}, follow=True)

    assert "The entry is not published." in response.content.decode()


def test_a_later_publish_time_schedules_the_publication(editor, home):
    response = editor_post(
        editor,
        change_url(home),
        home_document(hero("Soon")),
        "publish",
        publish_at="2999-01-01T09:00",
    )

    home.refresh_from_db()
    assert response.status_code == 302
    assert home.status == EntryStatus.SCHEDULED
    assert home.live is None
    assert (home.publish_at.year, home.scheduled_revision) == (2999, 2)


def test_a_save_over_someone_elses_newer_revision_is_refused_then_allowed(editor, home, superuser):
    opened_at = home.revision
    entry_update(entry=home, body=home_document(hero("Theirs")), author=superuser, replace=True)

    refused = editor_post(
        editor, change_url(home), home_document(hero("Mine")), base_revision=str(opened_at)
    )
    home.refresh_from_db()
    assert refused.status_code == 200
    assert "Someone saved revision 2" in refused.content.decode()
    assert home.zones["body"][0]["data"] == {"heading": "Theirs"}
    assert 'name="base_revision" value="2"' in refused.content.decode()

    again = editor_post(editor, change_url(home), home_document(hero("Mine")), base_revision="2")
    home.refresh_from_db()
    assert again.status_code == 302
    assert home.zones["body"][0]["data"] == {"heading": "Mine"}


def test_a_single_types_entry_takes_the_types_api_id_as_slug(editor):
    entry_type_create(
        api_id="settings",
        name="Settings",
        kind="single",
        fields=[{"name": "motto", "type": "string"}],
    )

    page = editor.get(ADD_URL, {"type": "settings"})
    response = editor_post(
        editor, f"{ADD_URL}?type=settings", {"fields": {"motto": "Hi"}, "zones": {}}, slug="ignored"
    )

    assert 'name="slug"' not in page.content.decode()
    assert response.status_code == 302
    assert Entry.objects.get(type__api_id="settings").slug == "settings"


# --- Preview as a segment ------------------------------------------------------------------------
def test_preview_as_vip_shows_the_vip_variant(editor, home):
    response = editor.get(PREVIEW_URL, {"entry": home.pk, "segments": "vip"})

    assert response.status_code == 200
    page = response.content.decode()
    assert "<dd>Hi VIP</dd>" in page
    assert "<dd>Hello</dd>" not in page
    assert "variant for vip" in page


def test_preview_without_segments_shows_the_default(editor, home):
    response = editor.get(PREVIEW_URL, {"entry": home.pk, "segments": ""})

    page = response.content.decode()
    assert "<dd>Hello</dd>" in page
    assert "Hi VIP" not in page
    assert '<span class="entry-preview-default">default</span>' in page


def test_preview_of_unsaved_editor_content(editor, home):
    document = home_document(hero("Draft", vip="Draft VIP"))

    response = editor.post(
        PREVIEW_URL,
        {"type": "homepage", "entry": home.pk, "document": json.dumps(document), "segments": "vip"},
    )

    page = response.content.decode()
    assert "<dd>Draft VIP</dd>" in page
    home.refresh_from_db()
    assert home.revision == 1  # a preview saves nothing


# --- Revisions -----------------------------------------------------------------------------------
def test_revisions_page_lists_every_revision_with_restore_buttons(editor, home, superuser):
    entry_update(entry=home, body=home_document(hero("Second")), author=superuser, replace=True)

    response = editor.get(reverse("admin:content_entry_revisions", args=[home.pk]))

    assert response.status_code == 200
    revisions = response.context["revisions"]
    assert [(r["number"], r["kind"], r["author"]) for r in revisions] == [
        (2, "Saved", superuser.username),
        (1, "Created", superuser.username),
    ]
    restore = reverse("admin:content_entry_restore", args=[home.pk, 1])
    assert f'action="{restore}"' in response.content.decode()


def test_restore_makes_the_old_revision_the_working_copy(editor, home, superuser):
    entry_update(entry=home, body=home_document(hero("Second")), author=superuser, replace=True)

    response = editor.post(reverse("admin:content_entry_restore", args=[home.pk, 1]))

    home.refresh_from_db()
    assert response.status_code == 302
    assert home.revision == 3
    assert home.zones["body"][0]["data"] == {"heading": "Hello"}
    assert home.revisions.get(number=3).restored_from == 1


def test_restore_needs_a_post(editor, home):
    response = editor.get(reverse("admin:content_entry_restore", args=[home.pk, 1]))

    assert response.status_code == 405


# --- Permissions ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method, url",
    [
        ("get", lambda entry: reverse("admin:content_entry_changelist")),
        ("get", lambda entry: ADD_URL + "?type=homepage"),
        ("get", lambda entry: change_url(entry)),
        ("post", lambda entry: change_url(entry)),
        ("get", lambda entry: f"{PREVIEW_URL}?entry={entry.pk}"),
        ("get", lambda entry: reverse("admin:content_entry_revisions", args=[entry.pk])),
        ("post", lambda entry: reverse("admin:content_entry_restore", args=[entry.pk, 1])),
    ],
)
def test_staff_without_content_permissions_is_refused(client, home, method, url):
    client.force_login(user_with())

    response = getattr(client, method)(url(home))

    assert response.status_code == 403
    home.refresh_from_db()
    assert home.revision == 1


def test_anonymous_visitors_are_sent_to_the_login(client, home):
    response = client.get(change_url(home))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_a_view_only_user_sees_a_read_only_editor_and_cannot_save(client, home):
    client.force_login(user_with("view_entry"))

    page = client.get(change_url(home))
    refused = editor_post(client, change_url(home), home_document(hero("Nope")), "publish")

    assert page.status_code == 200
    assert editor_config(page)["readonly"] is True
    assert page.context["meta_form"].fields["slug"].disabled
    assert "Save and publish" not in page.content.decode()
    assert refused.status_code == 403


def test_a_marketer_can_create_and_publish(client, homepage_type):
    client.force_login(user_with(groups=("Marketer",)))

    response = editor_post(client, f"{ADD_URL}?type=homepage", home_document(hero("Hi")), "publish")

    assert response.status_code == 302
    assert Entry.objects.get(slug="home").status == EntryStatus.PUBLISHED


# --- Changelist and deletion ---------------------------------------------------------------------
def test_changelist_lists_entries_with_their_state(editor, home):
    response = editor.get(reverse("admin:content_entry_changelist"), {"status__exact": "draft"})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [home]


def test_publish_selected_publishes_through_the_service(editor, home):
    response = editor.post(
        reverse("admin:content_entry_changelist"),
        {"action": "publish_selected", "_selected_action": [home.pk]},
    )

    home.refresh_from_db()
    assert response.status_code == 302
    assert home.status == EntryStatus.PUBLISHED
    assert home.live_revision == 1


def test_delete_goes_through_the_service(editor, home):
    response = editor.post(reverse("admin:content_entry_delete", args=[home.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not Entry.objects.filter(pk=home.pk).exists()


# --- Definitions ---------------------------------------------------------------------------------
def test_a_component_is_created_through_the_service(editor):
    fields = [{"name": "title", "type": "string", "required": True}]

    response = editor.post(
        reverse("admin:content_component_add"),
        {"api_id": "banner", "name": "Banner", "description": "", "fields": json.dumps(fields)},
    )

    assert response.status_code == 302
    assert Component.objects.get(api_id="banner").fields == fields


def test_an_invalid_field_definition_is_shown_with_its_path(editor):
    fields = [{"name": "id", "type": "string"}]

    response = editor.post(
        reverse("admin:content_component_add"),
        {"api_id": "banner", "name": "Banner", "description": "", "fields": json.dumps(fields)},
    )

    assert response.status_code == 200
    assert not Component.objects.filter(api_id="banner").exists()
    assert response.context["adminform"].form.errors["fields"] == [
        "fields[0].name: 'id' is reserved."
    ]
    assert "data-errors=" in response.content.decode()  # the row editor marks row 1


def test_a_content_type_is_created_through_the_service(editor):
    response = editor.post(
        reverse("admin:content_entrytype_add"),
        {
            "api_id": "landing",
            "name": "Landing",
            "kind": "collection",
            "description": "",
            "fields": "[]",
            "zones": json.dumps([{"name": "body", "components": ["hero", "faq"]}]),
        },
    )

    assert response.status_code == 302
    assert EntryType.objects.get(api_id="landing").zones == [
        {"name": "body", "components": ["hero", "faq"]}
    ]


def test_a_breaking_change_to_a_type_is_refused_with_the_conflict_message(editor, home):
    homepage = home.type

    response = editor.post(
        reverse("admin:content_entrytype_change", args=[homepage.pk]),
        {
            "name": "Homepage",
            "kind": "collection",
            "description": "",
            "fields": "[]",
            "zones": json.dumps(homepage.zones),
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.non_field_errors()
    assert any("would break 1 existing entry" in error for error in errors)
    homepage.refresh_from_db()
    assert homepage.fields  # unchanged


def test_a_component_in_use_cannot_be_deleted(editor, home):
    hero_component = Component.objects.get(api_id="hero")

    page = editor.get(reverse("admin:content_component_delete", args=[hero_component.pk]))
    response = editor.post(
        reverse("admin:content_component_delete", args=[hero_component.pk]), {"post": "yes"}
    )

    assert "is in use by type &#x27;homepage&#x27;" in page.content.decode()
    assert response.status_code == 200  # the confirmation page again, refusing
    assert Component.objects.filter(api_id="hero").exists()
