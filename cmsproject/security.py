"""Content-Security-Policy on every response, chosen by what the response is.

Django's own middleware sends the other security headers, configured in settings.py:
`SecurityMiddleware` sends `X-Content-Type-Options: nosniff`, `Referrer-Policy`,
`Cross-Origin-Opener-Policy` and, on secure requests only, `Strict-Transport-Security`;
`XFrameOptionsMiddleware` sends `X-Frame-Options: DENY`. Django 5.2 has no CSP; this adds it:

- Anything that is not a page (API JSON, problem+json, media files, static files):
  `default-src 'none'; frame-ancestors 'none'`. A JSON body or an uploaded SVG opened in a tab
  runs nothing and loads nothing.
- Pages: everything they load is ours (vendored Chart.js, jQuery QueryBuilder, the editors,
  storefront.js), so sources are `'self'`. No page has an inline script: data reaches scripts
  through `json_script`, a JSON block the browser never executes. So `script-src 'self'` with no
  `'unsafe-inline'` and no `'unsafe-eval'`, hence no nonces and no template changes.
  - The storefront (`/`) has no inline style either; its `connect-src` adds the WebSocket origin
    the page is given, computed as the page computes it (`CMS_PUBLIC_WS_URL`, or WS_PORT in
    services mode, where the socket is served on another port).
  - The admin and other pages allow inline styles (not scripts): Django's change list writes a
    `<style>` block, our report templates and media thumbnails use them. With `img-src`,
    `font-src` and `connect-src` limited to our origin, injected CSS can exfiltrate nothing.
  - `/api/v1/docs/` (Swagger UI) as drf-spectacular's `SpectacularSwaggerView` serves it starts
    Swagger with an inline script, so that page alone allows inline script;
    `SpectacularSwaggerSplitView` serves that script as a file and gets `script-src 'self'`.
  - GraphiQL (DEBUG only) loads React and GraphiQL from jsDelivr: only `frame-ancestors`.
- A view that sets its own `Content-Security-Policy` keeps it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from cmsproject.middleware import DualModeMiddleware

HEADER = "Content-Security-Policy"

API_POLICY = "default-src 'none'; frame-ancestors 'none'"

PAGE_DIRECTIVES: dict[str, tuple[str, ...]] = {
    "default-src": ("'self'",),
    "script-src": ("'self'",),
    "style-src": ("'self'",),
    "img-src": ("'self'", "data:"),
    "font-src": ("'self'",),
    "connect-src": ("'self'",),
    "object-src": ("'none'",),
    "base-uri": ("'self'",),
    "form-action": ("'self'",),
    "frame-ancestors": ("'none'",),
}


def csp_render(directives: dict[str, tuple[str, ...]]) -> str:
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def csp_with(**extra: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The page directives with sources added (keyword `style_src` is `style-src`)."""
    directives = dict(PAGE_DIRECTIVES)
    for name, sources in extra.items():
        key = name.replace("_", "-")
        directives[key] = (*directives.get(key, ()), *sources)
    return directives


PAGE_POLICY = csp_render(csp_with(style_src=("'unsafe-inline'",)))
DOCS_INLINE_POLICY = csp_render(
    csp_with(script_src=("'unsafe-inline'",), style_src=("'unsafe-inline'",))
)
GRAPHIQL_POLICY = "frame-ancestors 'none'"


def websocket_origin(url: str) -> str | None:
    """`ws://host:port` of a socket URL; None for a relative one ('self' covers it)."""
    parts = urlsplit(url)
    if parts.scheme not in {"ws", "wss"} or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def storefront_policy(request: HttpRequest) -> str:
    from cmsproject.storefront import _ws_url as storefront_ws_url

    origin = websocket_origin(storefront_ws_url(request))
    return csp_render(csp_with(connect_src=(origin,) if origin else ()))


def _is_page(response: HttpResponseBase) -> bool:
    return response.get("Content-Type", "").split(";", 1)[0].strip().lower() == "text/html"


def _view_class(request: HttpRequest) -> type | None:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return None
    return getattr(match.func, "view_class", None) or getattr(match.func, "cls", None)


def page_policy(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    view_name = match.view_name if match is not None else None
    if view_name == "storefront":
        return storefront_policy(request)
    if view_name == "graphql":
        return GRAPHIQL_POLICY if settings.DEBUG else PAGE_POLICY
    if view_name == "docs":
        from drf_spectacular.views import SpectacularSwaggerSplitView

        view_class = _view_class(request)
        if view_class is None or not issubclass(view_class, SpectacularSwaggerSplitView):
            return DOCS_INLINE_POLICY
    return PAGE_POLICY


def content_security_policy(request: HttpRequest, response: HttpResponseBase) -> str:
    return page_policy(request) if _is_page(response) else API_POLICY


class ContentSecurityPolicyMiddleware(DualModeMiddleware):
    """Adds the policy above, natively under WSGI and ASGI (no thread hop)."""

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if HEADER not in response:
            response[HEADER] = content_security_policy(request, response)
        return response
