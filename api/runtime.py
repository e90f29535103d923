"""One connection runtime for every streaming transport: single-feed SSE, multiplexed SSE and the WebSocket.

A transport is an encoder (an :class:`api.cursor.Output`) on a :class:`Connection`, which owns what they all
share:

- set-up: the hub's :class:`api.ring.Client` for this connection (what the slow-client check and eviction
  see), the socket's bounded send buffer;
- the one counted and timed send (:meth:`Connection.body`, :meth:`Connection.text`): every byte handed to
  the server is counted for the queue check, and a send blocked too long gets the client dropped;
- the disconnect watch (:meth:`Connection.watch`): one task waiting in ``receive()`` that marks the client
  gone (a parked SSE stream needs none: its own task is the one waiting there);
- cancellation: a client dropped by the hub without a transport to abort is cancelled (``Hub.drop``); leaving
  the ``async with`` block absorbs exactly that cancellation and re-raises any other.

The delivery step is :meth:`api.cursor.FeedCursor.pump` (one batch or reset per call), driven by
:meth:`api.multi.Session.run` for multi-feed connections and by :func:`api.sse.serve_events` for the parked
single-feed stream. Connection accounting below ASGI (deadlines, the connection count, the probes' reserve)
lives in :mod:`api.deadline` and :mod:`api.connections`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Final

from starlette.types import Receive, Send

from api.hub import Hub
from api.ring import Client
from api.slow import limit_send_buffer, transport_of

#: Messages that end a connection, per ASGI scope type.
DISCONNECTS: Final = frozenset({"http.disconnect", "websocket.disconnect"})


class Connection:
    """One client connection's runtime; use as ``async with Connection(hub, send) as conn:``."""

    __slots__ = ("client", "hub", "loop", "send", "task", "transport")

    def __init__(self, hub: Hub, send: Send) -> None:
        self.hub, self.send, self.loop = hub, send, hub.loop
        self.task = asyncio.current_task()
        transport = self.transport = transport_of(send)
        if transport is not None:
            limit_send_buffer(transport, hub.settings.send_buffer_bytes)
        self.client = client = Client(self.task, transport)
        client.progress_at = hub.loop.time()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool:
        if exc_type is asyncio.CancelledError and self.client.dropped and self.task is not None:
            self.task.uncancel()  # dropped by the hub without a transport to abort (see Hub.drop)
            return True
        return False

    async def body(self, data: bytes) -> None:
        """One streamed HTTP body write: counted (what the queue check compares with what the peer took) and
        timed (a send blocked for ``send_timeout_s`` drops the client)."""
        client = self.client
        client.written += len(data)
        client.send_since = self.loop.time()
        await self.send({"type": "http.response.body", "body": data, "more_body": True})
        client.send_since = 0.0

    async def text(self, text: str, size: int = 0) -> None:
        """One WebSocket text message, counted and timed like :meth:`body`; ``size`` is its UTF-8 length when
        known (cached with the frame)."""
        client = self.client
        client.written += size or len(text.encode())
        client.send_since = self.loop.time()
        await self.send({"type": "websocket.send", "text": text})
        client.send_since = 0.0

    def watch(self, receive: Receive, on_gone: Callable[[], None]) -> asyncio.Task[None]:
        """A task that waits for the peer to leave, then marks the client gone and calls ``on_gone``; cancel it
        when the connection ends."""
        return self.loop.create_task(self._watch(receive, on_gone))

    async def _watch(self, receive: Receive, on_gone: Callable[[], None]) -> None:
        # The loop is inlined, not a helper coroutine: one frame less per idle connection (RSS per client).
        while (await receive())["type"] not in DISCONNECTS:
            pass
        self.client.gone = True
        on_gone()
