"""The OCX surface for the controls we implement ourselves (simulated, replay).

Everything the adapter can observe lives here once: the three signals with the OCX's signatures,
``dynamicCall`` dispatch on the exact call strings (unknown strings fail loudly, where the real control
would return an invalid QVariant), asynchronous login, inputs that ``CommRqData`` consumes, screen-number
checks, and ``GetRepeatCnt``/``GetCommData`` that answer only inside ``OnReceiveTrData``. A subclass
decides what a request returns (:meth:`OcxControl.request`) and answers later with :meth:`answer_later`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from PyQt5.QtCore import QObject, QTimer, pyqtSignal

from publisher.controls import ocx
from publisher.kiwoom_errors import OP_ERR_NONE, OP_ERR_RQ_STRING_FAIL, OP_ERR_RQ_STRUCT_FAIL, OP_ERR_SOCKET_CLOSED
from publisher.trs import TRS


class OcxControl(QObject):
    OnEventConnect = pyqtSignal(int)
    OnReceiveTrData = pyqtSignal(str, str, str, str, str, int, str, str, str)
    OnReceiveMsg = pyqtSignal(str, str, str, str)
    OnReceiveRealData = pyqtSignal(str, str, str)

    def __init__(self, *, latency_ms: int, login_delay_ms: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.latency_ms = latency_ms
        self.login_delay_ms = login_delay_ms
        self.connected = 0
        #: Every dynamicCall made, in order (tests read the exact sequence).
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._inputs: dict[str, str] = {}
        self._current: tuple[str, str, Sequence[dict[str, str]]] | None = None
        #: (real key, FID -> value) of the real-time event being emitted: GetCommRealData answers only then.
        self._real: tuple[str, Mapping[int, str]] | None = None
        #: screen -> (code list, FIDs) registered with SetRealReg; DisconnectRealData drops the screen.
        self.real_registrations: dict[str, tuple[str, frozenset[int]]] = {}
        self._dispatch: dict[str, Callable[..., Any]] = {
            ocx.COMM_CONNECT: self._comm_connect,
            ocx.GET_CONNECT_STATE: lambda: self.connected,
            ocx.GET_LOGIN_INFO: self.login_info,
            ocx.SET_INPUT_VALUE: self._set_input,
            ocx.COMM_RQ_DATA: self._comm_rq_data,
            ocx.GET_REPEAT_CNT: self._repeat_cnt,
            ocx.GET_COMM_DATA: self._comm_data,
            ocx.DISCONNECT_REAL_DATA: lambda screen: self.real_registrations.pop(screen, None),
            ocx.COMM_TERMINATE: self.drop_connection,
            ocx.SET_REAL_REG: self._set_real_reg,
            ocx.GET_COMM_REAL_DATA: self._comm_real_data,
        }

    def dynamicCall(self, function: str, *args: Any) -> Any:
        handler = self._dispatch.get(function)
        if handler is None:
            raise ValueError(f"{type(self).__name__}: unknown dynamicCall signature {function!r}")
        self.calls.append((function, args))
        return handler(*args)

    # --- what subclasses decide -------------------------------------------------------------------

    def login_result(self) -> int:
        """The code the next OnEventConnect carries (0 = logged in)."""
        return OP_ERR_NONE

    def login_info(self, tag: str) -> str:
        return ""

    def request(self, rqname: str, trcode: str, prev_next: int, screen: str, inputs: dict[str, str]) -> int:
        """Handle a CommRqData whose connection and screen checks passed; return Kiwoom's code."""
        raise NotImplementedError

    def drop_connection(self) -> None:
        """The server went away: GetConnectState() turns 0 and requests fail with -106."""
        self.connected = 0

    # --- helpers ----------------------------------------------------------------------------------

    def answer_later(self, screen: str, rqname: str, trcode: str, rows: Sequence[dict[str, str]], *,
                     prev_next: str = "0", message: str | None = None, extra_delay_ms: int = 0) -> None:
        """Emit OnReceiveTrData after the latency, with ``rows`` readable only during that signal."""
        def answer() -> None:
            self._current = (rqname, trcode, rows)
            try:
                self.OnReceiveTrData.emit(screen, rqname, trcode, "", prev_next, 0, "", "", "")
            finally:
                self._current = None
            if message:
                self.OnReceiveMsg.emit(screen, rqname, trcode, message)

        QTimer.singleShot(self.latency_ms + extra_delay_ms, answer)

    def push_real(self, real_type: str, real_key: str, values: Mapping[int, str]) -> bool:
        """Emit OnReceiveRealData now, ``values`` readable with GetCommRealData during it, if a screen registered
        one of the FIDs (and the session is up); False when nobody would have received it."""
        wanted = any(set(values) & fids for _, fids in self.real_registrations.values())
        if not (self.connected and wanted):
            return False
        self._real = (real_key, values)
        try:
            self.OnReceiveRealData.emit(real_key, real_type, "\t".join(values.values()))
        finally:
            self._real = None
        return True

    # --- the shared OCX behaviour -----------------------------------------------------------------

    def _comm_connect(self) -> int:
        result = self.login_result()

        def finish() -> None:
            self.connected = 1 if result == OP_ERR_NONE else 0
            self.OnEventConnect.emit(result)

        QTimer.singleShot(self.login_delay_ms, finish)
        return OP_ERR_NONE

    def _set_input(self, name: str, value: str) -> None:
        self._inputs[name] = value

    def _comm_rq_data(self, rqname: str, trcode: str, prev_next: int, screen: str) -> int:
        inputs, self._inputs = self._inputs, {}  # Kiwoom clears inputs with every request
        if not self.connected:
            return OP_ERR_SOCKET_CLOSED
        if not (len(screen) == 4 and screen.isdigit() and screen != "0000"):
            return OP_ERR_RQ_STRUCT_FAIL
        return self.request(rqname, trcode, prev_next, screen, inputs)

    def _set_real_reg(self, screen: str, codes: str, fids: str, opt_type: str) -> int:
        if not self.connected:
            return OP_ERR_SOCKET_CLOSED
        try:
            wanted = frozenset(int(f) for f in fids.split(";") if f.strip())
        except ValueError:
            return OP_ERR_RQ_STRING_FAIL
        if opt_type != ocx.REAL_REG_REPLACE and screen in self.real_registrations:
            old_codes, old_fids = self.real_registrations[screen]
            codes, wanted = f"{old_codes};{codes}".strip(";"), old_fids | wanted
        self.real_registrations[screen] = (codes, wanted)
        return OP_ERR_NONE

    def _comm_real_data(self, real_key: str, fid: int) -> str:
        if self._real is None or self._real[0] != real_key:
            return ""
        return self._real[1].get(int(fid), "")

    def _rows_for(self, trcode: str, name: str) -> Sequence[dict[str, str]] | None:
        # pykiwoom-style callers pass the rqname as the record name; KOA passes the TR's record (거래량급증).
        if self._current is None:
            return None
        rqname, current_tr, rows = self._current
        spec = TRS.get(current_tr.lower())
        record = spec.ocx.record if spec is not None else None
        return rows if trcode.lower() == current_tr.lower() and name in (rqname, record) else None

    def _repeat_cnt(self, trcode: str, name: str) -> int:
        rows = self._rows_for(trcode, name)
        return len(rows) if rows is not None else 0

    def _comm_data(self, trcode: str, name: str, index: int, item: str) -> str:
        rows = self._rows_for(trcode, name)
        if rows is None or not 0 <= index < len(rows):
            return ""
        return rows[index].get(item, "")
