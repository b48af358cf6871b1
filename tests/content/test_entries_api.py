"""Entries through REST: validation with paths, draft/publish, revisions, locales, single types,
readers versus editors, and who may do what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cmsproject.models import ApiKey
from cmsproject.services import api_key_create
from content.models import Entry, Revision
from content.services import entries_publish_due, entry_create, entry_publish, entry_type_create
from tests.content.conftest import faq, hero

pytestmark = pytest.mark.django_db(transaction=True)
PROBLEM = "application/problem+json"


def entry_body(**overrides):
    body = {
        "slug": "home",
        "fields": {"hero_title": "Welcome"},
        "zones": {"body": [hero("Hello", vip="Hi VIP"), faq(("Q?", "A."))]},
        "audience": ["vip"],
    }
    body.update(overrides)
    return body


def error_attrs(response) -> set[str]:
    assert response["Content-Type"] == PROBLEM, response.content
    return {error["attr"] for error in response.json().get("errors", [])}


# --- Bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "status", "attrs"),
    [
        (entry_body(fields={"hero_title": "x", "nope": 1}), 400, {"fields.nope"}),
        (entry_body(fields={"hero_title": 12}), 400, {"fields.hero_title"}),
        (entry_body(fields={}), 400, {"fields.hero_title"}),
        (entry_body(fields={"hero_title": "x", "rank": -1}), 400, {"fields.rank"}),
        (
            entry_body(
                zones={"body": [hero(), {"component": "cta", "data": {"label": "a", "url": "/"}}]}
            ),
            400,
            {"zones.body[1].component"},
        ),
        (
            entry_body(zones={"body": [hero(), {"component": "hero", "data": {}}]}),
            400,
            {"zones.body[1].data.heading"},
        ),
        (
            entry_body(
                zones={"body": [hero(), faq(("Q", "A")) | {"data": {"items": [{"question": 3}]}}]}
            ),
            400,
            {"zones.body[1].data.items[0].question", "zones.body[1].data.items[0].answer"},
        ),
        (
            entry_body(
                zones={
                    "body": [
                        {
                            "component": "hero",
                            "data": {"heading": "h"},
                            "variants": [{"segments": ["vip"], "data": {"heading": 5}}],
                        }
                    ]
                }
            ),
            400,
            {"zones.body[0].variants[0].data.heading"},
        ),
        (entry_body(zones={"sidebar": []}), 400, {"zones.sidebar"}),
        (entry_body(locale="xx"), 400, {"locale"}),
        (entry_body(slug="Not A Slug"), 400, {"slug"}),
        (entry_body(status="published"), 400, {"status"}),
        (entry_body(audience=["VIP!"]), 400, {"audience[0]"}),
        (entry_body(lifecycle_stage="royalty"), 400, {"lifecycle_stage"}),
        (entry_body(extra=1), 400, {"extra"}),
        (entry_body(fields={"hero_title": "x", "summary": "y" * 20_001}), 400, {"fields.summary"}),
    ],
    ids=[
        "unknown-field",
        "wrong-type",
        "missing-required",
        "below-min",
        "disallowed-component",
        "block-missing-required",
        "nested-component-errors",
        "variant-wrong-type",
        "unknown-zone",
        "bad-locale",
        "bad-slug",
        "status-not-writable",
        "bad-segment-key",
        "unknown-lifecycle-stage",
        "unknown-top-level-key",
        "too-long",
    ],
)
def test_bad_entry_is_refused_naming_each_path_and_saves_nothing(
    staff_client, homepage_type, body, status, attrs
):
    response = staff_client.post("/api/v1/content/homepage/", body, format="json")
    assert response.status_code == status
    assert attrs <= error_attrs(response)
    assert not Entry.objects.exists()


def test_malformed_json_is_a_problem_and_saves_nothing(staff_client, homepage_type):
    response = staff_client.generic(
        "POST", "/api/v1/content/homepage/", '{"slug": "x",', content_type="application/json"
    )
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert not Entry.objects.exists()


def test_unknown_media_and_reference_are_refused(staff_client, db):
    entry_type_create(
        api_id="article", name="Article", fields=[{"name": "title", "type": "string"}]
    )
    entry_type_create(
        api_id="promo",
        name="Promo",
        fields=[
            {"name": "cover", "type": "media"},
            {"name": "article", "type": "reference", "to": "article"},
        ],
    )
    response = staff_client.post(
        "/api/v1/content/promo/",
        {"slug": "p", "fields": {"cover": 999, "article": 999}},
        format="json",
    )
    assert response.status_code == 400
    assert error_attrs(response) == {"fields.cover", "fields.article"}


def test_duplicate_slug_in_a_locale_conflicts_but_another_locale_is_a_translation(
    staff_client, homepage_type
):
    assert (
        staff_client.post("/api/v1/content/homepage/", entry_body(), format="json").status_code
        == 201
    )
    again = staff_client.post("/api/v1/content/homepage/", entry_body(), format="json")
    assert again.status_code == 409
    assert error_attrs(again) == {"slug"}
    assert (
        staff_client.post(
            "/api/v1/content/homepage/", entry_body(locale="fr"), format="json"
        ).status_code
        == 201
    )


def test_rich_text_is_sanitized(staff_client, homepage_type):
    block = {
        "component": "faq",
        "data": {
            "items": [
                {"question": "Q", "answer": '<p onclick="x()">A<script>alert(1)</script></p>'}
            ]
        },
    }
    response = staff_client.post(
        "/api/v1/content/homepage/", entry_body(zones={"body": [block]}), format="json"
    )
    assert response.status_code == 201
    assert response.json()["zones"]["body"][0]["data"]["items"][0]["answer"] == "<p>A</p>"


# --- Draft, publish, revisions ------------------------------------------------------------------
def test_editing_a_published_entry_keeps_the_live_version_until_the_next_publish(
    staff_client, anonymous, homepage_type
):
    staff_client.post("/api/v1/content/homepage/", entry_body(), format="json")
    staff_client.post("/api/v1/content/homepage/home/publish/")
    patched = staff_client.patch(
        "/api/v1/content/homepage/home/", {"fields": {"hero_title": "Draft title"}}, format="json"
    )
    assert patched.status_code == 200
    assert patched.json()["has_unpublished_changes"] is True
    assert patched.json()["fields"]["hero_title"] == "Draft title"

    assert (
        anonymous.get("/api/v1/content/homepage/home/").json()["fields"]["hero_title"] == "Welcome"
    )
    assert (
        staff_client.get("/api/v1/content/homepage/home/?version=live").json()["fields"][
            "hero_title"
        ]
        == "Welcome"
    )

    staff_client.post("/api/v1/content/homepage/home/publish/")
    assert (
        anonymous.get("/api/v1/content/homepage/home/").json()["fields"]["hero_title"]
        == "Draft title"
    )


def test_every_save_is_a_revision_and_restore_makes_a_new_draft(staff_client, homepage_type):
    staff_client.post("/api/v1/content/homepage/", entry_body(), format="json")
    staff_client.patch(
        "/api/v1/content/homepage/home/", {"fields": {"hero_title": "Second"}}, format="json"
    )
    revisions = staff_client.get("/api/v1/content/homepage/home/revisions/").json()["results"]
    assert [(r["number"], r["kind"]) for r in revisions] == [(2, "save"), (1, "create")]
    assert revisions[0]["author"] is not None
    assert revisions[1]["data"]["fields"]["hero_title"] == "Welcome"

    restored = staff_client.post("/api/v1/content/homepage/home/revisions/1/restore/")
    assert restored.status_code == 200
    assert restored.json()["fields"]["hero_title"] == "Welcome"
    assert restored.json()["revision"] == 3
    assert Revision.objects.get(number=3).restored_from == 1
    assert (
        staff_client.post("/api/v1/content/homepage/home/revisions/99/restore/").status_code == 404
    )


def test_an_identical_save_makes_no_revision(staff_client, homepage_type):
    created = staff_client.post("/api/v1/content/homepage/", entry_body(), format="json").json()
    same = staff_client.patch(
        "/api/v1/content/homepage/home/", {"zones": created["zones"]}, format="json"
    )
    assert same.json()["revision"] == 1


def test_unpublish_archives_and_readers_get_404(staff_client, anonymous, homepage_type):
    staff_client.post("/api/v1/content/homepage/", entry_body(), format="json")
    staff_client.post("/api/v1/content/homepage/home/publish/")
    assert anonymous.get("/api/v1/content/homepage/home/").status_code == 200
    response = staff_client.post("/api/v1/content/homepage/home/unpublish/")
    assert response.json()["status"] == "archived"
    assert anonymous.get("/api/v1/content/homepage/home/").status_code == 404
    assert staff_client.post("/api/v1/content/homepage/home/unpublish/").status_code == 409


def test_scheduled_publish_goes_live_with_the_scheduled_revision(
    staff_client, anonymous, homepage_type
):
    staff_client.post("/api/v1/content/homepage/", entry_body(), format="json")
    when = timezone.now() + timedelta(minutes=5)
    response = staff_client.post(
        "/api/v1/content/homepage/home/publish/", {"publish_at": when.isoformat()}, format="json"
    )
    assert response.json()["status"] == "scheduled"
    staff_client.patch(
        "/api/v1/content/homepage/home/", {"fields": {"hero_title": "Edited after"}}, format="json"
    )

    assert entries_publish_due() == []
    assert anonymous.get("/api/v1/content/homepage/home/").status_code == 404
    assert len(entries_publish_due(now=when + timedelta(seconds=1))) == 1
    assert entries_publish_due(now=when + timedelta(seconds=2)) == []  # idempotent

    live = anonymous.get("/api/v1/content/homepage/home/").json()
    assert live["fields"]["hero_title"] == "Welcome"
    assert live["revision"] == 1
    entry = Entry.objects.get()
    assert entry.status == "published" and entry.has_unpublished_changes


def test_publish_at_must_have_a_zone(staff_client, homepage_type):
    staff_client.post("/api/v1/content/homepage/", entry_body(), format="json")
    response = staff_client.post(
        "/api/v1/content/homepage/home/publish/",
        {"publish_at": "2030-01-01T00:00:00"},
        format="json",
    )
    assert response.status_code == 400


# --- Reading: locales, lists, filters -----------------------------------------------------------
def published(homepage_type, slug="home", locale="en", **overrides):
    entry = entry_create(
        entry_type=homepage_type, body=entry_body(slug=slug, locale=locale, **overrides)
    )
    return entry_publish(entry=entry)


def test_a_missing_locale_falls_back_to_the_fallback_locale(anonymous, homepage_type):
    published(homepage_type)
    read = anonymous.get("/api/v1/content/homepage/home/?locale=fr")
    assert read.status_code == 200
    assert read.json()["locale"] == "en"
    french = published(homepage_type, locale="fr", fields={"hero_title": "Bienvenue"})
    assert (
        anonymous.get("/api/v1/content/homepage/home/?locale=fr").json()["fields"]["hero_title"]
        == "Bienvenue"
    )
    assert french.locale == "fr"
    assert anonymous.get("/api/v1/content/homepage/home/?locale=xx").status_code == 400


def test_readers_list_published_entries_with_filters(anonymous, staff_client, homepage_type):
    published(homepage_type, slug="vip-page", audience=["vip"], lifecycle_stage="customer")
    published(
        homepage_type, slug="everyone", audience=[], fields={"hero_title": "Hello all", "rank": 3}
    )
    entry_create(entry_type=homepage_type, body=entry_body(slug="draft-only"))

    def slugs(query=""):
        response = anonymous.get(f"/api/v1/content/homepage/{query}")
        assert response.status_code == 200, response.content
        return sorted(item["slug"] for item in response.json()["results"])

    assert slugs() == ["everyone", "vip-page"]
    assert slugs("?audience=vip") == ["vip-page"]
    assert slugs("?lifecycle_stage=customer") == ["vip-page"]
    assert slugs("?fields.rank=3") == ["everyone"]
    assert slugs("?search=hello") == ["everyone"]
    assert anonymous.get("/api/v1/content/homepage/?status=draft").status_code == 400
    assert anonymous.get("/api/v1/content/homepage/?fields.nope=1").status_code == 400
    assert anonymous.get("/api/v1/content/homepage/?fields.rank=abc").status_code == 400

    editor = staff_client.get("/api/v1/content/homepage/?status=draft").json()["results"]
    assert [item["slug"] for item in editor] == ["draft-only"]


def test_a_readers_list_page_is_served_from_the_cache_without_sql(
    anonymous, homepage_type, django_assert_num_queries
):
    published(homepage_type, slug="one")
    first = anonymous.get("/api/v1/content/homepage/?page_size=1")

    with django_assert_num_queries(0):
        again = anonymous.get("/api/v1/content/homepage/?page_size=1")

    assert again.status_code == 200
    assert again.json() == first.json()


def test_readers_list_pages_follow_publishes_and_keep_working_links(
    anonymous, staff_client, homepage_type
):
    published(homepage_type, slug="first")
    published(homepage_type, slug="second")
    page = anonymous.get("/api/v1/content/homepage/?page_size=1").json()
    assert [item["slug"] for item in page["results"]] == ["second"]

    published(homepage_type, slug="third")
    entry_create(entry_type=homepage_type, body=entry_body(slug="draft-only"))
    page = anonymous.get("/api/v1/content/homepage/?page_size=1").json()
    following = anonymous.get(page["next"]).json()
    staff_client.post("/api/v1/content/homepage/second/unpublish/")
    after_unpublish = anonymous.get(page["next"]).json()
    editors = staff_client.get("/api/v1/content/homepage/?page_size=10").json()

    assert [item["slug"] for item in page["results"]] == ["third"]
    assert [item["slug"] for item in following["results"]] == ["second"]
    assert [item["slug"] for item in after_unpublish["results"]] == ["first"]
    assert "draft-only" in [item["slug"] for item in editors["results"]]


def test_single_type_is_read_and_replaced_at_the_type_path(staff_client, anonymous, db):
    entry_type_create(
        api_id="site_settings",
        name="Site settings",
        kind="single",
        fields=[{"name": "tagline", "type": "string"}],
    )
    created = staff_client.put(
        "/api/v1/content/site_settings/", {"fields": {"tagline": "Hi"}}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["slug"] == "site_settings"
    replaced = staff_client.put(
        "/api/v1/content/site_settings/", {"fields": {"tagline": "Hello"}}, format="json"
    )
    assert replaced.status_code == 200
    assert (
        staff_client.post(
            "/api/v1/content/site_settings/", {"fields": {}}, format="json"
        ).status_code
        == 400
    )
    staff_client.post("/api/v1/content/site_settings/site_settings/publish/")
    assert anonymous.get("/api/v1/content/site_settings/").json()["fields"] == {"tagline": "Hello"}


# --- Who may do what ----------------------------------------------------------------------------
def test_anonymous_and_read_keys_cannot_write_or_see_drafts(api_client, homepage_type, superuser):
    entry_create(entry_type=homepage_type, body=entry_body(slug="secret"))
    assert (
        api_client.post("/api/v1/content/homepage/", entry_body(), format="json").status_code == 401
    )
    assert api_client.get("/api/v1/content/homepage/secret/").status_code == 404
    assert api_client.get("/api/v1/content/homepage/secret/revisions/").status_code == 401

    _, key = api_key_create(name="site", scopes=[ApiKey.Scope.CONTENT_READ], created_by=superuser)
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert api_client.get("/api/v1/content/homepage/secret/").status_code == 404
    assert (
        api_client.post("/api/v1/content/homepage/", entry_body(), format="json").status_code == 403
    )
    assert api_client.get("/api/v1/content-types/homepage/").status_code == 200
    assert (
        api_client.patch(
            "/api/v1/content-types/homepage/", {"name": "x"}, format="json"
        ).status_code
        == 403
    )


def test_a_write_key_creates_and_publishes(api_client, homepage_type, superuser):
    _, key = api_key_create(
        name="cms-sync", scopes=[ApiKey.Scope.CONTENT_WRITE], created_by=superuser
    )
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert (
        api_client.post("/api/v1/content/homepage/", entry_body(), format="json").status_code == 201
    )
    assert api_client.post("/api/v1/content/homepage/home/publish/").status_code == 200
    assert api_client.get("/api/v1/content/homepage/home/").json()["status"] == "published"


def test_demo_content_loads_twice_and_the_home_hero_has_a_vip_variant(anonymous):
    from content.demo import demo_load

    assert demo_load() == "2 content types, 6 published entries"
    assert demo_load() == "0 content types, 0 published entries"
    home = anonymous.get("/api/v1/content/page/home/").json()
    hero_block = home["zones"]["body"][0]
    assert hero_block["component"] == "hero"
    assert hero_block["variants"][0]["segments"] == ["vip"]
    assert anonymous.get("/api/v1/content/page/faq/").status_code == 200
    assert len(anonymous.get("/api/v1/content/product/").json()["results"]) == 4


def test_if_match_refuses_a_write_based_on_an_old_revision(staff_client, homepage_type):
    created = staff_client.post("/api/v1/content/homepage/", entry_body(), format="json")
    etag = created["ETag"]
    first = staff_client.patch(
        "/api/v1/content/homepage/home/",
        {"fields": {"hero_title": "Mine"}},
        format="json",
        HTTP_IF_MATCH=etag,
    )
    assert first.status_code == 200
    stale = staff_client.patch(
        "/api/v1/content/homepage/home/",
        {"fields": {"hero_title": "Theirs"}},
        format="json",
        HTTP_IF_MATCH=etag,
    )
    assert stale.status_code == 409
    assert stale["Content-Type"] == PROBLEM
    assert Entry.objects.get().fields["hero_title"] == "Mine"
    bad = staff_client.patch(
        "/api/v1/content/homepage/home/", {"fields": {}}, format="json", HTTP_IF_MATCH="nonsense"
    )
    assert bad.status_code == 400
