"""The KRX session, applied to the publisher's polling (mixed into :class:`~publisher.app.Publisher`).

Outside trading hours polling pauses or slows (when configured) and the status says so; the schedule comes from
:class:`~publisher.market_session.SessionModel`, overruled on the day by the source's 장시작시간 pushes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from kiwoom_cache.contract import PublisherState
from publisher.loop import Timer
from publisher.market_session import TRADING_STATES, MarketOperation, SessionModel, SessionState
from publisher.poller import Poller
from publisher.settings import PublisherSettings

log = logging.getLogger(__name__)

#: Re-check the session at least this often, so a wall-clock jump cannot leave a stale state for long.
SESSION_RECHECK_S = 60.0


class MarketHours:
    """The session now, the timer to its next transition, and what it means for polling."""

    if TYPE_CHECKING:  # set by Publisher.__init__
        settings: PublisherSettings
        poller: Poller
        _clock: Callable[[], datetime]
        _sessions: SessionModel
        _session: SessionState
        _session_timer: Timer

        def _set_state(self, state: PublisherState, message: str | None = None) -> None: ...

    @property
    def session(self) -> SessionState:
        return self._session

    def update_session(self) -> None:
        """Re-evaluate the KRX session now and schedule the next check at the next transition."""
        now = self._clock()
        self._session = self._sessions.state_at(now)
        wait = (self._sessions.next_check(now) - now).total_seconds()
        self._session_timer.start(max(0.0, min(wait, SESSION_RECHECK_S)) + 0.01)
        self._apply_session()

    def _on_market_operation(self, value: str, time_text: str, remaining_text: str) -> None:
        """A 장시작시간 push: the market's own word on the session, taken over the schedule for the rest of the day."""
        if self._sessions.observe(MarketOperation(value, self._clock(), time_text, remaining_text)):
            log.info("장시작시간: 장운영구분 %s at %s (time left %s)", value, time_text, remaining_text or "-")
            self.update_session()

    def _apply_session(self, *, start_polling: bool = False) -> None:
        """Pause or slow polling outside trading hours (when configured) and say so in the status."""
        paused, floor, message = False, None, None
        if self.settings.follows_market_hours() and self._session not in TRADING_STATES:
            off = self.settings.off_hours_interval_s
            if off is None:
                paused = True
                resume = self._sessions.next_check(self._clock())
                message = f"market {self._session.value}; polling paused until {resume.isoformat()}"
            else:
                floor = off
                message = f"market {self._session.value}; polling every {off:g}s"
        self.poller.set_schedule(floor, paused=paused)  # before start(), so a closed market sends nothing
        if start_polling:
            self.poller.start()
        if self.poller.running:
            self._set_state(PublisherState.paused if paused else PublisherState.running, message)
