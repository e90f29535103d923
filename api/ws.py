"""``/v1/ws``: a WebSocket carrying any number of feeds, subscribed and unsubscribed at any time.

Client messages (JSON text, at most ``KIWOOM_API_WS_MAX_MESSAGE`` bytes)::

    {"op": "subscribe", "feed": "a", "last_id": "<event id>"}   # last_id optional: resume after it
    {"op": "unsubscribe", "feed": "a"}
    {"op": "ping"}                                              # answered {"event": "pong"}
    {"op": "auth", "key": "<API key>"}                          # first message, when no cookie/header key

Server messages carry ``event`` and, per feed, ``feed``, ``id`` (the single-feed SSE id, to pass back as
``last_id``) and ``data`` (the document, as on the SSE stream)::

    {"event": "hello", "replica": "...", "auth": "required" | "ok" | "off", "max_feeds": 16}
    {"event": "subscribed", "feed": "a", "resumed_from": null}
    {"event": "snapshot" | "ranking" | "reset", "feed": "a", "id": "...", "data": {...}}
    {"event": "unsubscribed", "feed": "a"}
    {"event": "ping"}                   # every KIWOOM_API_PING_S
    {"event": "error", "op": "subscribe", "feed": "a", "detail": "..."}   # bad input: nothing else changes

A feed resumes by the rules of :mod:`api.cursor` (same ``reset`` reasons as SSE). Browsers cannot set headers
on a WebSocket: they authenticate with the login cookie (sent with the handshake), or with an ``auth``
message first. The key never goes in the URL (access logs, history). Cross-origin pages are refused unless
their origin is in ``KIWOOM_API_CORS_ORIGINS`` (a WebSocket is not subject to CORS, and would carry the cookie).

Close codes (:class:`CloseCode`): 1000 normal, 1001 replica shutting down (reconnect and resubscribe with each
feed's last id), 1008 too many messages queued, 1011 server error, 1013 try again later (connection cap),
4401 not authenticated (no key in time, or an invalid key), 4403 origin not allowed. A slow client is
dropped without a close frame (the browser reports 1006), like a slow SSE client.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import deque
from enum import IntEnum
from typing import Any, Final
from urllib.parse import urlsplit

from redis.exceptions import RedisError
from starlette.types import Receive, Scope, Send

from api.auth import ApiKey, KeyStore, presented_key
from api.cursor import FeedCursor
from api.edge import EVENT_ID_EXPECTED, dumps_text, parse_resume_id
from api.frames import reset_data
from api.hub import Hub
from api.multi import MultiOutput, Session
from api.public import REDIS_UNAVAILABLE, clip
from api.ring import Client, Frame, ResetReason, Snapshot
from api.runtime import Connection
from kiwoom_cache import contract
from kiwoom_cache.contract import EventName, WsOp
from kiwoom_cache.errors import ContractError

log = logging.getLogger(__name__)

PATH: Final = "/v1/ws"
#: Client messages waiting for the connection's task; more and the client is not reading our errors.
MAX_PENDING: Final = 64
#: The messages that never vary, encoded once.
_PING_MESSAGE: Final = dumps_text({"event": EventName.ping})
_PONG_MESSAGE: Final = dumps_text({"event": EventName.pong})
_AUTHENTICATED_MESSAGE: Final = dumps_text({"event": EventName.authenticated})
_OPS: Final = [op.value for op in WsOp]
_UNKNOWN_OP_HINT: Final = f"use {', '.join(_OPS[:-1])} or {_OPS[-1]}"


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    POLICY = 1008
    SERVER_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    UNAUTHORIZED = 4401
    FORBIDDEN_ORIGIN = 4403


def _message(feed: str, event: EventName, event_id: str | None, data: bytes) -> str:
    head = dumps_text({"feed": feed, "event": event, "id": event_id})
    return head[:-1] + ',"data":' + data.decode() + "}"


class WsOutput(MultiOutput):
    """One JSON text message per event; a ring frame's message is built once and shared."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def write(self, text: str, size: int = 0) -> None:
        """Send one message; ``size`` is its UTF-8 length when known (the slow-client check counts bytes)."""
        await self.conn.text(text, size)

    async def snapshot(self, cur: FeedCursor, snap: Snapshot) -> None:
        await self.write(_message(cur.feed, EventName.snapshot, snap.event_id, snap.doc))

    async def empty(self, cur: FeedCursor) -> None:
        pass  # "subscribed" was sent; rankings follow when there are some

    async def reset(self, cur: FeedCursor, reason: ResetReason, snap: Snapshot | None) -> None:
        await self.write(_message(cur.feed, EventName.reset, snap.event_id if snap else None,
                                  reset_data(cur.feed, reason, snap)))

    async def frames(self, cur: FeedCursor, frames: list[Frame]) -> None:
        for f in frames:
            message = f.ws
            if message is None:
                text = _message(cur.feed, EventName.ranking, f.event_id, f.doc)
                message = f.ws = (text, len(text.encode()))
            await self.write(*message)

    async def ping(self) -> None:
        await self.write(_PING_MESSAGE)

    async def end(self) -> None:
        await self.conn.send({"type": "websocket.close", "code": CloseCode.GOING_AWAY,
                              "reason": "replica shutting down"})


def origin_allowed(scope: Scope, allowed: list[str]) -> bool:
    """No ``Origin`` (not a browser), the page's own origin, or one of the CORS origins."""
    origin = host = None
    for name, value in scope["headers"]:
        if name == b"origin":
            origin = value.decode("latin-1")
        elif name == b"host":
            host = value.decode("latin-1")
    if origin is None or "*" in allowed or origin in allowed:
        return True
    if host is None:
        return False
    parts = urlsplit(origin)
    # A proxy passing ``Host $host`` drops the port; then the host names must match.
    return parts.netloc == host if ":" in host else parts.hostname == host


class WsSession(Session):
    """A WebSocket's feeds plus the commands its reader task queued."""

    def __init__(self, hub: Hub, client: Client, out: WsOutput, key: ApiKey | None, keys: KeyStore | None) -> None:
        super().__init__(hub, client, out)
        self.ws_out = out
        self.key = key
        self.keys = keys
        self.pending: deque[dict[str, Any] | str] = deque()
        self.overflow = False
        self.close_with: tuple[CloseCode, str] | None = None

    @property
    def authenticated(self) -> bool:
        return self.keys is None or self.key is not None

    def finished(self) -> bool:
        return super().finished() or self.close_with is not None or self.overflow

    async def error(self, detail: str, op: WsOp | None = None, feed: str | None = None) -> None:
        payload: dict[str, Any] = {"event": EventName.error}
        if op is not None:
            payload["op"] = op
        if feed is not None:
            payload["feed"] = feed
        payload["detail"] = detail
        await self.ws_out.write(dumps_text(payload))

    async def step(self) -> bool:
        if not self.pending:
            return False
        item = self.pending.popleft()
        if isinstance(item, str):  # the reader found it unusable
            await self.error(item)
            return True
        op = item.get("op")
        if not self.authenticated and op != WsOp.auth:
            self.close_with = (CloseCode.UNAUTHORIZED, "authenticate first: {\"op\":\"auth\",\"key\":...}")
        elif op == WsOp.auth:
            await self.auth(item)
        elif op == WsOp.subscribe:
            await self.subscribe(item)
        elif op == WsOp.unsubscribe:
            feed = item.get("feed")
            if not isinstance(feed, str) or not self.remove(feed):
                await self.error(f"not subscribed to {clip(str(feed))!r}", WsOp.unsubscribe,
                                 feed if isinstance(feed, str) else None)
            else:
                await self.ws_out.write(dumps_text({"event": EventName.unsubscribed, "feed": feed}))
        elif op == WsOp.ping:
            await self.ws_out.write(_PONG_MESSAGE)
        else:
            await self.error(f"unknown op {clip(str(op))!r}: {_UNKNOWN_OP_HINT}")
        return True

    async def auth(self, item: dict[str, Any]) -> None:
        if self.keys is None or self.key is not None:
            await self.error("already authenticated" if self.keys else "auth is off on this replica", WsOp.auth)
            return
        secret = item.get("key")
        key = self.keys.lookup(secret.encode()) if isinstance(secret, str) and 0 < len(secret) <= 512 else None
        if key is None:
            self.close_with = (CloseCode.UNAUTHORIZED, "invalid API key")
            return
        self.key = key
        await self.ws_out.write(_AUTHENTICATED_MESSAGE)

    async def subscribe(self, item: dict[str, Any]) -> None:
        hub = self.hub
        feed, last_id = item.get("feed"), item.get("last_id")
        if not isinstance(feed, str):
            await self.error('subscribe needs "feed": a feed name', WsOp.subscribe)
            return
        shown = clip(feed)
        try:
            contract.check_feed(feed)
        except ContractError:
            await self.error(f"invalid feed name {shown!r}: 1-64 of [a-z0-9-]", WsOp.subscribe, shown)
            return
        resume = None
        if last_id is not None:
            try:
                if not isinstance(last_id, str):
                    raise ContractError("not a string")
                resume = parse_resume_id(last_id)
            except ContractError:
                await self.error(f"malformed last_id {clip(str(last_id))!r}: {EVENT_ID_EXPECTED}", WsOp.subscribe,
                                 feed)
                return
        if self.key is not None and not self.key.may_read(feed):
            await self.error("this key may not read this feed", WsOp.subscribe, feed)
            return
        max_feeds = hub.settings.mux_max_feeds
        if feed not in self.cursors and len(self.cursors) >= max_feeds:
            await self.error(f"too many feeds: at most {max_feeds} per connection", WsOp.subscribe, feed)
            return
        st = None
        if hub.live:
            with contextlib.suppress(RedisError):
                st = await hub.lookup(feed)
                if st is None:
                    await self.error(f"unknown feed {feed!r}", WsOp.subscribe, feed)
                    return
        if st is None:
            await self.error(f"{REDIS_UNAVAILABLE}; subscribe again", WsOp.subscribe, feed)
            return
        await self.ws_out.write(dumps_text({"event": EventName.subscribed, "feed": feed, "resumed_from": last_id}))
        cur = FeedCursor(hub, st)
        self.add(cur)
        if not await cur.start(self.ws_out, resume):
            self.remove(feed)
            await self.error(f"{REDIS_UNAVAILABLE} while replaying; subscribe again", WsOp.subscribe, feed)


async def _read(receive: Receive, session: WsSession, max_message: int) -> None:
    """Parse client messages into the session's queue; a disconnect ends the session."""
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message["type"] != "websocket.receive":
                continue
            text = message.get("text")
            item: dict[str, Any] | str
            if text is None:
                item = "send JSON text messages, not binary"
            elif len(text) > max_message:
                item = f"message too large (limit {max_message} bytes)"
            else:
                try:
                    parsed = json.loads(text)
                    item = parsed if isinstance(parsed, dict) else "a message must be a JSON object"
                except ValueError as exc:
                    item = f"not JSON: {exc}"
            if len(session.pending) >= MAX_PENDING:
                session.overflow = True
                session.poke()
                return
            session.pending.append(item)
            session.poke()
    finally:
        session.client.gone = True
        session.poke()


async def serve_ws(hub: Hub | None, keys: KeyStore | None, scope: Scope, receive: Receive, send: Send) -> None:
    """Accept one WebSocket and serve it until it closes; ``hub`` None means the replica is not serving."""
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})

    async def close(code: CloseCode, reason: str) -> None:
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code, "reason": reason})

    if hub is None or hub.draining:
        await close(CloseCode.GOING_AWAY if hub is not None else CloseCode.TRY_AGAIN_LATER,
                    "replica is not serving (starting or shutting down)")
        return
    settings = hub.settings
    if not origin_allowed(scope, settings.cors_origins):
        await close(CloseCode.FORBIDDEN_ORIGIN, "origin not allowed")
        return
    key: ApiKey | None = None
    if keys is not None:
        secret = presented_key(scope["headers"])
        if secret is not None:
            key = keys.lookup(secret)
            if key is None:
                await close(CloseCode.UNAUTHORIZED, "invalid API key")
                return
    async with Connection(hub, send) as conn:  # one coroutine frame per WebSocket, not two
        client = conn.client
        out = WsOutput(conn)
        session = WsSession(hub, client, out, key, keys)
        reader = hub.loop.create_task(_read(receive, session, settings.ws_max_message))
        deadline = None
        if not session.authenticated:
            def too_late() -> None:
                if not session.authenticated and session.close_with is None:
                    session.close_with = (CloseCode.UNAUTHORIZED, "no API key in time")
                    session.poke()
            deadline = hub.loop.call_later(settings.ws_auth_timeout_s, too_late)
        hub.counters.ws_connections += 1
        try:
            auth = "off" if keys is None else "ok" if key is not None else "required"
            await out.write(dumps_text({"event": EventName.hello, "replica": settings.replica_id, "auth": auth,
                                        "max_feeds": settings.mux_max_feeds}))
            await session.run()
            if session.overflow:
                await close(CloseCode.POLICY, f"more than {MAX_PENDING} messages waiting")
            elif session.close_with is not None:
                await close(*session.close_with)
        except Exception:
            if not (client.gone or client.dropped):
                log.exception("websocket failed")
                await close(CloseCode.SERVER_ERROR, "server error")
            # else: the peer left or was dropped while we wrote to it
        finally:
            hub.counters.ws_connections -= 1
            if deadline is not None:
                deadline.cancel()
            session.close()
            reader.cancel()
