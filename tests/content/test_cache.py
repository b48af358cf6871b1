"""Published content in the cache: warm reads make no SQL, a change is visible on the very next
read, purges are by tag (other entries stay cached), and a slow reader cannot put an old version
back after a publish."""

from __future__ import annotations

import pytest

from content import cache as content_cache
from content.selectors import live_response
from content.services import entry_create, entry_publish, entry_update
from tests.content.conftest import hero

pytestmark = pytest.mark.django_db(transaction=True)


def publish(entry_type, slug, title="Welcome"):
    entry = entry_create(
        entry_type=entry_type,
        body={"slug": slug, "fields": {"hero_title": title}, "zones": {"body": [hero()]}},
    )
    return entry_publish(entry=entry)


def test_a_warm_read_makes_no_sql_query(anonymous, homepage_type, django_assert_num_queries):
    publish(homepage_type, "home")
    assert anonymous.get("/api/v1/content/homepage/home/").status_code == 200  # fills
    with django_assert_num_queries(0):
        response = anonymous.get("/api/v1/content/homepage/home/")
    assert response.status_code == 200
    assert response.json()["slug"] == "home"


def test_a_missing_entry_is_cached_briefly_too(anonymous, homepage_type, django_assert_num_queries):
    assert anonymous.get("/api/v1/content/homepage/nothing/").status_code == 404
    with django_assert_num_queries(0):
        assert anonymous.get("/api/v1/content/homepage/nothing/").status_code == 404
    publish(homepage_type, "nothing")
    assert anonymous.get("/api/v1/content/homepage/nothing/").status_code == 200


def test_an_update_is_visible_on_the_very_next_read(anonymous, homepage_type):
    entry = publish(homepage_type, "home")
    assert (
        anonymous.get("/api/v1/content/homepage/home/").json()["fields"]["hero_title"] == "Welcome"
    )
    entry_update(entry=entry, body={"fields": {"hero_title": "Changed"}})
    entry_publish(entry=entry)
    assert (
        anonymous.get("/api/v1/content/homepage/home/").json()["fields"]["hero_title"] == "Changed"
    )


def test_a_publish_purges_by_tag_and_leaves_other_entries_cached(
    anonymous, homepage_type, django_assert_num_queries
):
    home, other = publish(homepage_type, "home"), publish(homepage_type, "other")
    anonymous.get("/api/v1/content/homepage/home/")
    anonymous.get("/api/v1/content/homepage/other/")
    entry_update(entry=home, body={"fields": {"hero_title": "Changed"}})
    entry_publish(entry=home)
    with django_assert_num_queries(0):
        assert anonymous.get("/api/v1/content/homepage/other/").status_code == 200
        assert (
            anonymous.get("/api/v1/content/homepage/home/").json()["fields"]["hero_title"]
            == "Changed"
        )
    assert other.pk != home.pk


def test_a_fallback_locale_answer_is_replaced_when_the_translation_is_published(
    anonymous, homepage_type
):
    publish(homepage_type, "home")
    assert anonymous.get("/api/v1/content/homepage/home/?locale=de").json()["locale"] == "en"
    german = entry_create(
        entry_type=homepage_type,
        body={"slug": "home", "locale": "de", "fields": {"hero_title": "Willkommen"}},
    )
    entry_publish(entry=german)
    assert (
        anonymous.get("/api/v1/content/homepage/home/?locale=de").json()["fields"]["hero_title"]
        == "Willkommen"
    )


def test_etag_and_if_none_match_give_304(anonymous, homepage_type):
    publish(homepage_type, "home")
    first = anonymous.get("/api/v1/content/homepage/home/")
    etag = first["ETag"]
    again = anonymous.get("/api/v1/content/homepage/home/", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again["ETag"] == etag
    assert again["Cache-Tag"] == first["Cache-Tag"]
    assert (
        anonymous.get("/api/v1/content/homepage/home/", HTTP_IF_NONE_MATCH='"other"').status_code
        == 200
    )


def test_a_slow_reader_cannot_put_the_old_version_back(anonymous, homepage_type):
    # Given a reader that read the database before a publish committed...
    entry = publish(homepage_type, "home")
    stale, index_tags = live_response(api_id="homepage", slug="home", locale="en")
    # ...when the publish commits (the writer puts the new version) and then the reader fills
    entry_update(entry=entry, body={"fields": {"hero_title": "New"}})
    entry_publish(entry=entry)
    key = content_cache.live_key("homepage", "home", "en")
    content_cache.cached_fill(key, stale, index_tags=index_tags)
    # Then readers still get the new version
    assert anonymous.get("/api/v1/content/homepage/home/").json()["fields"]["hero_title"] == "New"


def test_drafts_never_reach_the_cache(anonymous, homepage_type):
    entry = publish(homepage_type, "home")
    anonymous.get("/api/v1/content/homepage/home/")
    entry_update(entry=entry, body={"fields": {"hero_title": "Draft only"}})
    assert (
        anonymous.get("/api/v1/content/homepage/home/").json()["fields"]["hero_title"] == "Welcome"
    )
    cached = content_cache.cached_get(content_cache.live_key("homepage", "home", "en"))
    assert b"Draft only" not in cached.body


def test_anonymous_reads_share_the_per_ip_budget_and_get_429_past_it(
    anonymous, homepage_type, settings
):
    settings.CMS_THROTTLE_RATES = {**settings.CMS_THROTTLE_RATES, "anon": "3/min"}
    publish(homepage_type, "home")
    statuses = [anonymous.get("/api/v1/content/homepage/home/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = anonymous.get("/api/v1/content/homepage/home/")
    assert refused["Content-Type"] == "application/problem+json"
    assert int(refused["Retry-After"]) >= 1
    # The DRF endpoints count against the same budget.
    assert anonymous.get("/api/v1/content/homepage/").status_code == 429


def test_a_bad_locale_on_the_fast_path_is_a_problem(anonymous, homepage_type):
    response = anonymous.get("/api/v1/content/homepage/home/?locale=zz")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["attr"] == "locale"
