"""The per-replica hub: one Redis subscription fanned out in-process to every event-stream client.

docs/design-figures.md §3 shows that per-client Python work per event (a queue, a generator, a task group) is what
costs multiples of nchan, and that one shared wake-up with the frame built once matches it. So each feed has a
**ring** of its last ``ring_size`` frames, each encoded once; a client holds nothing but its cursor, and one
shared **future per feed** wakes every waiting client with a :class:`~api.wake.Wake` (data, ping or close;
clients never cancel it). Memory is bounded whatever clients do: ``ring_size`` frames per feed, one cursor per client.

This class owns the feeds and the lifecycle; the rest is by concern: :mod:`api.subscription` (the pub/sub
connection), :mod:`api.sync` (rings contiguous with the streams), :mod:`api.reader` (stream reads,
contract faults), :mod:`api.registry` (what the publishers say, liveness), :mod:`api.eviction` (slow
clients) and :mod:`api.tick` (the one timer).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.backoff import EqualJitterBackoff
from redis.exceptions import RedisError

from api.eviction import Evictor
from api.reader import Faults, StreamReader
from api.registry import Registry
from api.ring import Client, FeedState, Frame, ResetReason, Snapshot, StreamCounters
from api.settings import ApiSettings
from api.stream import Page
from api.subscription import Subscription
from api.sync import FeedSync
from api.tick import Ticker
from api.wake import Wake
from kiwoom_cache import contract
from kiwoom_cache.clock import now_ms
from kiwoom_cache.errors import ContractError

log = logging.getLogger(__name__)

# The ring types the hub's users share, importable from here as before the split.
__all__ = ["Client", "FeedState", "Frame", "Hub", "ResetReason", "Snapshot"]


class Hub:
    """Owns the feeds, the subscription task, the registry poller and the tick (heartbeat, eviction, GC)."""

    def __init__(self, settings: ApiSettings, redis: aioredis.Redis, pubsub_nodes: Sequence[aioredis.Redis],
                 history_redis: aioredis.Redis | None = None) -> None:
        self.settings = settings
        self.redis = redis
        self.feeds: dict[str, FeedState] = {}
        #: True while the subscription is confirmed and the rings are caught up with the streams.
        self.live = False
        self.last_error: str | None = None
        #: Set on shutdown (lifespan or the server's exit signal): streams end, new ones get 503.
        self.draining = False
        #: Set by the server's exit hook (api.cli); the tick turns it into draining on the loop thread.
        self.exit_requested = False
        #: loop.time() when the subscription was lost (None while live or before the first connection).
        self.lost_at: float | None = None
        #: Loop time the subscription came back after a loss (see :meth:`api.registry.Registry.status_pending`).
        self.recovered_at: float | None = None
        self.counters = StreamCounters()
        self.faults = Faults(self.state)
        self.reader = StreamReader(redis, self.faults)
        #: History pages' reader: its own Redis (``KIWOOM_API_HISTORY_REDIS_URL``, e.g. a replica) or the main one.
        self.history = StreamReader(history_redis, self.faults) if history_redis is not None else self.reader
        self.sync = FeedSync(settings, redis, self.reader, self.faults, self)
        self.publishing = Registry(redis)
        self.evictor = Evictor(settings, self.counters)
        #: One backoff for every reconnect loop (the publisher's writer uses the same class).
        self.backoff = EqualJitterBackoff(cap=settings.reconnect_max_s, base=settings.reconnect_min_s)
        self.subscription = Subscription(pubsub_nodes, self, confirm_s=settings.redis_timeout_s,
                                         backoff=self.backoff)
        self.ticker = Ticker(settings, self, self.evictor)
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [self._loop.create_task(coro, name=f"hub-{name}") for name, coro in (
            ("listen", self.subscription.run()), ("poll", self._poll()), ("tick", self.ticker.run()))]

    async def aclose(self) -> None:
        self.draining = True
        self.live = False
        self.ticker.wake(Wake.close)
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
    def beat(self) -> asyncio.Future[Wake]:
        """What connections of several feeds wait on beside their feeds' wake-ups (Wake.ping, Wake.close)."""
        return self.ticker.beat

    @property
    def client_count(self) -> int:
        return sum(len(st.clients) for st in self.feeds.values())

    def request_exit(self) -> None:
        """The server got its exit signal (called from a signal handler: only sets a flag)."""
        self.exit_requested = True

    def deadline(self) -> asyncio.Timeout:
        """The bound of one read path's Redis calls (``KIWOOM_API_READ_DEADLINE_S``); past it, TimeoutError."""
        return asyncio.timeout(self.settings.read_deadline_s)

    # --- feeds -------------------------------------------------------------------------------

    def state(self, feed: str) -> FeedState:
        st = self.feeds.get(feed)
        if st is None:
            st = self.feeds[feed] = FeedState(feed, self.settings.ring_size, self.loop, self.settings.ring_bytes,
                                              max_batch=self.settings.max_batch, counters=self.counters)
        return st

    def ready(self, feed: str) -> FeedState | None:
        """The synced state of a feed known from memory alone, else None (:meth:`lookup` asks Redis)."""
        st = self.feeds.get(feed)
        if st is not None and st.synced and (feed in self.registry or st.ring or st.snapshot):
            return st
        return None

    async def lookup(self, feed: str) -> FeedState | None:
        """The synced state of a known feed, None for an unknown one; raises RedisError if Redis is down."""
        if (ready := self.ready(feed)) is not None:
            return ready
        st = self.feeds.get(feed)
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
        """Entries of a feed's stream from the main Redis (sync, replay): see :class:`api.reader.StreamReader`."""
        return await self.reader.read(feed, low=low, high=high, count=count, newest_first=newest_first)

    def request_sync(self, feed: str) -> asyncio.Task[None]:
        return self.sync.request(feed)

    def take_snapshot(self, st: FeedState, doc: bytes) -> str | None:
        return self.sync.take_snapshot(st, doc)

    @staticmethod
    def sync_failed(st: FeedState) -> bool:
        """The feed's last sync with its stream ended in an error (the next lookup or reconnect retries)."""
        task = st.sync_task
        return not st.synced and task is not None and task.done()

    def fanned_out(self, st: FeedState) -> None:
        st.wake(Wake.data)
        self.ticker.burst()

    @property
    def restarts(self) -> int:
        return self.sync.restarts

    @property
    def contract_errors(self) -> int:
        return self.faults.count

    # --- the subscription (SubscriptionSink) -------------------------------------------------

    async def subscribed(self) -> int:
        await self.refresh_registry()
        feeds = set(self.registry) | set(self.feeds)
        await asyncio.gather(*(self.request_sync(feed) for feed in feeds))
        if self.lost_at is not None:
            self.recovered_at = self.loop.time()
        self.live, self.last_error, self.lost_at = True, None, None
        return len(feeds)

    def message(self, channel: bytes, data: bytes) -> None:
        self.sync.on_message(channel, data)

    def lost(self, error: str) -> None:
        if self.live or self.lost_at is None:
            self.lost_at = self.loop.time()
        self.live = False
        for st in self.feeds.values():
            st.synced = False
        self.last_error = error

    @property
    def reconnects(self) -> int:
        return self.subscription.reconnects

    def outage(self) -> str | None:
        """The stale-if-error reason while Redis is unreachable and memory may still answer, else None."""
        lost_at, window = self.lost_at, self.settings.stale_if_error_s
        if self.live or self.draining or lost_at is None or not window or self.loop.time() - lost_at > window:
            return None
        return "redis unreachable, served from this replica's memory"  # the error itself is in the log

    # --- publishers ---------------------------------------------------------------------------

    @property
    def registry(self) -> dict[str, contract.FeedInfo]:
        return self.publishing.feeds

    @property
    def status(self) -> contract.PublisherStatus | None:
        return self.publishing.status

    @property
    def status_error(self) -> str | None:
        return self.publishing.status_error

    @property
    def publishers(self) -> list[contract.PublisherStatus]:
        return self.publishing.publishers

    async def refresh_registry(self) -> None:
        await self.publishing.refresh(self.feeds, lambda: self.publishing.status_pending(
            self.lost_at, self.recovered_at, self.loop.time()))

    def liveness(self, at_ms: int | None = None) -> contract.Liveness:
        return self.publishing.liveness(now_ms() if at_ms is None else at_ms)

    def stalled(self, st: FeedState) -> bool:
        return self.publishing.stalled(st, self.loop.time())

    # --- background tasks --------------------------------------------------------------------

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
                for feed in self.publishing.behind(self.feeds, self.loop.time(), now_ms()):
                    self.request_sync(feed)

    def drop(self, client: Client, why: str) -> None:
        """Release a slow client at once (see :meth:`api.eviction.Evictor.drop`)."""
        self.evictor.drop(client, why)
