"""Who may call what: every endpoint and method against every kind of caller.

Endpoints come from the URL resolver, so an endpoint added without a row in MATRIX fails
`test_every_endpoint_has_a_row` (and a row whose endpoint is gone fails it too). Each row is
requested once by each principal:

    an  anonymous                      mk  staff in the Marketer group (cmsproject/roles.py)
    c1  customer A (its JWT)           dv  staff in the Developer group
    c2  customer B, another customer   al  staff in the Analyst group
    API keys with one scope each: ew events:write, cr customers:read, cw customers:write,
    ci customers:impersonate, tr content:read, tw content:write

Cells:  +  allowed: any answer but 401/403 (400 on the dummy body, 404, 409 are fine)
        -  denied: 401 or 403
        0  not shown: 401, 403 or 404 for an object that exists but is not for this caller
        A 5xx fails every cell.

Objects in URLs exist and belong to customer A where they belong to anyone (ticket, order,
profile). Writes send `{}` unless `World.bodies` has a body that reaches the permission check
(identify, token refresh, GraphQL). A route with `?query` is a variant row (anonymous flag
evaluation). Each request runs in a savepoint that is rolled back, so a DELETE in one cell changes
nothing for the next, and the whole world is built once for the module and rolled back at its end.
"""

from __future__ import annotations

import functools
import io
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

# The marker makes pytest-django set the test database up; the data itself lives in `world`.
pytestmark = pytest.mark.django_db

PRINCIPALS = ("an", "c1", "c2", "mk", "dv", "al", "ew", "cr", "cw", "ci", "tr", "tw")
CUSTOMERS = {"c1": "matrix-a", "c2": "matrix-b"}
STAFF_ROLES = {"mk": "Marketer", "dv": "Developer", "al": "Analyst"}
KEY_SCOPES = {
    "ew": "events:write",
    "cr": "customers:read",
    "cw": "customers:write",
    "ci": "customers:impersonate",
    "tr": "content:read",
    "tw": "content:write",
}
API_PREFIX = "/api/v1/"
# The admin has its own rules (Django's staff login and model permissions; tests/*/test_admin*).
NOT_IN_MATRIX = ("/admin/",)
HTTP_METHODS = ("get", "post", "put", "patch", "delete")

MATRIX = """
# route: under /api/v1/ unless it starts with /          method an c1 c2 mk dv al ew cr cw ci tr tw
# Pages, the shop backend, GraphQL (field rules: tests/*/test_graphql*.py), metrics
/                                                        GET    +  +  +  +  +  +  +  +  +  +  +  +
/demo/purchase/                                          POST   +  +  +  +  +  +  +  +  +  +  +  +
/media/<path>                                            GET    +  +  +  +  +  +  +  +  +  +  +  +
/graphql/                                                GET    +  +  +  +  +  +  +  +  +  +  +  +
/graphql/                                                POST   +  +  +  +  +  +  +  +  +  +  +  +
/metrics                                                 GET    -  -  -  +  +  +  -  -  -  -  -  -
# Health, auth, API keys, the OpenAPI document
health/                                                  GET    +  +  +  +  +  +  +  +  +  +  +  +
auth/token/                                              POST   +  +  +  +  +  +  +  +  +  +  +  +
auth/token/refresh/                                      POST   +  +  +  +  +  +  +  +  +  +  +  +
auth/logout/                                             POST   +  +  +  +  +  +  +  +  +  +  +  +
auth/customer-token/                                     POST   -  -  -  -  -  -  -  -  -  +  -  -
api-keys/                                                GET    -  -  -  -  +  -  -  -  -  -  -  -
api-keys/                                                POST   -  -  -  -  +  -  -  -  -  -  -  -
api-keys/<prefix>/                                       DELETE -  -  -  -  +  -  -  -  -  -  -  -
schema/                                                  GET    +  +  +  +  +  +  +  +  +  +  +  +
docs/                                                    GET    +  +  +  +  +  +  +  +  +  +  +  +
# Customers, their profile, orders, tickets, notifications, feedback, sessions
customers/                                               GET    -  -  -  +  +  +  -  +  -  -  -  -
customers/                                               POST   -  -  -  -  -  -  -  -  +  -  -  -
customers/export/                                        GET    -  -  -  +  -  +  -  +  -  -  -  -
customers/<pk>/                                          GET    -  -  -  +  +  +  -  +  -  -  -  -
customers/<pk>/                                          PATCH  -  -  -  +  -  -  -  -  +  -  -  -
customers/<pk>/                                          DELETE -  -  -  -  -  -  -  -  +  -  -  -
identify/                                                POST   -  +  -  -  -  -  -  -  +  -  -  -
me/                                                      GET    -  +  +  -  -  -  -  -  -  -  -  -
me/preferences/                                          PATCH  -  +  +  -  -  -  -  -  -  -  -  -
me/consents/                                             PUT    -  +  +  -  -  -  -  -  -  -  -  -
customer-attributes/                                     GET    -  -  -  +  +  +  -  -  -  -  -  -
customer-attributes/                                     POST   -  -  -  -  -  -  -  -  -  -  -  -
customer-attributes/<key>/                               GET    -  -  -  +  +  +  -  -  -  -  -  -
customer-attributes/<key>/                               PATCH  -  -  -  +  -  -  -  -  -  -  -  -
customer-attributes/<key>/                               DELETE -  -  -  -  -  -  -  -  -  -  -  -
orders/                                                  GET    -  -  -  +  +  +  -  +  -  -  -  -
orders/                                                  POST   -  -  -  -  -  -  -  -  +  -  -  -
orders/<pk>/                                             GET    -  -  -  +  +  +  -  +  -  -  -  -
tickets/                                                 GET    -  +  +  +  +  +  -  +  -  -  -  -
tickets/                                                 POST   -  +  +  +  -  -  -  -  +  -  -  -
tickets/<pk>/                                            GET    -  +  0  +  +  +  -  +  -  -  -  -
tickets/<pk>/                                            PATCH  -  -  -  +  -  -  -  -  +  -  -  -
me/notifications/                                        GET    -  +  +  -  -  -  -  -  -  -  -  -
me/notifications/read/                                   POST   -  +  +  -  -  -  -  -  -  -  -  -
feedback/                                                POST   +  +  +  +  +  +  +  +  +  +  +  +
sessions/<token>/state/                                  GET    +  +  +  +  +  +  +  +  +  +  +  +
sessions/<token>/state/                                  PUT    +  +  +  +  +  +  +  +  +  +  +  +
# Events and analytics
events/                                                  POST   +  +  +  +  +  +  +  +  +  +  +  +
events/batch/                                            POST   +  +  +  +  +  +  +  +  +  +  +  +
event-types/                                             GET    -  -  -  +  +  +  -  -  -  -  -  -
event-types/                                             POST   -  -  -  -  +  -  -  -  -  -  -  -
event-types/<name>/                                      GET    -  -  -  +  +  +  -  -  -  -  -  -
event-types/<name>/                                      PUT    -  -  -  -  +  -  -  -  -  -  -  -
event-types/<name>/                                      PATCH  -  -  -  -  +  -  -  -  -  -  -  -
customers/<pk>/events/                                   GET    -  -  -  +  +  +  -  -  -  -  -  -
analytics/funnel/                                        GET    -  -  -  +  +  +  -  -  -  -  -  -
analytics/timeseries/                                    GET    -  -  -  +  +  +  -  -  -  -  -  -
analytics/journeys/                                      GET    -  -  -  +  +  +  -  -  -  -  -  -
analytics/nps/                                           GET    -  -  -  +  +  +  -  -  -  -  -  -
# Content
content-types/                                           GET    -  -  -  +  +  +  -  -  -  -  +  -
content-types/                                           POST   -  -  -  +  +  -  -  -  -  -  -  +
content-types/<api_id>/                                  GET    -  -  -  +  +  +  -  -  -  -  +  -
content-types/<api_id>/                                  PATCH  -  -  -  +  +  -  -  -  -  -  -  +
content-types/<api_id>/                                  DELETE -  -  -  +  +  -  -  -  -  -  -  +
content-types/<api_id>/schema/                           GET    -  -  -  +  +  +  -  -  -  -  +  -
components/                                              GET    -  -  -  +  +  +  -  -  -  -  +  -
components/                                              POST   -  -  -  +  +  -  -  -  -  -  -  +
components/<api_id>/                                     GET    -  -  -  +  +  +  -  -  -  -  +  -
components/<api_id>/                                     PATCH  -  -  -  +  +  -  -  -  -  -  -  +
components/<api_id>/                                     DELETE -  -  -  +  +  -  -  -  -  -  -  +
content/<type_api_id>/                                   GET    +  +  +  +  +  +  +  +  +  +  +  +
content/<type_api_id>/                                   POST   -  -  -  +  +  -  -  -  -  -  -  +
content/<type_api_id>/                                   PUT    -  -  -  +  +  -  -  -  -  -  -  +
content/<type_api_id>/<slug>/                            GET    +  +  +  +  +  +  +  +  +  +  +  +
content/<type_api_id>/<slug>/                            PUT    -  -  -  +  +  -  -  -  -  -  -  +
content/<type_api_id>/<slug>/                            PATCH  -  -  -  +  +  -  -  -  -  -  -  +
content/<type_api_id>/<slug>/                            DELETE -  -  -  +  +  -  -  -  -  -  -  +
content/<type_api_id>/<slug>/publish/                    POST   -  -  -  +  +  -  -  -  -  -  -  +
content/<type_api_id>/<slug>/unpublish/                  POST   -  -  -  +  +  -  -  -  -  -  -  +
content/<type_api_id>/<slug>/revisions/                  GET    -  -  -  +  +  +  -  -  -  -  -  +
content/<type_api_id>/<slug>/revisions/<number>/restore/ POST   -  -  -  +  +  -  -  -  -  -  -  +
deliver/<type_api_id>/<slug>/                            GET    +  +  +  +  +  +  +  +  +  +  +  +
media/                                                   GET    -  -  -  +  +  +  -  -  -  -  +  -
media/                                                   POST   -  -  -  +  +  -  -  -  -  -  -  +
media/<pk>/                                              GET    0  0  0  +  +  +  0  0  0  0  +  +
media/<pk>/                                              PATCH  -  -  -  +  +  -  -  -  -  -  -  +
media/<pk>/                                              DELETE -  -  -  +  +  -  -  -  -  -  -  +
webhooks/                                                GET    -  -  -  +  +  -  -  -  -  -  -  -
webhooks/                                                POST   -  -  -  -  +  -  -  -  -  -  -  -
webhooks/<pk>/                                           GET    -  -  -  +  +  -  -  -  -  -  -  -
webhooks/<pk>/                                           PATCH  -  -  -  -  +  -  -  -  -  -  -  -
webhooks/<pk>/                                           DELETE -  -  -  -  +  -  -  -  -  -  -  -
webhooks/<pk>/deliveries/                                GET    -  -  -  +  +  -  -  -  -  -  -  -
# Segments
segments/                                                GET    -  -  -  +  +  +  -  -  -  -  -  -
segments/                                                POST   -  -  -  +  -  -  -  -  -  -  -  -
segments/schema/                                         GET    +  +  +  +  +  +  +  +  +  +  +  +
segments/preview/                                        POST   -  -  -  +  +  +  -  -  -  -  -  -
segments/<key>/                                          GET    -  -  -  +  +  +  -  -  -  -  -  -
segments/<key>/                                          PATCH  -  -  -  +  -  -  -  -  -  -  -  -
segments/<key>/                                          DELETE -  -  -  +  -  -  -  -  -  -  -  -
segments/<key>/members/                                  GET    -  -  -  +  +  +  -  -  -  -  -  -
segments/<key>/members/                                  POST   -  -  -  +  -  -  -  -  -  -  -  -
segments/<key>/members/                                  DELETE -  -  -  +  -  -  -  -  -  -  -  -
segments/<key>/members/import/                           POST   -  -  -  +  -  -  -  -  -  -  -  -
segments/<key>/recompute/                                POST   -  -  -  +  -  -  -  -  -  -  -  -
# Experiments and flags
experiments/                                             GET    -  -  -  +  +  +  -  -  -  -  -  -
experiments/                                             POST   -  -  -  +  -  -  -  -  -  -  -  -
experiments/<key>/                                       GET    -  -  -  +  +  +  -  -  -  -  -  -
experiments/<key>/                                       PATCH  -  -  -  +  -  -  -  -  -  -  -  -
experiments/<key>/results/                               GET    -  -  -  +  +  +  -  -  -  -  -  -
experiments/<key>/results/                               POST   -  -  -  +  -  -  -  -  -  -  -  -
experiments/<key>/winner/                                POST   -  -  -  +  -  -  -  -  -  -  -  -
flags/                                                   GET    -  -  -  +  +  +  -  -  -  -  -  -
flags/                                                   POST   -  -  -  +  -  -  -  -  -  -  -  -
flags/<key>/                                             GET    -  -  -  +  +  +  -  -  -  -  -  -
flags/<key>/                                             PATCH  -  -  -  +  -  -  -  -  -  -  -  -
flags/<key>/                                             DELETE -  -  -  +  -  -  -  -  -  -  -  -
flags/?unit=visitor-1                                    GET    +  +  +  +  +  +  +  +  +  +  +  +
experiments/<key>/assignment/?unit=visitor-1             GET    +  +  +  +  +  +  +  +  +  +  +  +
"""


def display_route(route: str) -> str:
    """`/api/v1/content/<slug:type_api_id>/` -> `content/<type_api_id>/`, `^media/(?P<path>.+)$`
    -> `/media/<path>`: the route as the table writes it."""
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", route.replace("^", "").replace("$", ""))
    route = re.sub(r"<\w+:(\w+)>", r"<\1>", route)
    return route.removeprefix(API_PREFIX)


@functools.cache
def served_endpoints() -> dict[tuple[str, str], str]:
    """(route as the table writes it, method) -> URL name, for every endpoint but the admin."""
    found: dict[tuple[str, str], str] = {}

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
                continue
            assert isinstance(pattern, URLPattern)
            route = "/" + route.lstrip("^")
            if route.startswith(NOT_IN_MATRIX):
                continue
            view_class = getattr(pattern.callback, "cls", None) or getattr(
                pattern.callback, "view_class", None
            )
            methods = [m for m in HTTP_METHODS if view_class is None or hasattr(view_class, m)]
            if view_class is None:  # a function view: the methods it is documented to take
                methods = ["get"]
            for method in methods:
                found[(display_route(route), method.upper())] = pattern.name

    walk(get_resolver().url_patterns, "")
    return found


@dataclass(frozen=True)
class Row:
    route: str  # as written, maybe with `?query`
    method: str
    expected: dict[str, str]

    @property
    def endpoint(self) -> tuple[str, str]:
        return self.route.partition("?")[0], self.method

    def __str__(self) -> str:
        return f"{self.method} {self.route}"


def parse_matrix(text: str) -> list[Row]:
    rows = []
    for line in text.strip().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        route, method, *cells = line.split()
        assert len(cells) == len(PRINCIPALS), f"{method} {route}: {len(cells)} cells"
        assert set(cells) <= {"+", "-", "0"}, f"{method} {route}: unknown cell in {cells}"
        rows.append(Row(route, method, dict(zip(PRINCIPALS, cells, strict=True))))
    return rows


ROWS = parse_matrix(MATRIX)


# --- The world: built once per module, rolled back at its end -------------------------------------
@dataclass
class World:
    """Credentials of each principal, URL arguments by URL name, bodies by (route, method)."""

    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    url_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    bodies: dict[tuple[str, str], Any] = field(default_factory=dict)
    ticket_id: int = 0
    # One client for every request: building one loads the middleware (WhiteNoise scans every
    # static file), which would cost more than the requests themselves.
    client: APIClient = field(default_factory=APIClient)


def png_upload() -> SimpleUploadedFile:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    return SimpleUploadedFile("red.png", buffer.getvalue(), content_type="image/png")


@pytest.fixture(scope="module")
def world(django_db_setup: Any, django_db_blocker: Any) -> Iterator[World]:
    from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

    from analytics.buffer import event_buffer_reset
    from cmsproject.demo import demo_load_all
    from cmsproject.services import api_key_create
    from content.media import media_upload
    from content.webhooks import webhook_endpoint_create
    from customers.models import Customer
    from customers.orders import order_place
    from customers.services import customer_token_issue
    from customers.tickets import ticket_create
    from tests.factories import UserFactory

    with (
        tempfile.TemporaryDirectory() as var_dir,
        override_settings(VAR_DIR=var_dir, MEDIA_ROOT=var_dir),
        django_db_blocker.unblock(),
        transaction.atomic(),
    ):
        # Demo content, customers, segments (vip), an experiment (join-cta), a flag, event types.
        # The event buffer is a per-process object that keeps the VAR_DIR it was first made in:
        # make it afresh in ours, and forget it when ours is gone.
        event_buffer_reset()
        demo_load_all(staff_password="matrix-not-a-login")
        world = World(headers={"an": {}})
        for name, external_id in CUSTOMERS.items():
            token = customer_token_issue(external_id=external_id)
            world.headers[name] = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        for name, role in STAFF_ROLES.items():
            user = UserFactory(is_staff=True)
            user.groups.add(Group.objects.get(name=role))
            world.headers[name] = {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(user)}"}
        for name, scope in KEY_SCOPES.items():
            _key, raw = api_key_create(name=f"matrix {scope}", scopes=[scope], created_by=None)
            world.headers[name] = {"HTTP_AUTHORIZATION": f"Api-Key {raw}"}

        customer_a = Customer.objects.get(external_id=CUSTOMERS["c1"])
        order = order_place(
            customer_id=customer_a.pk,
            currency="USD",
            total="10.00",
            lines=[{"sku": "s", "name": "Shirt", "quantity": 1, "unit_price": "10.00"}],
        ).order
        ticket = ticket_create(customer=customer_a, subject="Where is my shirt?")
        world.ticket_id = ticket.pk
        asset = media_upload(upload=png_upload(), alt="red")  # processing: no worker ran
        webhook, _secret = webhook_endpoint_create(
            url="https://hooks.example.com/x", events=["content.published"]
        )
        spare_key, _raw = api_key_create(name="spare", scopes=["content:read"], created_by=None)
        entry = {"type_api_id": "page", "slug": "home"}
        world.url_kwargs = {
            "api-key-detail": {"prefix": spare_key.prefix},
            "customer-detail": {"pk": customer_a.pk},
            "customer-events": {"pk": customer_a.pk},
            "customer-attribute-detail": {"key": "newsletter"},
            "order-detail": {"pk": order.pk},
            "ticket-detail": {"pk": ticket.pk},
            "session-state": {"token": "matrix-session-token-0123456789abcdef"},
            "event-type-detail": {"name": "page_view"},
            "content-type-detail": {"api_id": "page"},
            "content-type-schema": {"api_id": "page"},
            "component-detail": {"api_id": "hero"},
            "entry-list": {"type_api_id": "page"},
            "entry-detail": entry,
            "entry-publish": entry,
            "entry-unpublish": entry,
            "entry-revisions": entry,
            "entry-revision-restore": {**entry, "number": 1},
            "deliver": entry,
            "media-detail": {"pk": asset.pk},
            "media-file": {"path": asset.file.name},
            "webhook-detail": {"pk": webhook.pk},
            "webhook-deliveries": {"pk": webhook.pk},
            "segment-detail": {"key": "vip"},
            "segment-members": {"key": "vip"},
            "segment-members-import": {"key": "vip"},
            "segment-recompute": {"key": "vip"},
            "experiment-detail": {"key": "join-cta"},
            "experiment-assignment": {"key": "join-cta"},
            "experiment-results": {"key": "join-cta"},
            "experiment-winner": {"key": "join-cta"},
            "flag-detail": {"key": "new-checkout"},
        }
        refresh = str(RefreshToken.for_user(UserFactory()))
        world.bodies = {
            # Credentials in the body: a valid refresh token, whoever sends it.
            ("auth/token/refresh/", "POST"): {"refresh": refresh},
            ("auth/logout/", "POST"): {"refresh": refresh},
            # Validated before the caller is checked: a body that passes, claiming customer A.
            ("identify/", "POST"): {"anonymousId": "matrix-visitor", "userId": CUSTOMERS["c1"]},
            ("/graphql/", "GET"): {"query": "{ __typename }"},
            ("/graphql/", "POST"): {"query": "{ __typename }"},
        }
        yield world
        transaction.set_rollback(True)
    event_buffer_reset()


def _throttles_forgotten() -> None:
    """A row asks twelve times from one address; the login throttle allows ten a minute."""
    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("*")  # scoped to the test key prefix, as tests/conftest.py does
    else:
        cache.clear()


def call(world: World, principal: str, row: Row, url_name: str) -> Any:
    route, _, query = row.route.partition("?")
    url = reverse(url_name, kwargs=world.url_kwargs.get(url_name, {}))
    body = world.bodies.get((route, row.method), {})
    headers = world.headers[principal]
    client = world.client
    client.cookies.clear()  # nothing of one principal's answer may ride on the next request
    _throttles_forgotten()
    with transaction.atomic():
        if row.method == "GET":
            response = client.get(f"{url}?{query}" if query else url, body, **headers)
        else:
            response = getattr(client, row.method.lower())(url, body, format="json", **headers)
        transaction.set_rollback(True)
    return response


def matches(expected: str, status: int) -> bool:
    if status >= 500:
        return False
    if expected == "0":
        return status in (401, 403, 404)
    denied = status in (401, 403)
    return denied if expected == "-" else not denied


# --- The tests ------------------------------------------------------------------------------------
def test_every_endpoint_has_a_row():
    served = set(served_endpoints())
    in_table = {row.endpoint for row in ROWS}

    assert sorted(served - in_table) == [], "endpoints without a row in MATRIX"
    assert sorted(in_table - served) == [], "rows in MATRIX for endpoints no longer served"


def test_rows_are_not_repeated():
    written = [(row.route, row.method) for row in ROWS]

    assert len(written) == len(set(written))


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_who_may_call(world, row):
    url_name = served_endpoints()[row.endpoint]
    wrong = []
    for principal in PRINCIPALS:
        response = call(world, principal, row, url_name)
        if not matches(row.expected[principal], response.status_code):
            wrong.append(
                f"{principal}: expected {row.expected[principal]!r}, got {response.status_code} "
                f"{response.content[:160]!r}"
            )

    assert wrong == [], f"{row}:\n" + "\n".join(wrong)


def test_a_customer_lists_only_their_own_tickets(world):
    row = Row("tickets/", "GET", {})
    url_name = served_endpoints()[row.endpoint]

    own = call(world, "c1", row, url_name).json()["results"]
    others = call(world, "c2", row, url_name).json()["results"]

    assert [ticket["id"] for ticket in own] == [world.ticket_id]
    assert others == []
