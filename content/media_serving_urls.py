"""Uploaded files at MEDIA_URL, served by Django when CMS_SERVE_MEDIA is on.

This is for the embedded mode, where nothing else serves MEDIA_ROOT. Production turns it off and
puts a proxy (nginx, a CDN) or object storage in front of the files: Django's static `serve` reads
each file in a worker and is not meant for heavy traffic.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import re_path
from django.views.decorators.http import require_safe
from django.views.static import serve


@require_safe
def media_file(request: HttpRequest, path: str) -> HttpResponse:
    if not settings.CMS_SERVE_MEDIA:
        raise Http404("Media files are not served here.")
    try:
        response = serve(request, path, document_root=settings.MEDIA_ROOT)
    except SuspiciousFileOperation:  # `..` out of MEDIA_ROOT: there is nothing here to find
        raise Http404("No such file.") from None
    # Stored names are random and never reused, so a file at a URL never changes.
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    # Only images are stored; should anything else ever get in, it must not run in our origin.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


_prefix = settings.MEDIA_URL.strip("/")
urlpatterns = (
    [re_path(rf"^{re.escape(_prefix)}/(?P<path>.+)$", media_file, name="media-file")]
    if _prefix and "://" not in settings.MEDIA_URL
    else []
)
