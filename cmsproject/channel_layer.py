"""The services-mode channel layer: channels_redis with a connection pool that waits.

redis-py's asyncio `ConnectionPool` raises `MaxConnectionsError` the moment its connections are
all in use. When hundreds of sockets close together (a deploy, a network blip, the end of a load
test), each consumer's `group_discard` needs a connection at once; with the default pool, those
past the limit failed and left their channels in the groups, where every later publish still went
to them until the group expired (a day). A `BlockingConnectionPool` makes them queue for a
connection instead, so every disconnect cleans up, while Redis still sees at most
`max_connections` connections from a process.
"""

from __future__ import annotations

from typing import Any

from channels_redis.core import RedisChannelLayer
from redis import asyncio as aioredis

# Per process and event loop. A blocking pop holds one for up to the layer's brpop timeout; the
# rest are short commands.
POOL_MAX_CONNECTIONS = 100
# How long a command waits for a free connection before it fails (redis-py's default is 20 s).
POOL_WAIT_SECONDS = 30


class BlockingPoolRedisChannelLayer(RedisChannelLayer):
    def create_pool(self, index: int) -> aioredis.BlockingConnectionPool:
        host: dict[str, Any] = dict(self.hosts[index])
        address = host.pop("address")
        host.setdefault("max_connections", POOL_MAX_CONNECTIONS)
        host.setdefault("timeout", POOL_WAIT_SECONDS)
        return aioredis.BlockingConnectionPool.from_url(address, **host)
