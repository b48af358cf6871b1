"""Every operation of `/api/v1/schema/` fuzzed by schemathesis, in-process over WSGI.

Each operation is one test item, run as a superuser (so most of it is reached) and anonymously
(the public endpoints, and the fast paths answered before DRF, which only anonymous callers take).
The checks, for every response:

- `not_a_server_error`: no 5xx;
- `status_code_conformance`: the status is documented (cmsproject.openapi adds the errors every
  operation can give, from API.md's conventions);
- `content_type_conformance` and `response_schema_conformance`: the body is what the document
  says for that status, problem+json included.

Not checked, on purpose: `positive_data_acceptance` and `negative_data_rejection` (the document
cannot express every rule the services enforce, such as cross-field checks and registered
attributes, so schema-valid bodies are rightly refused), and the stateful phase (slow, and our
links are not declared).

Path parameters are random, or half the time an object that exists (`KNOWN`: the demo data plus
a customer, an order, a ticket, media, a webhook, an API key), so detail endpoints answer with
their real bodies too. The world is built once for the module; each item runs in a savepoint that
is rolled back, so a DELETE in one operation leaves the next one its objects.

Runtime is bounded by `max_examples` (EXAMPLES) with Hypothesis' deadline off: about a minute
per pass for ~200 items. Under CI=true the cases are derandomized (the same every run).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import override_settings
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cmsproject.wsgi import application

pytestmark = pytest.mark.django_db

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Per operation and caller. A deeper local run: CMS_FUZZ_EXAMPLES=50 pytest tests/cmsproject/...
EXAMPLES = int(os.environ.get("CMS_FUZZ_EXAMPLES", 5))

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application)

# (path prefix under /api/v1/, parameter) -> a value naming an object of the world. Filled by the
# `world` fixture; the most specific prefix wins.
KNOWN: dict[tuple[str, str], Any] = {}


def _known_for(path: str, parameter: str) -> Any:
    relative = path.removeprefix("/api/v1/")
    matches = [
        (len(prefix), value)
        for (prefix, name), value in KNOWN.items()
        if name == parameter and relative.startswith(prefix)
    ]
    return max(matches, key=lambda match: match[0])[1] if matches else None


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
    """Half the time the path names objects that exist; else the random values stay."""
    if not path_parameters:
        return st.just(path_parameters)
    path = context.operation.path
    known = {name: _known_for(path, name) for name in path_parameters}
    if None in known.values():
        return st.just(path_parameters)
    return st.sampled_from([path_parameters, known])


# --- The world: demo data and one of each object, built once and rolled back ----------------------
def _png() -> SimpleUploadedFile:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "blue").save(buffer, format="PNG")
    return SimpleUploadedFile("blue.png", buffer.getvalue(), content_type="image/png")


@contextlib.contextmanager
def _connections_kept_open() -> Iterator[None]:
    """Django closes a connection left outside autocommit when a request ends; that would end
    the world's transaction after the first call. Django's test client unhooks it the same way;
    schemathesis calls the WSGI application directly."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture(scope="module")
def world(django_db_setup: Any, django_db_blocker: Any) -> Iterator[dict[str, str]]:
    from rest_framework_simplejwt.tokens import AccessToken

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
        _connections_kept_open(),
        django_db_blocker.unblock(),
        transaction.atomic(),
    ):
        # The event buffer is a per-process object that keeps the VAR_DIR it was first made in:
        # make it afresh in ours, and forget it when ours is gone.
        event_buffer_reset()
        demo_load_all(staff_password="schemathesis-not-a-login")
        superuser = UserFactory(is_staff=True, is_superuser=True)
        customer_token_issue(external_id="fuzzed-customer")
        customer = Customer.objects.get(external_id="fuzzed-customer")
        order = order_place(
            customer_id=customer.pk,
            currency="EUR",
            total="5.00",
            lines=[{"sku": "s", "name": "Socks", "quantity": 1, "unit_price": "5.00"}],
        ).order
        ticket = ticket_create(customer=customer, subject="Socks")
        asset = media_upload(upload=_png(), alt="blue")
        webhook, _secret = webhook_endpoint_create(
            url="https://hooks.example.com/fuzz", events=["content.published"]
        )
        key, _raw = api_key_create(name="fuzz", scopes=["content:read"], created_by=None)
        KNOWN.update(
            {
                ("api-keys/", "prefix"): key.prefix,
                ("customers/", "id"): customer.pk,
                ("customer-attributes/", "key"): "newsletter",
                ("orders/", "id"): order.pk,
                ("tickets/", "id"): ticket.pk,
                ("sessions/", "token"): "fuzz-session-token-0123456789abcdef",
                ("event-types/", "name"): "page_view",
                ("content-types/", "api_id"): "page",
                ("components/", "api_id"): "hero",
                ("content/", "type_api_id"): "page",
                ("content/", "slug"): "home",
                ("content/", "number"): 1,
                ("deliver/", "type_api_id"): "page",
                ("deliver/", "slug"): "home",
                ("media/", "id"): asset.pk,
                ("webhooks/", "id"): webhook.pk,
                ("segments/", "key"): "vip",
                ("experiments/", "key"): "join-cta",
                ("flags/", "key"): "new-checkout",
            }
        )
        yield {"Authorization": f"Bearer {AccessToken.for_user(superuser)}"}
        KNOWN.clear()
        transaction.set_rollback(True)
    event_buffer_reset()


# --- The tests ------------------------------------------------------------------------------------
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # CI draws the same cases every run, so a red build is reproducible and caused by the change
    # under test; a developer's run draws new ones (and finds what CI has not yet).
    derandomize=os.environ.get("CI", "").lower() == "true",
    # The world is large and some operations refuse most generated data: that is the point.
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@FUZZ
def test_api_as_superuser(case, world):
    case.call_and_validate(headers=world, checks=CHECKS)


@schema.parametrize()
@FUZZ
def test_api_anonymously(case, world):
    case.call_and_validate(checks=CHECKS)


# --- What the fuzzing found, pinned (the fuzzer may not draw these again) -------------------------
@pytest.mark.parametrize("path", ["/api/v1/tickets/", "/api/v1/orders/"])
@pytest.mark.parametrize("value", ["-5.1e+73", "99999999999999999999", "1.5", "0"])
def test_a_customer_filter_out_of_range_is_a_400_not_a_500(staff_client, path, value):
    response = staff_client.get(path, {"customer": value})

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["attr"] == "customer"


# PostgreSQL refuses UTC offsets past ±15:59, which Python parses: these were 500s in services
# mode. They are compared in UTC now; an instant with no UTC date is a 400 in both modes.
FAR_OFFSET = "2026-01-01T00:00:00-20:44"
NO_UTC_DATE = "0001-01-01T00:00:00+05:00"
TIME_PARAMETERS = [
    ("/api/v1/customers/", {"last_seen_before": "{}"}),
    ("/api/v1/analytics/funnel/", {"steps": "page_view,purchase", "from": "{}"}),
    ("/api/v1/analytics/journeys/", {"from": "{}"}),
    ("/api/v1/analytics/nps/", {"from": "{}"}),
]


@pytest.mark.parametrize(("path", "query"), TIME_PARAMETERS)
@pytest.mark.parametrize(("moment", "status"), [(FAR_OFFSET, 200), (NO_UTC_DATE, 400)])
def test_a_time_parameter_far_from_utc_is_compared_in_utc(
    staff_client, path, query, moment, status
):
    response = staff_client.get(path, {k: v.format(moment) for k, v in query.items()})

    assert response.status_code == status


@pytest.mark.parametrize(
    ("moment", "status"),
    [
        (FAR_OFFSET.replace("2026", "2030"), 200),
        ("9999-12-31T23:00:00-05:00", 400),
        ("2026-13-45T00:00:00Z", 400),
    ],
)
def test_publish_at_far_from_utc_is_scheduled_in_utc(staff_client, moment, status):
    from cmsproject.demo import demo_load_all

    demo_load_all(staff_password="schemathesis-not-a-login")

    response = staff_client.post(
        "/api/v1/content/page/home/publish/", {"publish_at": moment}, format="json"
    )

    assert response.status_code == status


def test_every_operation_documents_its_errors_as_problem_json():
    document = schema.raw_schema
    undocumented = [
        f"{method.upper()} {path}: {code}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for code in ("400", "429")
        if code not in operation["responses"]
    ]

    assert undocumented == []
    assert document["components"]["responses"]["Problem404"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }


@pytest.mark.parametrize(
    "path", ["/api/v1/segments/", "/api/v1/experiments/", "/api/v1/components/"]
)
def test_paged_lists_are_documented_as_pages(path):
    ok = schema.raw_schema["paths"][path]["get"]["responses"]["200"]
    reference = ok["content"]["application/json"]["schema"]["$ref"]

    assert reference.startswith("#/components/schemas/Paginated")
