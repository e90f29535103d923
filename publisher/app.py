"""The publisher, assembled: source -> poller -> writer, plus the status the writer heartbeats.

The same object runs against every source (the real OCX, the simulated control, a replay, Kiwoom's REST
API) on the event loop that source needs (Qt or asyncio, :mod:`publisher.loop`): only ``source`` and
``loop`` differ.

Logins: a failed one is retried every ``login_retry_s``, except inside Kiwoom's daily maintenance
(:mod:`publisher.kiwoom_maintenance`: state ``paused`` until it is over), after Kiwoom's version update (-102) and
after ``login_max_failures`` refusals in a row (-100, REST keys): then the process must end, with the status of
:mod:`publisher.exit_codes` that tells a supervisor whether to start it again (:attr:`Publisher.exitRequested`).

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
from kiwoom_cache.errors import KiwoomCacheError
from publisher.exit_codes import ExitCode
from publisher.kiwoom_errors import LoginRefusedError, VersionUpdateError
from publisher.kiwoom_maintenance import Maintenance, maintenance_at
from publisher.lease import Fitness, LeasePolicy
from publisher.limiter import RateLimiter
from publisher.loop import Loop, Signal
from publisher.market_session import TRADING_STATES, MarketOperation, SessionModel, SessionState
from publisher.poller import Poller
from publisher.settings import PublisherSettings, StandbyLogin
from publisher.sources.base import RankingSource
from publisher.sources.rest_codes import CredentialsError
from publisher.writer import RedisWriter, Written

log = logging.getLogger(__name__)

#: Re-check the session at least this often, so a wall-clock jump cannot leave a stale state for long.
SESSION_RECHECK_S = 60.0


class Publisher:
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

    def _login(self) -> None:
        if self._stopped or self.exit_code is not None or self._wait_for_maintenance():
            return
        self._set_state(PublisherState.connecting, f"logging in ({self.settings.source})")
        try:
            self.source.login()
        except KiwoomCacheError as error:
            self._on_login(error)

    def _on_login(self, error: KiwoomCacheError | None) -> None:
        if error is not None:
            self._login_failed(error)  # also while polling: a failed login result means the session is gone
            return
        if self.poller.running:  # a late or repeated login success changes nothing
            return
        self._logged_in = True
        self._login_refusals = 0
        self._maintenance = None
        with self._lock:
            self._account_mode = AccountMode(self.source.account_mode)
        self._watchdog.start()
        if self._role is not PublisherRole.leader:
            log.info("logged in (%s server); standing by, no TR sent until this publisher leads", self._account_mode)
            self._stand_by()
            return
        log.info("logged in (%s server); polling %d feed(s)", self._account_mode, len(self.poller.feeds))
        self._apply_session(start_polling=True)

    def _login_failed(self, error: KiwoomCacheError) -> None:
        """Wait out Kiwoom's maintenance; exit on a version update or refusals in a row; else retry later."""
        if self._wait_for_maintenance(str(error)):
            return
        if isinstance(error, VersionUpdateError):
            self._exit(ExitCode.RESTART, f"{error}: Kiwoom updated OpenAPI+ (버전처리); every program holding the "
                                         "control must exit and start again")
            return
        if isinstance(error, LoginRefusedError | CredentialsError):
            self._login_refusals += 1
            if self._login_refusals >= self.settings.login_max_failures:
                if isinstance(error, CredentialsError):  # REST keys: only a config change helps
                    self._exit(ExitCode.CONFIG, f"{error}; refused {self._login_refusals} times in a row: check "
                                                "the REST app key and secret key and rest_mode (real or mock)")
                else:
                    self._exit(ExitCode.RESTART, f"{error}; refused {self._login_refusals} times in a row: check "
                                                 "the saved account password (자동로그인) or log in by hand once")
                return
        retry = self.settings.login_retry_s
        self._lose_session(f"{error}; retrying in {retry:g}s", retry)

    def _exit(self, code: ExitCode, text: str) -> None:
        """Stop trying in this process: say why, and ask the CLI to end with ``code`` (a supervisor restarts)."""
        self.exit_code = code
        self._logged_in = False
        self.poller.stop()
        self._watchdog.stop()
        self._login_timer.stop()
        self._error(f"{text}; exiting with status {int(code)} ({code.name})")
        self._set_state(PublisherState.stopping, text)
        self.exitRequested.emit(code)

    def _wait_for_maintenance(self, reason: str | None = None) -> bool:
        """Inside Kiwoom's daily maintenance: pause (no login, no TR) and look again later. False outside it."""
        window = maintenance_at(self._clock()) if self.settings.follows_maintenance() else None
        if window is None:
            self._maintenance = None
            return False
        if window != self._maintenance:
            log.warning("%s%s", f"{reason}: " if reason else "", window.describe())
        self._maintenance = window
        self._logged_in = False
        self.poller.stop()
        self._watchdog.stop()
        self._set_state(PublisherState.paused, window.describe())
        # Re-checked at least every login_retry_s, so a clock that jumps past the window is noticed.
        remaining = (window.resume_at - self._clock()).total_seconds()
        self._login_timer.start(max(0.0, min(remaining, self.settings.login_retry_s)))
        return True

    def _check_connection(self) -> None:
        if self._logged_in and not self.source.is_connected():
            self._lose_session("connection to Kiwoom lost (the source reports no session); logging in again", 1.0)

    def _on_connection_lost(self) -> None:
        if self.poller.running:
            self._lose_session("connection to Kiwoom lost (session closed); logging in again", 1.0)

    def _lose_session(self, text: str, relogin_after_s: float) -> None:
        """Kiwoom never reconnects by itself: stop sending TRs, report it, and log in again later."""
        if self._wait_for_maintenance(text):
            return
        self._logged_in = False
        self.poller.stop()
        self._watchdog.stop()
        self._set_state(PublisherState.degraded, text)
        self._error(text)
        self._login_timer.start(relogin_after_s)

    # --- market session ---------------------------------------------------------------------------

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
