"""Log records that say which request and which trace they belong to.

Every record gets `request_id`, `trace_id` and `span_id` when it is created (a log record
factory), not when a handler formats it: records kept by other handlers (pytest's caplog, an error
reporter) or formatted after the request ended still carry the ids. Outside a request the fields
are None. Django logs its 4xx/5xx lines (`django.request`) after the middleware returned, with
the request in `extra`: `RequestIdsFilter` on the handlers takes the ids from that request.

`LOG_FORMAT` picks the console formatter (settings.py): `json` (services mode's default, one JSON
object per line for a log pipeline) or `plain` (embedded mode's default, readable in a terminal).
"""

from __future__ import annotations

import logging
import random
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("cms_request_id", default=None)

# What we accept from a client or a proxy; anything else is replaced, so a log line never carries
# an attacker's newline, an unbounded string or a header injection.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_from_header(raw: str | None) -> str:
    """The incoming `X-Request-ID` when it is sane, else a new one."""
    if raw and REQUEST_ID.fullmatch(raw):
        return raw
    return f"{random.getrandbits(128):032x}"  # unique, not secret: cheaper than os.urandom


def current_trace_ids() -> tuple[str | None, str | None]:
    return span_ids(trace.get_current_span())


def span_ids(span: trace.Span) -> tuple[str | None, str | None]:
    context = span.get_span_context()
    if not context.is_valid:
        return None, None
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)


_base_factory = logging.getLogRecordFactory()


def _record_with_context(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    record.request_id = request_id_var.get()
    record.trace_id, record.span_id = current_trace_ids()
    return record


def install_record_factory() -> None:
    """Idempotent. Runs when this module is imported: the LOGGING formatters name it, so Django's
    logging setup installs it before the first request."""
    if logging.getLogRecordFactory() is not _record_with_context:
        logging.setLogRecordFactory(_record_with_context)


install_record_factory()


class RequestIdsFilter(logging.Filter):
    """A record logged about a request outside its context (`extra={"request": request}`) gets
    the ids the middleware left on that request."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if getattr(record, "request_id", None) is None and hasattr(request, "request_id"):
            record.request_id = request.request_id
            record.trace_id, record.span_id = span_ids(request.otel_span)
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, request_id,
    trace_id, span_id, then any `extra=` fields and the formatted exception."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault(
            "fmt", ["levelname", "name", "message", "request_id", "trace_id", "span_id"]
        )
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__(*args, **kwargs)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict
    ) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat(
            timespec="milliseconds"
        )
        super().add_fields(log_data, record, message_dict)


class PlainFormatter(logging.Formatter):
    """The human format; inside a request the line ends with `[request_id=...]`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s")
        super().__init__(*args, **kwargs)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} [request_id={request_id}]" if request_id else line
