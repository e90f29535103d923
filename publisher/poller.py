"""Polling: one timer per feed marks it due; one dispatcher sends due feeds through the shared limiter.

Only one request is in flight at a time (Kiwoom answers in order anyway, and it keeps pacing simple).
The most overdue feed goes first, so a slow feed cannot starve the others. The poller reacts to the
error *families* of :mod:`publisher.kiwoom_errors`, never to codes: a rate-limit refusal (OCX ``-200``,
REST ``1700``) penalises the limiter for Kiwoom's penalty period and keeps the feed due; a closed
session asks the publisher to log in again; anything else is counted and retried on the feed's next
period. A lost answer times out the same way. Timers come from :mod:`publisher.loop`, so the same poller
runs on Qt (OCX) and on asyncio (REST).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kiwoom_cache.clock import now_ms
from kiwoom_cache.contract import Ranking, Source
from kiwoom_cache.errors import KiwoomCacheError
from publisher.kiwoom_errors import ConnectionClosedError, RateLimitError
from publisher.limiter import RateLimiter
from publisher.loop import Loop, Signal, Timer
from publisher.parser import ranking_from_response
from publisher.settings import FeedSettings
from publisher.sources.base import RankingSource
from publisher.trs import RawResponse, TrRequest

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FeedState:
    """What the publisher knows about one feed; copied into the status key."""

    settings: FeedSettings
    due_since: float | None = None
    requests: int = 0
    rankings: int = 0
    refusals: int = 0
    errors: int = 0
    dropped_rows: int = 0
    last_rows: int = 0
    last_request_ms: int | None = None
    last_success_ms: int | None = None
    last_error: str | None = None
    #: The source has nothing more for this feed (a replay played once): never requested again.
    retired: bool = False

    def snapshot(self) -> dict[str, object]:
        return {
            "tr": self.settings.tr, "interval_s": self.settings.interval_s, "requests": self.requests,
            "rankings": self.rankings,
            "refusals": self.refusals, "errors": self.errors, "dropped_rows": self.dropped_rows,
            "last_rows": self.last_rows, "last_request_ms": self.last_request_ms,
            "last_success_ms": self.last_success_ms, "last_error": self.last_error,
        }


class Poller:
    def __init__(
        self,
        source: RankingSource,
        feeds: list[FeedSettings],
        limiter: RateLimiter,
        *,
        loop: Loop,
        source_name: Source,
        request_timeout_s: float = 10.0,
        refusal_backoff_s: float = 17.0,
        session: Callable[[], str | None] = lambda: None,
    ) -> None:
        #: A parsed ranking, ready for the writer.
        self.rankingReady = Signal()
        #: (feed, Kiwoom code or 0, text) for a refused or failed request.
        self.requestFailed = Signal()
        #: The source's session is gone (OCX -106, a REST token that cannot be renewed): log in again.
        self.connectionLost = Signal()
        self.source = source
        self.limiter = limiter
        self.source_name = source_name
        self.feeds = {f.feed: FeedState(f) for f in feeds}
        #: The feeds polled: those this publisher leads (:meth:`lead`); all of them until told otherwise.
        self.leading: frozenset[str] = frozenset(self.feeds)
        self._session = session
        self._refusal_backoff_s = refusal_backoff_s
        self._inflight: str | None = None
        self._running = False
        self._paused = False
        self._interval_floor_s: float | None = None
        self._feed_timers: dict[str, Timer] = {
            f.feed: loop.timer(functools.partial(self._mark_due, f.feed), repeat=True) for f in feeds
        }
        self._dispatch_timer = loop.timer(self.kick)
        self._timeout_timer = loop.timer(self._on_timeout, interval_s=request_timeout_s)
        source.responseReceived.connect(self._on_response)
        source.requestFailed.connect(self._on_failed)

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        if self._running:
            return
        self._running = True
        if not self._paused:
            self._start_timers()

    def _start_timers(self) -> None:
        floor = self._interval_floor_s or 0.0
        for feed, timer in self._feed_timers.items():
            timer.start(max(self.feeds[feed].settings.interval_s, floor))
            self._mark_due(feed)

    def set_schedule(self, interval_floor_s: float | None, *, paused: bool) -> None:
        """Market-session policy: pause polling, or poll no faster than ``interval_floor_s``."""
        if paused == self._paused and interval_floor_s == self._interval_floor_s:
            return
        self._paused, self._interval_floor_s = paused, interval_floor_s
        self._stop_timers()
        for state in self.feeds.values():
            state.due_since = None
        if self._running and not paused:
            self._start_timers()

    def stop(self) -> None:
        self._running = False
        self._stop_timers()
        self._timeout_timer.stop()
        if self._inflight is not None:
            self.source.forget(self._inflight)
            self._inflight = None

    def _stop_timers(self) -> None:
        for timer in self._feed_timers.values():
            timer.stop()
        self._dispatch_timer.stop()

    def retire(self, feed: str) -> None:
        """Request ``feed`` no more (its source ran out); an answer already in flight is still taken."""
        state = self.feeds[feed]
        state.retired = True
        state.due_since = None

    def lead(self, feeds: Iterable[str]) -> None:
        """Poll only ``feeds`` (the ones whose lease this publisher holds); a feed gained is due at once."""
        wanted = frozenset(feeds)
        if unknown := wanted - self.feeds.keys():
            raise ValueError(f"cannot lead feeds this poller does not have: {sorted(unknown)}")
        for feed in self.leading - wanted:
            self.feeds[feed].due_since = None
        gained, self.leading = wanted - self.leading, wanted
        if self._running and not self._paused:
            for feed in sorted(gained):
                self._mark_due(feed)

    def _mark_due(self, feed: str) -> None:
        state = self.feeds[feed]
        if state.retired or feed not in self.leading:
            return
        if state.due_since is None:
            state.due_since = self.limiter.clock()
        self.kick()

    def kick(self) -> None:
        """Send the most overdue feed if nothing is in flight and the limiter allows it."""
        if not self._running or self._paused or self._inflight is not None:
            return
        due = [s for s in self.feeds.values() if s.due_since is not None]
        if not due:
            return
        wait = self.limiter.try_acquire()
        if wait > 0:
            if not self._dispatch_timer.is_active():
                self._dispatch_timer.start(wait + 0.001)
            return
        state = min(due, key=lambda s: s.due_since or 0.0)
        self._send(state)

    def _send(self, state: FeedState) -> None:
        feed = state.settings.feed
        req = TrRequest(feed=feed, trcode=state.settings.tr, inputs=state.settings.inputs())
        state.requests += 1
        state.last_request_ms = now_ms()
        due_since, state.due_since = state.due_since, None
        self._inflight = feed
        self._timeout_timer.start()
        try:
            self.source.request(req, self.limiter)
        except KiwoomCacheError as error:
            state.due_since = due_since
            self._end_request()
            self._failed(state, error)

    def _end_request(self) -> None:
        self._timeout_timer.stop()
        self._inflight = None

    def _on_failed(self, feed: str, error: KiwoomCacheError) -> None:
        if feed != self._inflight:
            log.warning("late failure for %s ignored: %s", feed, error)
            return
        self._end_request()
        self._failed(self.feeds[feed], error)

    def _failed(self, state: FeedState, error: KiwoomCacheError) -> None:
        feed = state.settings.feed
        if isinstance(error, RateLimitError):
            # Kiwoom's guide: a refused burst is followed by a penalty; wait it out, keep the feed due.
            state.refusals += 1
            if state.due_since is None:
                state.due_since = self.limiter.clock()
            self.limiter.penalize(self._refusal_backoff_s)
            text = f"{error}; backing off {self._refusal_backoff_s:g}s"
        else:
            state.errors += 1
            state.due_since = None  # retried on the feed's next period
            text = str(error)
        state.last_error = text
        log.warning("%s", text)
        self.requestFailed.emit(feed, int(getattr(error, "code", 0)), text)
        if isinstance(error, ConnectionClosedError):
            self.connectionLost.emit()
            return
        self.kick()

    def _on_response(self, raw: RawResponse) -> None:
        if raw.feed != self._inflight:
            log.warning("late answer for %s ignored", raw.feed)
            return
        self._end_request()
        state = self.feeds[raw.feed]
        ranking: Ranking = ranking_from_response(raw, source=self.source_name, session=self._session())
        state.rankings += 1
        state.last_rows = len(ranking.rows)
        state.dropped_rows += len(ranking.dropped)
        state.last_success_ms = raw.received_at_ms
        state.last_error = None
        self.rankingReady.emit(ranking)
        self.kick()

    def _on_timeout(self) -> None:
        feed = self._inflight
        if feed is None:
            return
        self.source.forget(feed)
        self._inflight = None
        state = self.feeds[feed]
        state.errors += 1
        state.last_error = "no answer from Kiwoom within the request timeout"
        log.warning("%s: %s", feed, state.last_error)
        self.requestFailed.emit(feed, 0, state.last_error)
        self.kick()

    def budget(self) -> dict[str, int]:
        return self.limiter.used()
