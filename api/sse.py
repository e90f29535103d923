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
  multiplexed stream and the WebSocket; this module frames them as single-feed SSE.
- A slow client (its socket took nothing for ``send_timeout_s``, or too many bytes queued for it) is
  dropped by the hub, which aborts the connection; the loop here just ends. One that merely fell more than
  the ring behind gets a ``reset`` (``behind``).
"""

from __future__ import annotations

import asyncio
import logging
from functools import lru_cache
from typing import Final

from starlette.types import Receive, Send

from api.cursor import FeedCursor, Output
from api.frames import (
    EVENT_RESET,
    EVENT_SNAPSHOT,
    PING,
    REPLICA_HEADER,
    SEP,
    comment_frame,
    event_frame,
    hello_frame,
    retry_frame,
    with_field,
)
from api.hub import Hub
from api.ring import PING as WAKE_PING
from api.ring import Client, FeedState, Frame, ResetReason, Snapshot
from api.slow import limit_send_buffer, transport_of, writes_chunked

log = logging.getLogger(__name__)

SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]


@lru_cache(maxsize=8)
def stream_headers(replica_id: str) -> list[tuple[bytes, bytes]]:
    """The headers every event stream of a replica starts with: one list, shared by all its streams (read-only)."""
    return [*SSE_HEADERS, (REPLICA_HEADER, replica_id.encode())]

END: Final = {"type": "http.response.body", "body": b"", "more_body": False}


async def serve_events(hub: Hub, st: FeedState, last_event_id: str | None, receive: Receive, send: Send) -> None:
    """Stream ``st`` to one client until it disconnects, is evicted, or the replica shuts down."""
    task = asyncio.current_task()
    transport = transport_of(send)
    if transport is not None:
        limit_send_buffer(transport, hub.settings.send_buffer_bytes)
    client = Client(task, transport)
    client.progress_at = hub.loop.time()
    st.clients.add(client)
    watcher: asyncio.Task[None] | None = None
    settings = hub.settings
    out = SseOutput(hub, client, send, retry_frame(settings.retry_ms, "kiwoom-cache")
                    + hello_frame(settings.replica_id, last_event_id))
    cur = FeedCursor(hub, st)
    try:
        # The replica header is set here, not by api.app's middleware, so stream writes skip its send wrapper.
        await send({"type": "http.response.start", "status": 200, "headers": stream_headers(settings.replica_id)})
        parkable = transport is not None and writes_chunked(send)
        if not parkable:  # a parked stream waits in receive() itself: no second task per client
            watcher = hub.loop.create_task(_watch_disconnect(receive, client, st))
        if await cur.start(out, last_event_id):
            await _live(hub, cur, client, out, receive if parkable else None)
        else:
            await send(END)  # the replay failed: ending the stream makes the client retry
    except asyncio.CancelledError:
        if not client.dropped or task is None:
            raise
        task.uncancel()  # dropped by the hub without a transport to abort (see Hub.drop)
    finally:
        st.clients.discard(client)
        st.leave(client)
        if watcher is not None:
            watcher.cancel()


async def _watch_disconnect(receive: Receive, client: Client, st: FeedState) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    client.gone = True
    st.clients.discard(client)


async def send_body(client: Client, send: Send, loop: asyncio.AbstractEventLoop, body: bytes) -> None:
    """One streamed body write through the server, timed (a send blocked too long drops the client) and
    counted (what the queue check compares with what the peer took)."""
    client.written += len(body)
    client.send_since = loop.time()
    await send({"type": "http.response.body", "body": body, "more_body": True})
    client.send_since = 0.0


class SseOutput(Output):
    """Single-feed SSE: ring frames are written as encoded once, shared by every client."""

    __slots__ = ("client", "head", "loop", "send")

    def __init__(self, hub: Hub, client: Client, send: Send, head: bytes) -> None:
        self.client, self.send, self.loop = client, send, hub.loop
        #: ``retry:`` and ``hello``, written with the first event so the opening costs one write.
        self.head = head

    async def write(self, body: bytes) -> None:
        if self.head:
            body, self.head = self.head + body, b""
        await send_body(self.client, self.send, self.loop, body)

    async def snapshot(self, cur: FeedCursor, snap: Snapshot) -> None:
        await self.write(snap.frame(EVENT_SNAPSHOT))

    async def empty(self, cur: FeedCursor) -> None:
        await self.write(comment_frame("no ranking yet"))

    async def reset(self, cur: FeedCursor, reason: ResetReason, snap: Snapshot | None) -> None:
        await self.write(reset_frame(cur.feed, reason, snap))

    async def frames(self, cur: FeedCursor, frames: list[Frame]) -> None:
        await self.write(frames[0].data if len(frames) == 1 else b"".join(f.data for f in frames))

    async def resumed(self, cur: FeedCursor) -> None:
        if self.head:
            await self.write(b"")


def reset_data(feed: str, reason: ResetReason, snap: Snapshot | None) -> bytes:
    """A reset's JSON: the snapshot with ``reset_reason`` in front, or just the reason and the feed."""
    if snap is None:
        return b'{"reset_reason":"' + reason.value.encode() + b'","feed":"' + feed.encode() + b'"}'
    return with_field(snap.doc, "reset_reason", b'"' + reason.value.encode() + b'"')


def reset_frame(feed: str, reason: ResetReason, snap: Snapshot | None) -> bytes:
    """The ``reset`` event; with no snapshot it carries no ``id:`` (the resume point stays where it was)."""
    if snap is None:
        return b"event: " + EVENT_RESET.encode() + SEP + b"data: " + reset_data(feed, reason, None) + SEP + SEP
    return event_frame(EVENT_RESET, snap.event_id, reset_data(feed, reason, snap))


async def _live(hub: Hub, cur: FeedCursor, client: Client, out: SseOutput, receive: Receive | None) -> None:
    """Write what is due until the stream ends. With ``receive`` (a chunked transport) the caught-up client is
    parked: the task waits in ``receive()`` for a disconnect while the fan-out writes to its transport, and
    is handed back by a cancellation of that wait (:meth:`api.ring.Client.wake`), caught here."""
    st = cur.st
    max_batch = hub.settings.max_batch
    while True:
        if client.gone or client.dropped:
            return
        if hub.draining:
            await out.send(END)
            return
        got = cur.take(max_batch)
        if got is not None:
            if isinstance(got, ResetReason):
                await cur.send_reset(out, got)
            elif got:
                await out.write(got[0].data if len(got) == 1 else b"".join(f.data for f in got))
            continue
        if receive is not None:
            st.park(client, cur)
            try:
                while (await receive())["type"] != "http.disconnect":
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
        if signal is WAKE_PING:
            await out.write(PING)
