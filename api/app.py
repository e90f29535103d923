"""``create_app(settings)``: the ASGI application of one replica.

A plain snapshot read is answered first, by :class:`api.plain.PlainReads` (the layers' checks in one pass) when it
can be; everything else goes through the layers, outermost first: :class:`api.limits.ConnectionCap` ->
:class:`ReplicaHeader` and CORS (only when origins are configured; CORS answers preflights, and its headers reach
401/403 answers too) -> :class:`api.gate.Gate` (size limits; API keys when auth is on) ->
:class:`api.fastpath.FastPath` (the snapshot and events routes as raw ASGI) -> :class:`ReplicaHeader` -> FastAPI
(everything else: the dashboard at ``/`` and ``/static/``, ``/docs`` (``api.docs``), the login form when auth is
on, and the lifespan that owns the Redis clients and the hub, closing both on shutdown), whose responses carry the
security headers of :mod:`api.headers`."""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from time import perf_counter
from typing import Final

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from redis.exceptions import RedisError
from starlette.middleware.cors import CORSMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import KeyStore
from api.connections import CONNECTIONS, install_accept_counter
from api.docs import install_docs
from api.fastpath import FastPath, hot_route
from api.frames import REPLICA_HEADER
from api.gate import Gate
from api.headers import SecurityHeaders
from api.limits import ConnectionCap
from api.login import build_login_router
from api.mux import PATH as MUX_PATH
from api.plain import PlainReads
from api.public import REDIS_UNAVAILABLE, clip
from api.routes import build_router
from api.settings import ApiSettings
from api.state import AppState, ServiceUnavailable
from kiwoom_cache.errors import ContractError

log = logging.getLogger(__name__)

EXPOSED_HEADERS = ["ETag", "Last-Modified", "X-Kiwoom-Ranking-Id", "X-Kiwoom-Stale", "X-Kiwoom-Stale-Reason",
                   "X-Kiwoom-Publisher", "X-Kiwoom-Replica"]
#: The dashboard: plain files, no build step (shipped as package data, see pyproject.toml).
STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
#: The web font's type; Python < 3.12 knows it only where the system has /etc/mime.types.
mimetypes.add_type("font/woff2", ".woff2")


class ApiApp:
    """The replica's ASGI callable; ``state`` and ``fastapi`` are exposed for tests and embedding."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.state = AppState(settings)
        #: None when auth is off. A key file that cannot be read stops the replica here, at start.
        self.keys = KeyStore(settings.auth_keys, settings.auth_keys_file, reload_s=settings.auth_reload_s) \
            if settings.auth_enabled else None
        if self.keys is None:
            log.warning("auth off: every route is public (set KIWOOM_API_AUTH_KEYS_FILE to require API keys)")
        self.state.keys = self.keys
        self.fast = FastPath(self.state, fallback=_unset)
        self.fastapi = _build_fastapi(self.state, self.fast, self.keys)
        # Only FastAPI's answers need the header added: the fast path and the gate set it on their own, so a
        # snapshot or a stream frame never passes through a send wrapper for it (with CORS off).
        tagged = ReplicaHeader(self.fastapi, settings.replica_id, fast_path=False)
        self.fast.fallback = tagged
        # With the fast path off, GETs go through FastAPI (whose routes answer GET only); HEAD still goes through
        # the fast path, which answers it for every GET route.
        inner: ASGIApp = Gate(self.fast if settings.fast_path else HeadViaFastPath(self.fast, tagged), self.keys,
                              (REPLICA_HEADER, settings.replica_id.encode()))
        if settings.cors_origins:
            # With auth on: the Authorization header may be sent, and credentialed requests (the login cookie) are
            # allowed, which browsers accept only with an explicit origin (settings refuse ``*`` then).
            auth = self.keys is not None
            inner = CORSMiddleware(inner, allow_origins=settings.cors_origins, allow_methods=["GET", "HEAD"],
                                   allow_headers=["Last-Event-ID", "If-None-Match", "Cache-Control",
                                                  *(["Authorization"] if auth else [])],
                                   allow_credentials=auth, expose_headers=EXPOSED_HEADERS, max_age=600)
            # CORS answers preflights itself: those get the header here.
            inner = ReplicaHeader(inner, settings.replica_id, fast_path=settings.fast_path)
        self.cap = ConnectionCap(inner, settings.max_connections, settings.replica_id,
                                  redis_pool=settings.redis_max_connections)
        self.state.cap = self.cap
        self._asgi: ASGIApp = self.cap
        #: The plain snapshot read in one place (api.plain); with auth or CORS on, their layers answer it too.
        self.plain = PlainReads(self.fast, self.state) \
            if settings.fast_path and self.keys is None and not settings.cors_origins else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plain = self.plain
        if plain is not None and scope["type"] == "http":
            started = perf_counter()
            answer = plain.answer(scope)
            cap = self.cap
            conns = CONNECTIONS  # cap.at_cap() inlined: this is the hottest path of the replica
            if answer is not None and cap.open < cap.cap and conns.open - len(conns.pending) <= cap.cap:
                cap.open += 1
                try:
                    await send(answer[0])
                    await send(answer[1])
                finally:
                    cap.open -= 1
                plain.latency.observe(perf_counter() - started)
                return
        await self._asgi(scope, receive, send)


class ReplicaHeader:
    """Adds ``X-Kiwoom-Replica`` to every HTTP response.

    Requests the fast path answers itself are passed through untouched: it sets the header on its own
    responses (``api.fastpath``, ``api.sse``), because a send wrapper would cost a coroutine call on every
    snapshot and on every frame of every long-lived stream.
    """

    def __init__(self, app: ASGIApp, replica_id: str, *, fast_path: bool) -> None:
        self.app = app
        self.header = (REPLICA_HEADER, replica_id.encode())
        self.fast_path = fast_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.fast_path and (hot_route(scope) is not None or scope["path"] == MUX_PATH)):
            await self.app(scope, receive, send)
            return
        header = self.header

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if all(name != REPLICA_HEADER for name, _ in headers):  # fast-path code behind FastAPI set it
                    headers.append(header)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, tagged)


class HeadViaFastPath:
    """Routes ``HEAD`` to the fast path and everything else to ``app`` (used when the fast path is off)."""

    def __init__(self, fast: FastPath, app: ASGIApp) -> None:
        self.fast = fast
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = scope["type"] == "http" and scope["method"] == "HEAD"
        await (self.fast if head else self.app)(scope, receive, send)


async def _unset(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover - replaced in __init__
    raise RuntimeError("fallback app not set")


def _build_fastapi(state: AppState, fast: FastPath, keys: KeyStore | None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        install_accept_counter(asyncio.get_running_loop())
        if not CONNECTIONS.cap:  # set by api.cli with the protocol
            log.warning("served without api.deadline's protocol (not started by kiwoom-api / python -m api): "
                        "connections have no request deadline and are not counted against the cap")
        await state.open()
        try:
            yield
        finally:
            await state.aclose()

    app = FastAPI(
        title="kiwoom-cache API",
        version="1",
        summary="Kiwoom opt10023 volume-surge rankings from Redis: snapshots, history and resumable SSE.",
        lifespan=lifespan,
        docs_url=None,   # api.docs serves /docs without a CDN; no ReDoc
        redoc_url=None,
    )
    app.add_middleware(SecurityHeaders)
    app.include_router(build_router(state, fast))
    if keys is not None:
        app.include_router(build_login_router(keys, cookie_max_age_s=state.settings.auth_cookie_max_age_s,
                                              cookie_secure=state.settings.auth_cookie_secure))
    install_docs(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    @app.exception_handler(RedisError)
    async def redis_down(request: Request, exc: RedisError) -> JSONResponse:
        log.warning("%s: redis unavailable: %s: %s", request.url.path, type(exc).__name__, exc)
        return JSONResponse({"detail": REDIS_UNAVAILABLE}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422 shape, with the echoed input clipped."""
        errors = [{**err, "input": clip(str(err["input"]))} if "input" in err else err for err in exc.errors()]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(_request: Request, exc: ServiceUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(ContractError)
    async def bad_document(request: Request, exc: ContractError) -> JSONResponse:
        log.error("%s: document in redis breaks the contract: %s", request.url.path, exc)
        return JSONResponse({"detail": "bad document in redis", "reason": str(exc)}, status_code=502)

    return app


def create_app(settings: ApiSettings | None = None) -> ApiApp:
    return ApiApp(settings or ApiSettings())
