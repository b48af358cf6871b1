"""A JSON body nested deeper than Python's decoder follows is a 400 problem, never a 500."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db
DEEP = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"a":' * 5000 + "1" + "}" * 5000


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT])
@pytest.mark.parametrize(
    ("path", "who"),
    [
        ("/api/v1/events/", "anonymous"),
        ("/api/v1/events/batch/", "anonymous"),
        ("/api/v1/feedback/", "anonymous"),
        ("/api/v1/experiments/", "staff"),
        ("/api/v1/sessions/" + "t" * 40 + "/state/", "anonymous"),
        ("/graphql/", "anonymous"),
    ],
)
def test_a_deeply_nested_body_is_a_400(api_client, staff_client, path, who, body):
    client = staff_client if who == "staff" else api_client
    method = client.put if "/sessions/" in path else client.post
    response = method(path, body, content_type="application/json", HTTP_IF_MATCH="0")
    assert response.status_code == 400, (response.status_code, response.content[:200])
    if path != "/graphql/":  # GraphQL answers bad bodies in its own error format
        assert response["Content-Type"].startswith("application/problem+json")
