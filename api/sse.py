"""One SSE response as a lean raw-ASGI loop: a cursor into the feed's ring, nothing queued per client.

Same wire format and behaviour as sse-starlette's ``EventSourceResponse`` (its frame encoding, ``retry:``,
``: ping`` heartbeat comments, ``Cache-Control: no-store`` and ``X-Accel-Buffering: no``, the end of every
stream on uvicorn's exit signal via ``AppStatus``), without its per-response task group, generator and
per-event formatting, measured at 2-10x nchan's p99 at 1k-8k clients (docs/design-figures.md §3).

Deliberate choices:

- Every stream opens with ``retry:`` and a ``hello`` event (replica id, the ``Last-Event-ID`` it resumes from);
  ``hello`` carries no ``id:`` so it never moves the client's resume point.

- Disconnects are noticed by one idle task per client waiting on ``receive()``; it marks the client gone,
  and the loop ends at its next wake-up (an event or the heartbeat), so no wake-up is ever cancelled.
- Ids: the SSE ``id:`` is ``<ranking id>@<epoch>`` (``kiwoom_cache.contract.event_id``), so the browser's
  automatic ``Last-Event-ID`` says which history it resumes in; a bare ranking id is accepted too.
- Resume: ``Last-Event-ID`` of another epoch gets ``reset`` (reason ``epoch``) at once. Inside the ring it
  is served from memory; otherwise the client's cursor is taken *before* the XRANGE replay, so every entry is
  either in the replay or in the ring after the cursor; the overlap is dropped by comparing stream ids. An
  id older than the stream keeps (``expired``) or newer than its last entry (``unknown``) gets a ``reset``
  event with the current snapshot, never a silent skip.
- When the replica finds the feed's history lost or replaced (``FeedState.generation`` grows), every
  connected client gets a ``reset`` (reason ``epoch``) with whatever snapshot exists, then live rankings.
- A slow client (its socket took nothing for ``send_timeout_s``, or too many bytes queued for it) is
  dropped by the hub, which aborts the connection; the loop here just ends. One that merely fell more than
  the ring behind gets a ``reset`` (``behind``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from redis.exceptions import RedisError
from starlette.types import Receive, Send

from api.frames import (
    EVENT_RESET,
    EVENT_SNAPSHOT,
    PING,
    REPLICA_HEADER,
    comment_frame,
    event_frame,
    hello_frame,
    retry_frame,
    with_field,
)
from api.hub import Hub
from api.ring import CLOSE, Client, FeedState, ResetReason, StreamId
from api.ring import PING as WAKE_PING
from api.slow import limit_send_buffer, transport_of
from kiwoom_cache import contract

log = logging.getLogger(__name__)

SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]
_END: Final = {"type": "http.response.body", "body": b"", "more_body": False}


async def serve_events(hub: Hub, st: FeedState, last_event_id: str | None, receive: Receive, send: Send) -> None:
    """Stream ``st`` to one client until it disconnects, is evicted, or the replica shuts down."""
    task = asyncio.current_task()
    transport = transport_of(send)
    if transport is not None:
        limit_send_buffer(transport, hub.settings.send_buffer_bytes)
    client = Client(task, transport)
    client.progress_at = hub.loop.time()
    st.clients.add(client)
    watcher = hub.loop.create_task(_watch_disconnect(receive, client, st))
    stream = _Stream(hub, st, client, send)
    try:
        # The replica header is set here, not by api.app's middleware, so stream writes skip its send wrapper.
        headers = [*SSE_HEADERS, (REPLICA_HEADER, hub.settings.replica_id.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        cursor = await stream.start(last_event_id)
        if cursor is not None:
            await stream.live(cursor)
    except asyncio.CancelledError:
        if not client.dropped or task is None:
            raise
        task.uncancel()  # dropped by the hub without a transport to abort (see Hub.drop)
    finally:
        st.clients.discard(client)
        watcher.cancel()


async def _watch_disconnect(receive: Receive, client: Client, st: FeedState) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    client.gone = True
    st.clients.discard(client)


class _Stream:
    """The state of one response: where its cursor is and the newest stream id it has delivered."""

    __slots__ = ("client", "generation", "hub", "last_sid", "send", "st")

    def __init__(self, hub: Hub, st: FeedState, client: Client, send: Send) -> None:
        self.hub, self.st, self.client, self.send = hub, st, client, send
        self.last_sid: StreamId = (0, 0)
        self.generation = st.generation

    async def write(self, body: bytes) -> None:
        client = self.client
        client.written += len(body)
        client.send_since = self.hub.loop.time()
        await self.send({"type": "http.response.body", "body": body, "more_body": True})
        client.send_since = 0.0

    def reset(self, reason: ResetReason) -> tuple[bytes, int]:
        """A ``reset`` frame carrying the current snapshot, and the cursor that follows it."""
        hub, st = self.hub, self.st
        hub.counters.resets += 1
        self.generation = st.generation
        snap = st.snapshot
        if snap is None:
            data = b'{"reset_reason":"' + reason.value.encode() + b'","feed":"' + st.feed.encode() + b'"}'
            self.last_sid = (0, 0)  # whatever the ring holds now is of the current history: send it all
            return b"event: " + EVENT_RESET.encode() + b"\r\ndata: " + data + b"\r\n\r\n", st.first_pos
        reason_json = b'"' + reason.value.encode() + b'"'
        frame = event_frame(EVENT_RESET, snap.event_id, with_field(snap.doc, "reset_reason", reason_json))
        self.last_sid = snap.sid
        pos = st.pos_after(snap.sid)
        return frame, st.next_pos if pos is None else pos

    async def start(self, last_event_id: str | None) -> int | None:
        """Send the opening frames; return the ring cursor to continue from (None: the stream is over)."""
        st = self.st
        settings = self.hub.settings
        head = retry_frame(settings.retry_ms, "kiwoom-cache") + hello_frame(settings.replica_id, last_event_id)
        if last_event_id is None:
            snap = st.snapshot
            if snap is None:
                await self.write(head + comment_frame("no ranking yet"))
                return st.next_pos
            pos = st.pos_after(snap.sid)
            self.last_sid = snap.sid
            await self.write(head + snap.frame(EVENT_SNAPSHOT))
            return st.next_pos if pos is None else pos
        sid, rid, epoch = contract.parse_event_id(last_event_id)
        if epoch is not None and st.epoch is not None and epoch != st.epoch:
            frame, pos = self.reset(ResetReason.epoch)
            await self.write(head + frame)
            return pos
        pos = st.pos_after(sid)
        if pos is not None:  # the ring holds everything after it: no Redis round trip
            self.last_sid = sid
            await self.write(head)
            return pos
        try:
            return await self.replay(sid, rid, epoch, head)
        except RedisError as exc:
            log.warning("feed %s: replay after %s failed (%s); ending the stream so the client retries",
                        st.feed, last_event_id, exc)
            await self.send(_END)
            return None

    async def replay(self, sid: StreamId, rid: str, epoch: str | None, head: bytes) -> int:
        hub, st = self.hub, self.st
        registered = st.next_pos  # anything appended from here on reaches the client through the ring
        oldest = await hub.read(st.feed, count=1)
        newest = await hub.read(st.feed, count=8, newest_first=True)
        first = oldest.entries[0] if oldest.entries else None
        last = newest.entries[0] if newest.entries else None
        reason: ResetReason | None = None
        if epoch is not None and (last is None or last.epoch != epoch):
            reason = ResetReason.epoch
        elif first is None or last is None or sid < first.sid:
            reason = ResetReason.expired
        elif sid > last.sid:
            reason = ResetReason.unknown
        if reason is not None:
            frame, pos = self.reset(reason)
            await self.write(head + frame)
            return pos
        await self.write(head)
        self.last_sid, after = sid, rid
        page_size = hub.settings.replay_page
        while True:
            page = await hub.read(st.feed, low="(" + after, count=page_size)
            entries = page.entries
            if epoch is not None and any(e.epoch != epoch for e in entries):  # the history changed meanwhile
                frame, pos = self.reset(ResetReason.epoch)
                await self.write(frame)
                return pos
            if page.last_id is not None:
                after = page.last_id
            if entries:
                self.last_sid = entries[-1].sid
                await self.write(b"".join(Hub.frame_of(e).data for e in entries))
                hub.counters.events_sent += len(entries)
            if page.read < page_size:
                resume = st.pos_after(self.last_sid)
                if resume is not None:
                    return resume
                if not st.ring or self.last_sid > st.ring[-1].sid:
                    return max(registered, st.first_pos)
                # the ring moved past the replay while it ran: read the stream again from last_id

    async def live(self, cursor: int) -> None:
        hub, st, client = self.hub, self.st, self.client
        counters = hub.counters
        max_batch = hub.settings.max_batch
        while True:
            if client.gone or client.dropped:
                return
            if hub.draining:
                await self.send(_END)
                return
            if self.generation != st.generation:  # the history was lost or replaced: say so, then go on
                frame, cursor = self.reset(st.reset_reason)
                await self.write(frame)
                continue
            if cursor < st.next_pos:
                if cursor < st.first_pos:  # fell further behind than the ring keeps
                    frame, cursor = self.reset(ResetReason.behind)
                    await self.write(frame)
                    continue
                ring, base = st.ring, cursor - st.first_pos
                n = min(st.next_pos - cursor, max_batch)
                cursor += n
                if n == 1:
                    ring_frame = ring[base]
                    if ring_frame.sid > self.last_sid:
                        self.last_sid = ring_frame.sid
                        await self.write(ring_frame.data)
                        counters.events_sent += 1
                    continue
                frames = [f for f in (ring[base + i] for i in range(n)) if f.sid > self.last_sid]
                if frames:
                    self.last_sid = frames[-1].sid
                    await self.write(b"".join(f.data for f in frames))
                    counters.events_sent += len(frames)
                continue
            try:
                signal = await st.waiter
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise
                continue  # the shared future was cancelled by someone else; FeedState replaces it
            if signal is WAKE_PING:
                await self.write(PING)
            elif signal is CLOSE:
                continue
