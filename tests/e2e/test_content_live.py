"""Live content against the running product: a WebSocket subscriber of `content:<type>:<slug>`
hears a PATCH + publish within a second, with the published payload, and never hears a draft.

Runs in both passes: embedded (one uvicorn) and services (gunicorn for HTTP, uvicorn for the
socket, joined by the Redis channel layer)."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.e2e.conftest import Server
from tests.e2e.test_servers import tokens_for

pytestmark = pytest.mark.e2e


def staff_client(server: Server) -> Any:
    access = tokens_for(server)["access"]
    return server.client(headers={"Authorization": f"Bearer {access}"})


def test_a_subscriber_sees_patch_and_publish_within_a_second_and_never_a_draft(
    cms_server: Server,
) -> None:
    api_id = f"live_{secrets.token_hex(3)}"
    with staff_client(cms_server) as staff:
        created = staff.post(
            "/api/v1/content-types/",
            json={
                "api_id": api_id,
                "name": "Live page",
                "fields": [{"name": "title", "type": "string"}],
                "zones": [{"name": "body", "components": ["hero"]}],
            },
        )
        assert created.status_code == 201, created.text
        entry = {
            "slug": "home",
            "fields": {"title": "First"},
            "zones": {"body": [{"component": "hero", "data": {"heading": "Hi"}}]},
        }
        assert staff.post(f"/api/v1/content/{api_id}/", json=entry).status_code == 201
        assert staff.post(f"/api/v1/content/{api_id}/home/publish/").status_code == 200

        with connect(cms_server.ws_url, open_timeout=10) as ws:
            ws.send(json.dumps({"action": "subscribe", "topic": f"content:{api_id}:home"}))
            assert json.loads(ws.recv(timeout=10)) == {
                "type": "subscribed",
                "topic": f"content:{api_id}:home",
            }

            # A draft save is not announced.
            draft = staff.patch(
                f"/api/v1/content/{api_id}/home/", json={"fields": {"title": "Second"}}
            )
            assert draft.status_code == 200
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.5)

            # Publishing it is, within a second, with the published payload.
            started = time.monotonic()
            assert staff.post(f"/api/v1/content/{api_id}/home/publish/").status_code == 200
            message = json.loads(ws.recv(timeout=5))
            elapsed = time.monotonic() - started

            assert message["type"] == "content.updated"
            assert message["topic"] == f"content:{api_id}:home"
            assert message["data"]["fields"] == {"title": "Second"}
            assert message["data"]["zones"]["body"][0]["data"] == {"heading": "Hi"}
            assert elapsed < 1.0, f"content.updated took {elapsed:.3f}s"

            assert staff.post(f"/api/v1/content/{api_id}/home/unpublish/").status_code == 200
            gone = json.loads(ws.recv(timeout=5))
            assert gone["type"] == "content.unpublished"
            assert gone["data"] == {
                "id": message["data"]["id"],
                "type": api_id,
                "slug": "home",
                "locale": "en",
            }

    with cms_server.client() as anonymous:
        assert anonymous.get(f"/api/v1/content/{api_id}/home/").status_code == 404
