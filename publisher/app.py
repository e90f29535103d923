"""The publisher, assembled: source -> poller -> writer, plus the status the writer heartbeats.

The same object runs against every source (the real OCX, the simulated control, a replay, Kiwoom's REST
API) on the event loop that source needs (Qt or asyncio, :mod:`publisher.loop`): only ``source`` and
``loop`` differ.

Logins and the Kiwoom session are supervised by :class:`~publisher.login_supervision.LoginSupervision`, the
KRX session's effect on polling by :class:`~publisher.market_hours.MarketHours`; both are mixed in here.

Leadership (:mod:`publisher.lease`): the publisher polls only while it leads. A standby sends no TR; a hot
one is logged in and idle, a cold one logs in when it takes over. Losing the lease stops polling at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kiwoom_cache import __version__
from kiwoom_cache.clock import KST, now_ms
from kiwoom_cache.contract import (
    AccountMode,
    PublisherRole,
    PublisherState,
    PublisherStatus,
    Ranking,
    new_publisher_id,
)
from publisher.exit_codes import ExitCode
from publisher.kiwoom_maintenance import Maintenance
from publisher.lease import Fitness, LeasePolicy
from publisher.limiter import RateLimiter
from publisher.login_supervision import LoginSupervision
from publisher.loop import Loop, Signal
from publisher.market_hours import MarketHours
from publisher.market_session import SessionModel
from publisher.poller import Poller
from publisher.settings import PublisherSettings, StandbyLogin
from publisher.sources.base import RankingSource
from publisher.writer import RedisWriter
from publisher.writer_records import Written

log = logging.getLogger(__name__)


class Publisher(LoginSupervision, MarketHours):
    def __init__(self, settings: PublisherSettings, source: RankingSource, loop: Loop, *,
                 writer: RedisWriter | None = None, clock: Callable[[], datetime] = lambda: datetime.now(KST),
                 limiter: RateLimiter | None = None) -> None:
        #: Emitted on the loop's thread after each ranking reached Redis.
        self.written = Signal()
        #: The publisher's state changed (a PublisherState).
        self.stateChanged = Signal()
        #: A human-readable error (also kept in :attr:`recent_errors`).
        self.errorOccurred = Signal()
        #: The publisher cannot go on in this process (an ExitCode, see :attr:`exit_code`); the CLI quits its loop.
        self.exitRequested = Signal()
        #: Why the process should exit, once it should (None: keep running).
        self.exit_code: ExitCode | None = None
        self.settings = settings
        self.loop = loop
        self._clock = clock
        now = clock()
        self._calendar = settings.calendar(now.astimezone(KST).date())
        #: The KRX schedule, overruled on the day by the source's 장시작시간 pushes (OCX sources have them).
        self._sessions = SessionModel(self._calendar)
        self._session = self._sessions.state_at(now)
        if settings.follows_market_hours() and now.year not in self._calendar.years:
            # Without this year's KRX closing days, holidays look like trading days (polls into a closed market).
            log.warning("the KRX holiday calendar has no dates for %d: set `holidays` in the config from KRX's "
                        "yearly notice", now.year)
        self.source = source
        feeds = settings.feeds
        limiter = limiter or settings.limiter()
        self.poller = Poller(
            source, feeds, limiter, loop=loop, source_name=settings.source,
            request_timeout_s=settings.request_timeout_s, refusal_backoff_s=settings.refusal_backoff_s,
            session=lambda: self._session.value,
        )
        self._lock = threading.Lock()
        self._stopped = False
        self._state = PublisherState.starting
        self._message: str | None = None
        self._account_mode: AccountMode | None = None
        self._last_success_ms: int | None = None
        self._started_at_ms = now_ms()
        self._feed_status: dict[str, dict[str, Any]] = {}
        #: (epoch ms, text), newest last; what the operator window lists.
        self.recent_errors: deque[tuple[int, str]] = deque(maxlen=50)
        self._host = socket.gethostname()
        #: This run's id: the value of the leases it holds and its entry in the publishers hash.
        self.id = new_publisher_id()
        self._role = PublisherRole.standby
        self._logged_in = False
        self._login_refusals = 0
        #: The maintenance window being waited out (None: not waiting).
        self._maintenance: Maintenance | None = None
        #: The role changed (a PublisherRole), on the loop's thread.
        self.roleChanged = Signal()
        policy = LeasePolicy(self.id, settings.lease_ttl_s, settings.lease_check_s, settings.prefer_leader,
                             lead=frozenset(settings.lead) if settings.lead is not None else None)
        self.writer = writer or RedisWriter(
            settings.redis_url,
            feeds=[f.info() for f in feeds],
            status=self.status,
            history_maxlen=settings.history_maxlen,
            heartbeat_s=settings.heartbeat_s,
            status_ttl_s=settings.status_ttl_s,
            # Called on the writer thread; handed over to the loop's thread.
            on_written=lambda written: loop.call_soon_threadsafe(self.written.emit, written),
            lease=policy,
            on_leads=lambda role, leads: loop.call_soon_threadsafe(self._on_leads, role, leads),
        )
        self.writer.set_fitness(self._fitness())  # starting: may not take leases yet
        self.written.connect(self._on_written)
        source.loggedIn.connect(self._on_login)
        source.messageReceived.connect(self._on_message)
        market_operation = getattr(source, "marketOperation", None)
        if market_operation is not None:
            market_operation.connect(self._on_market_operation)
        self.poller.rankingReady.connect(self._on_ranking)
        self.poller.requestFailed.connect(self._on_request_failed)
        self.poller.connectionLost.connect(self._on_connection_lost)
        self._login_timer = loop.timer(self._login)
        self._session_timer = loop.timer(self.update_session)
        self._watchdog = loop.timer(self._check_connection, interval_s=settings.connection_check_s, repeat=True)

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self._refresh_feed_status()  # every feed in the status from the start, with its request counters at 0
        self.writer.start()
        self.update_session()
        if self.settings.standby_login is StandbyLogin.hot:
            self._login()
        else:
            self._stand_by()

    @property
    def role(self) -> PublisherRole:
        return self._role

    def _fitness(self) -> Fitness:
        """May take leases: a standby (logged in, or cold), or a leader at work (it may take feeds nobody leads)."""
        at_work = self._role is PublisherRole.leader and self._state in (PublisherState.running, PublisherState.paused)
        return Fitness(eligible=self._state is PublisherState.standby or at_work,
                       healthy=self._state is not PublisherState.degraded)

    def _on_leads(self, role: PublisherRole, leads: frozenset[str]) -> None:
        """The writer thread took or lost leases: poll exactly the feeds led, and only as a leader."""
        if self._stopped:
            return
        self.poller.lead(leads)
        if role is self._role:
            return
        self._role = role
        self.writer.set_fitness(self._fitness())
        self.roleChanged.emit(role)
        if self._maintenance is not None:
            self.poller.stop()
            return  # the login timer logs in once the window is over, whatever the role
        if role is PublisherRole.leader:
            if self._logged_in and self.source.is_connected():
                self._apply_session(start_polling=True)
            else:
                self._login()  # a cold standby's takeover, or a session lost while standing by
        else:
            self.poller.stop()
            # Degraded or connecting: a (re)login is under way and will say so.
            if self._state not in (PublisherState.degraded, PublisherState.connecting):
                self._stand_by()

    def _stand_by(self) -> None:
        why = self.writer.role_reason or ""
        login = "logged in, idle" if self._logged_in else "logs in when it takes over"
        self._set_state(PublisherState.standby, f"standby ({login}){': ' + why if why else ''}")

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Stop polling, flush pending rankings to Redis (or report them), write the final status.

        Idempotent: the operator window and the CLI may both call it on the way out.
        """
        if self._stopped:
            return
        self._stopped = True
        for timer in (self._login_timer, self._session_timer, self._watchdog):
            timer.stop()
        self.poller.stop()
        self.source.close()
        # Keep why it exits, if it does.
        self._set_state(PublisherState.stopping, self._message if self.exit_code is not None else None)
        stats = self.writer.stop(flush_timeout_s)
        log.info("publisher stopped: %d written, %d superseded, %d unsent", stats.written, stats.superseded,
                 stats.pending)

    # --- data path --------------------------------------------------------------------------------

    def _on_ranking(self, ranking: Ranking) -> None:
        self.writer.submit(ranking)
        self._refresh_feed_status()

    def _on_written(self, written: Written) -> None:
        with self._lock:
            self._last_success_ms = written.published_at_ms
            entry = self._feed_status.setdefault(written.feed, {})
            entry.update(last_id=written.id, last_seq=written.seq, last_published_ms=written.published_at_ms)

    def _on_message(self, feed: str | None, msg: str) -> None:
        """Kiwoom's own words about a request, kept per feed and shown as is."""
        if feed is not None:
            with self._lock:
                self._feed_status.setdefault(feed, {})["last_message"] = msg

    def _on_request_failed(self, feed: str, code: int, text: str) -> None:
        self._error(f"{feed}: {text}", logged=True)  # the poller logged it already
        self._refresh_feed_status()

    def _error(self, text: str, *, logged: bool = False) -> None:
        if not logged:
            log.error("%s", text)
        self.recent_errors.append((now_ms(), text))
        self.errorOccurred.emit(text)

    def _refresh_feed_status(self, *_: object) -> None:
        with self._lock:
            for feed, state in self.poller.feeds.items():
                self._feed_status.setdefault(feed, {}).update(state.snapshot())

    # --- status (read by the writer thread) -------------------------------------------------------

    def _set_state(self, state: PublisherState, message: str | None = None) -> None:
        with self._lock:
            changed = state != self._state
            self._state, self._message = state, message
        if changed:
            self.writer.set_fitness(self._fitness())
            self.writer.refresh_status()  # readers see the new state now, not a heartbeat later
            self.stateChanged.emit(state)

    @property
    def state(self) -> PublisherState:
        return self._state

    def status(self) -> PublisherStatus:
        """A consistent copy for the heartbeat; safe to call from the writer thread."""
        with self._lock:
            return PublisherStatus(
                state=self._state,
                source=self.settings.source,
                account_mode=self._account_mode,
                version=__version__,
                host=self._host,
                pid=os.getpid(),
                started_at_ms=self._started_at_ms,
                heartbeat_at_ms=now_ms(),
                last_success_ms=self._last_success_ms,
                heartbeat_s=self.settings.heartbeat_s,
                session=self._session.value,
                message=self._message,
                feeds={k: dict(v) for k, v in self._feed_status.items()},
                id=self.id,
                role=self._role,
                preferred=self.settings.prefer_leader,
                restarts=self.settings.supervisor_restarts,
            )
