"""WSGI entry: HTTP in services mode, served by gunicorn (Procfile `web`)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cmsproject.settings")
application = get_wsgi_application()
