"""The Redis writer thread: rankings leave the Qt GUI thread here and reach Redis atomically.

``submit()`` never blocks. Pending rankings sit in a conflating queue holding at most one ranking per
feed (a newer ranking of a feed supersedes the unsent older one, which is counted, never silently
lost), so memory is bounded by the number of feeds however long Redis is away. The thread writes with
the contract's Lua script (snapshot, stream entry and channel message in one round trip), reconnects
with capped exponential backoff and jitter, and refreshes the heartbeat status key
(:mod:`publisher.writer_status`).

With a :class:`~publisher.lease.LeasePolicy` the thread also takes part in leadership
(:mod:`publisher.writer_lease`): every write carries the lease id, and a fenced write is counted and dropped.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

import redis
from redis.backoff import EqualJitterBackoff

from kiwoom_cache import contract
from kiwoom_cache.clock import now_ms
from kiwoom_cache.connect import sync_client
from kiwoom_cache.contract import FeedInfo, PublisherRole, PublisherStatus, Ranking
from publisher.lease import Elector, LeasePolicy
from publisher.writer_lease import WriterLeadership
from publisher.writer_records import Fenced, WriterState, WriterStats, Written
from publisher.writer_status import StatusHeartbeat

log = logging.getLogger(__name__)


class RedisWriter(WriterLeadership, StatusHeartbeat):
    """Owns one Redis connection on its own thread.

    :param status: called on the writer thread before each heartbeat; returns the status to publish.
    :param on_written: called on the writer thread after each successful write (keep it cheap and
        thread-safe; the Qt side wraps it in a queued signal).
    """

    def __init__(
        self,
        redis_url: str,
        *,
        feeds: list[FeedInfo],
        status: Callable[[], PublisherStatus],
        history_maxlen: int = contract.DEFAULT_HISTORY_MAXLEN,
        heartbeat_s: float = contract.DEFAULT_HEARTBEAT_S,
        status_ttl_s: float = contract.DEFAULT_STATUS_TTL_S,
        socket_timeout_s: float = 2.0,
        backoff_min_s: float = 0.1,
        backoff_max_s: float = 5.0,
        on_written: Callable[[Written], None] | None = None,
        client: redis.Redis | None = None,
        lease: LeasePolicy | None = None,
        on_leads: Callable[[PublisherRole, frozenset[str]], None] | None = None,
    ) -> None:
        if status_ttl_s <= heartbeat_s:
            raise ValueError(f"status TTL ({status_ttl_s}s) must exceed the heartbeat period ({heartbeat_s}s)")
        self._client = client or sync_client(
            redis_url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s,
            retry=None, health_check_interval=0,
        )
        self._script = self._client.register_script(contract.WRITE_RANKING_LUA)
        self._feeds = feeds
        self._status = status
        self._maxlen = history_maxlen
        self._heartbeat_s = heartbeat_s
        self._ttl_ms = int(status_ttl_s * 1000)
        #: The same capped exponential backoff with equal jitter as the API's hub (redis-py's).
        self._backoff = EqualJitterBackoff(cap=backoff_max_s, base=backoff_min_s)
        self._on_written = on_written
        self._lock = threading.Condition()
        self._pending: OrderedDict[str, Ranking] = OrderedDict()
        # The ranking the thread took out of ``_pending`` and is writing (or about to retry); still pending.
        self._in_flight: Ranking | None = None
        #: Per feed, the (epoch, seq) of this writer's last ranking: the script starts a new epoch rather than
        #: reuse a seq when Redis no longer holds it (a failover to a replica that lagged).
        self._last_of_feed: dict[str, tuple[str, int]] = {}
        self._stopping = False
        self._heartbeat_due = False
        self._flush_deadline = float("inf")
        self._thread: threading.Thread | None = None
        self._state = WriterState.idle
        self._submitted = self._written = self._superseded = self._rejected = self._reconnects = 0
        self._last_error: str | None = None
        self._last_written: Written | None = None
        self._registered = False
        self._fenced = 0
        self._elector = Elector(self._client, [f.feed for f in feeds], lease) if lease is not None else None
        self._on_leads = on_leads
        #: The feeds led, as last told to ``on_leads``.
        self._announced: frozenset[str] = frozenset()
        #: The feed whose lease makes its holder the writer of the status key (sorted first of the configured).
        self._status_feed = min((f.feed for f in feeds), default=None)

    # --- producer side (any thread; the GUI thread in practice) ---------------------------------

    def submit(self, ranking: Ranking) -> None:
        """Queue a ranking; returns at once. An unsent older ranking of the same feed is superseded."""
        with self._lock:
            self._submitted += 1
            if ranking.feed in self._pending:
                self._superseded += 1
                log.info("ranking for %s superseded before it reached Redis (writer %s)", ranking.feed,
                         self._state.value)
            self._pending[ranking.feed] = ranking
            self._pending.move_to_end(ranking.feed)
            self._lock.notify()

    def refresh_status(self) -> None:
        """Write the status key at the next chance (e.g. the publisher's state changed), not a period later."""
        with self._lock:
            self._heartbeat_due = True
            self._lock.notify()

    def stats(self) -> WriterStats:
        with self._lock:
            return WriterStats(self._state, self._submitted, self._written, self._superseded, self._rejected,
                               len(self._pending) + (self._in_flight is not None), self._reconnects,
                               self._last_error, self._last_written, self._fenced, self.role)

    @property
    def state(self) -> WriterState:
        return self._state


    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("writer already started")
        self._thread = threading.Thread(target=self._run, name="kiwoom-redis-writer", daemon=True)
        self._thread.start()

    def stop(self, flush_timeout_s: float = 5.0) -> WriterStats:
        """Flush what is pending (up to the timeout), mark the status stopped, end the thread."""
        with self._lock:
            self._stopping = True
            self._flush_deadline = time.monotonic() + flush_timeout_s
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(flush_timeout_s + 5.0)
        stats = self.stats()
        if stats.pending:
            log.error("writer stopped with %d ranking(s) unsent: Redis unreachable (%s)", stats.pending,
                      stats.last_error)
        self._client.close()
        return stats

    # --- writer thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        next_heartbeat = next_lease = 0.0
        failures = 0
        while True:
            with self._lock:
                if not self._pending and not self._stopping and not self._heartbeat_due:
                    self._lock.wait(max(0.0, min(next_heartbeat, next_lease) - time.monotonic()))
                if self._heartbeat_due:  # the state changed: say so now, and look at the leases with it
                    next_heartbeat = next_lease = 0.0
                    self._heartbeat_due = False
                stopping = self._stopping
                item = self._in_flight = self._pending.popitem(last=False)[1] if self._pending else None
            try:
                if not self._registered:
                    self._register()
                    self._set_state(WriterState.connected)
                if item is not None:
                    self._write(item)
                    item = None
                if self._elector is not None and not stopping and time.monotonic() >= next_lease:
                    if self._lease_tick():
                        next_heartbeat = 0.0  # the new role is in the status at once
                    leader = self._elector.role is PublisherRole.leader
                    # A standby's checks are jittered within the period: two standbys that collided on the
                    # leases (each got some, both gave them back) do not collide again in step.
                    period = self._heartbeat_s if leader else self._elector.policy.check_s * random.uniform(0.5, 1.0)
                    next_lease = time.monotonic() + period
                if time.monotonic() >= next_heartbeat:
                    self._heartbeat()
                    next_heartbeat = time.monotonic() + self._heartbeat_s
                failures = 0
            except (redis.ConnectionError, redis.TimeoutError, OSError, redis.ResponseError) as exc:
                if isinstance(exc, redis.ResponseError):
                    # Redis answered but refused (OOM, a key of the wrong type set by hand): keep it, retry.
                    log.error("Redis refused the write for %s: %s", item.feed if item else "heartbeat", exc)
                    self._requeue(item, exc)
                else:
                    self._failed(exc, item)
                if stopping and time.monotonic() >= self._flush_deadline:
                    break
                time.sleep(self._backoff.compute(failures))  # jitter: writers don't retry in step
                failures += 1
                continue
            except Fenced as exc:  # not an outage: another publisher leads now; this ranking must not land
                log.warning("fenced write dropped: %s", exc)
                with self._lock:
                    self._fenced += 1
                    self._in_flight = None
                    self._last_error = f"fenced: {exc}"
                next_lease = next_heartbeat = 0.0
                continue
            except Exception as exc:  # a ranking that can never be written: count it, keep the thread alive
                log.exception("writer rejected the ranking for %s", item.feed if item else "heartbeat")
                with self._lock:
                    self._rejected += self._in_flight is not None  # None if written and on_written raised
                    self._in_flight = None
                    self._last_error = f"{type(exc).__name__}: {exc}"
                continue
            if stopping:
                with self._lock:
                    if self._pending:
                        continue
                self._final_status()
                if self._elector is not None and self._elector.role is PublisherRole.leader:
                    self._hand_over()
                break
        self._set_state(WriterState.stopped)

    def _requeue(self, item: Ranking | None, exc: Exception) -> None:
        with self._lock:
            self._in_flight = None
            if item is not None:
                if item.feed in self._pending:
                    self._superseded += 1  # a newer ranking arrived meanwhile; the failed one is obsolete
                else:
                    self._pending[item.feed] = item
                    self._pending.move_to_end(item.feed, last=False)
            self._last_error = f"{type(exc).__name__}: {exc}"

    def _failed(self, exc: Exception, item: Ranking | None) -> None:
        was_connected = self._state is WriterState.connected
        self._requeue(item, exc)
        if was_connected:
            self._reconnects += 1
        if was_connected or self._state is WriterState.idle:  # also the first attempt: nothing is written yet
            log.warning("Redis unreachable (%s); keeping the newest ranking per feed and retrying", exc)
        self._registered = False
        self._set_state(WriterState.disconnected)

    def _set_state(self, state: WriterState) -> None:
        if state is not self._state:
            if state is WriterState.connected and self._state is WriterState.disconnected:
                log.info("Redis reachable again")
            with self._lock:
                self._state = state

    def _write(self, ranking: Ranking) -> None:
        ranking = replace(ranking, published_at_ms=now_ms())
        token = self._elector.holder if self._elector is not None else ""
        keys, args = contract.write_ranking_args(ranking, self._maxlen, token,
                                                 self._last_of_feed.get(ranking.feed, ("", 0)))
        try:
            rid, seq, epoch = self._script(keys=keys, args=args)
        except redis.ResponseError as exc:
            holder = contract.fenced_holder(str(exc))
            if holder is None:
                raise
            elector = self._elector
            if elector is None or holder or not elector.reacquire(ranking.feed):
                if elector is not None and elector.role is PublisherRole.leader:
                    elector.lost(f"a write was fenced: the lease is held by {holder or 'nobody'}")
                self._announce()
                raise Fenced(ranking.feed, holder) from exc
            # Nobody held it (it expired while Redis was away) and it is ours again: this ranking may land.
            self._announce()  # leases of other feeds another publisher took meanwhile are gone
            rid, seq, epoch = self._script(keys=keys, args=args)
        epoch = epoch.decode() if isinstance(epoch, bytes) else str(epoch)
        previous = self._last_of_feed.get(ranking.feed)
        if previous is not None and previous[0] != epoch and int(seq) == 1:
            log.warning("%s: history replaced in Redis (epoch %s at seq %d -> %s): rankings written before are "
                        "gone (a failover to a lagging replica, a restore, a flush); readers are told to reset",
                        ranking.feed, previous[0], previous[1], epoch)
        self._last_of_feed[ranking.feed] = (epoch, int(seq))
        written = Written(ranking.feed, rid.decode() if isinstance(rid, bytes) else str(rid), int(seq),
                          ranking.published_at_ms)
        with self._lock:
            self._written += 1
            self._in_flight = None
            self._last_written = written
        if self._on_written is not None:
            self._on_written(written)
