"""Keeping each feed's ring and snapshot contiguous with its Redis stream.

Every (re)subscribe is followed by a sync: the stream's tail is compared with what the replica holds (another
epoch or ids gone backwards restart the ring, and its clients get a reset), then the ring is filled or caught
up with XRANGE pages, and the snapshot re-read. Channel messages that arrive meanwhile are held and applied
after, de-duplicated by stream id; a message that does not follow the ring (a seq gap) triggers another sync,
as the stream holds it too. So a client of a replica that lost Redis for a while still gets every entry, in
order, once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import redis.asyncio as aioredis

from api.reader import Faults, StreamReader
from api.replies import bytes_value
from api.ring import FeedState, Frame, ResetReason, Snapshot
from api.settings import ApiSettings
from api.stream import Entry, Page
from kiwoom_cache import contract
from kiwoom_cache.errors import ContractError

log = logging.getLogger(__name__)


class FeedHost(Protocol):
    """What the sync needs of the hub: its loop and feeds, and a word when frames were appended."""

    feeds: dict[str, FeedState]

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def state(self, feed: str) -> FeedState: ...

    def fanned_out(self, st: FeedState) -> None: ...


class FeedSync:
    """Syncs rings with streams and applies channel messages; one sync per feed at a time."""

    def __init__(self, settings: ApiSettings, redis: aioredis.Redis, reader: StreamReader, faults: Faults,
                 host: FeedHost) -> None:
        self.settings = settings
        self.redis = redis
        self.reader = reader
        self.faults = faults
        self.host = host
        #: Times a feed's history was found lost or replaced (new epoch, ids going backwards).
        self.restarts = 0

    def request(self, feed: str) -> asyncio.Task[None]:
        """Catch the feed's ring and snapshot up with Redis; one sync per feed at a time."""
        st = self.host.state(feed)
        if st.sync_task is None or st.sync_task.done():
            if st.held is None:
                st.held = []  # from now on messages wait for the sync instead of racing it
            st.sync_task = self.host.loop.create_task(self._sync(st), name=f"hub-sync-{feed}")
            st.sync_task.add_done_callback(self._sync_done)
        return st.sync_task

    def on_message(self, channel: bytes, data: bytes) -> None:
        """A channel message: applied now, held while its feed syncs, or the reason to sync an unseen feed."""
        feed = contract.feed_of_channel(channel)
        if feed is None:
            return
        st = self.host.feeds.get(feed)
        if st is None or not st.synced or st.held is not None:
            if st is not None and st.held is not None:
                st.held.append(data)
            else:
                self.request(feed)  # an unseen feed: read its stream (which holds this entry)
            return
        added = self.apply(st, data)
        if added < 0:
            self.request(feed)
        elif added:
            self.host.fanned_out(st)

    @staticmethod
    def _sync_done(task: asyncio.Task[None]) -> None:
        # Retrieved here so a sync nobody awaited never ends as "Task exception was never retrieved".
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("%s failed: %s: %s", task.get_name(), type(exc).__name__, exc)

    async def _read_or_empty(self, feed: str, *, low: str = "-", count: int, newest_first: bool = False) -> Page:
        """A read for the sync: a history key that is not a stream holds no entries (the snapshot still
        serves, and a ring that mirrored the stream restarts, so its clients get a reset instead of silence)."""
        try:
            return await self.reader.read(feed, low=low, count=count, newest_first=newest_first)
        except ContractError:
            return Page()

    async def _sync(self, st: FeedState) -> None:
        ok = False
        appended = 0
        try:
            await self._check_history(st)
            if not st.ring:
                appended += await self._fill(st)
            else:
                appended += await self._catch_up(st)
            latest = bytes_value(await self.redis.get(contract.latest_key(st.feed)))
            if latest is not None:
                self.take_snapshot(st, latest)
            ok = True
        finally:
            held, st.held = st.held or [], None
            st.synced = ok
            resync = False
            if ok:  # on failure the held messages are in the stream: the next sync reads them
                for data in held:
                    added = self.apply(st, data)
                    if added < 0:
                        resync = True
                        break
                    appended += added
            if appended:
                self.host.fanned_out(st)
            if resync:  # a held message showed a gap or a new history: read the stream again
                self.host.loop.call_soon(self.request, st.feed)

    async def _check_history(self, st: FeedState) -> None:
        """Compare what the replica holds with the stream's tail: another epoch, or ids gone backwards, and
        the ring restarts (and its clients get a reset)."""
        ref: Frame | Snapshot | None = st.ring[-1] if st.ring else st.snapshot
        if ref is None:
            return
        page = await self._read_or_empty(st.feed, count=8, newest_first=True)
        tail = page.entries[0] if page.entries else None
        if tail is None:
            if st.ring and not page.read:  # the ring mirrors a stream that is gone
                self._restart(st, "the stream is gone")
            return  # only bad entries at the tail, or a snapshot without a stream: nothing to compare
        if tail.epoch != ref.epoch:
            self._restart(st, f"epoch {ref.epoch} -> {tail.epoch}")
        elif tail.sid < ref.sid or tail.seq < ref.seq:
            self._restart(st, f"ids went backwards ({ref.id} -> {tail.id})")

    async def _fill(self, st: FeedState) -> int:
        """An empty ring: the newest ``ring_size`` entries of the newest epoch."""
        page = await self._read_or_empty(st.feed, count=self.settings.ring_size, newest_first=True)
        entries = page.entries
        if entries:
            epoch = entries[0].epoch
            entries = entries[: next((i for i, e in enumerate(entries) if e.epoch != epoch), len(entries))]
        return sum(st.append(frame_of(e)) for e in reversed(entries))

    async def _catch_up(self, st: FeedState) -> int:
        appended = 0
        page_size = self.settings.replay_page
        after = st.ring[-1].id
        while True:
            page = await self._read_or_empty(st.feed, low="(" + after, count=page_size)
            for entry in page.entries:
                if entry.epoch != st.ring[-1].epoch:  # the epoch changed under us: start over from the tail
                    self._restart(st, f"epoch changed to {entry.epoch} while catching up")
                    return appended + await self._fill(st)
                appended += st.append(frame_of(entry))
            if page.read < page_size or page.last_id is None:
                return appended
            after = page.last_id

    def _restart(self, st: FeedState, why: str) -> None:
        self.restarts += 1
        log.warning("feed %s: history lost or replaced (%s); resetting %d client(s)", st.feed, why,
                    len(st.clients))
        st.restart(ResetReason.epoch)

    def _validate(self, st: FeedState, doc: bytes) -> contract.Ranking | None:
        try:
            ranking = contract.decode_ranking(doc, key=contract.latest_key(st.feed))
            if ranking.id is None or ranking.feed != st.feed:
                raise ContractError(f"document lacks an id or belongs to feed {ranking.feed!r}",
                                    key=contract.latest_key(st.feed))
        except ContractError as exc:
            self.faults.report(st, str(exc), "document")
            return None
        return ranking

    def take_snapshot(self, st: FeedState, doc: bytes) -> str | None:
        """Validate a full document (once per replica); keep it as the snapshot if it follows. Returns its id."""
        ranking = self._validate(st, doc)
        if ranking is None:
            return None
        assert ranking.id is not None
        _keep_snapshot(st, doc, ranking)
        return ranking.id

    def apply(self, st: FeedState, data: bytes) -> int:
        """One channel message: validate once per replica, append its frame, refresh the snapshot.

        Returns the frames appended, or -1 when the message does not follow the ring (a seq gap, another
        epoch, ids gone backwards): the caller syncs with the stream, which holds the message too.
        """
        ranking = self._validate(st, data)
        if ranking is None or ranking.id is None:
            return 0
        sid = contract.parse_stream_id(ranking.id)
        seq = ranking.seq or 0
        ref: Frame | Snapshot | None = st.ring[-1] if st.ring else st.snapshot
        if ref is not None:
            if ranking.epoch != ref.epoch:
                self._restart(st, f"epoch {ref.epoch} -> {ranking.epoch}")
                return -1
            if sid <= ref.sid:
                if sid == ref.sid or (st.ring and (st.has(sid) or sid < st.ring[0].sid)):
                    return 0  # already have it (sync and subscription overlap)
                self._restart(st, f"ids went backwards ({ref.id} -> {ranking.id})")
                return -1
            if seq <= ref.seq:
                self._restart(st, f"seq went backwards ({ref.seq} -> {seq})")
                return -1
            if seq != ref.seq + 1:
                return -1  # missed a message: the stream has it
        _keep_snapshot(st, data, ranking)
        frame = Frame.ranking(sid, ranking.id, data, ranking.epoch, seq)
        return int(st.append(frame))


def frame_of(entry: Entry) -> Frame:
    """A stream entry as the ring holds it: the document once, each transport's frame built from it once."""
    return Frame.ranking(entry.sid, entry.id, entry.doc, entry.epoch, entry.seq)


def _keep_snapshot(st: FeedState, doc: bytes, ranking: contract.Ranking) -> None:
    assert ranking.id is not None
    snap = st.snapshot
    if snap is None or (ranking.epoch == snap.epoch and contract.parse_stream_id(ranking.id) > snap.sid):
        st.snapshot = Snapshot(ranking.id, doc, ranking)
