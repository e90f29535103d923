"""Per-process connection accounting at the socket level, below ASGI (issue 22 item 1).

:class:`Connections` counts every open client connection (HTTP, idle keep-alive and WebSocket alike) from the
moment it is accepted until its transport is lost, so the connection cap (``api.limits``) sees connections
(idle keep-alive ones included) and not only requests in flight. Above the cap a small reserve of descriptors
stays free for the probes and ``/metrics``; a connection accepted past ``cap + PROBE_RESERVE`` first makes
room by closing the oldest connection that has not finished its request (answered 408), and only when there is
none is it answered 503 at once. So a replica never reaches its descriptor limit through its clients, and a
flood of half-open connections cannot starve the health checker.

Accept errors (EMFILE and friends) reach the event loop's exception handler; :func:`install_accept_counter`
counts and logs them at most once per ``LOG_EVERY_S``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import Any, Final, Protocol

log = logging.getLogger(__name__)

#: Seconds between two log lines of one kind (the counts go on in between).
LOG_EVERY_S: Final = 60.0
#: Connections accepted beyond the cap, for /healthz, /readyz and /metrics; inside ``limits.BASE_FDS``.
PROBE_RESERVE: Final = 8
#: accept() failures that mean "out of descriptors or memory", not a broken listener.
ACCEPT_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Evictable(Protocol):
    def evict(self) -> None: ...


class RateLog:
    """A warning logged at most once per ``LOG_EVERY_S``, with the count since the last line."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.count = 0
        self._logged_at = float("-inf")
        self._logged_count = 0

    def bump(self, *args: object) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            log.warning(self.message + " (%d in all, %d since the last line)", *args, self.count,
                        self.count - self._logged_count)
            self._logged_at, self._logged_count = now, self.count


class Connections:
    """Open client connections of this process, and what was done at the limit."""

    def __init__(self) -> None:
        self.open = 0
        #: The connection cap (``api.limits.ConnectionCap.cap``); 0 until a server configures it (no limit).
        self.cap = 0
        #: Connections still reading their request, oldest first (a dict keeps insertion order), each with the
        #: loop time its deadline passes (``api.deadline``).
        self.pending: dict[Evictable, float] = {}
        self.shed = RateLog("at the descriptor reserve: closed the oldest connection still sending its request")
        self.refused = RateLog("at the descriptor reserve with every connection busy: refused a connection with 503")
        self.accept_errors = RateLog("accept() failed: %s")

    @property
    def counted(self) -> int:
        """Connections the cap counts: all but those still sending a request head or body, which are bounded by
        their deadline and shed first at the reserve (so a flood of them cannot lock normal clients out)."""
        return self.open - len(self.pending)

    @property
    def limit(self) -> int:
        """Connections held at most: the cap plus the probes' reserve."""
        return self.cap + PROBE_RESERVE if self.cap else 0

    def opened(self) -> bool:
        """Count a new connection; False if it must be refused (at the limit and nothing to shed)."""
        self.open += 1
        limit = self.limit
        if limit and self.open > limit:
            if self.pending:
                self.shed.bump()
                next(iter(self.pending)).evict()  # its connection_lost comes later; the count drops then
                return True
            self.refused.bump()
            return False
        return True

    def closed(self) -> None:
        self.open -= 1


CONNECTIONS: Final = Connections()


def install_accept_counter(loop: asyncio.AbstractEventLoop) -> None:
    """Count accept() failures the loop reports (asyncio's selector loop: "socket.accept() out of system
    resource"; uvloop: an error from the listen callback) and log them at most once per ``LOG_EVERY_S``."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in ACCEPT_ERRNOS:
            CONNECTIONS.accept_errors.bump(exc)
            return
        if previous is None:
            loop.default_exception_handler(context)
        else:
            previous(loop, context)

    loop.set_exception_handler(handler)
