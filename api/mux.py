"""``GET /v1/events?feeds=a,b,c``: several feeds over one SSE connection, resumable with one id.

Every event is the single-feed stream's event (``snapshot``, ``ranking``, ``reset``; its data names the
feed in ``"feed"``) with another ``id:``: the **multiplexed id**, which records the position of every feed
of the connection, so the ``Last-Event-ID`` a browser sends on reconnect resumes all of them::

    <fingerprint>:<position>,<position>,...

- The feeds are those of ``feeds=`` sorted and without repeats; positions follow that order.
- A position is the feed's single-feed event id (``<ranking id>@<epoch>``) or empty (nothing received yet).
- The fingerprint is the CRC-32 of the sorted feed list (8 hex digits): an id replayed against another feed
  list is refused (400) rather than applied to the wrong feeds.
- Bounded: at most ``KIWOOM_API_MUX_MAX_FEEDS`` feeds (16 by default) of at most 75 characters each, well
  inside the 8 KiB header limit of api.gate and nginx.

Each feed then follows the single-feed rules of :mod:`api.cursor` (replay from the ring or the stream; a
``reset`` with reason ``expired``, ``unknown``, ``behind`` or ``epoch``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Final
from urllib.parse import parse_qs

from starlette.types import Receive, Send

from api.cursor import FeedCursor
from api.edge import ResumeId, dumps, parse_resume_id
from api.frames import (
    END,
    KEEPALIVE,
    SEP,
    comment_frame,
    event_tail,
    reset_data,
    retry_frame,
    stream_headers,
)
from api.hub import Hub
from api.multi import MultiOutput, Session
from api.ring import FeedState, Frame, ResetReason, Snapshot
from api.runtime import Connection
from kiwoom_cache import contract
from kiwoom_cache.contract import EventName
from kiwoom_cache.errors import ContractError

PATH: Final = "/v1/events"


class MuxInputError(ValueError):
    """Bad ``feeds=`` or multiplexed ``Last-Event-ID``; the message is the client's error detail."""


def parse_feeds(query_string: bytes, max_feeds: int) -> list[str]:
    """The sorted, de-duplicated feeds of ``feeds=a,b`` (repeatable); raises :class:`MuxInputError`."""
    try:
        values = parse_qs(query_string.decode("latin-1"), max_num_fields=64).get("feeds", [])
    except ValueError:
        raise MuxInputError("too many query parameters") from None
    return check_feeds((f.strip() for v in values for f in v.split(",")), max_feeds)


def check_feeds(names: Iterable[str], max_feeds: int) -> list[str]:
    feeds = sorted({name for name in names if name})
    if not feeds:
        raise MuxInputError("name the feeds: ?feeds=a,b,c")
    if len(feeds) > max_feeds:
        raise MuxInputError(f"too many feeds ({len(feeds)}): at most {max_feeds} per connection")
    for feed in feeds:
        try:
            contract.check_feed(feed)
        except ContractError as exc:
            raise MuxInputError(str(exc)[:200]) from None
    return feeds


def fingerprint(feeds: list[str]) -> str:
    return f"{zlib.crc32(','.join(feeds).encode()):08x}"


def format_id(feeds: list[str], positions: list[str | None]) -> str:
    return fingerprint(feeds) + ":" + ",".join(p or "" for p in positions)


def parse_id(value: str, feeds: list[str]) -> list[str | None]:
    """A multiplexed ``Last-Event-ID`` -> each feed's event id as sent (None: none yet); raises MuxInputError."""
    return [p.text if p is not None else None for p in parse_positions(value, feeds)]


def parse_positions(value: str, feeds: list[str]) -> list[ResumeId | None]:
    """A multiplexed ``Last-Event-ID`` -> each feed's resume id (None: none yet); raises MuxInputError."""
    fp, sep, rest = value.partition(":")
    if not sep or len(fp) != 8:
        raise MuxInputError("malformed Last-Event-ID: expected <fingerprint>:<event id>,<event id>,... as sent "
                            "by this stream")
    if fp != fingerprint(feeds):
        raise MuxInputError("Last-Event-ID was issued for another list of feeds")
    parts = rest.split(",")
    if len(parts) != len(feeds):
        raise MuxInputError(f"Last-Event-ID holds {len(parts)} positions for {len(feeds)} feeds")
    positions: list[ResumeId | None] = []
    for part in parts:
        try:
            positions.append(parse_resume_id(part) if part else None)
        except ContractError as exc:
            raise MuxInputError(f"malformed position in Last-Event-ID: {str(exc)[:200]}") from None
    return positions


class MuxOutput(MultiOutput):
    """Single-feed events behind a multiplexed ``id:`` line that records every feed's position."""

    __slots__ = ("conn", "held", "index", "positions", "prefix")

    def __init__(self, conn: Connection, feeds: list[str], positions: list[ResumeId | None]) -> None:
        self.conn = conn
        self.index = {feed: i for i, feed in enumerate(feeds)}
        self.positions = [p.text.encode() if p else b"" for p in positions]
        self.prefix = b"id: " + fingerprint(feeds).encode() + b":"
        #: Bodies gathered between hold() and release() (at most a batch per feed).
        self.held: list[bytes] | None = None

    def _id_line(self, feed: str, position: bytes) -> bytes:
        self.positions[self.index[feed]] = position
        return self.prefix + b",".join(self.positions) + SEP

    def hold(self) -> None:
        self.held = []

    async def release(self) -> None:
        held, self.held = self.held, None
        if held:
            await self.write(held[0] if len(held) == 1 else b"".join(held))

    async def write(self, body: bytes) -> None:
        if self.held is not None:
            self.held.append(body)
            return
        await self.conn.body(body)

    async def snapshot(self, cur: FeedCursor, snap: Snapshot) -> None:
        tail = snap.variants.get(_SNAPSHOT_TAIL)
        if tail is None:
            tail = snap.variants[_SNAPSHOT_TAIL] = event_tail(EventName.snapshot, snap.doc)
        await self.write(self._id_line(cur.feed, snap.event_id.encode()) + tail)

    async def empty(self, cur: FeedCursor) -> None:
        await self.write(comment_frame(f"{cur.feed}: no ranking yet"))

    async def reset(self, cur: FeedCursor, reason: ResetReason, snap: Snapshot | None) -> None:
        # With no snapshot the feed starts afresh: its position is cleared.
        position = snap.event_id.encode() if snap is not None else b""
        tail = event_tail(EventName.reset, reset_data(cur.feed, reason, snap))
        await self.write(self._id_line(cur.feed, position) + tail)

    async def frames(self, cur: FeedCursor, frames: list[Frame]) -> None:
        parts: list[bytes] = []
        for f in frames:
            tail = f.mux
            if tail is None:
                tail = f.mux = event_tail(EventName.ranking, f.doc)
            parts += (self._id_line(cur.feed, f.event_id.encode()), tail)
        await self.write(b"".join(parts))

    async def ping(self) -> None:
        await self.write(KEEPALIVE)

    async def end(self) -> None:
        await self.conn.send(END)


_SNAPSHOT_TAIL: Final = ("mux", EventName.snapshot)


def hello_frame(replica: str, feeds: list[str], resumed_from: str | None) -> bytes:
    data = dumps({"replica": replica, "feeds": feeds, "resumed_from": resumed_from})
    return event_tail(EventName.hello, data)


async def serve_mux(hub: Hub, states: list[FeedState], last_event_id: str | None, receive: Receive, send: Send, *,
                    positions: list[ResumeId | None]) -> None:
    """Stream several feeds (sorted as ``feeds=`` is) to one client until it leaves or the replica stops."""
    async with Connection(hub, send) as conn:
        feeds = [st.feed for st in states]
        out = MuxOutput(conn, feeds, positions)
        session = Session(hub, conn.client, out)
        watcher = conn.watch(receive, session.leave)
        hub.counters.mux_connections += 1
        try:
            settings = hub.settings
            await send({"type": "http.response.start", "status": 200,
                        "headers": stream_headers(settings.replica_id)})
            await out.write(retry_frame(settings.retry_ms, "kiwoom-cache")
                            + hello_frame(settings.replica_id, feeds, last_event_id))
            for st, position in zip(states, positions, strict=True):
                cur = FeedCursor(hub, st)
                session.add(cur)
                if not await cur.start(out, position):
                    await send(END)  # a replay failed: ending the stream makes the client retry
                    return
            await session.run()
        finally:
            hub.counters.mux_connections -= 1
            session.close()
            watcher.cancel()
