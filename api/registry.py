"""What the publishers say: the feed registry, the leader's status, every publisher's heartbeat, and from
them the publisher's liveness and which feeds this replica holds behind what the publisher reports (stalled)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping

import redis.asyncio as aioredis

from api.ring import FeedState
from kiwoom_cache import contract
from kiwoom_cache.errors import ContractError

log = logging.getLogger(__name__)


class Registry:
    """The registry, status and publishers hash as last read (one pipeline per refresh)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.feeds: dict[str, contract.FeedInfo] = {}
        self.status: contract.PublisherStatus | None = None
        self.status_error: str | None = None
        #: Every publisher's heartbeat (leader and standbys), from the publishers hash.
        self.publishers: list[contract.PublisherStatus] = []
        #: Each feed's leader: the publisher id its lease holds (None: no lease), as last read.
        self.leaders: dict[str, str | None] = {}

    async def refresh(self, held: Mapping[str, FeedState], status_pending: Callable[[], bool]) -> None:
        """Read the registry, the status and the publishers; ``held`` keeps listing a feed whose registration
        vanished while this replica serves its snapshot, ``status_pending`` keeps the last status meanwhile."""
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
        for name, info in self.feeds.items():
            # Registration gone (FLUSHALL, a restarted Redis the publisher has not re-registered in yet) while
            # this replica still serves the feed's snapshot: keep listing it, as the snapshot route answers it.
            if name not in registry and (st := held.get(name)) is not None and st.snapshot is not None:
                registry[name] = info
        self.feeds = registry
        publishers = []
        for pid, raw in raw_publishers.items():
            try:
                publishers.append(contract.PublisherStatus.decode(raw))
            except ContractError as exc:
                log.warning("ignoring bad publisher entry %r: %s", pid, exc)
        self.publishers = sorted(publishers, key=lambda p: (p.role is not contract.PublisherRole.leader, p.id or ""))
        if raw_status is None and status_pending():
            return  # the last status stays, and reads "stale" (late), not a false "dead"
        try:
            self.status = contract.PublisherStatus.decode(raw_status) if raw_status is not None else None
            self.status_error = None
        except ContractError as exc:
            self.status, self.status_error = None, str(exc)

    async def refresh_leaders(self) -> None:
        """Read every registered feed's lease (``kiwoom:{<feed>}:lease``, whose value is the holder's id)."""
        feeds = sorted(self.feeds)
        async with self.redis.pipeline(transaction=False) as pipe:
            for feed in feeds:
                pipe.get(contract.lease_key(feed))
            values = await pipe.execute()
        leaders: dict[str, str | None] = {}
        for feed, raw in zip(feeds, values, strict=True):
            leaders[feed] = None
            if raw is not None:
                value = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
                try:
                    leaders[feed] = contract.check_publisher_id(value)
                except ContractError as exc:
                    log.warning("feed %s: ignoring its lease: %s", feed, exc)
        self.leaders = leaders

    def status_pending(self, lost_at: float | None, recovered_at: float | None, now: float) -> bool:
        """No heartbeat key, but Redis was just lost (``lost_at``) or is just back (``recovered_at``; restarted
        empty, or the key expired while the publisher could not reach it): the publisher gets two of its
        heartbeat periods to write again."""
        status = self.status
        if status is None:
            return False
        if lost_at is not None:
            return True
        return recovered_at is not None and now - recovered_at < 2 * status.heartbeat_s

    def liveness(self, at_ms: int) -> contract.Liveness:
        return contract.publisher_liveness(self.status, at_ms)

    def behind(self, feeds: Mapping[str, FeedState], now: float, at_ms: int) -> list[str]:
        """Feeds whose publisher, alive and writing, has reported a newer ranking than this replica holds for
        longer than two heartbeats (stalled: flagged in /v1/feeds, the metric and /readyz): to re-sync."""
        status = self.status
        reported: dict[str, tuple[int, int]] = {}
        if status is not None and self.liveness(at_ms) == contract.Liveness.alive:
            for feed, info in status.feeds.items():
                last_id = info.get("last_id") if isinstance(info, dict) else None
                with contextlib.suppress(ContractError):
                    if isinstance(last_id, str):
                        reported[feed] = contract.parse_stream_id(last_id)
        grace = 2 * status.heartbeat_s if status is not None else 0.0
        resync = []
        for feed, st in feeds.items():
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
                resync.append(feed)
        return resync

    def stalled(self, st: FeedState, now: float) -> bool:
        status = self.status
        return bool(st.stalled_since) and status is not None and now - st.stalled_since > 2 * status.heartbeat_s
