"""WSGI entry: HTTP in services mode, served by gunicorn (Procfile `web`)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cmsproject.settings")
django_wsgi = get_wsgi_application()
from cmsproject.middleware import ChunkedBodyWSGI  # noqa: E402 - after Django is set up

application = ChunkedBodyWSGI(django_wsgi)
