"""Raw-ASGI handlers for the two hot routes, mounted in front of FastAPI.

docs/design-figures.md §2: a FastAPI route returning cached bytes reached 8.6% of nginx's rate, a bare ASGI app
38%. So ``GET /v1/rankings/{feed}`` and ``GET /v1/rankings/{feed}/events`` are matched here by string
operations and answered from the hub's memory; every other path (and every non-GET) falls through to
FastAPI untouched. FastAPI still declares both routes (``api.routes``), so they appear in ``/docs``, and
its handlers answer through these same functions (:class:`RawResponse`), so behaviour cannot diverge
when the fast path is turned off (``KIWOOM_API_FAST_PATH=false``).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

from redis.exceptions import RedisError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.edge import EVENT_ID_EXPECTED, ResumeId, last_event_id, parse_resume_id, send_json
from api.frames import REPLICA_HEADER, stream_headers
from api.hub import Hub
from api.mux import PATH as MUX_PATH
from api.mux import MuxInputError, parse_feeds, parse_positions, serve_mux
from api.public import REDIS_UNAVAILABLE, clip
from api.replies import bytes_value
from api.snapshot import (
    Current,
    Prepared,
    PreparedCache,
    QueryError,
    answer_until,
    cache_control,
    etag_matches,
    freshness,
    parse_snapshot_query,
    render_body,
    snapshot_headers,
)
from api.sse import serve_events
from api.state import AppState, ServiceUnavailable
from api.ws import PATH as WS_PATH
from api.ws import serve_ws
from kiwoom_cache import contract
from kiwoom_cache.clock import now_ms
from kiwoom_cache.errors import ContractError

log = logging.getLogger(__name__)

PREFIX: Final = "/v1/rankings/"
EMPTY_BODY: Final[Message] = {"type": "http.response.body", "body": b""}


def hot_route(scope: Scope) -> tuple[str, bool] | None:
    """``(feed, is_events)`` when the fast path answers this request itself, else None."""
    if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and scope["path"].startswith(PREFIX):
        feed, slash, tail = scope["path"][len(PREFIX):].partition("/")
        if not slash or tail == "events":
            return feed, bool(slash)
    return None


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


class FastPath:
    """ASGI app: the hot routes here, everything else to ``fallback`` (the FastAPI app)."""

    def __init__(self, state: AppState, fallback: ASGIApp) -> None:
        self.state = state
        self.fallback = fallback
        self.replica_header = (REPLICA_HEADER, state.settings.replica_id.encode())
        #: Complete snapshot responses per feed, per ranking and per (query, staleness, Cache-Control).
        self.prepared = PreparedCache()
        #: Per snapshot path (``/v1/rankings/<feed>``, known feeds only): the answer to a plain read while it holds.
        self.current: dict[str, Current] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = hot_route(scope)
        if hot is not None:
            feed, events = hot
            await self.handle(scope, receive, send, feed, events=events)
            return
        if scope["type"] != "http":
            if scope["type"] == "websocket" and scope["path"] == WS_PATH:
                await self.websocket(scope, receive, send)
            else:
                await self.fallback(scope, receive, send)
            return
        if scope["path"] == MUX_PATH and scope["method"] in ("GET", "HEAD"):
            await self.handle_mux(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            if scope["method"] == "HEAD":  # balancers health-check with HEAD: every GET route answers it
                await self.fallback({**scope, "method": "GET"}, receive, _without_body(send))
            else:
                await self.fallback(scope, receive, send)
        finally:
            self.state.latency.observe(_route_label(scope["path"]), time.perf_counter() - started)

    async def error(self, send: Send, status: int, detail: object, headers: list[tuple[bytes, bytes]] | None = None,
                    ) -> None:
        """An error answer: ``{"detail": ...}``."""
        await self.reply(send, status, {"detail": detail}, headers)

    async def reply(self, send: Send, status: int, payload: Any,
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
        """A JSON answer naming the replica (api.app.ReplicaHeader leaves fast-path requests alone)."""
        await send_json(send, status, payload, [*(headers or []), self.replica_header])

    async def handle(self, scope: Scope, receive: Receive, send: Send, feed: str, *, events: bool) -> None:
        started = time.perf_counter()
        try:
            hub = self.state.require_hub()
            if events:
                await self.events(hub, scope, receive, send, feed, started=started)
                return
            await self.snapshot(hub, scope, send, feed)
        except ServiceUnavailable as exc:
            await self.error(send, 503, str(exc), [(b"retry-after", b"1")])
        except (RedisError, TimeoutError) as exc:  # TimeoutError: the read deadline (Hub.deadline) passed
            log.warning("%s: redis unavailable: %s: %s", scope["path"][:200], type(exc).__name__, exc)
            await self.error(send, 503, REDIS_UNAVAILABLE, [(b"retry-after", b"1")])
        except QueryError as exc:
            await self.error(send, 422, exc.detail)
        if not events:
            self.state.latency.observe("snapshot", time.perf_counter() - started)

    async def _feed(self, hub: Hub, feed: str, send: Send) -> Any:
        if not hub.live:  # the hub logs why (hub.last_error); clients learn only what failed
            raise ServiceUnavailable(REDIS_UNAVAILABLE)
        st = hub.ready(feed)
        if st is None:  # not in memory: Redis is asked, within the read deadline (a timer costs ~3 µs: not per hit)
            async with hub.deadline():
                st = await hub.lookup(feed)
        if st is None:
            await self.error(send, 404, f"unknown feed {clip(feed)!r}")
        return st

    async def snapshot(self, hub: Hub, scope: Scope, send: Send, feed: str) -> None:
        limit, fields = parse_snapshot_query(scope["query_string"])
        outage = hub.outage()
        if outage is not None and (st := hub.known(feed)) is not None:
            pass  # stale-if-error: Redis is unreachable, answer from memory and say so
        else:
            outage = None
            st = await self._feed(hub, feed, send)
            if st is None:
                return
        snap = st.snapshot
        if snap is None:  # nothing valid cached: ask Redis, so a bad document is reported, not hidden
            async with hub.deadline():
                raw = bytes_value(await hub.redis.get(contract.latest_key(feed)))
            if raw is None:
                await self.error(send, 404, f"feed {feed!r} has no ranking yet")
                return
            if hub.take_snapshot(st, raw) is None:
                log.error("feed %s: snapshot in redis breaks the contract: %s", feed, st.error)
                await self.reply(send, 502, {"detail": f"bad snapshot document in redis for feed {feed!r}",
                                             "reason": st.error})
                return
            snap = st.snapshot
            assert snap is not None
        now = now_ms()
        stale, liveness = freshness(hub, feed, snap, now)
        if outage is not None:
            stale = outage
        cache = cache_control(hub, st, snap, stale=stale, now_ms=now, shared_cache=outage is None)
        prepared = self.prepared.get(st, snap, (limit, fields, stale, liveness, cache))
        if prepared is None:
            body = render_body(snap, limit, fields, stale)
            headers = snapshot_headers(hub, st, snap, stale=stale, liveness=liveness, cache=cache)
            headers.append(self.replica_header)
            prepared = self.prepared.put(st, snap, (limit, fields, stale, liveness, cache),
                                         Prepared(headers, body, snap.id))
        if limit is None and fields is None and outage is None:
            self.current[PREFIX + feed] = Current(hub, st, snap, prepared, since=now,
                                                  until=answer_until(hub, feed, snap, stale=stale, now_ms=now))
        inm = _header(scope, b"if-none-match")
        # A new start message per answer (the CORS middleware rewrites its headers in place), over the prepared
        # headers, which are tuples: no layer can change what the next request is sent.
        if inm is not None and (inm == prepared.etag or etag_matches(inm, snap.id)):
            await send({**prepared.start_304})
            await send(EMPTY_BODY)
            return
        await send({**prepared.start_200})
        await send(prepared.body_message)

    async def events(self, hub: Hub, scope: Scope, receive: Receive, send: Send, feed: str, *,
                     started: float) -> None:
        rid = last_event_id(scope["headers"], scope["query_string"])
        resume = None
        if rid is not None:
            try:
                resume = parse_resume_id(rid)
            except ContractError:
                await self.error(send, 400, f"malformed Last-Event-ID {clip(rid)!r}: {EVENT_ID_EXPECTED}")
                return
        st = await self._feed(hub, feed, send)
        if st is None:
            return
        if scope["method"] == "HEAD":  # the headers of a stream, without opening one
            await send({"type": "http.response.start", "status": 200,
                        "headers": stream_headers(self.state.settings.replica_id)})
            await send({"type": "http.response.body", "body": b""})
            return
        self.state.latency.observe("events", time.perf_counter() - started)
        await serve_events(hub, st, resume, receive, send)


    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub = self.state.hub
        await serve_ws(hub if hub is not None and not hub.draining else None, self.state.keys, scope, receive, send)

    async def handle_mux(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /v1/events?feeds=...``: several feeds on one SSE stream (api.mux)."""
        started = time.perf_counter()
        try:
            hub = self.state.require_hub()
            try:
                feeds = parse_feeds(scope["query_string"], hub.settings.mux_max_feeds)
            except MuxInputError as exc:
                await self.error(send, 422, str(exc))
                return
            resume_text = last_event_id(scope["headers"], scope["query_string"])
            positions: list[ResumeId | None] = [None] * len(feeds)
            if resume_text is not None:
                try:
                    positions = parse_positions(resume_text, feeds)
                except MuxInputError as exc:
                    await self.error(send, 400, str(exc))
                    return
            if not hub.live:
                raise ServiceUnavailable(REDIS_UNAVAILABLE)
            states = []
            unknown = []
            async with hub.deadline():
                for feed in feeds:
                    st = await hub.lookup(feed)
                    if st is None:
                        unknown.append(feed)
                    else:
                        states.append(st)
            if unknown:
                await self.error(send, 404, f"unknown feed(s): {', '.join(unknown)}")
                return
            if scope["method"] == "HEAD":
                await send({"type": "http.response.start", "status": 200,
                            "headers": stream_headers(self.state.settings.replica_id)})
                await send({"type": "http.response.body", "body": b""})
                return
            self.state.latency.observe("events", time.perf_counter() - started)
            await serve_mux(hub, states, resume_text, receive, send, positions=positions)
        except ServiceUnavailable as exc:
            await self.error(send, 503, str(exc), [(b"retry-after", b"1")])
        except (RedisError, TimeoutError) as exc:
            log.warning("%s: redis unavailable: %s: %s", scope["path"][:200], type(exc).__name__, exc)
            await self.error(send, 503, REDIS_UNAVAILABLE, [(b"retry-after", b"1")])


_LABELS: Final = {"/v1/feeds": "feeds", "/healthz": "healthz", "/readyz": "readyz", "/metrics": "metrics",
                  "/docs": "docs", "/openapi.json": "openapi"}


def _route_label(path: str) -> str:
    """A bounded label set, whatever paths clients request."""
    if path.startswith(PREFIX) and path.endswith("/history"):
        return "history"
    return _LABELS.get(path, "other")


def _without_body(send: Send) -> Send:
    """HEAD answered by a GET handler: same status and headers (Content-Length included), no body bytes."""

    async def head_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return head_send


class MuxResponse(Response):
    """The FastAPI face of ``/v1/events`` (see :class:`RawResponse`)."""

    def __init__(self, fast: FastPath) -> None:
        super().__init__()
        self._fast = fast

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._fast.handle_mux(scope, receive, send)


class RawResponse(Response):
    """Lets a FastAPI route (declared for OpenAPI) answer through the fast-path code."""

    def __init__(self, fast: FastPath, feed: str, *, events: bool) -> None:
        super().__init__()
        self._fast, self._feed, self._events = fast, feed, events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._fast.handle(scope, receive, send, self._feed, events=self._events)
