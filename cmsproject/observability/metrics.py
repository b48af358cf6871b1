"""Every Prometheus metric of the product, and how a scrape reads them.

One process (tests, embedded mode): the metrics live in prometheus_client's default registry.
Several processes (services mode: two gunicorn workers, the WebSocket server, Celery workers):
`cmsproject.run` sets `PROMETHEUS_MULTIPROC_DIR` to a directory it empties at start, every
process writes its values to its own files there, and a scrape sums them (prometheus_client's
multiprocess mode; it must be chosen before prometheus_client is first imported, hence an
environment variable, not a setting).

Ratios are PromQL, not metrics; for instance the content cache hit ratio over five minutes:
    sum(rate(content_cache_requests_total{result="hit"}[5m]))
      / sum(rate(content_cache_requests_total[5m]))
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterable
from datetime import UTC, datetime

import redis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if MULTIPROC_DIR:
    os.makedirs(MULTIPROC_DIR, exist_ok=True)
    # A process that ends cleanly takes its live gauges (open sockets) with it.
    atexit.register(lambda: multiprocess.mark_process_dead(os.getpid()))

# `*_created` series double the output and nothing here reads them.
disable_created_metrics()

# Requests: the fast paths answer in about a millisecond, the admin in tens of them.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Work that spans one subject (milliseconds) to a bulk pass over every customer (a minute).
JOB_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time Django took to answer, by URL pattern (`unmatched` when none matched).",
    ["route", "method", "status_class"],
    buckets=REQUEST_BUCKETS,
)

EVENTS_INGESTED = Counter(
    "events_ingested", "Events accepted into the buffer by POST /api/v1/events (and batch)."
)
EVENTS_REJECTED = Counter("events_rejected", "Events refused by validation.")

SEGMENT_EVALUATION_SECONDS = Histogram(
    "segment_evaluation_seconds",
    "One evaluation: `incremental` is one subject against every dynamic segment, `bulk` is one "
    "segment's rules over all customers.",
    ["kind"],
    buckets=JOB_BUCKETS,
)
SEGMENT_EVALUATION_INCREMENTAL = SEGMENT_EVALUATION_SECONDS.labels(kind="incremental")
SEGMENT_EVALUATION_BULK = SEGMENT_EVALUATION_SECONDS.labels(kind="bulk")

CONTENT_CACHE_REQUESTS = Counter(
    "content_cache_requests",
    "Reads of the published-content cache, by whether the entry was there.",
    ["result"],
)
CONTENT_CACHE_HIT = CONTENT_CACHE_REQUESTS.labels(result="hit")
CONTENT_CACHE_MISS = CONTENT_CACHE_REQUESTS.labels(result="miss")

WEBSOCKET_CONNECTIONS = Gauge(
    "websocket_connections",
    "Open /ws/v1/live sockets (accepted, not yet closed).",
    multiprocess_mode="livesum",
)
WEBSOCKET_MESSAGES_SENT = Counter("websocket_messages_sent", "Messages sent down live sockets.")

CELERY_TASKS = Counter(
    "celery_tasks", "Finished task runs by outcome (success, failure, retry).", ["task", "outcome"]
)
CELERY_TASK_DURATION = Histogram(
    "celery_task_duration_seconds",
    "Task run time, from prerun to postrun, whatever the outcome.",
    ["task"],
    buckets=JOB_BUCKETS,
)


class EventPipelineCollector(Collector):
    """Read at scrape time from the event buffer (a Redis Stream, or the embedded file):

    - `events_stream_backlog`: entries appended and not yet stored. The drain deletes what it
      acknowledges, so this is the stream's length, which already includes the entries a
      consumer holds unacknowledged (the group's pending list).
    - `rollups_lag_seconds`: how far roll-ups are behind: the age of the oldest entry not yet
      drained, 0 when nothing waits. Roll-ups are written in the transaction that stores the
      events, so every event older than that entry is rolled up. (Now minus the newest roll-up
      bucket would grow on a quiet night without anything being late.)

    When the buffer cannot be read (Redis down) both are left out of the scrape, which then
    still answers; Prometheus alerts on the series being absent.
    """

    def describe(self) -> Iterable[Metric]:
        return [
            GaugeMetricFamily("events_stream_backlog", ""),
            GaugeMetricFamily("rollups_lag_seconds", ""),
        ]

    def collect(self) -> Iterable[Metric]:
        from analytics.buffer import BufferUnavailable, event_buffer

        try:
            buffer = event_buffer()
            backlog = buffer.pending_count()
            oldest = buffer.oldest_entry_at() if backlog else None
        except (redis.RedisError, BufferUnavailable, OSError):
            logger.warning("The event buffer could not be read for /metrics", exc_info=True)
            return
        lag = max(0.0, (datetime.now(UTC) - oldest).total_seconds()) if oldest else 0.0
        yield GaugeMetricFamily(
            "events_stream_backlog", "Events accepted and not yet stored.", value=backlog
        )
        yield GaugeMetricFamily(
            "rollups_lag_seconds",
            "Age of the oldest event not yet rolled up; 0 when none waits.",
            value=lag,
        )


if not MULTIPROC_DIR:
    REGISTRY.register(EventPipelineCollector())


def exposition() -> tuple[bytes, str]:
    """The text format of every metric, summed over processes in multiprocess mode."""
    if MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(EventPipelineCollector())
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
