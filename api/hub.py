"""The per-replica hub: one Redis pattern subscription, fanned out in-process to every SSE client.

docs/design-figures.md §3 shows that per-client Python work per event (a queue, a generator, a task group) is what
costs multiples of nchan, and that one shared wake-up with the frame built once matches it. So:

- Each feed has a **ring** of the last ``ring_size`` frames, each encoded once (``event: ranking``).
  Positions only grow; a client holds nothing but its cursor (the next position it needs).
- One shared **future per feed** wakes every waiting client; it resolves with ``DATA``, ``PING`` (the
  heartbeat, one timer for the whole process) or ``CLOSE`` (shutdown). Clients never cancel it: a client
  task is only cancelled while it is inside ``send`` (slow-client eviction), not while it waits.
- The ring is kept **contiguous with the Redis stream**: every (re)subscribe is followed by an XRANGE of
  what the replica missed, and messages arriving meanwhile are held and de-duplicated by stream id. So a
  client of a replica that lost Redis for a while still gets every entry, in order, once.
- Memory is bounded whatever clients do: ``ring_size`` frames per feed, one cursor per client, and at most
  ``max_batch`` frames buffered in a client's transport; a client further behind than the ring gets a
  ``reset`` with the current snapshot, and one whose socket stops draining is dropped after
  ``send_timeout_s``.
- ``gc.freeze()`` shortly after each burst moves the thousands of long-lived connection objects out of the
  collector's view, so full collections do not scan them in the middle of the next fan-out.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
from collections import deque
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

# Importing sse_starlette.sse installs its uvicorn exit hook (AppStatus.should_exit): our streams end on it.
from sse_starlette.sse import AppStatus

from api.frames import EVENT_RANKING, event_frame
from api.replies import bytes_value, stream_entries
from api.settings import ApiSettings
from kiwoom_cache import contract
from kiwoom_cache.clock import now_ms
from kiwoom_cache.errors import ContractError

log = logging.getLogger(__name__)

#: Wake-up signals carried by a feed's shared future.
DATA: Final = "data"
PING: Final = "ping"
CLOSE: Final = "close"

StreamId = tuple[int, int]


class Frame:
    """One ring entry: a stream entry id and its encoded ``ranking`` frame."""

    __slots__ = ("data", "id", "sid")

    def __init__(self, sid: StreamId, rid: str, data: bytes) -> None:
        self.sid = sid
        self.id = rid
        self.data = data


class Snapshot:
    """The feed's latest validated document, plus encodings derived from it (cached per ranking id)."""

    __slots__ = ("doc", "id", "published_at_ms", "session", "sid", "variants")

    def __init__(self, rid: str, doc: bytes, ranking: contract.Ranking) -> None:
        self.id = rid
        self.sid = contract.parse_stream_id(rid)
        self.doc = doc
        self.published_at_ms = ranking.published_at_ms
        self.session = ranking.session
        #: Rendered bodies and SSE frames keyed by what varies (limit, fields, staleness, event name).
        self.variants: dict[tuple[Any, ...], bytes] = {}

    def frame(self, event: str) -> bytes:
        key = ("frame", event)
        data = self.variants.get(key)
        if data is None:
            data = self.variants[key] = event_frame(event, self.id, self.doc)
        return data


class Client:
    """What the hub knows of one SSE response: enough to count it and to evict it if it stalls."""

    __slots__ = ("dropped", "gone", "send_since", "task")

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task
        self.gone = False
        self.dropped = False
        #: loop.time() when the current send began, 0.0 while not sending.
        self.send_since = 0.0


class FeedState:
    """One feed: ring of frames, latest snapshot, the shared wake-up and the connected clients."""

    __slots__ = ("_loop", "_waiter", "clients", "error", "feed", "held", "next_pos", "ring", "snapshot",
                 "sync_task", "synced")

    def __init__(self, feed: str, ring_size: int, loop: asyncio.AbstractEventLoop) -> None:
        self.feed = feed
        self.ring: deque[Frame] = deque(maxlen=ring_size)
        self.next_pos = 0
        self.snapshot: Snapshot | None = None
        self.clients: set[Client] = set()
        #: Last contract violation seen for this feed (logged, surfaced as 502 when nothing valid exists).
        self.error: str | None = None
        self.synced = False
        #: Messages received while a sync is reading the stream; applied (de-duplicated) after it.
        self.held: list[bytes] | None = None
        self.sync_task: asyncio.Task[None] | None = None
        self._loop = loop
        self._waiter: asyncio.Future[str] = loop.create_future()

    @property
    def first_pos(self) -> int:
        return self.next_pos - len(self.ring)

    @property
    def waiter(self) -> asyncio.Future[str]:
        if self._waiter.cancelled():  # defensive: a cancelled shared future must not stall everyone
            self._waiter = self._loop.create_future()
        return self._waiter

    def wake(self, signal: str) -> None:
        fut, self._waiter = self._waiter, self._loop.create_future()
        if not fut.done():
            fut.set_result(signal)

    def append(self, frame: Frame) -> bool:
        if self.ring and frame.sid <= self.ring[-1].sid:
            return False  # already have it (sync and subscription overlap)
        self.ring.append(frame)
        self.next_pos += 1
        return True

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


class Hub:
    """Owns the subscription task, the registry/heartbeat poller and the tick (heartbeat, eviction, GC)."""

    def __init__(self, settings: ApiSettings, redis: aioredis.Redis, pubsub_redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis
        self._pubsub_redis = pubsub_redis
        self.feeds: dict[str, FeedState] = {}
        self.registry: dict[str, contract.FeedInfo] = {}
        self.status: contract.PublisherStatus | None = None
        self.status_error: str | None = None
        #: True while the subscription is confirmed and the rings are caught up with the streams.
        self.live = False
        self.last_error: str | None = None
        #: Set on shutdown (lifespan or uvicorn's exit signal): streams end, new ones get 503.
        self.draining = False
        self.reconnects = 0
        self.events_sent = 0
        self.dropped = 0
        self.resets = 0
        self.contract_errors = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._freeze_at = 0.0
        self._full_gc_at = 0.0

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._full_gc_at = self._loop.time()
        self._tasks = [self._loop.create_task(coro, name=f"hub-{name}") for name, coro in (
            ("listen", self._listen()), ("poll", self._poll()), ("tick", self._tick()))]

    async def aclose(self) -> None:
        self.draining = True
        self.live = False
        for st in self.feeds.values():
            st.wake(CLOSE)
        tasks = self._tasks + [st.sync_task for st in self.feeds.values() if st.sync_task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []
        if self.settings.gc_freeze:
            gc.unfreeze()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "Hub.start() was not awaited"
        return self._loop

    @property
    def client_count(self) -> int:
        return sum(len(st.clients) for st in self.feeds.values())

    # --- feeds -------------------------------------------------------------------------------

    def state(self, feed: str) -> FeedState:
        st = self.feeds.get(feed)
        if st is None:
            st = self.feeds[feed] = FeedState(feed, self.settings.ring_size, self.loop)
        return st

    async def lookup(self, feed: str) -> FeedState | None:
        """The synced state of a known feed, None for an unknown one; raises RedisError if Redis is down."""
        st = self.feeds.get(feed)
        if st is not None and st.synced and (feed in self.registry or st.ring or st.snapshot):
            return st
        try:
            contract.check_feed(feed)
        except ContractError:
            return None
        if feed not in self.registry:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hexists(contract.FEEDS_KEY, feed)
                pipe.exists(contract.latest_key(feed))
                registered, has_latest = await pipe.execute()
            if not registered and not has_latest:
                return None
        if st is None or not st.synced:
            await asyncio.shield(self.request_sync(feed))
        return self.feeds[feed]

    def request_sync(self, feed: str) -> asyncio.Task[None]:
        """Catch the feed's ring and snapshot up with Redis; one sync per feed at a time."""
        st = self.state(feed)
        if st.sync_task is None or st.sync_task.done():
            if st.held is None:
                st.held = []  # from now on messages wait for the sync instead of racing it
            st.sync_task = self.loop.create_task(self._sync(st), name=f"hub-sync-{feed}")
        return st.sync_task

    async def _sync(self, st: FeedState) -> None:
        ok = False
        appended = 0
        try:
            key = contract.history_key(st.feed)
            if not st.ring:
                entries = stream_entries(await self.redis.xrevrange(key, "+", "-", count=self.settings.ring_size))
                entries.reverse()
                appended += self._append_entries(st, entries)
            else:
                page = self.settings.replay_page
                while True:
                    entries = stream_entries(await self.redis.xrange(key, "(" + st.ring[-1].id, "+", count=page))
                    appended += self._append_entries(st, entries)
                    if len(entries) < page:
                        break
            latest = bytes_value(await self.redis.get(contract.latest_key(st.feed)))
            if latest is not None:
                self.take_snapshot(st, latest)
            ok = True
        finally:
            held, st.held = st.held or [], None
            st.synced = ok
            if ok:  # on failure the held messages are in the stream: the next sync reads them
                for data in held:
                    appended += self._apply(st, data)
            if appended:
                self._fanned_out(st)

    def _append_entries(self, st: FeedState, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> int:
        added = 0
        for entry_id, fields in entries:
            rid = entry_id.decode()
            try:
                doc = contract.document_from_entry(rid, fields)
            except ContractError as exc:
                self._contract_error(st, exc, f"stream entry {rid}")
                continue
            added += st.append(Frame(contract.parse_stream_id(rid), rid, event_frame(EVENT_RANKING, rid, doc)))
        return added

    def take_snapshot(self, st: FeedState, doc: bytes) -> str | None:
        """Validate a full document (once per replica); keep it as the snapshot if newer. Returns its id."""
        try:
            ranking = contract.decode_ranking(doc, key=contract.latest_key(st.feed))
            if ranking.id is None or ranking.feed != st.feed:
                raise ContractError(f"document lacks an id or belongs to feed {ranking.feed!r}",
                                    key=contract.latest_key(st.feed))
        except ContractError as exc:
            self._contract_error(st, exc, "document")
            return None
        if st.snapshot is None or contract.parse_stream_id(ranking.id) > st.snapshot.sid:
            st.snapshot = Snapshot(ranking.id, doc, ranking)
        st.error = None
        return ranking.id

    def _contract_error(self, st: FeedState, exc: ContractError, what: str) -> None:
        self.contract_errors += 1
        st.error = str(exc)
        log.warning("feed %s: ignoring bad %s: %s", st.feed, what, exc)

    def _apply(self, st: FeedState, data: bytes) -> int:
        """One channel message: validate once per replica, append its frame, refresh the snapshot."""
        rid = self.take_snapshot(st, data)
        if rid is None:
            return 0
        return int(st.append(Frame(contract.parse_stream_id(rid), rid, event_frame(EVENT_RANKING, rid, data))))

    def _on_message(self, channel: bytes, data: bytes) -> None:
        feed = contract.feed_of_channel(channel)
        if feed is None:
            return
        st = self.feeds.get(feed)
        if st is None or not st.synced or st.held is not None:
            if st is not None and st.held is not None:
                st.held.append(data)
            else:
                self.request_sync(feed)  # an unseen feed: read its stream (which holds this entry)
            return
        if self._apply(st, data):
            self._fanned_out(st)

    def _fanned_out(self, st: FeedState) -> None:
        st.wake(DATA)
        if self.settings.gc_freeze and not self._freeze_at:
            self._freeze_at = self.loop.time() + 0.2  # after the burst: the tick freezes

    # --- background tasks --------------------------------------------------------------------

    async def _listen(self) -> None:
        backoff = self.settings.reconnect_min_s
        connected_before = False
        while True:
            pubsub = self._pubsub_redis.pubsub()
            try:
                await pubsub.psubscribe(contract.UPDATES_PATTERN)
                await self._confirm(pubsub)
                await self.refresh_registry()
                feeds = set(self.registry) | set(self.feeds)
                await asyncio.gather(*(self.request_sync(feed) for feed in feeds))
                if connected_before:
                    self.reconnects += 1
                    log.info("redis subscription restored; %d feeds caught up from their streams", len(feeds))
                connected_before = True
                self.live, self.last_error = True, None
                backoff = self.settings.reconnect_min_s
                idle = 0.0
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is None:
                        idle += 1.0
                        if idle >= 5.0:  # a silent peer is only noticed by talking to it
                            await pubsub.ping()
                            idle = 0.0
                        continue
                    idle = 0.0
                    if msg["type"] == "pmessage":
                        self._on_message(msg["channel"], msg["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.live = False
                for st in self.feeds.values():
                    st.synced = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = backoff * (0.5 + random.random() / 2)
                log.warning("redis subscription lost (%s); retrying in %.2fs", self.last_error, delay)
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, self.settings.reconnect_max_s)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _confirm(self, pubsub: aioredis.client.PubSub) -> None:
        deadline = self.loop.time() + self.settings.redis_timeout_s
        while self.loop.time() < deadline:
            msg = await pubsub.get_message(timeout=0.5)
            if msg is not None and msg["type"] == "psubscribe":
                return
        raise RedisError("no psubscribe confirmation")

    async def refresh_registry(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(contract.FEEDS_KEY)
            pipe.get(contract.STATUS_KEY)
            raw_feeds, raw_status = await pipe.execute()
        registry: dict[str, contract.FeedInfo] = {}
        for name, raw in raw_feeds.items():
            try:
                info = contract.FeedInfo.decode(raw)
            except ContractError as exc:
                log.warning("ignoring bad feed registration %r: %s", name, exc)
                continue
            registry[info.feed] = info
        self.registry = registry
        try:
            self.status = contract.PublisherStatus.decode(raw_status) if raw_status is not None else None
            self.status_error = None
        except ContractError as exc:
            self.status, self.status_error = None, str(exc)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_s)
            try:
                await self.refresh_registry()
            except (RedisError, OSError) as exc:
                log.debug("registry poll failed: %s", exc)
                continue
            if self.live:
                for feed in self.registry:
                    if feed not in self.feeds:
                        self.request_sync(feed)

    async def _tick(self) -> None:
        loop = self.loop
        next_ping = loop.time() + self.settings.ping_s
        while True:
            await asyncio.sleep(0.25)
            now = loop.time()
            limit = self.settings.send_timeout_s
            for st in self.feeds.values():
                for client in st.clients:
                    if client.send_since and now - client.send_since > limit and not client.dropped:
                        client.dropped = True  # the task is inside send(): cancelling it cannot hit the waiter
                        if client.task is not None:
                            client.task.cancel()
            if now >= next_ping:
                next_ping = now + self.settings.ping_s
                for st in self.feeds.values():
                    st.wake(PING)
            if AppStatus.should_exit and not self.draining:
                log.info("server is shutting down: ending %d event streams", self.client_count)
                self.draining = True
                for st in self.feeds.values():
                    st.wake(CLOSE)
            if self._freeze_at and now >= self._freeze_at:
                self._freeze_at = 0.0
                if now - self._full_gc_at > 300.0:  # now and then, collect what got frozen
                    self._full_gc_at = now
                    gc.unfreeze()
                    gc.collect()
                gc.freeze()

    # --- publisher ----------------------------------------------------------------------------

    def liveness(self, at_ms: int | None = None) -> str:
        return contract.publisher_liveness(self.status, now_ms() if at_ms is None else at_ms)
