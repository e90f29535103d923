"""One SSE response as a lean raw-ASGI loop: a cursor into the feed's ring, nothing queued per client.

Same wire format and behaviour as sse-starlette's ``EventSourceResponse`` (its frame encoding, ``retry:``,
``: ping`` heartbeat comments, ``Cache-Control: no-store`` and ``X-Accel-Buffering: no``, the end of every
stream on uvicorn's exit signal via ``AppStatus``), without its per-response task group, generator and
per-event formatting, measured at 2-10x nchan's p99 at 1k-8k clients (docs/design-figures.md §3).

Deliberate choices:

- Every stream opens with ``retry:`` and a ``hello`` event (replica id, the ``Last-Event-ID`` it resumes from);
  ``hello`` carries no ``id:`` so it never moves the client's resume point.

- Disconnects are noticed by one idle task per client waiting on ``receive()``; it marks the client gone,
  and the loop ends at its next wake-up (an event or the heartbeat), so no wake-up is ever cancelled. A
  parked stream (below) needs no such task: its own task is the one waiting in ``receive()``.
- Under uvicorn's httptools protocol (the default) a client that has caught up is parked: the fan-out
  writes each new frame to its transport as one shared pre-built chunk (:meth:`api.ring.FeedState.push`)
  and its task sleeps until something else than a plain frame is due. Under any other server (h11, other
  ASGI servers, middleware wrapping ``send``) every frame goes through ``send``, as before.
- Ids: the SSE ``id:`` is ``<ranking id>@<epoch>`` (``kiwoom_cache.contract.event_id``), so the browser's
  automatic ``Last-Event-ID`` says which history it resumes in; a bare ranking id is accepted too.
- Resume and ``reset`` rules (expired/unknown/behind/epoch) live in :mod:`api.cursor`, shared with the
  multiplexed stream and the WebSocket; set-up, the counted send, the disconnect watch and cancellation are
  :class:`api.runtime.Connection`'s; this module frames events as single-feed SSE.
- A slow client (its socket took nothing for ``send_timeout_s``, or too many bytes queued for it) is
  dropped by the hub, which aborts the connection; the loop here just ends. One that merely fell more than
  the ring behind gets a ``reset`` (``behind``).
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import Receive, Send

from api.cursor import FeedCursor, Output
from api.edge import ResumeId
from api.frames import (
    END,
    KEEPALIVE,
    comment_frame,
    hello_frame,
    reset_frame,
    retry_frame,
    stream_headers,
)
from api.hub import Hub
from api.ring import FeedState, Frame, ResetReason, Snapshot
from api.runtime import DISCONNECTS, Connection
from api.slow import writes_chunked
from api.wake import Wake
from kiwoom_cache.contract import EventName

log = logging.getLogger(__name__)


async def serve_events(hub: Hub, st: FeedState, resume: ResumeId | None, receive: Receive, send: Send) -> None:
    """Stream ``st`` to one client until it disconnects, is evicted, or the replica shuts down."""
    async with Connection(hub, send) as conn:
        client = conn.client
        st.clients.add(client)
        watcher: asyncio.Task[None] | None = None
        settings = hub.settings
        out = SseOutput(conn, retry_frame(settings.retry_ms, "kiwoom-cache")
                        + hello_frame(settings.replica_id, resume.text if resume is not None else None))
        cur = FeedCursor(hub, st)
        try:
            # The replica header is set here, not by api.app's middleware, so stream writes skip its send wrapper.
            await send({"type": "http.response.start", "status": 200, "headers": stream_headers(settings.replica_id)})
            parkable = conn.transport is not None and writes_chunked(send)
            if not parkable:  # a parked stream waits in receive() itself: no second task per client
                watcher = conn.watch(receive, lambda: st.clients.discard(client))
            if await cur.start(out, resume):
                await _live(hub, cur, conn, out, receive if parkable else None)
            else:
                await send(END)  # the replay failed: ending the stream makes the client retry
        finally:
            st.clients.discard(client)
            st.leave(client)
            if watcher is not None:
                watcher.cancel()


class SseOutput(Output):
    """Single-feed SSE: ring frames are written as encoded once, shared by every client."""

    __slots__ = ("conn", "head")

    def __init__(self, conn: Connection, head: bytes) -> None:
        self.conn = conn
        #: ``retry:`` and ``hello``, written with the first event so the opening costs one write.
        self.head = head

    async def write(self, body: bytes) -> None:
        if self.head:
            body, self.head = self.head + body, b""
        await self.conn.body(body)

    async def snapshot(self, cur: FeedCursor, snap: Snapshot) -> None:
        await self.write(snap.frame(EventName.snapshot))

    async def empty(self, cur: FeedCursor) -> None:
        await self.write(comment_frame("no ranking yet"))

    async def reset(self, cur: FeedCursor, reason: ResetReason, snap: Snapshot | None) -> None:
        await self.write(reset_frame(cur.feed, reason, snap))

    async def frames(self, cur: FeedCursor, frames: list[Frame]) -> None:
        await self.write(frames[0].data if len(frames) == 1 else b"".join(f.data for f in frames))

    async def resumed(self, cur: FeedCursor) -> None:
        if self.head:
            await self.write(b"")


async def _live(hub: Hub, cur: FeedCursor, conn: Connection, out: SseOutput, receive: Receive | None) -> None:
    """Write what is due (:meth:`FeedCursor.pump`) until the stream ends. With ``receive`` (a chunked transport)
    the caught-up client is parked: the task waits in ``receive()`` for a disconnect while the fan-out writes
    to its transport, and is handed back by a cancellation of that wait (:meth:`api.ring.Client.wake`),
    caught here."""
    st, client = cur.st, conn.client
    max_batch = hub.settings.max_batch
    while True:
        if client.gone or client.dropped:
            return
        if hub.draining:
            await conn.send(END)
            return
        if await cur.pump(out, max_batch):
            continue
        if receive is not None:
            st.park(client, cur)
            try:
                while (await receive())["type"] not in DISCONNECTS:
                    pass
                client.gone = True
                return
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not client.woken or task is None or task.uncancel() > 0:
                    raise  # not (only) the fan-out's hand-back
                client.woken = False
                continue
            finally:
                st.leave(client)
        try:
            signal = await st.waiter
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise
            continue  # the shared future was cancelled by someone else; FeedState replaces it
        if signal is Wake.ping:
            await out.write(KEEPALIVE)
