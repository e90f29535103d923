"""One feed's in-memory state: the ring of encoded frames, the snapshot, the shared wake-up, the clients.

Positions only grow; a client holds nothing but its cursor (the next position it needs). The ring is bounded
twice: by ``ring_size`` entries and by ``ring_bytes`` of encoded frames (one huge document cannot grow a
replica by a ring's worth of huge documents), always keeping the newest frame.

When the feed's history is lost or replaced (a new epoch, or ids going backwards) the ring is emptied and
``generation`` grows; every client compares the generation it started on and sends its browser a ``reset``
instead of waiting for ids that will never come (the freeze of issue 10).

A single-feed SSE client that is caught up and whose server exposes a chunked HTTP/1.1 transport is
**parked** (:meth:`FeedState.park`): its task sleeps until a disconnect and the fan-out writes every new frame
to its transport itself, one pre-built chunk shared by all (:meth:`FeedState.push`), with no task wake-up, no
coroutine step and no copy per client: that per-client work was most of the replica's CPU per event
(bench/README.md). Whatever is not the plain case (a reset, a client behind or with bytes still queued,
shutdown) wakes the task, which handles it through the ordinary path and parks again once caught up.
"""

from __future__ import annotations

import asyncio
from collections import deque
from enum import StrEnum
from typing import Any, Protocol

from api.frames import KEEPALIVE_CHUNK, chunk, event_frame
from api.wake import Wake
from kiwoom_cache import contract
from kiwoom_cache.contract import EventName

StreamId = tuple[int, int]


class ResetReason(StrEnum):
    """Why a client got a ``reset`` event (the ``reset_reason`` field) instead of a continuation."""

    #: The stream's history was lost or replaced (new epoch, ids going backwards): the id means nothing now.
    epoch = "epoch"
    #: The id is older than the stream keeps (trimmed by MAXLEN).
    expired = "expired"
    #: The id is newer than anything the stream holds.
    unknown = "unknown"
    #: The client fell further behind than the replica's ring.
    behind = "behind"


class Frame:
    """One ring entry: a stream entry id, its epoch and seq, the document once, and its encoding per transport.

    ``data`` is the single-feed SSE ``ranking`` frame, built with the frame (the fan-out's hot path, and what
    the ring's byte bound counts); the other transports' encodings are built from ``doc`` by the first client
    that needs them and then shared, so no transport cuts another's bytes apart.
    """

    __slots__ = ("chunked", "data", "doc", "epoch", "event_id", "id", "mux", "seq", "sid", "ws")

    def __init__(self, sid: StreamId, rid: str, data: bytes, epoch: str | None = None, seq: int = 0, *,
                 doc: bytes = b"") -> None:
        self.sid = sid
        self.id = rid
        self.data = data
        self.doc = doc
        self.epoch = epoch
        self.seq = seq
        self.event_id = contract.event_id(rid, epoch)
        #: ``data`` framed as an HTTP chunk, built by the first push that writes it.
        self.chunked: bytes | None = None
        #: The multiplexed stream's frame after its ``id:`` line (api.mux).
        self.mux: bytes | None = None
        #: The WebSocket message and its UTF-8 size (api.ws).
        self.ws: tuple[str, int] | None = None

    @classmethod
    def ranking(cls, sid: StreamId, rid: str, doc: bytes, epoch: str | None, seq: int) -> Frame:
        """A ``ranking`` event of the document ``doc`` (the hub's one way to make a frame)."""
        return cls(sid, rid, event_frame(EventName.ranking, contract.event_id(rid, epoch), doc), epoch, seq, doc=doc)


class Snapshot:
    """The feed's latest validated document, plus encodings derived from it (cached per ranking id)."""

    __slots__ = ("doc", "epoch", "event_id", "id", "published_at_ms", "row_fields", "seq", "session", "sid",
                 "variants")

    def __init__(self, rid: str, doc: bytes, ranking: contract.Ranking) -> None:
        self.id = rid
        self.sid = contract.parse_stream_id(rid)
        self.doc = doc
        self.epoch = ranking.epoch
        self.seq = ranking.seq or 0
        self.event_id = contract.event_id(rid, ranking.epoch)
        self.published_at_ms = ranking.published_at_ms
        self.session = ranking.session
        #: The row fields of this document's TR (what ``?fields=`` may select).
        self.row_fields = contract.ROW_SCHEMAS[ranking.row_schema].field_names
        #: Rendered bodies and SSE frames keyed by what varies (limit, fields, staleness, event name).
        self.variants: dict[tuple[Any, ...], bytes] = {}

    def frame(self, event: str) -> bytes:
        key = ("frame", event)
        data = self.variants.get(key)
        if data is None:
            data = self.variants[key] = event_frame(event, self.event_id, self.doc)
        return data


class StreamCounters:
    """Counters the event streams bump (one loop thread: plain ints); the metrics collector reads them."""

    __slots__ = ("dropped", "events_sent", "mux_connections", "resets", "ws_connections")

    def __init__(self) -> None:
        self.events_sent = 0
        #: Open multiplexed SSE streams and WebSockets (single-feed streams are counted per feed).
        self.mux_connections = 0
        self.ws_connections = 0
        #: Slow clients dropped (socket took no data for send_timeout_s, or too many bytes queued).
        self.dropped = 0
        #: ``reset`` events sent.
        self.resets = 0


class Position(Protocol):
    """Where a parked client is in its feed (``api.cursor.FeedCursor``): what the fan-out reads and moves."""

    pos: int
    last_sid: StreamId
    generation: int


class Client:
    """What the hub knows of one SSE response: enough to count it and to evict it if it stalls."""

    __slots__ = ("check_at", "delivered", "dropped", "gone", "parked", "progress_at", "send_since", "task",
                 "transport", "woken", "written")

    def __init__(self, task: asyncio.Task[Any] | None, transport: asyncio.WriteTransport | None = None) -> None:
        self.task = task
        #: The connection's transport when the server exposes it: its write buffer tells a slow client.
        self.transport = transport
        self.gone = False
        self.dropped = False
        #: loop.time() when the current send began, 0.0 while not sending.
        self.send_since = 0.0
        #: Bytes handed to the server, bytes the peer has taken (written - queued) at the last check, and when
        #: that last grew: a client whose queue holds data and takes none for send_timeout_s is dropped.
        self.written = 0
        self.delivered = 0
        self.progress_at = 0.0
        #: loop.time() of the next look at its queues (sooner while bytes are queued, see Hub._check_queue).
        self.check_at = 0.0
        #: While parked (FeedState.park) its task sleeps in the server's ``receive()``, which returns only on a
        #: disconnect: the fan-out hands the client back by cancelling that wait, with ``woken`` set.
        self.parked = False
        self.woken = False

    def wake(self) -> None:
        """Hand a parked client back to its task (see api.sse: the cancellation is caught there)."""
        if self.parked and self.task is not None:
            self.parked, self.woken = False, True
            self.task.cancel()


class FeedState:
    """One feed: ring of frames, latest snapshot, the shared wake-up and the connected clients."""

    __slots__ = ("_loop", "_waiter", "bad_entries", "clients", "counters", "error", "feed", "generation", "held",
                 "max_batch", "max_bytes", "max_entries", "next_pos", "parked", "reset_reason", "ring", "ring_bytes",
                 "snapshot", "stalled_since", "sync_task", "synced")

    def __init__(self, feed: str, ring_size: int, loop: asyncio.AbstractEventLoop, max_bytes: int = 0, *,
                 max_batch: int = 16, counters: StreamCounters | None = None) -> None:
        self.feed = feed
        self.ring: deque[Frame] = deque()
        self.max_entries = ring_size
        self.max_bytes = max_bytes
        self.ring_bytes = 0
        self.next_pos = 0
        self.snapshot: Snapshot | None = None
        self.clients: set[Client] = set()
        #: Caught-up clients the fan-out writes to directly (see the module's docstring), with their cursors.
        self.parked: dict[Client, Position] = {}
        #: Frames one push writes to a client at most (more wakes its task, which sends them in batches).
        self.max_batch = max_batch
        self.counters = counters if counters is not None else StreamCounters()
        #: Last contract violation seen for this feed (logged, shown in /v1/feeds).
        self.error: str | None = None
        #: Stream entries or messages skipped because they broke the contract.
        self.bad_entries = 0
        self.synced = False
        #: Grows each time the history is found lost or replaced; clients on an older one get a reset.
        self.generation = 0
        self.reset_reason = ResetReason.epoch
        #: loop.time() since when the publisher reports a newer ranking than this replica holds (0: not stalled).
        self.stalled_since = 0.0
        #: Messages received while a sync is reading the stream; applied (de-duplicated) after it.
        self.held: list[bytes] | None = None
        self.sync_task: asyncio.Task[None] | None = None
        self._loop = loop
        self._waiter: asyncio.Future[Wake] = loop.create_future()

    @property
    def first_pos(self) -> int:
        return self.next_pos - len(self.ring)

    @property
    def epoch(self) -> str | None:
        """The epoch the ring (or, with an empty ring, the snapshot) belongs to."""
        if self.ring:
            return self.ring[-1].epoch
        return self.snapshot.epoch if self.snapshot is not None else None

    @property
    def waiter(self) -> asyncio.Future[Wake]:
        if self._waiter.cancelled():  # defensive: a cancelled shared future must not stall everyone
            self._waiter = self._loop.create_future()
        return self._waiter

    def wake(self, signal: Wake) -> None:
        if self.parked:
            self.push(signal)
        fut, self._waiter = self._waiter, self._loop.create_future()
        if not fut.done():
            fut.set_result(signal)

    def park(self, client: Client, cursor: Position) -> None:
        """Hand a caught-up client with a chunked transport to the fan-out (its task then waits in
        ``receive()``; api.sse)."""
        assert client.transport is not None and client.task is not None
        client.parked = True
        self.parked[client] = cursor

    def unpark(self, client: Client) -> None:
        """Wake a parked client's task: something other than a plain write is due."""
        self.parked.pop(client, None)
        client.wake()

    def leave(self, client: Client) -> None:
        """The client's task is awake (or ending): the fan-out no longer writes to it."""
        self.parked.pop(client, None)
        client.parked = False

    def push(self, signal: Wake) -> None:
        """Write what ``signal`` brings to every parked client's transport; wake the task of any client for
        which that is not one plain write (reset, behind, overlap, bytes still queued, shutdown). A closed
        connection is skipped: its task must end after the server has seen the disconnect, or uvicorn
        reports a response left incomplete."""
        parked = self.parked
        back: list[Client] = []
        if signal is Wake.ping:
            for client in parked:
                transport = client.transport
                if transport is not None and not transport.is_closing() and not transport.get_write_buffer_size():
                    transport.write(KEEPALIVE_CHUNK)
                    client.written += len(KEEPALIVE_CHUNK)
        elif signal is Wake.data:
            next_pos, first_pos, generation, ring = self.next_pos, self.first_pos, self.generation, self.ring
            # What is due from a position: (chunk, sid of its first and last frame, frames), built once.
            due: dict[int, tuple[bytes, StreamId, StreamId, int] | None] = {}
            sent = 0
            for client, cur in parked.items():
                transport = client.transport
                if client.gone or client.dropped or transport is None or transport.is_closing():
                    continue  # its task is woken by the disconnect (api.sse), once the server has seen it
                if cur.generation != generation:  # the history was replaced: a reset is due, frames or not
                    back.append(client)
                    continue
                pos = cur.pos
                if pos >= next_pos:
                    continue
                if transport.get_write_buffer_size():
                    back.append(client)
                    continue
                if pos in due:
                    item = due[pos]
                else:
                    item = due[pos] = self._due(ring, pos - first_pos, next_pos - pos)
                if item is None or item[1] <= cur.last_sid:  # behind, too many, or overlapping a replay
                    back.append(client)
                    continue
                data, _, last_sid, n = item
                transport.write(data)
                client.written += len(data)
                cur.pos, cur.last_sid = next_pos, last_sid
                sent += n
            self.counters.events_sent += sent
        else:
            back = list(parked)
        for client in back:
            self.unpark(client)

    def _due(self, ring: deque[Frame], base: int, n: int) -> tuple[bytes, StreamId, StreamId, int] | None:
        if base < 0 or n > self.max_batch:
            return None
        if n == 1:
            frame = ring[base]
            if frame.chunked is None:
                frame.chunked = chunk(frame.data)
            return frame.chunked, frame.sid, frame.sid, 1
        frames = [ring[base + i] for i in range(n)]
        return chunk(b"".join(f.data for f in frames)), frames[0].sid, frames[-1].sid, n

    def has(self, sid: StreamId) -> bool:
        pos = self.pos_after(sid)
        return pos is not None and pos > self.first_pos and self.ring[pos - 1 - self.first_pos].sid == sid

    def append(self, frame: Frame) -> bool:
        if self.ring and frame.sid <= self.ring[-1].sid:
            return False  # already have it (sync and subscription overlap)
        self.ring.append(frame)
        self.ring_bytes += len(frame.data)
        self.next_pos += 1
        ring = self.ring
        while len(ring) > 1 and (len(ring) > self.max_entries or (self.max_bytes and self.ring_bytes > self.max_bytes)):
            self.ring_bytes -= len(ring.popleft().data)
        return True

    def restart(self, reason: ResetReason) -> None:
        """The history this ring mirrors is gone: empty it, drop the snapshot, tell every client."""
        self.ring.clear()
        self.ring_bytes = 0
        self.snapshot = None
        self.generation += 1
        self.reset_reason = reason
        self.wake(Wake.data)

    def frame_at(self, pos: int) -> Frame:
        return self.ring[pos - self.first_pos]

    def pos_after(self, sid: StreamId) -> int | None:
        """Position of the first frame newer than ``sid`` if the ring proves nothing in between is missing."""
        ring = self.ring
        if not ring or sid < ring[0].sid or sid > ring[-1].sid:
            return None
        if sid == ring[-1].sid:
            return self.next_pos
        lo, hi = 0, len(ring) - 1  # invariant: ring[lo].sid <= sid < ring[hi].sid
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ring[mid].sid <= sid:
                lo = mid
            else:
                hi = mid
        return self.first_pos + hi
