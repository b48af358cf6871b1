from __future__ import annotations

import pytest

from analytics import buffer as buffer_module
from analytics.buffer import RedisStreamBuffer, event_buffer, event_buffer_reset


@pytest.fixture
def events_buffer(settings, tmp_path):
    """The mode's real buffer, emptied: a file in a temp dir, or the test-prefixed Redis stream."""
    settings.VAR_DIR = tmp_path
    event_buffer_reset()
    buffer = event_buffer()
    if isinstance(buffer, RedisStreamBuffer):
        buffer.redis.delete(buffer.stream)
        buffer._group_ready = False
    yield buffer
    if isinstance(buffer, RedisStreamBuffer):
        buffer.redis.delete(buffer.stream)
    event_buffer_reset()


@pytest.fixture
def drain(events_buffer):
    from analytics.drain import drain_until_empty

    def run() -> object:
        return drain_until_empty(buffer=buffer_module.event_buffer(), max_seconds=30)

    return run
