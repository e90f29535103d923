"""The per-replica connection cap: beyond it, 503 JSON with ``Retry-After`` instead of a silent fd shortage.

Counts the HTTP requests and WebSockets in flight (an event stream or a WebSocket is one for as long as it
lasts; a WebSocket beyond the cap is accepted and closed with 1013, try again later, so a browser learns why)
and, when served by ``api.cli``, the open connections themselves (``api.connections``: an idle keep-alive
holds a descriptor too; one still sending its request is bounded by its deadline and shed first at the
reserve instead): a request is refused when either count is past the cap.
``/healthz``, ``/readyz`` and ``/metrics`` are neither counted nor refused, so a balancer and a scraper can
always ask; the protocol keeps ``connections.PROBE_RESERVE`` connections above the cap for them. The default
cap leaves headroom under the process's file-descriptor limit for those probes, Redis connections, logs and the
listening socket.
"""

from __future__ import annotations

import logging
import resource
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.connections import CONNECTIONS
from api.edge import JSON_TYPE, error_body
from api.frames import REPLICA_HEADER

log = logging.getLogger(__name__)

ALWAYS_ANSWERED: Final = frozenset({"/healthz", "/readyz", "/metrics"})


#: Descriptors an idle replica holds besides its clients (stdio, the listener, epoll, the subscription, the
#: first Redis connections: 17 measured) plus room for /healthz and /readyz, which the cap never refuses.
BASE_FDS: Final = 32


def default_cap(redis_pool: int) -> int:
    """The soft RLIMIT_NOFILE minus what the replica itself needs: its Redis pool at its largest and BASE_FDS.

    The headroom is a fixed count, not a share of the limit: what a replica opens besides its clients does not
    grow with the limit (a tenth of 20,000 descriptors refused about 1,900 clients it could serve)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65536
    return max(16, soft - redis_pool - BASE_FDS)


class ConnectionCap:
    def __init__(self, app: ASGIApp, cap: int, replica_id: str, retry_after_s: int = 5, redis_pool: int = 64) -> None:
        self.app = app
        self.cap = cap or default_cap(redis_pool)
        self.open = 0
        self.rejected = 0
        self._body = error_body(f"replica at its connection cap ({self.cap}); retry later")
        self._headers = [JSON_TYPE, (b"content-length", b"%d" % len(self._body)),
                         (b"retry-after", b"%d" % retry_after_s), (REPLICA_HEADER, replica_id.encode())]

    def at_cap(self) -> bool:
        """No room for one more request: the requests in flight, or the connections (this one included)."""
        return self.open >= self.cap or CONNECTIONS.counted > self.cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or scope["path"] in ALWAYS_ANSWERED:
            await self.app(scope, receive, send)
            return
        if self.at_cap():
            self.rejected += 1
            if self.rejected == 1 or self.rejected % 1000 == 0:
                log.warning("at the connection cap (%d): %d request(s) refused with 503 so far", self.cap,
                            self.rejected)
            if kind == "websocket":  # accepted, so the client can read why (api.ws: 1013 try again later)
                if (await receive())["type"] == "websocket.connect":
                    await send({"type": "websocket.accept"})
                    await send({"type": "websocket.close", "code": 1013,
                                "reason": f"replica at its connection cap ({self.cap}); retry later"})
                return
            await send({"type": "http.response.start", "status": 503, "headers": self._headers})
            await send({"type": "http.response.body", "body": self._body})
            return
        self.open += 1
        counted = True

        async def watched() -> Message:
            # An event stream notices its client left only at its next wake-up; the cap should not wait.
            nonlocal counted
            message = await receive()
            if message["type"] in ("http.disconnect", "websocket.disconnect") and counted:
                counted = False
                self.open -= 1
            return message

        try:
            await self.app(scope, watched, send)
        finally:
            if counted:
                self.open -= 1
