"""Live sockets as metrics, called by `cmsproject.consumers.LiveConsumer`.

A consumer may be told of a close for a socket it refused (accepted only to send a close code)
and, in some servers, twice: the gauge counts a socket once, from its acceptance to its close.
"""

from __future__ import annotations

from typing import Any

from cmsproject.observability.metrics import WEBSOCKET_CONNECTIONS, WEBSOCKET_MESSAGES_SENT

_COUNTED = "_cms_metrics_counted"


def websocket_opened(consumer: Any) -> None:
    """After the consumer accepted a socket it keeps."""
    setattr(consumer, _COUNTED, True)
    WEBSOCKET_CONNECTIONS.inc()


def websocket_closed(consumer: Any) -> None:
    """In `disconnect`, whatever happened before."""
    if getattr(consumer, _COUNTED, False):
        setattr(consumer, _COUNTED, False)
        WEBSOCKET_CONNECTIONS.dec()


def websocket_message_sent() -> None:
    WEBSOCKET_MESSAGES_SENT.inc()
