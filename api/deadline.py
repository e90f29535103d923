"""Deadlines on reading a request, and connection accounting, in uvicorn's protocol (below ASGI).

uvicorn bounds only the idle time between requests (``timeout_keep_alive``); a connection that sends nothing, or
one header byte every few seconds, would hold its descriptor for ever. :class:`HeaderDeadlineProtocol` sets a
deadline when the connection is made and again when a request begins (``header_timeout_s``); it holds until the
request is complete, except that a body's first bytes replace it with the body's own (``body_timeout_s``).
Past it, the client gets ``408 Request Timeout`` (if no answer has started) and the connection is closed.
Expiries are counted for /metrics and logged at most once per ``LOG_EVERY_S``.

A deadline is a number beside the connection in ``CONNECTIONS.pending``, not a timer: one sweep per event loop
(:class:`Sweep`, every quarter of the shortest deadline, only while a request is being read) closes the late
ones. A timer per request cost 1.5 µs to arm and cancel on a keep-alive snapshot request of about 25 µs (measured
with uvloop); a deadline now fires up to a quarter late.

Every connection is counted in :data:`api.connections.CONNECTIONS` from ``connection_made`` to
``connection_lost`` (a WebSocket by :class:`CountedWebSocketProtocol` after the upgrade), which also sheds the
oldest unfinished request at the descriptor reserve.

A request target past httptools' URL parser limit (64 KiB) would be answered 400 in plain text by uvicorn; one
longer than ``edge.MAX_TARGET`` is answered here with the same 414 the gate gives a 9 KiB one.

The replica is served only by this protocol (``api.cli``): uvicorn's h11 parser has no head deadline, so the
CLI offers no h11 option, and the app logs a warning at start when it is served without this protocol.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from api.connections import CONNECTIONS, RateLog
from api.edge import JSON_TYPE, MAX_TARGET, TARGET_TOO_LONG, Header, error_body, json_reply
from api.frames import REPLICA_HEADER

log = logging.getLogger(__name__)

REQUEST_TIMEOUT: Final = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 16\r\n"
                          b"connection: close\r\n\r\nrequest timeout\n")


class DeadlineCounters:
    """Per process: connections closed because their request was not read in time."""

    def __init__(self) -> None:
        self.head = RateLog("request head not complete within %.1f s: connection closed with 408")
        self.body = RateLog("request body not complete within %.1f s: connection closed")

    @property
    def expired(self) -> int:
        return self.head.count

    def expire(self, deadline_s: float) -> None:
        self.head.bump(deadline_s)


COUNTERS: Final = DeadlineCounters()


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with request read deadlines and connection accounting."""

    # Slots, not the instance dict: uvicorn's protocol has 27 attributes, and a dict past 30 keys stops sharing
    # its keys with the class's other instances (296 -> 1,584 bytes per connection, measured).
    __slots__ = ("_body_armed", "_counted")

    #: Set by :func:`protocol_with_deadline`; class attributes because uvicorn builds the protocol itself.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    replica_header: Header = (REPLICA_HEADER, b"")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The body deadline replaced the head's (at the request's first body bytes).
        self._body_armed = False
        self._counted = False

    def _arm(self, seconds: float) -> None:
        loop = self.loop
        CONNECTIONS.pending[self] = loop.time() + seconds  # a key keeps its place: oldest first stays true
        if loop not in Sweep.running:
            Sweep.start(loop, min(self.header_timeout_s, self.body_timeout_s))

    def _disarm(self) -> None:
        CONNECTIONS.pending.pop(self, None)

    def expired(self) -> None:
        """Past its deadline (:class:`Sweep`): 408 if nothing was answered yet, and closed."""
        scope = self.scope
        if scope is not None and "path" in scope:  # the head was complete (on_headers_complete set the path)
            COUNTERS.body.bump(self.body_timeout_s)
        else:
            COUNTERS.expire(self.header_timeout_s)
        self._close_unread()

    def evict(self) -> None:
        """Closed early to make room at the descriptor reserve (``api.connections``)."""
        self._disarm()
        self._close_unread()

    def _close_unread(self) -> None:
        CONNECTIONS.pending.pop(self, None)
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._counted = True
        if not CONNECTIONS.opened():
            transport.write(_REFUSED)
            transport.close()
            return
        self._arm(self.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._counted:
            self._counted = False
            CONNECTIONS.closed()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        # The WebSocket protocol takes the transport (and the count: CountedWebSocketProtocol gives it back).
        self._disarm()
        self._counted = False
        super().handle_websocket_upgrade()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._body_armed = False
        self._arm(self.header_timeout_s)

    def on_url(self, url: bytes) -> None:
        self.url += url  # uvicorn's on_url, inlined: it runs for every request
        # +1: the "?" between path and query, which the gate's count leaves out.
        if len(self.url) > MAX_TARGET + 1 and not self.transport.is_closing():
            self._disarm()
            self.transport.write(_target_too_long(self.replica_header))
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        if not self.transport.is_closing():  # closed with 414 above: the parser's complaint has no one to go to
            super().send_400_response(msg)

    def on_body(self, body: bytes) -> None:
        # Until a body's first bytes the head's deadline still runs (it is disarmed when the message is complete).
        if not self._body_armed:
            self._body_armed = True
            self._arm(self.body_timeout_s)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()


class Sweep:
    """Closes, on one event loop, the connections whose request deadline has passed; runs only while some
    connection of that loop is reading a request."""

    #: The loops a sweep is scheduled on (a server per loop; tests run several in one process).
    running: ClassVar[dict[asyncio.AbstractEventLoop, float]] = {}

    @classmethod
    def start(cls, loop: asyncio.AbstractEventLoop, shortest_s: float) -> None:
        period = min(1.0, max(0.05, shortest_s / 4))
        cls.running[loop] = period
        loop.call_later(period, cls.run, loop)

    @classmethod
    def run(cls, loop: asyncio.AbstractEventLoop) -> None:
        now, waiting = loop.time(), False
        for conn, deadline in list(CONNECTIONS.pending.items()):
            if not isinstance(conn, HeaderDeadlineProtocol) or conn.loop is not loop:
                continue
            if deadline <= now:
                conn.expired()
            else:
                waiting = True
        period = cls.running.pop(loop)
        if waiting and not loop.is_closed():
            cls.running[loop] = period
            loop.call_later(period, cls.run, loop)


class CountedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, giving back the connection count when an upgraded connection is lost."""

    def connection_lost(self, exc: Exception | None) -> None:
        CONNECTIONS.closed()
        super().connection_lost(exc)


def _target_too_long(replica_header: Header) -> bytes:
    status, headers, body = json_reply(414, TARGET_TOO_LONG, replica_header)
    return _raw_answer(status, b"URI Too Long", headers, body)


def _raw_answer(status: int, reason: bytes, headers: list[Header], body: bytes) -> bytes:
    """A whole HTTP/1.1 answer written to the transport before (or instead of) the ASGI app; then closed."""
    head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return b"HTTP/1.1 %d " % status + reason + b"\r\n" + head + b"connection: close\r\n\r\n" + body


_REFUSED_BODY: Final = error_body("replica at its connection limit; retry later")
_REFUSED: Final = _raw_answer(503, b"Service Unavailable", [
    JSON_TYPE, (b"content-length", b"%d" % len(_REFUSED_BODY)), (b"retry-after", b"5")], _REFUSED_BODY)


def protocol_with_deadline(header_timeout_s: float, body_timeout_s: float | None = None,
                           replica_id: str = "") -> type[HeaderDeadlineProtocol]:
    return type("HeaderDeadline", (HeaderDeadlineProtocol,), {
        "header_timeout_s": header_timeout_s,
        "body_timeout_s": header_timeout_s if body_timeout_s is None else body_timeout_s,
        "replica_header": (REPLICA_HEADER, replica_id.encode())})
