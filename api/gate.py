"""The replica's front door, in front of the fast path and FastAPI: request size limits, then API keys.

Limits (the same as the shipped nginx config's ``large_client_header_buffers 4 8k``, so a request nginx
forwards is one the replica accepts): request target (path + query) at most 8 KiB -> 414, any header line
at most 8 KiB or all headers together at most 32 KiB -> 431. uvicorn's httptools parser has no limit of its
own, so this is where the replica enforces one; the h11 parser is capped too (``api.cli``).

With auth on, every path needs a key except the probes (``/healthz``, ``/readyz``), the login form and the
dashboard's static files; the dashboard itself (``/``) redirects to the login form instead of answering 401.
A rankings path needs the ``rankings`` scope for its feed, ``/metrics`` and the docs their own scope; any
other path needs a valid key (so unknown paths reveal nothing either). The key found is left in the ASGI
scope (:data:`KEY_SCOPE`) for routes that filter by it (``/v1/feeds``). Cost on the hot routes: a scan of the
request headers, one SHA-256 and one dict lookup.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import ApiKey, KeyStore, key_from
from api.auth import Scope as KeyScope
from api.edge import MAX_HEAD, MAX_HEADER_LINE, MAX_HEADERS, MAX_TARGET, TARGET_TOO_LONG, json_reply
from api.fastpath import PREFIX
from api.mux import PATH as MUX_PATH
from api.mux import MuxInputError, parse_feeds

#: ASGI scope entry holding the request's :class:`api.auth.ApiKey` (absent when auth is off).
KEY_SCOPE: Final = "kiwoom.api_key"
__all__ = ["KEY_SCOPE", "MAX_HEAD", "MAX_HEADERS", "MAX_HEADER_LINE", "MAX_TARGET", "Gate", "Need", "need_of"]

REALM: Final = b'Bearer realm="kiwoom-cache"'
_PUBLIC: Final = frozenset({"/healthz", "/readyz", "/login", "/logout", "/favicon.ico"})
_DOCS: Final = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


class Need(Enum):
    """What a path requires."""

    PUBLIC = "public"
    #: The dashboard page: without a valid key, a redirect to the login form.
    PAGE = "page"
    #: Any valid key.
    KEY = "key"
    FEED = "feed"
    #: ``/v1/events?feeds=``: every feed named.
    FEEDS = "feeds"
    METRICS = "metrics"
    DOCS = "docs"


def need_of(path: str) -> tuple[Need, str]:
    """What ``path`` requires, and the feed for rankings paths."""
    if path.startswith(PREFIX):
        return Need.FEED, path[len(PREFIX):].partition("/")[0]
    if path == MUX_PATH:
        return Need.FEEDS, ""
    if path in _PUBLIC or path.startswith("/static/"):
        return Need.PUBLIC, ""
    if path == "/":
        return Need.PAGE, ""
    if path == "/metrics":
        return Need.METRICS, ""
    if path in _DOCS:
        return Need.DOCS, ""
    return Need.KEY, ""


class Gate:
    """ASGI layer: size limits for every request, and the key check when ``keys`` is given."""

    def __init__(self, app: ASGIApp, keys: KeyStore | None, replica_header: tuple[bytes, bytes]) -> None:
        self.app = app
        self.keys = keys
        self.replica_header = replica_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # A WebSocket checks its key itself (api.ws: the cookie, a header, or its first message).
            if scope["type"] == "websocket" and (len(scope.get("raw_path") or scope["path"])
                                                 + len(scope["query_string"]) > MAX_TARGET
                                                 or _too_large(scope["headers"]) is not None):
                await send({"type": "websocket.close", "code": 1009})  # before accept: HTTP 403
                return
            await self.app(scope, receive, send)
            return
        if len(scope.get("raw_path") or scope["path"]) + len(scope["query_string"]) > MAX_TARGET:
            await self.reply(send, 414, TARGET_TOO_LONG)
            return
        keys = self.keys
        if keys is None:
            problem = _too_large(scope["headers"])
            if problem is None:
                await self.app(scope, receive, send)
            else:
                await self.reply(send, 431, problem)
            return
        problem, authorization, cookie = _scan(scope["headers"])
        if problem is not None:
            await self.reply(send, 431, problem)
            return
        need, feed = need_of(scope["path"])
        if need is Need.PUBLIC:
            await self.app(scope, receive, send)
            return
        secret = key_from(authorization, cookie)
        key = keys.lookup(secret) if secret else None
        if key is None:
            if need is Need.PAGE:
                await self.redirect_to_login(send)
            elif secret is None:
                await self.reply(send, 401, "authentication required: send Authorization: Bearer <API key>",
                                 [(b"www-authenticate", REALM)])
            else:
                await self.reply(send, 401, "invalid API key",
                                 [(b"www-authenticate", REALM + b', error="invalid_token"')])
            return
        denied = _denied(key, need, feed) if need is not Need.FEEDS else _denied_feeds(key, scope["query_string"])
        if denied is not None:
            await self.reply(send, 403, denied, [(b"www-authenticate", REALM + b', error="insufficient_scope"')])
            return
        scope[KEY_SCOPE] = key
        await self.app(scope, receive, send)

    async def reply(self, send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None,
                    ) -> None:
        status, head, body = json_reply(status, detail, self.replica_header, headers)
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})

    async def redirect_to_login(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 303, "headers": [
            (b"location", b"/login"), (b"content-length", b"0"), (b"cache-control", b"no-store"),
            self.replica_header]})
        await send({"type": "http.response.body", "body": b""})


_LINE_TOO_LARGE: Final = "a request header is too large (limit 8 KiB)"
_ALL_TOO_LARGE: Final = "request headers too large (limit 32 KiB)"


def _too_large(headers: list[tuple[bytes, bytes]]) -> str | None:
    """Which header limit the request breaks, if any."""
    total = 0
    for name, value in headers:
        size = len(name) + len(value)
        if size > MAX_HEADER_LINE:
            return _LINE_TOO_LARGE
        total += size
    return _ALL_TOO_LARGE if total > MAX_HEADERS else None


def _scan(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, bytes | None, bytes | None]:
    """:func:`_too_large` and, in the same pass, the ``Authorization`` and first ``Cookie`` header values."""
    total = 0
    authorization = cookie = None
    for name, value in headers:
        size = len(name) + len(value)
        if size > MAX_HEADER_LINE:
            return _LINE_TOO_LARGE, None, None
        total += size
        if name == b"authorization":
            authorization = value
        elif name == b"cookie" and cookie is None:
            cookie = value
    return (_ALL_TOO_LARGE if total > MAX_HEADERS else None), authorization, cookie


def _denied_feeds(key: ApiKey, query_string: bytes) -> str | None:
    """Why ``key`` may not read one of the feeds named by ``feeds=`` (a bad list is the route's to report)."""
    try:
        feeds = parse_feeds(query_string, max_feeds=1 << 16)
    except MuxInputError:
        return None
    refused = [feed for feed in feeds if not key.may_read(feed)]
    return f"this key may not read {', '.join(refused)}" if refused else None


def _denied(key: ApiKey, need: Need, feed: str) -> str | None:
    """Why ``key`` may not do this, or None."""
    if need is Need.FEED:
        return None if key.may_read(feed) else "this key may not read this feed"
    if need is Need.METRICS:
        return None if KeyScope.METRICS in key.scopes else "this key lacks the metrics scope"
    if need is Need.DOCS:
        return None if KeyScope.DOCS in key.scopes else "this key lacks the docs scope"
    return None
