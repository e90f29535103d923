"""OCX sources: the real OpenAPI+ control, the simulated control and a replay, all behind one adapter.

:class:`OcxSource` speaks only the control's ``dynamicCall`` strings and signals
(:mod:`publisher.controls.ocx`), turns ``OnReceiveTrData`` into :class:`RawResponse` objects and never
blocks: every answer arrives through a Qt signal, unlike pykiwoom's pump-until-a-flag-flips loop. Each
feed keeps one screen number; its real-time registrations are released after every answer.

Continuation (docs/kiwoom-openapi.md §9): an answer whose sPrevNext is ``"2"`` has another page; the source asks
for it with the same inputs and ``CommRqData`` nPrevNext 2 on the same screen, each page a request of its own
through the shared limiter, and publishes the merged pages once, as one ranking. The bounds:

* at most ``max_pages`` pages, and no page sent after the request budget (a little less than the poller's
  timeout) is spent waiting for the limiter: then the pages so far are published (a complete prefix of the
  ranking, in Kiwoom's order) with sPrevNext ``"2"`` and a warning;
* a page Kiwoom refuses (``-200`` included) or does not answer within the budget fails the whole request
  (``requestFailed``): nothing is published, the pages already read are dropped, and the poller treats it like
  a failed first page (a refusal backs off and keeps the feed due; anything else waits for the next period).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from kiwoom_cache.clock import now_ms
from kiwoom_cache.contract import Source
from publisher.controls import ocx
from publisher.controls.ocx import Control
from publisher.kiwoom_errors import OP_ERR_NONE, KiwoomApiError, SourceUnavailableError, check_code, error_for
from publisher.limiter import RateLimiter
from publisher.loop import Loop, Signal, Timer
from publisher.screens import ScreenPool
from publisher.sources.base import SourceContext
from publisher.sources.ocx_settings import OcxSettings, SimSettings
from publisher.trs import Provider, RawResponse, TrRequest, spec_by_rqname, tr_spec

log = logging.getLogger(__name__)

#: The owner name of the screen 장시작시간 is registered on (not a feed: feed names are slugs without spaces).
MARKET_OPERATION_SCREEN = "market operation"
#: Pages merged into one ranking at most, unless the settings say otherwise (``ocx_max_pages``).
DEFAULT_MAX_PAGES = 2
#: CommRqData's nPrevNext: the first page, or the next page of the query the screen last answered.
FIRST_PAGE, NEXT_PAGE = 0, 2


@dataclass(slots=True)
class _Fetch:
    """One ranking being read, page by page."""

    first: TrRequest
    requested_at_ms: int
    #: time.monotonic() after which no page is sent or waited for.
    deadline: float
    limiter: RateLimiter
    rows: list[dict[str, str]] = field(default_factory=list)
    pages: int = 0
    #: Paces the next page (limiter wait) or, while a page is out, gives up on it at the deadline.
    timer: Timer | None = None


class OcxSource:
    """Login and TR requests over an OpenAPI+ control (real, simulated or replayed)."""

    def __init__(self, control: Control, *, account_mode: str | None = None, screens: ScreenPool | None = None,
                 loop: Loop | None = None, max_pages: int = DEFAULT_MAX_PAGES, budget_s: float = 9.0) -> None:
        if max_pages < 1:
            raise ValueError(f"max_pages must be >= 1, got {max_pages}")
        self.control = control
        self.screens = screens or ScreenPool()
        self._loop = loop
        self.max_pages = max_pages
        self.budget_s = budget_s
        self.loggedIn = Signal()
        self.responseReceived = Signal()
        self.requestFailed = Signal()
        self.messageReceived = Signal()
        #: ``(장운영구분, HHMMSS, time left HHMMSS)`` from each 장시작시간 push: the market's own word on the session.
        self.marketOperation = Signal()
        self._account_mode = account_mode
        self._screen_of: dict[str, str] = {}
        #: sRQName of the page in flight -> its ranking; between pages a ranking waits in ``_paced`` instead.
        self._pending: dict[str, _Fetch] = {}
        self._paced: dict[str, _Fetch] = {}
        self._warned_pages: set[str] = set()
        self._seq = 0
        #: Answers that came after their request was given up (timed out, forgotten): counted, never published.
        self.late_answers = 0
        control.OnEventConnect.connect(self._on_event_connect)
        control.OnReceiveTrData.connect(self._on_receive_tr_data)
        control.OnReceiveMsg.connect(self._on_receive_msg)
        control.OnReceiveRealData.connect(self._on_receive_real_data)

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
        return bool(getattr(self.control, "exhausted", False)) and not self._pending and not self._paced

    def _on_event_connect(self, code: int) -> None:
        code = int(code)
        if code == OP_ERR_NONE:
            self._register_market_operation()
        self.loggedIn.emit(None if code == OP_ERR_NONE else error_for(code, "OnEventConnect"))

    def _register_market_operation(self) -> None:
        """SetRealReg for 장시작시간 on a screen of its own (feed screens drop theirs after every answer); a new
        session has no registrations, so this runs after every login."""
        screen = self.screen_for(MARKET_OPERATION_SCREEN)
        fids = ";".join(str(f) for f in (ocx.FID_MARKET_OPERATION, ocx.FID_TIME, ocx.FID_REMAINING))
        code = int(self.control.dynamicCall(ocx.SET_REAL_REG, screen, "", fids, ocx.REAL_REG_REPLACE) or 0)
        if code != OP_ERR_NONE:
            log.warning("SetRealReg for 장시작시간 failed (%s): the session follows the KRX calendar only",
                        error_for(code, "SetRealReg"))

    def _on_receive_real_data(self, real_key: str, real_type: str, _data: str) -> None:
        if real_type != ocx.REAL_MARKET_OPERATION:
            return
        # Only valid inside OnReceiveRealData, like GetCommData inside OnReceiveTrData.
        def read(fid: int) -> str:
            return str(self.control.dynamicCall(ocx.GET_COMM_REAL_DATA, real_key, fid) or "").strip()

        self.marketOperation.emit(read(ocx.FID_MARKET_OPERATION), read(ocx.FID_TIME), read(ocx.FID_REMAINING))

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
        fetch = _Fetch(first=req, requested_at_ms=now_ms(), deadline=time.monotonic() + self.budget_s,
                       limiter=limiter)
        self._send_page(fetch, FIRST_PAGE)

    def _send_page(self, fetch: _Fetch, prev_next: int) -> None:
        screen = self.screen_for(fetch.first.feed)
        self._seq += 1
        req = replace(fetch.first, seq=self._seq, prev_next=prev_next)
        names = tr_spec(req.trcode).ocx.inputs
        for param, value in req.inputs:
            self.control.dynamicCall(ocx.SET_INPUT_VALUE, names[param], value)
        sent = request_name(req)
        try:
            code = int(self.control.dynamicCall(ocx.COMM_RQ_DATA, sent, req.trcode, req.prev_next, screen))
        finally:
            fetch.limiter.sent()
        page = f" page {fetch.pages + 1}" if prev_next == NEXT_PAGE else ""
        check_code(code, f"CommRqData {req.trcode} {req.feed}{page}")
        self._pending[sent] = fetch

    def forget(self, feed: str) -> None:
        for fetch in [*self._pending.values(), *self._paced.values()]:
            if fetch.first.feed == feed and fetch.timer is not None:
                fetch.timer.stop()
        self._pending = {k: v for k, v in self._pending.items() if v.first.feed != feed}
        self._paced.pop(feed, None)

    def pending_feeds(self) -> Sequence[str]:
        return [fetch.first.feed for fetch in self._pending.values()] + list(self._paced)

    def _on_receive_tr_data(self, screen: str, rqname: str, trcode: str, record: str, prev_next: str,
                            *_unused: object) -> None:
        fetch = self._pending.pop(rqname, None)
        if fetch is None:
            if feed_of(rqname) is not None:
                self.late_answers += 1
                log.warning("discarding a late TR answer %s %s on screen %s (its request was given up)",
                            trcode, rqname, screen)
            else:
                log.warning("ignoring unexpected TR answer %s %s on screen %s", trcode, rqname, screen)
            return
        if fetch.timer is not None:
            fetch.timer.stop()
        fetch.rows.extend(self._read_rows(fetch.first.trcode, rqname))
        fetch.pages += 1
        # A ranking TR may register real-time data on its screen; release it so registrations never pile up.
        self.control.dynamicCall(ocx.DISCONNECT_REAL_DATA, screen)
        more = prev_next.strip() == ocx.MORE_PAGES
        if more and fetch.pages < self.max_pages:
            # Never from inside OnReceiveTrData: the next page goes out from the loop, when the limiter allows.
            self._paced[fetch.first.feed] = fetch
            fetch.timer = self._timer(lambda: self._next_page(fetch))
            fetch.timer.start(0.0)
            return
        if more:
            self._warn_truncated(fetch, f"more than {self.max_pages} page(s) (ocx_max_pages)")
        self._publish(fetch, screen, more=more)

    def _next_page(self, fetch: _Fetch) -> None:
        feed = fetch.first.feed
        if self._paced.get(feed) is not fetch:
            return  # forgotten meanwhile
        assert fetch.timer is not None
        wait = fetch.limiter.try_acquire()
        left = fetch.deadline - time.monotonic()
        if wait > 0:
            if wait < left:
                fetch.timer.start(wait + 0.001)
                return
            # Our own pacing, not Kiwoom, stops here: what we have is a complete prefix of the ranking.
            del self._paced[feed]
            self._warn_truncated(fetch, f"no request slot for page {fetch.pages + 1} within the request budget")
            self._publish(fetch, self.screen_for(feed), more=True)
            return
        del self._paced[feed]
        try:
            self._send_page(fetch, NEXT_PAGE)
        except KiwoomApiError as error:
            self._fail(fetch, error)
            return
        fetch.timer = self._timer(lambda: self._page_overdue(fetch))
        fetch.timer.start(max(0.0, left))

    def _page_overdue(self, fetch: _Fetch) -> None:
        rqnames = [k for k, v in self._pending.items() if v is fetch]
        if not rqnames:
            return
        del self._pending[rqnames[0]]
        self._fail(fetch, SourceUnavailableError(
            f"{fetch.first.trcode} {fetch.first.feed}: page {fetch.pages + 1} not answered within the request "
            f"budget of {self.budget_s:g}s; the {fetch.pages} page(s) read are dropped"))

    def _fail(self, fetch: _Fetch, error: KiwoomApiError | SourceUnavailableError) -> None:
        log.warning("%s: giving up on the ranking (%d page(s) read, none published): %s", fetch.first.feed,
                    fetch.pages, error)
        self.requestFailed.emit(fetch.first.feed, error)

    def _warn_truncated(self, fetch: _Fetch, why: str) -> None:
        if fetch.first.feed not in self._warned_pages:
            self._warned_pages.add(fetch.first.feed)
            log.warning("%s %s: %s; publishing the first %d rows", fetch.first.trcode, fetch.first.feed, why,
                        len(fetch.rows))

    def _publish(self, fetch: _Fetch, screen: str, *, more: bool) -> None:
        req = fetch.first
        self.responseReceived.emit(RawResponse(
            feed=req.feed, trcode=req.trcode, screen=screen, inputs=req.inputs,
            prev_next=ocx.MORE_PAGES if more else "0", rows=tuple(fetch.rows),
            requested_at_ms=fetch.requested_at_ms, received_at_ms=now_ms(), provider=Provider.ocx,
        ))

    def _timer(self, callback: Callable[[], None]) -> Timer:
        if self._loop is None:
            from publisher.qt_loop import QtLoop  # noqa: PLC0415 - an OCX control lives on Qt anyway

            self._loop = QtLoop()
        return self._loop.timer(callback)

    def _read_rows(self, trcode: str, rqname: str) -> tuple[dict[str, str], ...]:
        # Only valid inside OnReceiveTrData: the control frees the buffer when the slot returns. Each item is read
        # under its OCX name straight into its row field.
        call = self.control.dynamicCall
        count = int(call(ocx.GET_REPEAT_CNT, trcode, rqname) or 0)
        spec = tr_spec(trcode)
        items = [(o.field, spec.ocx.outputs[o.field]) for o in spec.outputs]  # in Kiwoom's order
        return tuple(
            {f: str(call(ocx.GET_COMM_DATA, trcode, rqname, i, item)) for f, item in items} for i in range(count)
        )

    def _on_receive_msg(self, screen: str, rqname: str, trcode: str, msg: str) -> None:
        """Kiwoom's own words about a request. Its 6-digit codes may change without notice (koapy), so
        nothing branches on them."""
        log.debug("OnReceiveMsg %s %s %s: %s", screen, rqname, trcode, msg)
        self.messageReceived.emit(feed_of(rqname), msg.strip())


def request_name(req: TrRequest) -> str:
    """The sRQName of ``req``: the control echoes it back; the feed routes the answer, the counter names this one
    request (see :attr:`TrRequest.seq`)."""
    return f"{tr_spec(req.trcode).ocx.rqname}:{req.feed}#{req.seq}"


def feed_of(rqname: str) -> str | None:
    """The feed a sRQName we sent belongs to (see :func:`request_name`), else None."""
    head, sep, rest = rqname.partition(":")
    feed = rest.rpartition("#")[0]
    return feed if sep and spec_by_rqname(head) is not None and feed else None


# --- factories (see publisher.sources.REGISTRY) ----------------------------------------------------


def create_kiwoom(context: SourceContext) -> OcxSource:
    from publisher.controls.kiwoom import create_control  # noqa: PLC0415 - Windows only

    return OcxSource(create_control(), **_paging(context))


def _paging(context: SourceContext) -> dict[str, Any]:
    return {"loop": context.loop, "max_pages": context.block(OcxSettings).ocx_max_pages,
            "budget_s": context.settings.request_budget_s()}


def create_sim(context: SourceContext) -> OcxSource:
    from publisher.controls.simulated import SimulatedControl  # noqa: PLC0415

    s = context.block(SimSettings)
    control = SimulatedControl(s.sim_seed, step_s=s.sim_step_s, limits=tuple(s.sim_limits), page_rows=s.sim_page_rows)
    if s.sim_version_update_file is not None:
        control.version_update_from(s.sim_version_update_file)
    # pyqtBoundSignal is a SignalLike
    return OcxSource(cast(Control, control), account_mode=Source.sim.value, **_paging(context))


def create_replay(context: SourceContext) -> OcxSource:
    from publisher.controls.replay import ReplayControl  # noqa: PLC0415

    control = ReplayControl(context.replay, loop=context.replay_loop)
    return OcxSource(cast(Control, control), account_mode=Source.replay.value, **_paging(context))
