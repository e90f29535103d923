"""A simulated OpenAPI+ control: same ``dynamicCall`` strings and signals, Kiwoom-shaped answers.

It behaves like the OCX where our code can tell: asynchronous login and TR answers through signals,
``GetRepeatCnt``/``GetCommData`` valid only inside ``OnReceiveTrData``, inputs cleared after each
``CommRqData``, raw fixed-width strings with ``+``/``-`` direction signs, and Kiwoom's request limits
enforced with ``-200`` refusals plus a penalty period. It also counts what it saw (``max_in_window``)
so a test can fail on a limit breach by reading the control, and it injects faults on request.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from PyQt5.QtCore import QObject, QTimer

from kiwoom_cache.clock import KST
from publisher.controls import ocx
from publisher.controls.base import OcxControl
from publisher.controls.sim_market import SimMarket
from publisher.controls.sim_ranking import ranked, raw_rows
from publisher.controls.sim_session import NORMAL_DAY, OperationChange
from publisher.kiwoom_errors import (
    OP_ERR_CONNECT,
    OP_ERR_NONE,
    OP_ERR_RQ_STRING_FAIL,
    OP_ERR_RQ_STRUCT_FAIL,
    OP_ERR_SISE_OVERFLOW,
    OP_ERR_VERSION,
)
from publisher.trs import PAGE_ROWS, TRS, TrSpec

log = logging.getLogger(__name__)

#: What the simulated server enforces by default: Kiwoom's published 5 TR/s and its ~1,000 TR/h throttle
#: (PublisherSettings.sim_limits carries the same default for the CLI).
SIM_LIMITS: tuple[tuple[int, float], ...] = ((5, 1.0), (1000, 3600.0))
_WIDTH = 20
#: CommRqData's nPrevNext for the next page (0 asks for the first).
NEXT_PAGE = 2


@dataclass(slots=True)
class _Continuation:
    """A query the server holds more pages of, per screen (what Kiwoom's sPrevNext "2" announces)."""

    trcode: str
    inputs: dict[str, str]
    rest: list[dict[str, str]]
    #: Pages answered so far, counting the one being answered.
    page: int


@dataclass(slots=True)
class SimFaults:
    """Knobs a test turns. Counters decrement as the faults fire."""

    #: Return these codes from the next CommRqData calls, in order.
    refuse_codes: deque[int] = field(default_factory=deque)
    #: Accept this many requests but never answer them (a lost TR).
    swallow: int = 0
    #: Probability that one field of a row is garbage.
    malformed_rate: float = 0.0
    #: Probability of Kiwoom's formatting quirks (double sign, leading zeros, 'A' prefix) per row.
    quirk_rate: float = 0.02
    #: Result code of the next CommConnect's OnEventConnect (0 = success).
    login_result: int = 0
    #: Answer the next requests this many ms late each (past the publisher's timeout: a late answer).
    delay_ms: deque[int] = field(default_factory=deque)
    #: Page number (2 = the first continuation) -> the code its CommRqData returns, once; OP_ERR_NONE accepts
    #: the page and never answers it (a page lost mid-way).
    page_faults: dict[int, int] = field(default_factory=dict)


class SimulatedControl(OcxControl):
    def __init__(
        self,
        seed: int | None = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        step_s: float = 1.0,
        latency_ms: int = 40,
        login_delay_ms: int = 50,
        limits: tuple[tuple[int, float], ...] = SIM_LIMITS,
        penalty_s: float = 17.0,
        server_gubun: str = ocx.MOCK_SERVER,
        page_rows: int = PAGE_ROWS,
        wall_clock: Callable[[], datetime] | None = None,
        trading_day: Sequence[OperationChange] = NORMAL_DAY,
        real_tick_ms: int = 100,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(latency_ms=latency_ms, login_delay_ms=login_delay_ms, parent=parent)
        self.market = SimMarket(seed)
        self.faults = SimFaults()
        self._rng = random.Random(None if seed is None else seed + 1)
        self._clock = clock
        self._step_s = step_s
        self._last_step_at = clock()
        self._limits = limits
        self._penalty_s = penalty_s
        self._penalty_until = 0.0
        self._server_gubun = server_gubun
        self._stamps: deque[float] = deque()
        #: Highest number of requests seen inside each limit's window (tests assert on it).
        self.max_in_window: dict[float, int] = {seconds: 0 for _, seconds in limits}
        self.requests = 0
        self.refused = 0
        self.screens_seen: set[str] = set()
        if page_rows < 1:
            raise ValueError(f"page_rows must be >= 1, got {page_rows}")
        #: Rows per answer: Kiwoom's 200 by default; a test makes it small so the small universe spans pages.
        self.page_rows = page_rows
        #: screen -> the query it last answered and the rows it still holds for the next page (sPrevNext "2").
        self._continuations: dict[str, _Continuation] = {}
        #: The day's 장시작시간 pushes (sim_session.py) and the KST wall clock they follow (tests inject one).
        self.trading_day = tuple(trading_day)
        self._wall_clock = wall_clock or (lambda: datetime.now(KST))
        #: Pushes at or before this instant were sent (or predate the registration): only changes are pushed.
        self._operations_until: datetime | None = None
        self._operation_timer = QTimer(self)
        self._operation_timer.setInterval(real_tick_ms)
        self._operation_timer.timeout.connect(self.push_due_operations)

    # --- the OCX surface ----------------------------------------------------------------------

    def login_result(self) -> int:
        session_fault = self._session_fault()
        if session_fault is not None:
            return session_fault
        result, self.faults.login_result = self.faults.login_result, 0
        return result

    def login_info(self, tag: str) -> str:
        return {
            "ACCOUNT_CNT": "1",
            "ACCNO": "8012345611;",
            "ACCLIST": "8012345611;",
            "USER_ID": "simuser",
            "USER_NAME": "모의사용자",
            "GetServerGubun": self._server_gubun,
        }.get(tag, "")

    def request(self, rqname: str, trcode: str, prev_next: int, screen: str, inputs: dict[str, str]) -> int:
        now = self._clock()
        if self.faults.refuse_codes:
            self.refused += 1
            return self.faults.refuse_codes.popleft()
        spec = TRS.get(trcode.lower())
        if spec is None:
            return OP_ERR_RQ_STRUCT_FAIL
        if now < self._penalty_until or self._over_limit(now):
            # Kiwoom answers a burst with 조회과다 and keeps refusing for a while.
            self._penalty_until = max(self._penalty_until, now + self._penalty_s)
            self.refused += 1
            return OP_ERR_SISE_OVERFLOW
        self._count(now)
        self.screens_seen.add(screen)
        error = self._check_inputs(spec, inputs)
        if error:
            self.OnReceiveMsg.emit(screen, rqname, trcode, f"[505217] 입력값 오류입니다. ({error})")
            return OP_ERR_RQ_STRING_FAIL
        if int(prev_next) == NEXT_PAGE:
            return self._next_page(rqname, spec, screen, inputs)
        self._advance(now)
        self._continuations.pop(screen, None)  # a first-page request starts the query over
        return self._answer_page(rqname, spec, screen, _Continuation(spec.code, dict(inputs),
                                                                     self._rank(spec, inputs), page=1))

    def _next_page(self, rqname: str, spec: TrSpec, screen: str, inputs: dict[str, str]) -> int:
        """CommRqData with nPrevNext 2: the next page of the query this screen last answered, for the same inputs
        (the ranking as it stood at the first page: the server holds the rest, it does not re-rank)."""
        held = self._continuations.get(screen)
        if held is None or held.trcode != spec.code or held.inputs != inputs:
            # Not documented for the live server; the simulation refuses rather than guess a first page.
            self.OnReceiveMsg.emit(screen, rqname, spec.code,
                                   "[sim] 연속조회할 데이터가 없습니다 (nothing to continue on this screen)")
            return OP_ERR_RQ_STRUCT_FAIL
        held.page += 1
        fault = self.faults.page_faults.pop(held.page, None)
        if fault is not None and fault != OP_ERR_NONE:
            return fault
        return self._answer_page(rqname, spec, screen, held, lost=fault == OP_ERR_NONE)

    def _answer_page(self, rqname: str, spec: TrSpec, screen: str, held: _Continuation, *,
                     lost: bool = False) -> int:
        rows, held.rest = held.rest[:self.page_rows], held.rest[self.page_rows:]
        if held.rest:
            self._continuations[screen] = held
        else:
            self._continuations.pop(screen, None)
        if lost:
            return OP_ERR_NONE
        if self.faults.swallow > 0:
            self.faults.swallow -= 1
            return OP_ERR_NONE
        self.answer_later(screen, rqname, spec.code, rows, prev_next=ocx.MORE_PAGES if held.rest else "0",
                          message="[00Z310] 모의투자 조회가 완료되었습니다", extra_delay_ms=self._late_by())
        return OP_ERR_NONE

    # --- 장시작시간: the market-operation pushes ------------------------------------------------------

    def _set_real_reg(self, screen: str, codes: str, fids: str, opt_type: str) -> int:
        code = super()._set_real_reg(screen, codes, fids, opt_type)
        if code == OP_ERR_NONE and self._operations_until is None:
            self._operations_until = self._wall_clock()
            self._operation_timer.start()
        return code

    def drop_connection(self) -> None:
        """The session ends, and with it every real-time registration (a new session starts with none)."""
        super().drop_connection()
        self.real_registrations.clear()

    def push_due_operations(self) -> None:
        """Push every change of :attr:`trading_day` between the last look at the wall clock and now (weekdays)."""
        if self._operations_until is None:
            return
        if not any(ocx.FID_MARKET_OPERATION in fids for _, fids in self.real_registrations.values()):
            # Nobody listens any more (released screen, lost session): stop looking until the next SetRealReg.
            self._operation_timer.stop()
            self._operations_until = None
            return
        now = self._wall_clock().astimezone(KST)
        since = max(self._operations_until.astimezone(KST), datetime.combine(now.date(), datetime.min.time(), KST)
                    - timedelta(microseconds=1))
        self._operations_until = now
        if now.weekday() >= 5:
            return
        for change in self.trading_day:
            at = datetime.combine(now.date(), change.at, KST)
            if since < at <= now:
                self.push_market_operation(change.value, at.strftime("%H%M%S"), change.remaining)

    def push_market_operation(self, value: str, hhmmss: str, remaining: str = "000000") -> bool:
        """OnReceiveRealData of type 장시작시간 now: FID 215 ``value``, 20 ``hhmmss``, 214 ``remaining``."""
        return self.push_real(ocx.REAL_MARKET_OPERATION, "", {
            ocx.FID_MARKET_OPERATION: value, ocx.FID_TIME: hhmmss, ocx.FID_REMAINING: remaining})

    # --- session faults: Kiwoom's version update and its daily maintenance -----------------------

    _version_outdated = False
    _in_maintenance = False

    def require_version_update(self) -> None:
        """Kiwoom released a new OpenAPI+: the next login runs the update and fails with -102 (버전처리), and so
        does every later login through this control, which is outdated now; only a new process logs in."""
        self._version_outdated = True

    def version_update_from(self, marker: Path) -> None:
        """:meth:`require_version_update` if ``marker`` exists, deleting it: the update is installed by this run, so
        the restarted publisher's control is current (a file, because the restart is another process)."""
        if marker.exists():
            marker.unlink()
            self.require_version_update()

    def start_maintenance(self) -> None:
        """The daily maintenance begins: the session drops (GetConnectState() 0, requests -106) and every login
        fails with -101 (server connection failed) until :meth:`end_maintenance`."""
        self._in_maintenance = True
        self.drop_connection()

    def end_maintenance(self) -> None:
        self._in_maintenance = False

    def _session_fault(self) -> int | None:
        if self._version_outdated:
            return OP_ERR_VERSION
        if self._in_maintenance:
            return OP_ERR_CONNECT
        return None

    def _late_by(self) -> int:
        """Extra delay for this answer: the real server sometimes answers after the caller gave up."""
        return self.faults.delay_ms.popleft() if self.faults.delay_ms else 0

    # --- faults and inspection ------------------------------------------------------------------

    # The server polices limits with its own counting, on purpose not publisher.limiter.RateLimiter: it stands in
    # for Kiwoom checking the client, so a bug in our limiter must not be mirrored in the check.
    def _over_limit(self, now: float) -> bool:
        stamps = self._stamps
        return any(sum(1 for t in stamps if t > now - seconds) >= limit for limit, seconds in self._limits)

    def _count(self, now: float) -> None:
        stamps = self._stamps
        stamps.append(now)
        longest = max(s for _, s in self._limits)
        while stamps and stamps[0] <= now - longest:
            stamps.popleft()
        self.requests += 1
        for _, seconds in self._limits:
            seen = sum(1 for t in stamps if t > now - seconds)
            self.max_in_window[seconds] = max(self.max_in_window[seconds], seen)

    # --- answers --------------------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        steps = int((now - self._last_step_at) / self._step_s)
        if steps > 0:
            self.market.advance(min(steps, 60))
            self._last_step_at += steps * self._step_s

    @staticmethod
    def _check_inputs(spec: TrSpec, inputs: dict[str, str]) -> str | None:
        for item in spec.inputs:
            name = spec.ocx.inputs[item.param]
            if (value := inputs.get(name)) is None:
                return f"{name} 누락"
            if item.check(value) is not None:
                return f"{name}={value}"
        return None

    def _rank(self, spec: TrSpec, inputs: dict[str, str]) -> list[dict[str, str]]:
        params = {i.param: inputs[spec.ocx.inputs[i.param]] for i in spec.inputs}
        return [self._format(spec, values)
                for values in raw_rows(spec.code, self.market, ranked(spec.code, self.market, params))]

    def _format(self, spec: TrSpec, values: dict[str, str]) -> dict[str, str]:
        """Kiwoom's raw strings: right-aligned in 20 columns (codes and names left-aligned), with its quirks."""
        rng = self._rng
        if rng.random() < self.faults.quirk_rate:
            quirk = rng.randrange(3)
            if quirk == 0 and values["price"][:1] in "+-" and values["price"]:
                values["price"] = values["price"][0] + values["price"]  # '--4500': HTS colour sign, then direction
            elif quirk == 1:
                values["volume"] = values["volume"].rjust(12, "0")
            else:
                values["code"] = "A" + values["code"]
        names = spec.ocx.outputs  # the OCX's item names, in the TR's output order
        row = {names[o.field]: values[o.field].ljust(_WIDTH) if o.field in ("code", "name", "stock_class")
               else values[o.field].rjust(_WIDTH) for o in spec.outputs}
        if self.faults.malformed_rate and rng.random() < self.faults.malformed_rate:
            item = rng.choice([names[o.field] for o in spec.outputs if o.field != "stock_class"])
            row[item] = rng.choice(["", "  ", "12a4", "+-", "1.2.3"]).rjust(_WIDTH)
        return row
