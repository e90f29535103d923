"""Security headers for what a browser renders or loads: the dashboard, its static files, ``/docs``.

:class:`SecurityHeaders` wraps the FastAPI app, so it sees every request except the two hot routes, which
the fast path (``api.fastpath``) answers in front of FastAPI; it skips those here too, so their headers are
the same with the fast path on or off and no send wrapper sits on every frame of a stream. They are JSON
and SSE that no page embeds: the browser's ORB already refuses to hand them to a cross-origin
``<script>``/``<img>``, and the dashboard's own CSP allows no script but the page's files.

The dashboard's policy allows only its own files and connections and no inline script or style
(``api/static`` has none); Trusted Types make any future ``innerHTML``-style sink a violation too. Swagger
UI at ``/docs`` gets its own policy: its stylesheet draws icons from ``data:`` images.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.fastpath import hot_route

DOCS_PATH: Final = "/docs"

_COMMON: Final = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",   # the login form (api/login.py) posts to its own URL
    "frame-ancestors 'none'",
)
DASHBOARD_CSP: Final = "; ".join((*_COMMON, "img-src 'self'", "font-src 'self'",
                                  "require-trusted-types-for 'script'", "trusted-types 'none'"))
DOCS_CSP: Final = "; ".join((*_COMMON, "img-src 'self' data:"))

_BASE: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),          # for browsers that predate CSP frame-ancestors
    (b"referrer-policy", b"no-referrer"),   # the pages link nowhere; a feed name in the URL stays here
)
PAGE_HEADERS: Final = [*_BASE, (b"content-security-policy", DASHBOARD_CSP.encode())]
DOCS_HEADERS: Final = [*_BASE, (b"content-security-policy", DOCS_CSP.encode())]


class SecurityHeaders:
    """Adds the headers above to every response of the wrapped app but the hot routes'."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or hot_route(scope) is not None:
            await self.app(scope, receive, send)
            return
        extra = DOCS_HEADERS if scope["path"] == DOCS_PATH else PAGE_HEADERS

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
