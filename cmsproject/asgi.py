"""ASGI entry: HTTP (Django) and WebSocket (Channels) on one server.

Embedded mode serves both from here; services mode runs this for `/ws/` only (Procfile `ws`).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cmsproject.settings")
django_http = get_asgi_application()  # sets Django up before the imports below touch models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from cmsproject.consumers import LiveConsumer  # noqa: E402
from cmsproject.middleware import BodySizeLimitASGI  # noqa: E402

websocket_routes = URLRouter([re_path(r"^ws/v1/live/?$", LiveConsumer.as_asgi())])

application = BodySizeLimitASGI(
    ProtocolTypeRouter({"http": django_http, "websocket": websocket_routes})
)
