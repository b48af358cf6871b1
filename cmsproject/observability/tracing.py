"""OpenTelemetry: one tracer provider per process and W3C Trace Context in and out.

Every request and task runs in a span, so it has a trace id (the one in the logs and in the
`traceparent` sent on). Spans are exported only when an exporter is configured the standard way:
`OTEL_TRACES_EXPORTER=console|otlp|...` (an exporter installed as an `opentelemetry_traces_exporter`
entry point; the SDK ships `console`), or an `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`, which means
`otlp`. We pin no exporter package: a deployment that ships spans installs its exporter, and then
sampling follows `OTEL_TRACES_SAMPLER` (the SDK's default: follow the caller, else sample).
Without an exporter nothing is recorded: a span is then only its ids (`span_start`), at a
fraction of the SDK's cost on every request, and keeps the caller's sampled flag when sent on.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Mapping, MutableMapping
from importlib.metadata import entry_points

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

logger = logging.getLogger(__name__)

SERVICE_NAME = "headless-cms"
propagator = TraceContextTextMapPropagator()
_setup_lock = threading.Lock()
_tracer: trace.Tracer | None = None
_recording = True  # whether spans of `_tracer` may be recorded (False: exported nowhere)
_process_recording = True


def _exporter_names() -> list[str]:
    configured = os.environ.get("OTEL_TRACES_EXPORTER", "")
    if configured:
        return [name.strip() for name in configured.split(",") if name.strip() not in ("", "none")]
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        return ["otlp"]
    return []


def _exporters() -> list[SpanExporter]:
    exporters = []
    for name in _exporter_names():
        found = entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            logger.warning(
                "No OpenTelemetry span exporter %r is installed; spans are dropped", name
            )
            continue
        exporters.append(next(iter(found)).load()())
    return exporters


def _provider(exporters: list[SpanExporter]) -> TracerProvider:
    service = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
    provider = TracerProvider(
        resource=Resource.create(service),
        sampler=None if exporters else ALWAYS_OFF,  # None: the SDK's, from the environment
    )
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def tracer() -> trace.Tracer:
    """The process's tracer, setting up the SDK provider on first use (unless something else,
    such as an OpenTelemetry auto-instrumentation agent, already installed one)."""
    global _tracer, _recording, _process_recording
    if _tracer is None:
        with _setup_lock:
            if _tracer is None:
                if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
                    exporters = _exporters()
                    trace.set_tracer_provider(_provider(exporters))
                    _process_recording = bool(exporters)
                _recording = _process_recording
                _tracer = trace.get_tracer("cmsproject")
    return _tracer


def span_start(name: str, *, parent: context.Context | None, kind: trace.SpanKind) -> trace.Span:
    """A span under `parent` (None: the current context). When nothing would record it, only
    its ids: the parent's trace id and flags, or a new trace."""
    started_by = tracer()
    if _recording:
        return started_by.start_span(name, context=parent, kind=kind)
    above = trace.get_current_span(parent).get_span_context()
    if above.is_valid:
        trace_id, flags, state = above.trace_id, above.trace_flags, above.trace_state
    else:
        trace_id, flags, state = random.getrandbits(128) or 1, TraceFlags(0), None
    return NonRecordingSpan(SpanContext(trace_id, random.getrandbits(64) or 1, False, flags, state))


def tracer_use(provider: trace.TracerProvider | None) -> None:
    """Make spans with `provider` from now on (a test that records spans); None: the process's
    provider again."""
    global _tracer, _recording
    _tracer = provider.get_tracer("cmsproject") if provider is not None else None
    _recording = True if provider is not None else _process_recording


def context_from_carrier(carrier: Mapping[str, str]) -> context.Context | None:
    """The remote parent in `carrier` (`traceparent`, `tracestate`), or None when there is none
    or it is malformed: the caller then starts a new trace."""
    if not carrier.get("traceparent"):
        return None
    extracted = propagator.extract(carrier)
    if not trace.get_current_span(extracted).get_span_context().is_valid:
        return None
    return extracted


def inject_current(carrier: MutableMapping[str, str]) -> None:
    """Write the current span's `traceparent` (and `tracestate`) into `carrier`."""
    propagator.inject(carrier)
