"""Logins and the Kiwoom session, supervised for the publisher (mixed into :class:`~publisher.app.Publisher`).

A failed login is retried every ``login_retry_s``, except inside Kiwoom's daily maintenance
(:mod:`publisher.kiwoom_maintenance`: state ``paused`` until it is over), after Kiwoom's version update (-102) and
after ``login_max_failures`` refusals in a row (-100, REST keys): then the process must end, with the status of
:mod:`publisher.exit_codes` that tells a supervisor whether to start it again (:attr:`Publisher.exitRequested`).
A lost session (the watchdog, or the poller's closed connection) stops polling and logs in again: Kiwoom never
reconnects by itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from kiwoom_cache.contract import AccountMode, PublisherRole, PublisherState
from kiwoom_cache.errors import KiwoomCacheError
from publisher.exit_codes import ExitCode
from publisher.kiwoom_errors import LoginRefusedError, VersionUpdateError
from publisher.kiwoom_maintenance import Maintenance, maintenance_at
from publisher.loop import Signal, Timer
from publisher.poller import Poller
from publisher.settings import PublisherSettings
from publisher.sources.base import RankingSource
from publisher.sources.rest_codes import CredentialsError

log = logging.getLogger(__name__)


class LoginSupervision:
    """Log in, retry, wait out maintenance, notice a lost session, and give up (exit) when only a restart helps."""

    if TYPE_CHECKING:  # set by Publisher.__init__
        settings: PublisherSettings
        source: RankingSource
        poller: Poller
        exitRequested: Signal
        exit_code: ExitCode | None
        _clock: Callable[[], datetime]
        _lock: threading.Lock
        _stopped: bool
        _role: PublisherRole
        _account_mode: AccountMode | None
        _logged_in: bool
        _login_refusals: int
        _maintenance: Maintenance | None
        _login_timer: Timer
        _watchdog: Timer

        def _set_state(self, state: PublisherState, message: str | None = None) -> None: ...
        def _error(self, text: str, *, logged: bool = False) -> None: ...
        def _stand_by(self) -> None: ...
        def _apply_session(self, *, start_polling: bool = False) -> None: ...

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
