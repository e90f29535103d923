"""Where one client is in one feed, and how it starts, resumes and catches up: shared by every transport.

The single-feed SSE stream (:mod:`api.sse`), the multiplexed SSE stream (:mod:`api.mux`) and the WebSocket
(:mod:`api.ws`) all hold one :class:`FeedCursor` per feed they deliver and differ only in their
:class:`Output` (how an event is framed and written). So resume, replay from the stream and the ``reset``
rules exist once:

- No resume id: the current snapshot (``snapshot`` event), then live rankings.
- A resume id of another epoch: ``reset`` (reason ``epoch``) at once. Inside the ring: served from memory.
  Otherwise the cursor is taken *before* the XRANGE replay, so every entry is either in the replay or in the
  ring after the cursor; the overlap is dropped by comparing stream ids. An id older than the stream keeps
  (``expired``) or newer than its last entry (``unknown``) gets a ``reset`` with the current snapshot.
- When the replica finds the feed's history lost or replaced (``FeedState.generation`` grows) the client gets
  a ``reset`` (``epoch``); one further behind than the ring gets a ``reset`` (``behind``).
"""

from __future__ import annotations

import logging
from typing import Final

from redis.exceptions import RedisError

from api.edge import ResumeId
from api.hub import Hub
from api.ring import FeedState, Frame, ResetReason, Snapshot, StreamId
from api.sync import frame_of
from kiwoom_cache.errors import ContractError

log = logging.getLogger(__name__)

_NO_SID: Final = (0, 0)


class Output:
    """How one connection frames and writes events; every method may suspend on a slow peer."""

    __slots__ = ()

    async def snapshot(self, cur: FeedCursor, snap: Snapshot) -> None:
        raise NotImplementedError

    async def empty(self, cur: FeedCursor) -> None:
        """The feed has no ranking yet."""
        raise NotImplementedError

    async def reset(self, cur: FeedCursor, reason: ResetReason, snap: Snapshot | None) -> None:
        raise NotImplementedError

    async def frames(self, cur: FeedCursor, frames: list[Frame]) -> None:
        """Ranking events, oldest first (at least one)."""
        raise NotImplementedError

    async def resumed(self, cur: FeedCursor) -> None:
        """The resume id was accepted; rankings after it follow (possibly none yet)."""


class FeedCursor:
    """One client in one feed: the ring position it needs next and the newest stream id it has received."""

    __slots__ = ("generation", "hub", "last_sid", "pos", "st")

    def __init__(self, hub: Hub, st: FeedState) -> None:
        self.hub, self.st = hub, st
        self.pos = st.next_pos
        self.last_sid: StreamId = _NO_SID
        self.generation = st.generation

    @property
    def feed(self) -> str:
        return self.st.feed

    def reset(self, reason: ResetReason) -> Snapshot | None:
        """Move past a ``reset``: after the current snapshot if there is one, else to the ring's start."""
        st = self.st
        self.hub.counters.resets += 1
        self.generation = st.generation
        snap = st.snapshot
        if snap is None:
            self.last_sid = _NO_SID  # whatever the ring holds now is of the current history: send it all
            self.pos = st.first_pos
            return None
        self.last_sid = snap.sid
        pos = st.pos_after(snap.sid)
        self.pos = st.next_pos if pos is None else pos
        return snap

    async def send_reset(self, out: Output, reason: ResetReason) -> None:
        await out.reset(self, reason, self.reset(reason))

    async def start(self, out: Output, resume: ResumeId | None) -> bool:
        """Send what opens the feed (from ``resume``, parsed once at the edge by :func:`api.edge.parse_resume_id`);
        False if the replay failed (Redis) and the client should retry."""
        st = self.st
        if resume is None:
            snap = st.snapshot
            if snap is None:
                self.pos = st.next_pos
                await out.empty(self)
                return True
            pos = st.pos_after(snap.sid)
            self.last_sid = snap.sid
            self.pos = st.next_pos if pos is None else pos
            await out.snapshot(self, snap)
            return True
        sid, rid, epoch = resume.sid, resume.rid, resume.epoch
        if epoch is not None and st.epoch is not None and epoch != st.epoch:
            await self.send_reset(out, ResetReason.epoch)
            return True
        pos = st.pos_after(sid)
        if pos is not None:  # the ring holds everything after it: no Redis round trip
            self.last_sid, self.pos = sid, pos
            await out.resumed(self)
            return True
        try:
            await self._replay(out, sid, rid, epoch)
        except RedisError as exc:
            log.warning("feed %s: replay after %s failed (%s); the client should retry", st.feed, resume.text, exc)
            return False
        except ContractError:  # the history key is not a stream (Hub.read logged it): the id means nothing now
            await self.send_reset(out, ResetReason.epoch)
        return True

    async def _replay(self, out: Output, sid: StreamId, rid: str, epoch: str | None) -> None:
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
            await self.send_reset(out, reason)
            return
        await out.resumed(self)
        self.last_sid, after = sid, rid
        page_size = hub.settings.replay_page
        while True:
            page = await hub.read(st.feed, low="(" + after, count=page_size)
            entries = page.entries
            if epoch is not None and any(e.epoch != epoch for e in entries):  # the history changed meanwhile
                await self.send_reset(out, ResetReason.epoch)
                return
            if page.last_id is not None:
                after = page.last_id
            if entries:
                self.last_sid = entries[-1].sid
                await out.frames(self, [frame_of(e) for e in entries])
                hub.counters.events_sent += len(entries)
            if page.read < page_size:
                resume = st.pos_after(self.last_sid)
                if resume is not None:
                    self.pos = resume
                    return
                if not st.ring or self.last_sid > st.ring[-1].sid:
                    self.pos = max(registered, st.first_pos)
                    return
                # the ring moved past the replay while it ran: read the stream again from last_id

    def take(self, max_batch: int) -> list[Frame] | ResetReason | None:
        """What is due from the ring: frames (possibly none left after dropping overlap), a reset to send, or
        None when the cursor is at the ring's head. Moves the cursor; the caller writes what it got."""
        st = self.st
        if self.generation != st.generation:  # the history was lost or replaced
            return st.reset_reason
        pos = self.pos
        if pos >= st.next_pos:
            return None
        if pos < st.first_pos:  # fell further behind than the ring keeps
            return ResetReason.behind
        ring, base = st.ring, pos - st.first_pos
        n = min(st.next_pos - pos, max_batch)
        self.pos = pos + n
        if n == 1:
            frame = ring[base]
            if frame.sid <= self.last_sid:
                return []
            self.last_sid = frame.sid
            self.hub.counters.events_sent += 1
            return [frame]
        frames = [f for f in (ring[base + i] for i in range(n)) if f.sid > self.last_sid]
        if frames:
            self.last_sid = frames[-1].sid
            self.hub.counters.events_sent += len(frames)
        return frames

    async def pump(self, out: Output, max_batch: int) -> bool:
        """Write one due batch (or reset); False when nothing was due."""
        got = self.take(max_batch)
        if got is None:
            return False
        if isinstance(got, ResetReason):
            await self.send_reset(out, got)
        elif got:
            await out.frames(self, got)
        return True

