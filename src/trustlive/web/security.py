"""Request middleware: who is asking (cookie or bearer token), CSRF, and the UI language."""

from __future__ import annotations

from typing import Any

from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from trustlive.web import i18n

SESSION_COOKIE = "tl_session"
CSRF_COOKIE = "tl_csrf"
CSRF_HEADER = "x-csrf-token"
LANG_COOKIE = "tl_lang"
ASSET_PREFIXES = ("/static/", "/media/")


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


class AuthMiddleware:
    """Resolve the caller once per request into ``scope["user"]`` (a Principal, or None).

    A bearer token wins over the cookie, so API clients are never confused by a browser session.
    The lookup is one autocommit query, finished before the handler starts, and shared by the
    requests that arrive together (``accounts.service.PrincipalLoader``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(ASSET_PREFIXES):
            # Static files and media are public: no database round trip for every stylesheet.
            scope["user"], scope["auth"] = None, None
            await self.app(scope, receive, send)
            return
        connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope)
        token = bearer_token(connection)
        via = "bearer"
        if token is None:
            token = connection.cookies.get(SESSION_COOKIE)
            via = "cookie"
        principal = None
        if token:
            principal = await scope["litestar_app"].state.principals.resolve(token)
            # A cookie can only carry a web session; a token only an API session.
            if principal is not None and (via == "cookie") != (principal.session_kind == "web"):
                principal = None
        scope["user"] = principal
        scope["auth"] = via if principal else None
        await self.app(scope, receive, send)


class CSRFGate:
    """CSRF protection for everything that rides on the browser's session cookie.

    Requests authenticated by a bearer token, and API calls that carry no session cookie, have no
    ambient authority to abuse and pass straight through; everything else goes through Litestar's
    double-submit CSRF check (form field ``_csrf_token`` or header ``X-CSRF-Token``).
    """

    def __init__(self, app: ASGIApp, config: CSRFConfig) -> None:
        self.app = app
        self.protected = CSRFMiddleware(app, config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope)
        is_api = scope["path"].startswith("/api/")
        if bearer_token(connection) or (is_api and SESSION_COOKIE not in connection.cookies):
            await self.app(scope, receive, send)
            return
        await self.protected(scope, receive, send)


def csrf_config(secret: str, secure: bool) -> CSRFConfig:
    return CSRFConfig(
        secret=secret,
        cookie_name=CSRF_COOKIE,
        header_name=CSRF_HEADER,
        cookie_secure=secure,
        cookie_samesite="lax",
        cookie_httponly=False,  # htmx reads it from the page's meta tag, not the cookie
    )


class LocaleMiddleware:
    """Pick the UI language: ``tl_lang`` cookie, else Accept-Language, else the default."""

    def __init__(self, app: ASGIApp, default: str) -> None:
        self.app = app
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope)
        locale = i18n.negotiate(
            connection.cookies.get(LANG_COOKIE), connection.headers.get("accept-language"), self.default
        )
        token = i18n.set_locale(locale)
        scope.setdefault("state", {})["locale"] = locale
        try:
            await self.app(scope, receive, send)
        finally:
            i18n.reset_locale(token)
