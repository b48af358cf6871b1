"""`experiment:<key>` on the live socket: staff hear each new results snapshot; others may not
subscribe."""

from __future__ import annotations

import asyncio

import pytest
from channels.testing.websocket import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from cmsproject.asgi import application
from experiments.models import Experiment
from experiments.services import experiment_create, experiment_results_compute

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def experiment(db):
    from analytics.demo import demo_load

    demo_load()
    return experiment_create(
        key="hero-copy",
        name="Hero copy",
        metric_event="purchase",
        status=Experiment.Status.RUNNING,
    )


async def subscribe(path: str, topic: str) -> tuple[WebsocketCommunicator, dict]:
    socket = WebsocketCommunicator(application, path)
    await socket.connect(timeout=5)
    await socket.send_json_to({"action": "subscribe", "topic": topic})
    return socket, await socket.receive_json_from(timeout=5)


def test_staff_hear_each_results_snapshot(experiment, superuser):
    token = str(AccessToken.for_user(superuser))

    async def scenario():
        staff, subscribed = await subscribe(f"/ws/v1/live?token={token}", "experiment:hero-copy")
        stranger, refused = await subscribe("/ws/v1/live?anonymous_id=b1", "experiment:hero-copy")
        await asyncio.to_thread(experiment_results_compute, experiment=experiment)
        heard = await staff.receive_json_from(timeout=5)
        quiet = await stranger.receive_nothing(timeout=0.3)
        await staff.disconnect()
        await stranger.disconnect()
        return subscribed, refused, heard, quiet

    subscribed, refused, heard, quiet = asyncio.run(scenario())
    assert subscribed["type"] == "subscribed"
    assert refused["type"] == "error" and refused["code"] == "forbidden"
    assert heard["type"] == "experiment.results" and heard["topic"] == "experiment:hero-copy"
    assert heard["data"]["experiment"] == "hero-copy"
    assert [row["key"] for row in heard["data"]["variants"]] == ["control", "treatment"]
    assert quiet
