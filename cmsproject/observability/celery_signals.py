"""Celery, observed: task outcomes and durations, and one trace from the request to the worker.

At publish (`before_task_publish`) the current `traceparent` and request id go into the message
headers; in the worker (`task_prerun`) they are read back, the task runs in a span that is a
child of the request's, and its log records carry the same `trace_id` and `request_id`. A task
run in-process (embedded mode, `task.apply`) simply inherits the caller's context; headers given
to `apply(headers=...)` are honoured the same way.

Connected once from `cmsproject.celery` (`connect_signals`), so a worker, beat and the web
processes all have them.
"""

from __future__ import annotations

import logging.config
import time
from contextvars import Token
from dataclasses import dataclass
from typing import Any

from celery import signals
from opentelemetry import context, trace

from cmsproject.observability.logs import request_id_var
from cmsproject.observability.metrics import CELERY_TASK_DURATION, CELERY_TASKS
from cmsproject.observability.tracing import context_from_carrier, inject_current, span_start

REQUEST_ID_HEADER = "cms_request_id"


@dataclass
class _Running:
    started: float
    span: trace.Span
    context_token: object
    id_token: Token[str | None] | None


# task id -> what task_prerun opened; task_postrun closes it. Eager tasks may nest (a task that
# applies another in-process), so this is keyed, not a single slot.
_running: dict[str, _Running] = {}


def _header(request: Any, name: str) -> str | None:
    """A custom message header: an attribute of the request for a message from the broker
    (protocol 2 merges headers into it), inside `headers` for `task.apply(headers=...)`."""
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return value if isinstance(value, str) else None


def on_before_task_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None:
        return
    inject_current(headers)
    request_id = request_id_var.get()
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id


def on_task_prerun(task_id: str, task: Any, **_: Any) -> None:
    request = task.request
    carrier = {
        "traceparent": _header(request, "traceparent") or "",
        "tracestate": _header(request, "tracestate") or "",
    }
    parent = context_from_carrier(carrier)  # None: the current context (eager), or a new trace
    span = span_start(task.name, parent=parent, kind=trace.SpanKind.CONSUMER)
    request_id = _header(request, REQUEST_ID_HEADER)
    _running[task_id] = _Running(
        started=time.perf_counter(),
        span=span,
        context_token=context.attach(trace.set_span_in_context(span, parent)),
        id_token=request_id_var.set(request_id) if request_id else None,
    )


def on_task_postrun(task_id: str, task: Any, state: str | None = None, **_: Any) -> None:
    running = _running.pop(task_id, None)
    if running is None:
        return
    CELERY_TASK_DURATION.labels(task=task.name).observe(time.perf_counter() - running.started)
    if running.span.is_recording():
        running.span.set_attribute("celery.task_id", task_id)
        running.span.set_attribute("celery.state", state or "")
        if state == "FAILURE":
            running.span.set_status(trace.StatusCode.ERROR)
    running.span.end()
    context.detach(running.context_token)
    if running.id_token is not None:
        request_id_var.reset(running.id_token)


def on_task_success(sender: Any = None, **_: Any) -> None:
    CELERY_TASKS.labels(task=sender.name, outcome="success").inc()


def on_task_failure(sender: Any = None, **_: Any) -> None:
    CELERY_TASKS.labels(task=sender.name, outcome="failure").inc()


def on_task_retry(sender: Any = None, **_: Any) -> None:
    CELERY_TASKS.labels(task=sender.name, outcome="retry").inc()


def on_setup_logging(**_: Any) -> None:
    """A worker logs like the web processes (settings.LOGGING: JSON with the ids, or plain),
    instead of Celery replacing the root logger's handlers with its own format."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


def connect_signals() -> None:
    # weak=False: the receivers are module functions, but say so; dispatch_uid: connect once.
    for signal, receiver in (
        (signals.before_task_publish, on_before_task_publish),
        (signals.task_prerun, on_task_prerun),
        (signals.task_postrun, on_task_postrun),
        (signals.task_success, on_task_success),
        (signals.task_failure, on_task_failure),
        (signals.task_retry, on_task_retry),
        (signals.setup_logging, on_setup_logging),
    ):
        signal.connect(receiver, weak=False, dispatch_uid=f"cms-observability-{receiver.__name__}")
