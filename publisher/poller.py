"""Polling: one Qt timer per feed marks it due; one dispatcher sends due feeds through the shared limiter.

Only one TR is in flight at a time (Kiwoom answers in order anyway, and it keeps screen use and
pacing simple). The most overdue feed goes first, so a slow feed cannot starve the others. A ``-200``
refusal penalises the limiter for Kiwoom's penalty period and keeps the feed due; a lost answer times
out and the feed retries on its next period.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from PyQt5.QtCore import QObject, QTimer, pyqtSignal

from kiwoom_cache.clock import now_ms
from kiwoom_cache.contract import OPT10023, Ranking
from publisher.client import KiwoomClient
from publisher.kiwoom_errors import OP_ERR_SISE_OVERFLOW, OP_ERR_SOCKET_CLOSED, error_for
from publisher.limiter import RateLimiter
from publisher.parser import ranking_from_response
from publisher.settings import FeedSettings
from publisher.tr import RawResponse, TrRequest

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FeedState:
    """What the publisher knows about one feed; copied into the status key."""

    settings: FeedSettings
    screen: str
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

    def snapshot(self) -> dict[str, object]:
        return {
            "interval_s": self.settings.interval_s, "requests": self.requests, "rankings": self.rankings,
            "refusals": self.refusals, "errors": self.errors, "dropped_rows": self.dropped_rows,
            "last_rows": self.last_rows, "last_request_ms": self.last_request_ms,
            "last_success_ms": self.last_success_ms, "last_error": self.last_error,
        }


class Poller(QObject):
    #: A parsed ranking, ready for the writer.
    rankingReady = pyqtSignal(object)
    #: (feed, Kiwoom code, text) for a refused or failed request.
    requestFailed = pyqtSignal(str, int, str)
    #: CommRqData reported the connection closed (-106).
    connectionLost = pyqtSignal()

    def __init__(
        self,
        client: KiwoomClient,
        feeds: list[FeedSettings],
        limiter: RateLimiter,
        *,
        source: str,
        screens: list[str],
        request_timeout_s: float = 10.0,
        refusal_backoff_s: float = 17.0,
        session: Callable[[], str | None] = lambda: None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        if len(screens) != len(feeds):
            raise ValueError("one screen number per feed")
        self.client = client
        self.limiter = limiter
        self.source = source
        self.feeds = {f.feed: FeedState(f, screen) for f, screen in zip(feeds, screens, strict=True)}
        self._session = session
        self._refusal_backoff_s = refusal_backoff_s
        self._inflight: str | None = None
        self._running = False
        self._paused = False
        self._interval_floor_s: float | None = None
        self._timers: list[QTimer] = []
        self._dispatch_timer = QTimer(self)
        self._dispatch_timer.setSingleShot(True)
        self._dispatch_timer.timeout.connect(self.kick)
        self._timeout_timer = QTimer(self)
        self._timeout_timer.setSingleShot(True)
        self._timeout_timer.setInterval(int(request_timeout_s * 1000))
        self._timeout_timer.timeout.connect(self._on_timeout)
        client.responseReceived.connect(self._on_response)

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
        for state in self.feeds.values():
            timer = QTimer(self)
            timer.setInterval(int(max(state.settings.interval_s, floor) * 1000))
            timer.timeout.connect(lambda feed=state.settings.feed: self._mark_due(feed))
            timer.start()
            self._timers.append(timer)
            self._mark_due(state.settings.feed)

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
            self.client.forget(self._inflight)
            self._inflight = None

    def _stop_timers(self) -> None:
        for timer in self._timers:
            timer.stop()
            timer.deleteLater()
        self._timers.clear()
        self._dispatch_timer.stop()

    def _mark_due(self, feed: str) -> None:
        state = self.feeds[feed]
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
            if not self._dispatch_timer.isActive():
                self._dispatch_timer.start(max(1, int(wait * 1000) + 1))
            return
        state = min(due, key=lambda s: s.due_since or 0.0)
        self._send(state)

    def _send(self, state: FeedState) -> None:
        feed = state.settings.feed
        req = TrRequest(feed=feed, trcode=OPT10023, inputs=state.settings.inputs(), screen=state.screen)
        state.requests += 1
        state.last_request_ms = now_ms()
        code = self.client.request(req)
        if code == 0:
            state.due_since = None
            self._inflight = feed
            self._timeout_timer.start()
            return
        error = error_for(code, f"CommRqData {OPT10023} {feed}")
        if code == OP_ERR_SISE_OVERFLOW:
            # Kiwoom's guide: a refused burst is followed by a penalty; wait it out, keep the feed due.
            state.refusals += 1
            self.limiter.penalize(self._refusal_backoff_s)
            text = f"{error}; backing off {self._refusal_backoff_s:g}s"
        else:
            state.errors += 1
            state.due_since = None  # retried on the feed's next period
            text = str(error)
        state.last_error = text
        log.warning("%s", text)
        self.requestFailed.emit(feed, code, text)
        if code == OP_ERR_SOCKET_CLOSED:
            self.connectionLost.emit()
            return
        self.kick()

    def _on_response(self, raw: RawResponse) -> None:
        if raw.feed != self._inflight:
            log.warning("late answer for %s ignored", raw.feed)
            return
        self._timeout_timer.stop()
        self._inflight = None
        state = self.feeds[raw.feed]
        self.client.release_screen(raw.screen)
        ranking: Ranking = ranking_from_response(raw, source=self.source, session=self._session())
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
        self.client.forget(feed)
        self._inflight = None
        state = self.feeds[feed]
        state.errors += 1
        state.last_error = "no answer from Kiwoom within the request timeout"
        log.warning("%s: %s", feed, state.last_error)
        self.requestFailed.emit(feed, 0, state.last_error)
        self.kick()

    def budget(self) -> dict[str, int]:
        return self.limiter.used()
