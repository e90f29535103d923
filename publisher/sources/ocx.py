"""OCX sources: the real OpenAPI+ control, the simulated control and a replay, all behind one adapter.

:class:`OcxSource` speaks only the control's ``dynamicCall`` strings and signals
(:mod:`publisher.controls.ocx`), turns ``OnReceiveTrData`` into :class:`RawResponse` objects and never
blocks: every answer arrives through a Qt signal, unlike pykiwoom's pump-until-a-flag-flips loop. Each
feed keeps one screen number; its real-time registrations are released after every answer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import cast

from kiwoom_cache.clock import now_ms
from kiwoom_cache.contract import Source
from publisher.controls import ocx
from publisher.controls.ocx import Control
from publisher.kiwoom_errors import OP_ERR_NONE, check_code, error_for
from publisher.limiter import RateLimiter
from publisher.loop import Signal
from publisher.screens import ScreenPool
from publisher.sources.base import SourceContext
from publisher.sources.trs import PAGE_ROWS, spec_by_rqname, tr_spec
from publisher.tr import RawResponse, TrRequest

log = logging.getLogger(__name__)


class OcxSource:
    """Login and TR requests over an OpenAPI+ control (real, simulated or replayed)."""

    def __init__(self, control: Control, *, account_mode: str | None = None, screens: ScreenPool | None = None) -> None:
        self.control = control
        self.screens = screens or ScreenPool()
        self.loggedIn = Signal()
        self.responseReceived = Signal()
        self.requestFailed = Signal()
        self.messageReceived = Signal()
        self._account_mode = account_mode
        self._screen_of: dict[str, str] = {}
        self._pending: dict[str, tuple[TrRequest, int]] = {}
        self._warned_pages = False
        self._seq = 0
        #: Answers that came after their request was given up (timed out, forgotten): counted, never published.
        self.late_answers = 0
        control.OnEventConnect.connect(self._on_event_connect)
        control.OnReceiveTrData.connect(self._on_receive_tr_data)
        control.OnReceiveMsg.connect(self._on_receive_msg)

    # --- session ---------------------------------------------------------------------------------

    def login(self) -> None:
        """CommConnect(); the result arrives as :attr:`loggedIn`."""
        check_code(int(self.control.dynamicCall(ocx.COMM_CONNECT)), "CommConnect")

    def is_connected(self) -> bool:
        return int(self.control.dynamicCall(ocx.GET_CONNECT_STATE) or 0) == 1

    def login_info(self, tag: str) -> str:
        return str(self.control.dynamicCall(ocx.GET_LOGIN_INFO, tag) or "")

    @property
    def account_mode(self) -> str:
        """``mock`` on Kiwoom's 모의투자 server, else ``real`` (or what the factory fixed: sim, replay)."""
        if self._account_mode is not None:
            return self._account_mode
        return "mock" if self.login_info(ocx.LOGIN_SERVER).strip() == ocx.MOCK_SERVER else "real"

    @property
    def exhausted(self) -> bool:
        return bool(getattr(self.control, "exhausted", False)) and not self._pending

    def _on_event_connect(self, code: int) -> None:
        code = int(code)
        self.loggedIn.emit(None if code == OP_ERR_NONE else error_for(code, "OnEventConnect"))

    def close(self) -> None:
        """Nothing to close: the control belongs to the Qt application."""

    # --- TR requests -----------------------------------------------------------------------------

    def screen_for(self, feed: str) -> str:
        """The feed's screen number, the same for every request (Kiwoom allows 200 at once)."""
        screen = self._screen_of.get(feed)
        if screen is None:
            screen = self._screen_of[feed] = self.screens.acquire(feed)
        return screen

    def request(self, req: TrRequest, limiter: RateLimiter) -> None:
        """SetInputValue for each input in order, then CommRqData; raises the Kiwoom error family on refusal."""
        screen = self.screen_for(req.feed)
        self._seq += 1
        req = replace(req, seq=self._seq)
        for name, value in req.inputs:
            self.control.dynamicCall(ocx.SET_INPUT_VALUE, name, value)
        code = int(self.control.dynamicCall(ocx.COMM_RQ_DATA, req.rqname, req.trcode, req.prev_next, screen))
        check_code(code, f"CommRqData {req.trcode} {req.feed}")
        self._pending[req.rqname] = (req, now_ms())

    def forget(self, feed: str) -> None:
        self._pending = {k: v for k, v in self._pending.items() if v[0].feed != feed}

    def pending_feeds(self) -> Sequence[str]:
        return [req.feed for req, _ in self._pending.values()]

    def _on_receive_tr_data(self, screen: str, rqname: str, trcode: str, record: str, prev_next: str,
                            *_unused: object) -> None:
        pending = self._pending.pop(rqname, None)
        if pending is None:
            if feed_of(rqname) is not None:
                self.late_answers += 1
                log.warning("discarding a late TR answer %s %s on screen %s (its request was given up)",
                            trcode, rqname, screen)
            else:
                log.warning("ignoring unexpected TR answer %s %s on screen %s", trcode, rqname, screen)
            return
        req, requested_at = pending
        received_at = now_ms()
        rows = self._read_rows(req.trcode, rqname)
        # A ranking TR may register real-time data on its screen; release it so registrations never pile up.
        self.control.dynamicCall(ocx.DISCONNECT_REAL_DATA, screen)
        if prev_next.strip() == ocx.MORE_PAGES and not self._warned_pages:
            self._warned_pages = True
            log.warning("%s %s has more than one page; publishing the first (up to %d rows per request)",
                        trcode, req.feed, PAGE_ROWS)
        self.responseReceived.emit(RawResponse(
            feed=req.feed, trcode=req.trcode, screen=screen, inputs=req.inputs, prev_next=prev_next.strip(),
            rows=rows, requested_at_ms=requested_at, received_at_ms=received_at,
        ))

    def _read_rows(self, trcode: str, rqname: str) -> tuple[dict[str, str], ...]:
        # Only valid inside OnReceiveTrData: the control frees the buffer when the slot returns.
        call = self.control.dynamicCall
        count = int(call(ocx.GET_REPEAT_CNT, trcode, rqname) or 0)
        items = tuple(output.kiwoom for output in tr_spec(trcode).outputs)
        return tuple(
            {item: str(call(ocx.GET_COMM_DATA, trcode, rqname, i, item)) for item in items} for i in range(count)
        )

    def _on_receive_msg(self, screen: str, rqname: str, trcode: str, msg: str) -> None:
        """Kiwoom's own words about a request. Its 6-digit codes may change without notice (koapy), so
        nothing branches on them."""
        log.debug("OnReceiveMsg %s %s %s: %s", screen, rqname, trcode, msg)
        self.messageReceived.emit(feed_of(rqname), msg.strip())


def feed_of(rqname: str) -> str | None:
    """The feed a sRQName we sent belongs to (see TrRequest.rqname), else None."""
    head, sep, rest = rqname.partition(":")
    feed = rest.rpartition("#")[0]
    return feed if sep and spec_by_rqname(head) is not None and feed else None


# --- factories (see publisher.sources.REGISTRY) ----------------------------------------------------


def create_kiwoom(context: SourceContext) -> OcxSource:
    from publisher.controls.kiwoom import create_control  # noqa: PLC0415 - Windows only

    return OcxSource(create_control())


def create_sim(context: SourceContext) -> OcxSource:
    from publisher.controls.simulated import SimulatedControl  # noqa: PLC0415

    s = context.settings
    control = SimulatedControl(s.sim_seed, step_s=s.sim_step_s, limits=tuple(s.sim_limits))
    if s.sim_version_update_file is not None:
        control.version_update_from(s.sim_version_update_file)
    return OcxSource(cast(Control, control), account_mode=Source.sim.value)  # pyqtBoundSignal is a SignalLike


def create_replay(context: SourceContext) -> OcxSource:
    from publisher.controls.replay import ReplayControl  # noqa: PLC0415

    control = ReplayControl(context.replay, loop=context.replay_loop)
    return OcxSource(cast(Control, control), account_mode=Source.replay.value)
