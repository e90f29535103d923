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
from collections import OrderedDict

import redis.asyncio as aioredis
from redis.backoff import EqualJitterBackoff
from redis.exceptions import RedisError, ResponseError

from api.replies import bytes_value
from api.ring import CLOSE, DATA, PING, Client, FeedState, Frame, ResetReason, Snapshot, StreamCounters
from api.settings import ApiSettings
from api.slow import queued_bytes
from api.stream import Entry, Page, read_entries
from kiwoom_cache import contract
from kiwoom_cache.clock import now_ms
from kiwoom_cache.errors import ContractError

log = logging.getLogger(__name__)

__all__ = ["CLOSE", "DATA", "PING", "Client", "FeedState", "Frame", "Hub", "ResetReason", "Snapshot"]

#: Distinct bad stream entries remembered per replica, so re-reading one is not counted again.
_BAD_IDS_KEPT = 1024


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
        #: Every publisher's heartbeat (leader and standbys), from the publishers hash.
        self.publishers: list[contract.PublisherStatus] = []
        #: True while the subscription is confirmed and the rings are caught up with the streams.
        self.live = False
        self.last_error: str | None = None
        #: Set on shutdown (lifespan or the server's exit signal): streams end, new ones get 503.
        self.draining = False
        #: Set by the server's exit hook (api.cli); the tick turns it into draining on the loop thread.
        self.exit_requested = False
        #: loop.time() when the subscription was lost (None while live or before the first connection).
        self.lost_at: float | None = None
        #: Loop time the subscription came back after a loss (see :meth:`_status_pending`).
        self.recovered_at: float | None = None
        self.reconnects = 0
        self.contract_errors = 0
        #: Times a feed's history was found lost or replaced (new epoch, ids going backwards).
        self.restarts = 0
        self.counters = StreamCounters()
        self._bad_ids: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._freeze_at = 0.0
        self._full_gc_at = 0.0
        #: Resolved with PING by the heartbeat (one timer for the process) and CLOSE on shutdown: what
        #: connections carrying several feeds (api.multi) wait on beside their feeds' wake-ups.
        self._beat: asyncio.Future[str] | None = None
        #: One backoff for every reconnect loop (the publisher's writer uses the same class).
        self.backoff = EqualJitterBackoff(cap=settings.reconnect_max_s, base=settings.reconnect_min_s)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._beat = self._loop.create_future()
        self._full_gc_at = self._loop.time()
        self._tasks = [self._loop.create_task(coro, name=f"hub-{name}") for name, coro in (
            ("listen", self._listen()), ("poll", self._poll()), ("tick", self._tick()))]

    async def aclose(self) -> None:
        self.draining = True
        self.live = False
        for st in self.feeds.values():
            st.wake(CLOSE)
        self._wake_beat(CLOSE)
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
    def beat(self) -> asyncio.Future[str]:
        if self._beat is None or self._beat.cancelled():
            self._beat = self.loop.create_future()
        return self._beat

    def _wake_beat(self, signal: str) -> None:
        fut, self._beat = self._beat, self.loop.create_future() if self._loop is not None else None
        if fut is not None and not fut.done():
            fut.set_result(signal)

    @property
    def client_count(self) -> int:
        return sum(len(st.clients) for st in self.feeds.values())

    # --- feeds -------------------------------------------------------------------------------

    def state(self, feed: str) -> FeedState:
        st = self.feeds.get(feed)
        if st is None:
            st = self.feeds[feed] = FeedState(feed, self.settings.ring_size, self.loop, self.settings.ring_bytes,
                                              max_batch=self.settings.max_batch, counters=self.counters)
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

    def known(self, feed: str) -> FeedState | None:
        """What this replica holds for a feed, without asking Redis (stale-if-error answers from it)."""
        st = self.feeds.get(feed)
        return st if st is not None and st.snapshot is not None else None

    async def read(self, feed: str, *, low: str = "-", high: str = "+", count: int,
                   newest_first: bool = False) -> Page:
        """:func:`api.stream.read_entries`, with every skipped entry counted once and shown in /v1/feeds."""
        try:
            page = await read_entries(self.redis, feed, low=low, high=high, count=count, newest_first=newest_first)
        except ResponseError as exc:
            if not str(exc).startswith("WRONGTYPE"):
                raise
            # Redis is up; the key holds something else. A contract fault (502, /v1/feeds shows it), not a 503.
            st, reason = self.state(feed), f"{contract.history_key(feed)} is not a stream"
            if st.error != reason:
                self._contract_error(st, reason, "history key")
            raise ContractError(reason) from exc
        if page.bad:
            st = self.state(feed)
            for rid, reason in page.bad:
                key = (feed, rid)
                if key in self._bad_ids:
                    continue
                self._bad_ids[key] = None
                if len(self._bad_ids) > _BAD_IDS_KEPT:
                    self._bad_ids.popitem(last=False)
                self._contract_error(st, reason, f"stream entry {rid}")
        return page

    async def _read_or_empty(self, feed: str, *, low: str = "-", count: int, newest_first: bool = False) -> Page:
        """:meth:`read` for the sync: a history key that is not a stream holds no entries (the snapshot still
        serves, and a ring that mirrored the stream restarts, so its clients get a reset instead of silence)."""
        try:
            return await self.read(feed, low=low, count=count, newest_first=newest_first)
        except ContractError:
            return Page()

    def request_sync(self, feed: str) -> asyncio.Task[None]:
        """Catch the feed's ring and snapshot up with Redis; one sync per feed at a time."""
        st = self.state(feed)
        if st.sync_task is None or st.sync_task.done():
            if st.held is None:
                st.held = []  # from now on messages wait for the sync instead of racing it
            st.sync_task = self.loop.create_task(self._sync(st), name=f"hub-sync-{feed}")
            st.sync_task.add_done_callback(self._sync_done)
        return st.sync_task

    @staticmethod
    def _sync_done(task: asyncio.Task[None]) -> None:
        # Retrieved here so a sync nobody awaited never ends as "Task exception was never retrieved".
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("%s failed: %s: %s", task.get_name(), type(exc).__name__, exc)

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
                    added = self._apply(st, data)
                    if added < 0:
                        resync = True
                        break
                    appended += added
            if appended:
                self._fanned_out(st)
            if resync:  # a held message showed a gap or a new history: read the stream again
                self.loop.call_soon(self.request_sync, st.feed)

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
        return sum(st.append(self.frame_of(e)) for e in reversed(entries))

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
                appended += st.append(self.frame_of(entry))
            if page.read < page_size or page.last_id is None:
                return appended
            after = page.last_id

    @staticmethod
    def frame_of(entry: Entry) -> Frame:
        return Frame.ranking(entry.sid, entry.id, entry.doc, entry.epoch, entry.seq)

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
            self._contract_error(st, str(exc), "document")
            return None
        return ranking

    def take_snapshot(self, st: FeedState, doc: bytes) -> str | None:
        """Validate a full document (once per replica); keep it as the snapshot if it follows. Returns its id."""
        ranking = self._validate(st, doc)
        if ranking is None:
            return None
        assert ranking.id is not None
        self._keep_snapshot(st, doc, ranking)
        return ranking.id

    def _keep_snapshot(self, st: FeedState, doc: bytes, ranking: contract.Ranking) -> None:
        assert ranking.id is not None
        snap = st.snapshot
        if snap is None or (ranking.epoch == snap.epoch and contract.parse_stream_id(ranking.id) > snap.sid):
            st.snapshot = Snapshot(ranking.id, doc, ranking)

    def _contract_error(self, st: FeedState, reason: str, what: str) -> None:
        self.contract_errors += 1
        st.bad_entries += 1
        st.error = reason
        log.warning("feed %s: ignoring bad %s: %s", st.feed, what, reason)

    def _apply(self, st: FeedState, data: bytes) -> int:
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
        self._keep_snapshot(st, data, ranking)
        frame = Frame.ranking(sid, ranking.id, data, ranking.epoch, seq)
        return int(st.append(frame))

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
        added = self._apply(st, data)
        if added < 0:
            self.request_sync(feed)
        elif added:
            self._fanned_out(st)

    def _fanned_out(self, st: FeedState) -> None:
        st.wake(DATA)
        if self.settings.gc_freeze and not self._freeze_at:
            self._freeze_at = self.loop.time() + 0.2  # after the burst: the tick freezes

    # --- background tasks --------------------------------------------------------------------

    async def _listen(self) -> None:
        failures = 0
        connected_before = False
        while not self.draining:
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
                if self.lost_at is not None:
                    self.recovered_at = self.loop.time()
                self.live, self.last_error, self.lost_at = True, None, None
                failures = 0
                idle = 0.0
                while not self.draining:
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
                if self.live or self.lost_at is None:
                    self.lost_at = self.loop.time()
                self.live = False
                for st in self.feeds.values():
                    st.synced = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = self.backoff.compute(failures)
                failures += 1
                log.warning("redis subscription lost (%s); retrying in %.2fs", self.last_error, delay)
                await asyncio.sleep(delay)
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
            pipe.hgetall(contract.PUBLISHERS_KEY)
            raw_feeds, raw_status, raw_publishers = await pipe.execute()
        registry: dict[str, contract.FeedInfo] = {}
        for name, raw in raw_feeds.items():
            try:
                info = contract.FeedInfo.decode(raw)
            except ContractError as exc:
                log.warning("ignoring bad feed registration %r: %s", name, exc)
                continue
            registry[info.feed] = info
        for name, info in self.registry.items():
            # Registration gone (FLUSHALL, a restarted Redis the publisher has not re-registered in yet) while
            # this replica still serves the feed's snapshot: keep listing it, as the snapshot route answers it.
            if name not in registry and (st := self.feeds.get(name)) is not None and st.snapshot is not None:
                registry[name] = info
        self.registry = registry
        publishers = []
        for pid, raw in raw_publishers.items():
            try:
                publishers.append(contract.PublisherStatus.decode(raw))
            except ContractError as exc:
                log.warning("ignoring bad publisher entry %r: %s", pid, exc)
        self.publishers = sorted(publishers, key=lambda p: (p.role is not contract.PublisherRole.leader, p.id or ""))
        if raw_status is None and self._status_pending():
            return  # the last status stays, and reads "stale" (late), not a false "dead"
        try:
            self.status = contract.PublisherStatus.decode(raw_status) if raw_status is not None else None
            self.status_error = None
        except ContractError as exc:
            self.status, self.status_error = None, str(exc)

    async def _poll(self) -> None:
        # Every background loop ends when draining, not only on cancel: a cancellation swallowed on its way
        # through a library (Python 3.11's wait_for can drop one that races a completion) must not keep
        # aclose() waiting forever.
        while not self.draining:
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
                self._check_stalled()

    def _check_stalled(self) -> None:
        """A feed whose publisher, alive and writing, reports a newer ranking than this replica holds for
        longer than two heartbeats is stalled: flagged (/v1/feeds, metric, /readyz) and re-synced."""
        status = self.status
        now = self.loop.time()
        reported: dict[str, tuple[int, int]] = {}
        if status is not None and self.liveness() == "alive":
            for feed, info in status.feeds.items():
                last_id = info.get("last_id") if isinstance(info, dict) else None
                with contextlib.suppress(ContractError):
                    if isinstance(last_id, str):
                        reported[feed] = contract.parse_stream_id(last_id)
        grace = 2 * status.heartbeat_s if status is not None else 0.0
        for feed, st in self.feeds.items():
            sid = reported.get(feed)
            behind = sid is not None and (st.snapshot is None or sid > st.snapshot.sid)
            if not behind:
                st.stalled_since = 0.0
            elif not st.stalled_since:
                st.stalled_since = now
            elif now - st.stalled_since > grace and not (st.sync_task and not st.sync_task.done()):
                log.warning("feed %s: the publisher reports %s but this replica holds %s; re-syncing", feed,
                            status.feeds[feed].get("last_id") if status else None,
                            st.snapshot.id if st.snapshot else None)
                self.request_sync(feed)

    def stalled(self, st: FeedState) -> bool:
        status = self.status
        return bool(st.stalled_since) and status is not None and \
            self.loop.time() - st.stalled_since > 2 * status.heartbeat_s

    def deadline(self) -> asyncio.Timeout:
        """The bound of one read path's Redis calls (``KIWOOM_API_READ_DEADLINE_S``); past it, TimeoutError."""
        return asyncio.timeout(self.settings.read_deadline_s)

    def _status_pending(self) -> bool:
        """No heartbeat key, but Redis was just lost or is just back (restarted empty, or the key expired while
        the publisher could not reach it): the publisher gets two of its heartbeat periods to write again."""
        status = self.status
        if status is None:
            return False
        if self.lost_at is not None:
            return True
        return self.recovered_at is not None and self.loop.time() - self.recovered_at < 2 * status.heartbeat_s

    def outage(self) -> str | None:
        """The stale-if-error reason while Redis is unreachable and memory may still answer, else None."""
        lost_at, window = self.lost_at, self.settings.stale_if_error_s
        if self.live or self.draining or lost_at is None or not window or self.loop.time() - lost_at > window:
            return None
        return "redis unreachable, served from this replica's memory"  # the error itself is in the log

    @staticmethod
    def sync_failed(st: FeedState) -> bool:
        """The feed's last sync with its stream ended in an error (the next lookup or reconnect retries)."""
        task = st.sync_task
        return not st.synced and task is not None and task.done()

    def request_exit(self) -> None:
        """The server got its exit signal (called from a signal handler: only sets a flag)."""
        self.exit_requested = True

    async def _tick(self) -> None:
        loop = self.loop
        next_ping = loop.time() + self.settings.ping_s
        next_queue_check = loop.time() + 1.0
        while not self.draining:
            await asyncio.sleep(0.25)
            now = loop.time()
            limit = self.settings.send_timeout_s
            check_queues = now >= next_queue_check
            if check_queues:
                next_queue_check = now + 1.0
            for st in self.feeds.values():
                for client in list(st.clients):
                    if client.dropped:
                        continue
                    if client.send_since and now - client.send_since > limit:
                        self.drop(client, f"a send blocked for {now - client.send_since:.1f}s")
                    elif check_queues and client.transport is not None and now >= client.check_at:
                        self._check_queue(client, now)
            if now >= next_ping:
                next_ping = now + self.settings.ping_s
                for st in self.feeds.values():
                    st.wake(PING)
                self._wake_beat(PING)
            if self.exit_requested and not self.draining:
                log.info("server is shutting down: ending %d event streams", self.client_count)
                self.draining = True
                for st in self.feeds.values():
                    st.wake(CLOSE)
                self._wake_beat(CLOSE)
            if self._freeze_at and now >= self._freeze_at:
                self._freeze_at = 0.0
                if now - self._full_gc_at > 300.0:  # now and then, collect what got frozen
                    self._full_gc_at = now
                    gc.unfreeze()
                    gc.collect()
                gc.freeze()

    def _check_queue(self, client: Client, now: float) -> None:
        """Bytes queued for the peer (server buffer + kernel send queue): too many, or none taken for
        send_timeout_s while some wait, and the client is dropped."""
        assert client.transport is not None
        queued = queued_bytes(client.transport)
        # The kernel's queue costs a syscall per client (at 4,000 clients a tenth of the replica's CPU when
        # read every second): a client that had nothing queued is looked at again after half the timeout,
        # one with bytes queued every second. A stall is still dropped within about 1.5 x send_timeout_s + 1 s.
        client.check_at = now + (1.0 if queued else max(1.0, self.settings.send_timeout_s / 2))
        if queued > self.settings.slow_client_bytes:
            self.drop(client, f"{queued} bytes queued")
            return
        delivered = client.written - queued
        if queued == 0 or delivered > client.delivered:
            client.delivered, client.progress_at = delivered, now
        elif now - client.progress_at > self.settings.send_timeout_s:
            self.drop(client, f"{queued} bytes queued and none taken for {now - client.progress_at:.1f}s")

    def drop(self, client: Client, why: str) -> None:
        """Release a slow client at once: abort its connection (fd and buffers freed now, no close that waits
        for a peer that never reads); its stream loop ends at the next wake-up."""
        client.dropped = True
        self.counters.dropped += 1
        log.info("dropped a slow event-stream client: %s", why)
        if client.transport is not None:
            client.transport.abort()
        elif client.task is not None:
            client.task.cancel()  # no transport to abort: the task is inside send(), so cancel it there

    # --- publisher ----------------------------------------------------------------------------

    def liveness(self, at_ms: int | None = None) -> str:
        return contract.publisher_liveness(self.status, now_ms() if at_ms is None else at_ms)
