"""Security headers, GraphQL introspection, and secrets that come only from the environment.

- Every response carries `X-Content-Type-Options: nosniff`, `Referrer-Policy` and a
  Content-Security-Policy: strict for anything that is not a page, same-origin for the pages.
- The page policy forbids inline script, so no page may have one: the templates and the rendered
  admin pages are scanned here, before a browser would refuse them (tests/e2e run the pages).
- HSTS only on secure requests; GraphQL introspection off unless DEBUG or asked for.
"""

from __future__ import annotations

import ast
import os
import re
import runpy
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib import admin
from django.test import AsyncClient, override_settings
from django.urls import URLPattern, resolve

from cmsproject.security import API_POLICY, PAGE_POLICY, page_policy, websocket_origin

REPO = Path(__file__).resolve().parents[2]
STRICT = "default-src 'none'; frame-ancestors 'none'"
SETTINGS_FILE = REPO / "cmsproject" / "settings.py"


@pytest.fixture
def settings_with(monkeypatch):
    """Runs settings.py afresh with exactly the given environment; returns its namespace. It is
    plain code over os.environ, so no new process is needed."""

    def load(**env: str) -> dict:
        for key in list(os.environ):
            if key in {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "DATABASE_URL", "REDIS_URL"} or (
                key.startswith("CMS_")
            ):
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return runpy.run_path(str(SETTINGS_FILE))

    return load


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


def assert_common_headers(response) -> None:
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response  # plain HTTP


def assert_page_policy(response) -> dict[str, list[str]]:
    policy = directives(response["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]  # jQuery's parseHTML sets a base in a fresh document
    assert policy["frame-ancestors"] == ["'none'"]
    return policy


# --- API responses --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_api_json_gets_the_strict_policy_and_the_common_headers(client):
    response = client.get("/api/v1/health/")

    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Security-Policy"] == STRICT == API_POLICY
    assert response["X-Frame-Options"] == "DENY"
    assert_common_headers(response)


@pytest.mark.django_db
def test_problem_json_errors_get_the_strict_policy(client):
    response = client.get("/api/v1/customers/")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["Content-Security-Policy"] == STRICT
    assert_common_headers(response)


@pytest.mark.django_db
def test_a_path_nobody_serves_gets_the_strict_policy(client):
    response = client.get("/nothing-here/")

    assert response.status_code == 404
    assert response["Content-Security-Policy"] == STRICT
    assert_common_headers(response)


@pytest.mark.django_db
async def test_the_policy_is_added_under_asgi_too():
    response = await AsyncClient().get("/api/v1/schema/")

    assert response.status_code == 200
    assert response["Content-Security-Policy"] == STRICT
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_policy_set_by_the_view_is_kept(rf):
    from django.http import HttpResponse

    from cmsproject.security import ContentSecurityPolicyMiddleware

    def view(request):
        response = HttpResponse("<p>own</p>")
        response["Content-Security-Policy"] = "default-src 'none'"
        return response

    response = ContentSecurityPolicyMiddleware(view)(rf.get("/"))

    assert response["Content-Security-Policy"] == "default-src 'none'"


# --- The storefront -------------------------------------------------------------------------------
@pytest.mark.django_db
def test_storefront_policy_is_same_origin_with_no_inline_script_or_style(client):
    response = client.get("/")

    assert response.status_code == 200
    policy = assert_page_policy(response)
    assert policy["style-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert_common_headers(response)


@pytest.mark.django_db
def test_storefront_may_connect_to_the_socket_it_is_given(client, monkeypatch, settings):
    settings.SERVICES_MODE = False
    monkeypatch.delenv("WS_PORT", raising=False)

    policy = directives(client.get("/")["Content-Security-Policy"])

    assert policy["connect-src"] == ["'self'", "ws://testserver"]


@pytest.mark.django_db
def test_storefront_in_services_mode_may_connect_to_the_websocket_port(
    client, monkeypatch, settings
):
    settings.SERVICES_MODE = True
    monkeypatch.setenv("WS_PORT", "8001")

    settings.ALLOWED_HOSTS = ["shop.example.com"]

    response = client.get("/", HTTP_HOST="shop.example.com:8000", secure=True)

    assert directives(response["Content-Security-Policy"])["connect-src"] == [
        "'self'",
        "wss://shop.example.com:8001",
    ]


@pytest.mark.django_db
@override_settings(CMS_PUBLIC_WS_URL="wss://live.example.com/ws/v1/live")
def test_storefront_may_connect_to_the_published_socket_address(client):
    policy = directives(client.get("/")["Content-Security-Policy"])

    assert policy["connect-src"] == ["'self'", "wss://live.example.com"]


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("ws://127.0.0.1:8001/ws/v1/live", "ws://127.0.0.1:8001"),
        ("wss://live.example.com/ws/v1/live", "wss://live.example.com"),
        ("/ws/v1/live", None),
        ("https://example.com/", None),
    ],
)
def test_websocket_origin(url, origin):
    assert websocket_origin(url) == origin


# --- The admin and other pages --------------------------------------------------------------------
@pytest.mark.django_db
def test_admin_policy_allows_inline_styles_but_never_inline_script(client):
    response = client.get("/admin/login/")

    assert response.status_code == 200
    policy = assert_page_policy(response)
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    assert_common_headers(response)


@pytest.mark.django_db
def test_swagger_ui_page_allows_its_inline_start_script(client):
    response = client.get("/api/v1/docs/")

    assert response.status_code == 200
    policy = directives(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["frame-ancestors"] == ["'none'"]


@pytest.mark.parametrize(("debug", "policy"), [(True, "frame-ancestors 'none'"), (False, None)])
def test_graphiql_loads_from_its_cdn_in_debug_only(rf, settings, debug, policy):
    settings.DEBUG = debug
    request = rf.get("/graphql/", HTTP_ACCEPT="text/html")
    request.resolver_match = resolve("/graphql/")

    assert page_policy(request) == (policy or PAGE_POLICY)


class InlineCode(HTMLParser):
    """Collects inline scripts and inline event handlers: what `script-src 'self'` refuses."""

    EXECUTABLE_TYPES = {"", "text/javascript", "module", "application/javascript"}

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        executable = (attributes.get("type") or "").lower() in self.EXECUTABLE_TYPES
        if tag == "script" and "src" not in attributes and executable:
            self.found.append(f"inline <script> at line {self.getpos()[0]}")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"handler {name}= on <{tag}> at line {self.getpos()[0]}")
            if name in {"href", "src", "action"} and (value or "").lower().startswith(
                "javascript:"
            ):
                self.found.append(f"javascript: URL on <{tag}> at line {self.getpos()[0]}")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


def project_templates() -> list[Path]:
    roots = [REPO / "templates", *REPO.glob("*/templates")]
    return sorted(path for root in roots for path in root.rglob("*.html"))


@pytest.mark.parametrize(
    "template", project_templates(), ids=lambda path: str(path.relative_to(REPO))
)
def test_templates_have_no_inline_script(template):
    source = re.sub(r"{%.*?%}|{{.*?}}", "", template.read_text(), flags=re.S)

    assert inline_code(source) == []


def admin_pages_without_arguments() -> list[str]:
    """Every admin page reachable without an object id: index, change lists, add forms and the
    custom views (reports, pickers)."""
    pages = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLPattern):
                if "<" not in route and "(?P" not in route and "logout" not in route:
                    pages.append("/" + route.lstrip("^").rstrip("$"))
            else:
                walk(pattern.url_patterns, route)

    walk(admin.site.urls[0], "admin/")
    return sorted(set(pages))


@pytest.mark.django_db
def test_rendered_admin_pages_have_no_inline_script(client, superuser):
    client.force_login(superuser)
    checked = 0

    for url in admin_pages_without_arguments():
        response = client.get(url)
        if response.status_code != 200 or not response["Content-Type"].startswith("text/html"):
            continue
        checked += 1
        assert (
            "'unsafe-inline'" not in directives(response["Content-Security-Policy"])["script-src"]
        ), url
        assert inline_code(response.content.decode()) == [], url

    assert checked > 20  # the change lists of every app, not just the index


@pytest.mark.django_db
def test_rendered_storefront_has_no_inline_script(client):
    assert inline_code(client.get("/").content.decode()) == []


# --- HSTS -----------------------------------------------------------------------------------------
@pytest.mark.django_db
@override_settings(SECURE_HSTS_SECONDS=3600)
def test_hsts_is_sent_on_secure_requests_only(client):
    secure = client.get("/api/v1/health/", secure=True)
    plain = client.get("/api/v1/health/")

    assert secure["Strict-Transport-Security"] == "max-age=3600"
    assert "Strict-Transport-Security" not in plain


def test_behind_a_tls_proxy_production_insists_on_https(settings_with):
    loaded = settings_with(
        SECRET_KEY="k" * 50, ALLOWED_HOSTS="example.com", CMS_BEHIND_TLS_PROXY="1"
    )

    assert loaded["SECURE_HSTS_SECONDS"] == 30 * 24 * 3600
    assert loaded["SECURE_SSL_REDIRECT"] is True
    assert loaded["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    assert loaded["SESSION_COOKIE_SECURE"] is True


def test_production_always_sends_nosniff_referrer_policy_and_frame_denial(settings_with):
    loaded = settings_with(SECRET_KEY="k" * 50, ALLOWED_HOSTS="example.com")

    assert loaded["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert loaded["SECURE_REFERRER_POLICY"] == "same-origin"
    assert loaded["X_FRAME_OPTIONS"] == "DENY"
    assert "SECURE_HSTS_SECONDS" not in loaded  # Django's default, 0: no TLS proxy declared
    mw = loaded["MIDDLEWARE"]
    assert mw.index("cmsproject.security.ContentSecurityPolicyMiddleware") == (
        mw.index("django.middleware.security.SecurityMiddleware") + 1
    )


# --- GraphQL introspection ------------------------------------------------------------------------
INTROSPECTION = "{ __schema { queryType { name } } }"


def graphql(client, query: str):
    return client.post("/graphql/", {"query": query}, content_type="application/json")


@pytest.mark.django_db
@override_settings(CMS_GRAPHQL_INTROSPECTION=False)
@pytest.mark.parametrize(
    "query",
    [
        INTROSPECTION,
        '{ __type(name: "Query") { name } }',
        "{ ...Sneaky } fragment Sneaky on Query { __schema { types { name } } }",
    ],
    ids=["schema", "type", "through-a-fragment"],
)
def test_introspection_off_is_refused_with_a_clear_error(client, query):
    response = graphql(client, query)

    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    error = body["errors"][0]
    assert error["extensions"] == {"code": "INTROSPECTION_DISABLED"}
    assert "introspection is disabled" in error["message"]
    assert "CMS_GRAPHQL_INTROSPECTION=1" in error["message"]


@pytest.mark.django_db
@override_settings(CMS_GRAPHQL_INTROSPECTION=False)
def test_typename_still_answers_with_introspection_off(client):
    assert graphql(client, "{ __typename }").json() == {"data": {"__typename": "Query"}}


@pytest.mark.django_db
@override_settings(CMS_GRAPHQL_INTROSPECTION=True)
def test_introspection_on_answers(client):
    response = graphql(client, INTROSPECTION)

    assert response.status_code == 200
    assert response.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({"SECRET_KEY": "k" * 50, "ALLOWED_HOSTS": "example.com"}, False),
        (
            {"SECRET_KEY": "k" * 50, "ALLOWED_HOSTS": "x.com", "CMS_GRAPHQL_INTROSPECTION": "1"},
            True,
        ),
        ({"DEBUG": "1"}, True),
        ({"DEBUG": "1", "CMS_GRAPHQL_INTROSPECTION": "0"}, False),
    ],
    ids=["production", "production-asked-for", "debug", "debug-turned-off"],
)
def test_introspection_defaults_to_debug_unless_set(settings_with, env, enabled):
    assert settings_with(**env)["CMS_GRAPHQL_INTROSPECTION"] is enabled


@pytest.mark.django_db
def test_a_graphql_request_without_a_query_is_the_clients_mistake_not_a_logged_failure(
    client, caplog
):
    response = client.get("/graphql/")

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "Must provide query string."}]}
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


@override_settings(CMS_GRAPHQL_INTROSPECTION=False)
def test_contracts_still_print_the_sdl_with_introspection_off():
    from cmsproject.contracts import graphql_sdl

    assert "type Query" in graphql_sdl()


# --- Secrets come from the environment only -------------------------------------------------------
# SECRET_KEY, *_PASSWORD, *_TOKEN and their kin; not PASSWORD_HASHERS or *_TOKEN_LIFETIME.
SECRET_NAME = re.compile(
    r"(^|_)(SECRET(_KEY)?|PASSWORD|PASSWD|TOKEN|PASSPHRASE|PRIVATE_KEY|SIGNING_KEY|API_KEY)$"
)
# A URL with a password in it: `scheme://user:password@host`.
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
ENVIRONMENT_READERS = {"get", "getenv", "env_bool", "env_list", "setdefault"}


def _name_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _literal_strings(value: ast.AST) -> list[str]:
    """The string literals of an expression, except the variable names given to the
    environment (`os.environ.get("NAME", ...)`, `os.environ["NAME"]`)."""
    names: set[int] = set()
    for node in ast.walk(value):
        if isinstance(node, ast.Call):
            func = node.func
            reader = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if reader in ENVIRONMENT_READERS and node.args:
                names.add(id(node.args[0]))
        if isinstance(node, ast.Subscript) and _name_of(node.value) == "environ":
            names.add(id(node.slice))
    return [
        node.value
        for node in ast.walk(value)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in names
    ]


def secret_literals(source: str) -> list[str]:
    """`NAME = <a non-empty literal>` (or an environment read with one as its default) for every
    setting, dict key or keyword whose name looks like a secret."""
    found = []
    for node in ast.walk(ast.parse(source)):
        pairs: list[tuple[str | None, ast.AST]] = []
        if isinstance(node, ast.Assign):
            pairs = [(_name_of(target), node.value) for target in node.targets]
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and node.value is not None:
            pairs = [(_name_of(node.target), node.value)]
        elif isinstance(node, ast.Dict):
            pairs = [
                (key.value, value)
                for key, value in zip(node.keys, node.values, strict=True)
                if isinstance(key, ast.Constant) and isinstance(key.value, str)
            ]
        elif isinstance(node, ast.Call):
            pairs = [(keyword.arg, keyword.value) for keyword in node.keywords]
        for name, value in pairs:
            if name and SECRET_NAME.search(name):
                found += [
                    f"{name} (line {value.lineno}): {literal!r}"
                    for literal in _literal_strings(value)
                    if literal
                ]
    return found


def test_no_secret_setting_has_a_literal_value_or_default():
    assert secret_literals(SETTINGS_FILE.read_text()) == []


def test_no_setting_has_credentials_in_a_literal_url():
    literals = [
        node.value
        for node in ast.walk(ast.parse(SETTINGS_FILE.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]

    assert [value for value in literals if CREDENTIALS_IN_URL.search(value)] == []


@pytest.mark.parametrize(
    "source",
    [
        'SECRET_KEY = "dev-key"',
        'EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "hunter2")',
        'SENTRY_TOKEN = os.getenv("SENTRY_TOKEN") or "abc"',
        'CACHES = {"default": {"PASSWORD": "swordfish"}}',
        'SIMPLE_JWT = dict(SIGNING_KEY="x", API_KEY="y")',
    ],
)
def test_the_secret_audit_catches(source):
    assert secret_literals(source) != []


@pytest.mark.parametrize(
    "source",
    [
        'SECRET_KEY = os.environ.get("SECRET_KEY", "")',
        'EMAIL_HOST_PASSWORD = os.environ["EMAIL_HOST_PASSWORD"]',
        'AUTH_PASSWORD_VALIDATORS = [{"NAME": "django.contrib.auth.password_validation.X"}]',
        'SIMPLE_JWT = {"ACCESS_TOKEN_LIFETIME": "5m", "SIGNING_KEY": os.environ["JWT_KEY"]}',
        'CACHE_KEY_PREFIX = os.environ.get("CMS_CACHE_PREFIX", "cms")',
    ],
)
def test_the_secret_audit_passes(source):
    assert secret_literals(source) == []


def test_debug_without_a_secret_key_gets_a_random_one_not_a_literal(settings_with, tmp_path):
    first = settings_with(DEBUG="1", CMS_VAR_DIR=str(tmp_path))["SECRET_KEY"]
    second = settings_with(DEBUG="1", CMS_VAR_DIR=str(tmp_path))["SECRET_KEY"]
    (tmp_path / "secret-key").write_text("kept-by-make-run\n")
    kept = settings_with(DEBUG="1", CMS_VAR_DIR=str(tmp_path))["SECRET_KEY"]

    assert len(first) >= 50
    assert first != second
    assert kept == "kept-by-make-run"
