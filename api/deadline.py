"""A deadline on reading a request head: a client that never finishes its headers is answered 408 and closed.

uvicorn bounds only the idle time between requests (``timeout_keep_alive``); a connection that sends nothing, or
one header byte every few seconds, holds its descriptor for ever. :class:`HeaderDeadlineProtocol` starts a timer
when the connection is made and again when a request begins, and cancels it once the head is complete; when it
fires, the client gets ``408 Request Timeout`` and the connection is closed. Expiries are counted for /metrics
and logged at most once per ``LOG_EVERY_S``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

#: Seconds between two log lines about expired head deadlines (the count goes on in between).
LOG_EVERY_S: Final = 60.0
REQUEST_TIMEOUT: Final = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 16\r\n"
                          b"connection: close\r\n\r\nrequest timeout\n")


class DeadlineCounters:
    """Per process: connections closed because their request head was not complete in time."""

    def __init__(self) -> None:
        self.expired = 0
        self._logged_at = float("-inf")
        self._logged_count = 0

    def expire(self, deadline_s: float) -> None:
        self.expired += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            log.warning("request head not complete within %.1f s: %d connection(s) closed with 408 (%d since the "
                        "last line)", deadline_s, self.expired, self.expired - self._logged_count)
            self._logged_at, self._logged_count = now, self.expired


COUNTERS: Final = DeadlineCounters()


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline from connection (or request start) to a complete head."""

    #: Set by :func:`protocol_with_deadline`; a class attribute because uvicorn builds the protocol itself.
    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        COUNTERS.expire(self.header_timeout_s)
        self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # Between requests uvicorn's keep-alive timeout applies; the next request re-arms on its first byte.
        self._disarm()
        super().on_response_complete()


def protocol_with_deadline(header_timeout_s: float) -> type[HeaderDeadlineProtocol]:
    return type("HeaderDeadline", (HeaderDeadlineProtocol,), {"header_timeout_s": header_timeout_s})
