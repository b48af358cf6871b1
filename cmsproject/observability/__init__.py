"""Operating the product: metrics, structured logs, request ids and traces.

- `metrics`: every Prometheus metric object, the scrape-time collector (event backlog, roll-up
  lag) and the exposition, multi-process aware (`PROMETHEUS_MULTIPROC_DIR`).
- `logs`: the request id and trace id on every log record, the JSON and plain formatters.
- `tracing`: the OpenTelemetry tracer provider and W3C `traceparent` in and out.
- `middleware`: one outermost middleware per request: request id, server span, duration.
- `celery_signals`: task outcomes and durations, `traceparent` carried through the broker.
- `views`: `GET /metrics` for staff or the scraper's token.
"""
