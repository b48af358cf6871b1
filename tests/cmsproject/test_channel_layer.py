"""The services-mode channel layer against the real Redis: a mass disconnect cleans up."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from cmsproject.channel_layer import POOL_MAX_CONNECTIONS, BlockingPoolRedisChannelLayer

pytestmark = pytest.mark.services

SOCKETS = 3 * POOL_MAX_CONNECTIONS  # well past what one pool may open at once


async def _group_size(layer: BlockingPoolRedisChannelLayer, group: str) -> int:
    connection = layer.connection(layer.consistent_hash(group))
    return await connection.zcard(layer._group_key(group))


def test_the_configured_layer_is_the_blocking_pool_one():
    assert isinstance(get_channel_layer(), BlockingPoolRedisChannelLayer)


def test_hundreds_of_sockets_leaving_at_once_all_leave_their_group():
    """Each closing socket's consumer calls `group_discard`, all in the same moment. Redis-py's
    plain pool raised MaxConnectionsError past 100 of them and their channels stayed in the
    group; the blocking pool queues them."""
    layer = get_channel_layer()
    group = "test-mass-disconnect"

    async def scenario() -> tuple[int, int, list[BaseException]]:
        channels = [await layer.new_channel() for _ in range(SOCKETS)]
        await asyncio.gather(*(layer.group_add(group, channel) for channel in channels))
        joined = await _group_size(layer, group)
        outcomes = await asyncio.gather(
            *(layer.group_discard(group, channel) for channel in channels),
            return_exceptions=True,
        )
        left = await _group_size(layer, group)
        await layer.flush()
        return joined, left, [outcome for outcome in outcomes if outcome is not None]

    joined, left, errors = asyncio.run(scenario())

    assert errors == []
    assert (joined, left) == (SOCKETS, 0)


def test_redis_connections_stay_within_the_pool_limit():
    layer = get_channel_layer()
    group = "test-connection-limit"

    async def scenario() -> int:
        channels = [await layer.new_channel() for _ in range(SOCKETS)]
        await asyncio.gather(*(layer.group_add(group, channel) for channel in channels))
        pool = layer.connection(0).connection_pool
        opened = len(pool._available_connections) + len(pool._in_use_connections)
        await asyncio.gather(*(layer.group_discard(group, channel) for channel in channels))
        await layer.flush()
        return opened

    assert 1 <= asyncio.run(scenario()) <= POOL_MAX_CONNECTIONS
