"""GraphQL of content: `contentEntries`, one generated root field per content type (rebuilt when a
type changes, without a restart), the REST visibility rules, and no N+1."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from cmsproject.services import api_key_create
from content.graphql import pluralized, root_field_name, type_name
from content.models import EntryType
from content.services import (
    DEFINITIONS_VERSION_KEY,
    entry_create,
    entry_delete,
    entry_publish,
    entry_type_create,
    entry_type_delete,
    entry_type_update,
    entry_update,
)
from tests.content.conftest import HOMEPAGE_FIELDS, hero

pytestmark = pytest.mark.django_db

VIP_HOMEPAGES = '{ homepages(filters: {audience: {eq: "vip"}}) { slug heroTitle } }'


def gql(client: APIClient, query: str, variables: dict[str, Any] | None = None, **headers: str):
    response = client.post(
        "/graphql/",
        {"query": query, "variables": variables or {}},
        format="json",
        **headers,
    )
    return response.json()


def homepage(entry_type: EntryType, slug: str, *, publish: bool = True, **body: Any):
    fields = {"hero_title": body.pop("hero_title", f"Title of {slug}"), **body.pop("fields", {})}
    entry = entry_create(
        entry_type=entry_type,
        body={"slug": slug, "fields": fields, "zones": {"body": [hero()]}, **body},
    )
    return entry_publish(entry=entry) if publish else entry


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in body.get("errors", [])]


# --- The issue's example -------------------------------------------------------------------------
def test_issue_example_finds_the_published_vip_entry_and_not_the_others(homepage_type, anonymous):
    homepage(homepage_type, "vip-home", hero_title="Welcome back", audience=["vip"])
    homepage(homepage_type, "home", hero_title="Welcome", audience=["new"])
    homepage(homepage_type, "vip-draft", audience=["vip"], publish=False)

    body = gql(anonymous, VIP_HOMEPAGES)

    assert body == {"data": {"homepages": [{"slug": "vip-home", "heroTitle": "Welcome back"}]}}


@pytest.mark.django_db(transaction=True)
def test_acceptance_through_the_api_only(staff_client, anonymous):
    # Given a type and a published VIP entry, all written through REST
    created = staff_client.post(
        "/api/v1/content-types/",
        {"api_id": "homepage", "name": "Homepage", "fields": HOMEPAGE_FIELDS},
        format="json",
    )
    assert created.status_code == 201, created.content
    entry = {"slug": "vip", "fields": {"hero_title": "Hi VIP"}, "audience": ["vip"]}
    assert staff_client.post("/api/v1/content/homepage/", entry, format="json").status_code == 201
    published = staff_client.post("/api/v1/content/homepage/vip/publish/", {}, format="json")
    assert published.status_code == 200, published.content

    # When an anonymous caller asks GraphQL for VIP homepages
    body = gql(anonymous, VIP_HOMEPAGES)

    # Then it finds it
    assert body == {"data": {"homepages": [{"slug": "vip", "heroTitle": "Hi VIP"}]}}


def test_readers_see_the_published_version_not_a_later_draft(homepage_type, anonymous):
    entry = homepage(homepage_type, "home", hero_title="Live title")
    entry_update(entry=entry, body={"fields": {"hero_title": "Draft title"}})

    body = gql(anonymous, "{ homepages { slug heroTitle status revision } }")

    assert body["data"]["homepages"] == [
        {"slug": "home", "heroTitle": "Live title", "status": "published", "revision": 1}
    ]


def test_anonymous_may_not_filter_by_status(homepage_type, anonymous):
    homepage(homepage_type, "draft", publish=False)

    body = gql(anonymous, '{ homepages(filters: {status: {eq: "draft"}}) { slug } }')

    assert body["data"] is None
    assert error_codes(body) == ["validation-error"]
    assert body["errors"][0]["extensions"]["errors"][0]["attr"] == "status"


def test_a_content_read_key_is_a_reader(homepage_type, anonymous):
    homepage(homepage_type, "draft", publish=False)
    _key, raw = api_key_create(name="k", scopes=["content:read"], created_by=None)

    body = gql(anonymous, "{ homepages { slug } }", HTTP_AUTHORIZATION=f"Api-Key {raw}")

    assert body == {"data": {"homepages": []}}


def test_editors_see_working_copies_and_filter_by_status(homepage_type, staff_client):
    homepage(homepage_type, "live", hero_title="Live")
    homepage(homepage_type, "draft", hero_title="Draft", publish=False)

    everything = gql(staff_client, "{ homepages { slug heroTitle status } }")
    drafts = gql(staff_client, '{ homepages(filters: {status: {eq: "draft"}}) { slug } }')

    assert everything["data"]["homepages"] == [
        {"slug": "draft", "heroTitle": "Draft", "status": "draft"},
        {"slug": "live", "heroTitle": "Live", "status": "published"},
    ]
    assert drafts["data"]["homepages"] == [{"slug": "draft"}]


def test_a_content_write_key_is_an_editor(homepage_type, anonymous):
    homepage(homepage_type, "draft", publish=False)
    _key, raw = api_key_create(name="k", scopes=["content:write"], created_by=None)

    body = gql(anonymous, "{ homepages { slug } }", HTTP_AUTHORIZATION=f"Api-Key {raw}")

    assert body == {"data": {"homepages": [{"slug": "draft"}]}}


# --- contentEntries ------------------------------------------------------------------------------
PAGE = """query($first: Int, $after: String, $filters: EntryFilter) {
  contentEntries(type: "homepage", first: $first, after: $after, filters: $filters) {
    items { id type slug status fields audience publishedAt }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}"""


def test_content_entries_pages_newest_first_with_cursors(homepage_type, anonymous):
    for number in range(5):
        homepage(homepage_type, f"page-{number}")

    first = gql(anonymous, PAGE, {"first": 2})["data"]["contentEntries"]
    cursor = first["pageInfo"]["endCursor"]
    second = gql(anonymous, PAGE, {"first": 2, "after": cursor})["data"]["contentEntries"]
    cursor = second["pageInfo"]["endCursor"]
    last = gql(anonymous, PAGE, {"first": 2, "after": cursor})["data"]["contentEntries"]

    slugs = [[item["slug"] for item in page["items"]] for page in (first, second, last)]
    assert slugs == [["page-4", "page-3"], ["page-2", "page-1"], ["page-0"]]
    assert [page["pageInfo"]["hasNextPage"] for page in (first, second, last)] == [
        True,
        True,
        False,
    ]
    assert first["pageInfo"]["hasPreviousPage"] is False
    assert first["pageInfo"]["endCursor"] == first["items"][-1]["id"]
    item = first["items"][0]
    assert item["type"] == "homepage"
    assert item["status"] == "published"
    assert item["fields"] == {"hero_title": "Title of page-4"}
    assert item["publishedAt"]


def test_content_entries_filters_by_fields_search_audience_and_locale(homepage_type, anonymous):
    homepage(homepage_type, "ranked", fields={"rank": 3}, audience=["vip"])
    homepage(homepage_type, "other", fields={"rank": 4}, audience=["vip"])
    homepage(homepage_type, "french", locale="fr", fields={"rank": 3}, audience=["vip"])

    def slugs(filters: dict[str, Any]) -> list[str]:
        body = gql(anonymous, PAGE, {"filters": filters})
        return [item["slug"] for item in body["data"]["contentEntries"]["items"]]

    assert slugs({"fields": {"rank": 3}, "locale": {"eq": "en"}}) == ["ranked"]
    assert slugs({"search": {"eq": "oth"}}) == ["other"]
    assert slugs({"audience": {"eq": "vip"}, "fields": {"rank": 3}}) == ["french", "ranked"]
    assert slugs({"audience": {"eq": "nobody"}}) == []


def test_content_entries_of_an_unknown_type_is_not_found(anonymous):
    body = gql(anonymous, '{ contentEntries(type: "nope") { items { slug } } }')

    assert body["data"] is None
    assert error_codes(body) == ["not-found"]
    assert "nope" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    ("arguments", "attr"),
    [
        ('locale: "xx"', "locale"),
        ('filters: {locale: {eq: "xx"}}', "locale"),
        ('filters: {fields: {nope: "1"}}', "fields.nope"),
        ('filters: {fields: {rank: "many"}}', "fields.rank"),
        ("first: 0", "first"),
        ("first: 101", "first"),
        ('after: "abc"', "after"),
    ],
)
def test_bad_arguments_are_validation_errors_naming_the_path(
    homepage_type, anonymous, arguments, attr
):
    body = gql(
        anonymous, f'{{ contentEntries(type: "homepage", {arguments}) {{ items {{ id }} }} }}'
    )

    assert error_codes(body) == ["validation-error"]
    assert body["errors"][0]["extensions"]["errors"][0]["attr"] == attr


def test_a_bad_locale_on_a_generated_field_is_an_error(homepage_type, anonymous):
    body = gql(anonymous, '{ homepages(locale: "xx") { slug } }')

    assert error_codes(body) == ["validation-error"]


# --- Single types --------------------------------------------------------------------------------
@pytest.fixture
def site_settings(db) -> EntryType:
    return entry_type_create(
        api_id="site_settings",
        name="Site settings",
        kind=EntryType.Kind.SINGLE,
        fields=[{"name": "site_name", "type": "string"}, {"name": "dark_mode", "type": "boolean"}],
    )


def test_a_single_type_is_a_singular_field_with_the_fallback_locale(site_settings, anonymous):
    entry = entry_create(
        entry_type=site_settings, body={"fields": {"site_name": "Shop", "dark_mode": True}}
    )
    entry_publish(entry=entry)

    english = gql(anonymous, "{ siteSettings { slug locale siteName darkMode } }")
    french = gql(anonymous, '{ siteSettings(locale: "fr") { locale siteName } }')

    assert english["data"]["siteSettings"] == {
        "slug": "site_settings",
        "locale": "en",
        "siteName": "Shop",
        "darkMode": True,
    }
    assert french["data"]["siteSettings"] == {"locale": "en", "siteName": "Shop"}


def test_an_unpublished_single_entry_is_null_for_readers_not_for_editors(
    site_settings, anonymous, staff_client
):
    entry_create(entry_type=site_settings, body={"fields": {"site_name": "Draft shop"}})

    reader = gql(anonymous, "{ siteSettings { siteName } }")
    editor = gql(staff_client, "{ siteSettings { siteName status } }")

    assert reader == {"data": {"siteSettings": None}}
    assert editor == {"data": {"siteSettings": {"siteName": "Draft shop", "status": "draft"}}}


# --- Rebuilt when a type changes, without a restart ----------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_new_field_is_queryable_on_the_next_request_and_a_removed_type_disappears(
    homepage_type, anonymous
):
    homepage(homepage_type, "home")
    before = gql(anonymous, "{ homepages { slug subtitle } }")
    assert "Cannot query field 'subtitle'" in before["errors"][0]["message"]

    # When a field is added through the service (the version moves after commit)
    entry_type_update(
        entry_type=homepage_type,
        fields=[*HOMEPAGE_FIELDS, {"name": "subtitle", "type": "string"}],
    )
    after = gql(anonymous, "{ homepages { slug subtitle } }")

    # Then the next request can query it
    assert after == {"data": {"homepages": [{"slug": "home", "subtitle": None}]}}

    # And when the type is deleted, its root field is gone
    entry_delete(entry=homepage_type.entries.get())
    entry_type_delete(entry_type=homepage_type)
    gone = gql(anonymous, "{ homepages { slug } }")
    assert "Cannot query field 'homepages'" in gone["errors"][0]["message"]


@pytest.mark.django_db(transaction=True)
def test_a_kind_change_turns_the_list_into_a_singular_field(anonymous):
    entry_type = entry_type_create(api_id="banner", name="Banner", fields=HOMEPAGE_FIELDS)
    assert gql(anonymous, "{ banners { slug } }") == {"data": {"banners": []}}

    entry_type_update(entry_type=entry_type, kind=EntryType.Kind.SINGLE)

    assert gql(anonymous, "{ banner { slug } }") == {"data": {"banner": None}}
    assert (
        "Cannot query field 'banners'"
        in gql(anonymous, "{ banners { slug } }")["errors"][0]["message"]
    )


@pytest.mark.django_db(transaction=True)
def test_another_process_change_is_seen_through_the_shared_version(homepage_type, anonymous):
    """Another process changed the type: this one only sees the row and the version token."""
    homepage(homepage_type, "home", fields={"rank": 2})
    assert gql(anonymous, "{ homepages { slug } }")["data"]  # this process has built its schema
    EntryType.objects.filter(pk=homepage_type.pk).update(
        fields=[*HOMEPAGE_FIELDS, {"name": "badge", "type": "string"}]
    )
    stale = gql(anonymous, "{ homepages { badge } }")
    assert "Cannot query field 'badge'" in stale["errors"][0]["message"]

    cache.set(DEFINITIONS_VERSION_KEY, uuid.uuid4().hex, timeout=None)  # what its commit does
    fresh = gql(anonymous, "{ homepages { badge rank } }")

    assert fresh == {"data": {"homepages": [{"badge": None, "rank": 2}]}}


def test_an_unchanged_schema_is_not_rebuilt(homepage_type, anonymous):
    from cmsproject.schema import schema_current

    gql(anonymous, "{ homepages { slug } }")

    assert schema_current() is schema_current()


# --- Names ---------------------------------------------------------------------------------------
def test_generated_names():
    assert [pluralized(w) for w in ("homepage", "category", "box", "day", "blogPost")] == [
        "homepages",
        "categories",
        "boxes",
        "days",
        "blogPosts",
    ]
    assert root_field_name("blog_post", "collection") == "blogPosts"
    assert root_field_name("site_settings", "single") == "siteSettings"
    assert type_name("site_settings") == "SiteSettings"


def test_names_taken_by_static_fields_and_types_get_a_suffix(anonymous):
    me = entry_type_create(
        api_id="me", name="Me", kind="single", fields=[{"name": "motto", "type": "string"}]
    )
    entry_publish(entry=entry_create(entry_type=me, body={"fields": {"motto": "Hi"}}))
    entry_type_create(api_id="customer", name="Customer", fields=[])
    entry_type_create(api_id="content_entries", name="Odd", kind="single", fields=[])

    body = gql(
        anonymous,
        "{ me { email } meEntry { motto __typename } customers { __typename }"
        " contentEntriesEntry { slug } }",
    )

    assert body == {
        "data": {
            "me": None,
            "meEntry": {"motto": "Hi", "__typename": "MeEntry"},
            "customers": [],
            "contentEntriesEntry": None,
        }
    }


# --- Limits and query counts ---------------------------------------------------------------------
@override_settings(CMS_GRAPHQL_MAX_DEPTH=0)
def test_the_depth_limit_applies_to_generated_fields(homepage_type, anonymous):
    body = gql(anonymous, "{ homepages { slug } }")

    assert "data" not in body
    assert error_codes(body) == ["QUERY_TOO_DEEP"]


@override_settings(CMS_GRAPHQL_MAX_COST=50)
def test_the_cost_limit_applies_to_generated_fields(homepage_type, anonymous):
    body = gql(anonymous, "{ homepages(first: 100) { slug heroTitle } }")

    assert "data" not in body
    assert error_codes(body) == ["QUERY_TOO_COSTLY"]


GENERATED_LIST = "{ homepages(first: 100) { id slug heroTitle summary rank zones publishedAt } }"
GENERIC_LIST = '{ contentEntries(type: "homepage", first: 100) { items { id slug fields zones } } }'


@pytest.mark.parametrize("query", [GENERATED_LIST, GENERIC_LIST])
@pytest.mark.parametrize("who", ["anonymous", "staff_client"])
def test_query_count_does_not_grow_with_entries(
    homepage_type, who, query, request, django_assert_max_num_queries
):
    client = request.getfixturevalue(who)

    def queries_for(count: int) -> int:
        for number in range(homepage_type.entries.count(), count):
            homepage(homepage_type, f"entry-{number}", fields={"rank": number})
        gql(client, query)  # warm: the schema is built once, not per request
        with CaptureQueriesContext(connection) as captured:
            body = gql(client, query)
        data = body["data"]
        assert len(data.get("homepages") or data["contentEntries"]["items"]) == count
        return len(captured)

    few, many = queries_for(3), queries_for(30)

    assert few == many
    with django_assert_max_num_queries(2):  # the type, then one page of entries
        gql(client, query)


# --- Readers' pages, cached ----------------------------------------------------------------------
SHELF = '{ contentEntries(type: "homepage", first: 10) { items { slug } } }'


def shelf(client: APIClient) -> list[str]:
    return [item["slug"] for item in gql(client, SHELF)["data"]["contentEntries"]["items"]]


def test_a_readers_page_is_served_from_the_cache_without_sql(
    homepage_type, anonymous, django_assert_num_queries
):
    homepage(homepage_type, "one")
    assert shelf(anonymous) == ["one"]

    with django_assert_num_queries(0):
        assert shelf(anonymous) == ["one"]


def test_readers_see_a_publish_an_unpublish_and_a_deletion_at_once(homepage_type, anonymous):
    from content.services import entry_unpublish

    first = homepage(homepage_type, "first")
    assert shelf(anonymous) == ["first"]

    second = homepage(homepage_type, "second")
    assert shelf(anonymous) == ["second", "first"]
    entry_unpublish(entry=first)
    assert shelf(anonymous) == ["second"]
    entry_delete(entry=second)
    assert shelf(anonymous) == []


def test_a_change_moves_the_list_generation_at_once_and_again_after_commit(
    homepage_type, django_capture_on_commit_callbacks
):
    """At once: this transaction's own reads see the change. After commit: a page another process
    computed between the two, from the database as it was before the commit, is filed under the
    middle generation and never read again."""
    from content.cache import list_generation

    before = list_generation("homepage")
    with django_capture_on_commit_callbacks(execute=True):
        homepage(homepage_type, "new")
        during = list_generation("homepage")
    after = list_generation("homepage")

    assert before < during < after


def test_a_page_filed_under_an_older_generation_is_not_served(homepage_type, anonymous):
    from content.cache import list_generation, list_key, list_put

    homepage(homepage_type, "real")
    stale = (["payload a reader computed before the change"], False)
    generation = list_generation("homepage")
    query = "[[], 10, null]"
    list_put(list_key("homepage", generation - 1, query), stale)

    assert shelf(anonymous) == ["real"]


def test_a_type_change_moves_its_list_generation(homepage_type):
    from content.cache import list_generation

    before = list_generation("homepage")
    entry_type_update(entry_type=homepage_type, name="Home pages")

    assert list_generation("homepage") > before


def test_editors_pages_are_not_cached(homepage_type, staff_client, anonymous):
    homepage(homepage_type, "live")
    assert shelf(staff_client) == ["live"]

    homepage(homepage_type, "draft", publish=False)

    assert shelf(staff_client) == ["draft", "live"]
    assert shelf(anonymous) == ["live"]


# --- References ----------------------------------------------------------------------------------
@pytest.fixture
def article_type(db) -> EntryType:
    entry_type_create(api_id="person", name="Person", fields=[{"name": "name", "type": "string"}])
    return entry_type_create(
        api_id="article",
        name="Article",
        fields=[
            {"name": "title", "type": "string"},
            {"name": "author", "type": "reference", "to": "person"},
        ],
    )


def article(article_type: EntryType, slug: str, *, author_published: bool = True):
    person = entry_create(
        entry_type=EntryType.objects.get(api_id="person"),
        body={"slug": f"author-of-{slug}", "fields": {"name": f"Author of {slug}"}},
    )
    if author_published:
        person = entry_publish(entry=person)
    entry = entry_create(
        entry_type=article_type,
        body={"slug": slug, "fields": {"title": slug, "author": person.pk}},
    )
    return entry_publish(entry=entry), person


ARTICLES = "{ articles(first: 100) { slug author authorEntry { slug name } } }"


def test_a_reference_exposes_the_referenced_entry_as_its_type(article_type, anonymous):
    _entry, person = article(article_type, "news")
    _entry, unpublished = article(article_type, "draft-author", author_published=False)

    body = gql(anonymous, ARTICLES)

    assert body["data"]["articles"] == [
        {"slug": "draft-author", "author": unpublished.pk, "authorEntry": None},
        {
            "slug": "news",
            "author": person.pk,
            "authorEntry": {"slug": "author-of-news", "name": "Author of news"},
        },
    ]


def test_editors_follow_references_to_working_copies(article_type, staff_client):
    article(article_type, "draft-author", author_published=False)

    body = gql(staff_client, "{ articles { authorEntry { slug status } } }")

    assert body["data"]["articles"] == [
        {"authorEntry": {"slug": "author-of-draft-author", "status": "draft"}}
    ]


@pytest.mark.parametrize("who", ["anonymous", "staff_client"])
def test_references_take_one_query_per_page_not_per_entry(article_type, who, request):
    client = request.getfixturevalue(who)

    def queries_for(count: int) -> int:
        for number in range(article_type.entries.count(), count):
            article(article_type, f"article-{number}")
        with CaptureQueriesContext(connection) as captured:
            body = gql(client, ARTICLES)
        assert sum(1 for a in body["data"]["articles"] if a["authorEntry"]) == count
        return len(captured)

    gql(client, ARTICLES)  # warm: the schema is built once, not per request
    few, many = queries_for(3), queries_for(30)

    assert few == many == 3  # the type, one page of articles, their authors


def test_a_field_named_like_a_resolver_does_not_hijack_a_common_field(anonymous):
    odd = entry_type_create(
        api_id="odd", name="Odd", fields=[{"name": "resolve_slug", "type": "string"}]
    )
    entry_publish(
        entry=entry_create(entry_type=odd, body={"slug": "x", "fields": {"resolve_slug": "y"}})
    )

    body = gql(anonymous, "{ odds { slug resolveSlug } }")

    assert body == {"data": {"odds": [{"slug": "x", "resolveSlug": "y"}]}}
