"""The adapter between our pipeline and an OpenAPI+ control (real, simulated or replayed).

It speaks only the control's ``dynamicCall`` strings and signals (:mod:`publisher.controls.ocx`),
turns ``OnReceiveTrData`` into :class:`RawResponse` objects, and never blocks: every answer arrives
through a Qt signal, unlike pykiwoom's pump-until-a-flag-flips loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from PyQt5.QtCore import QObject, pyqtSignal

from kiwoom_cache.clock import now_ms
from kiwoom_cache.contract import OPT10023_OUTPUTS, OPT10023_RQNAME
from publisher.controls import ocx
from publisher.controls.ocx import Control
from publisher.tr import RawResponse, TrRequest

log = logging.getLogger(__name__)

_ITEMS = tuple(kiwoom for kiwoom, _ in OPT10023_OUTPUTS)


class KiwoomClient(QObject):
    """Login and TR requests over a control; results as signals."""

    #: OnEventConnect's code (0 = logged in).
    loginFinished = pyqtSignal(int)
    #: A parsed-ready raw answer.
    responseReceived = pyqtSignal(object)
    #: (sScrNo, sRQName, sTrCode, sMsg) from OnReceiveMsg.
    messageReceived = pyqtSignal(str, str, str, str)

    def __init__(self, control: Control, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.control = control
        self._pending: dict[str, tuple[TrRequest, int]] = {}
        control.OnEventConnect.connect(self._on_event_connect)
        control.OnReceiveTrData.connect(self._on_receive_tr_data)
        control.OnReceiveMsg.connect(self._on_receive_msg)

    # --- session ---------------------------------------------------------------------------------

    def login(self) -> int:
        """Start CommConnect(); the result arrives as :attr:`loginFinished`."""
        return int(self.control.dynamicCall(ocx.COMM_CONNECT))

    def is_connected(self) -> bool:
        return int(self.control.dynamicCall(ocx.GET_CONNECT_STATE) or 0) == 1

    def login_info(self, tag: str) -> str:
        return str(self.control.dynamicCall(ocx.GET_LOGIN_INFO, tag) or "")

    def account_mode(self) -> str:
        """``mock`` on Kiwoom's 모의투자 server, else ``real``."""
        return "mock" if self.login_info(ocx.LOGIN_SERVER).strip() == ocx.MOCK_SERVER else "real"

    def _on_event_connect(self, code: int) -> None:
        self.loginFinished.emit(int(code))

    # --- TR requests -----------------------------------------------------------------------------

    def request(self, req: TrRequest) -> int:
        """SetInputValue for each input in order, then CommRqData; returns Kiwoom's code (0 = sent)."""
        for name, value in req.inputs:
            self.control.dynamicCall(ocx.SET_INPUT_VALUE, name, value)
        code = int(self.control.dynamicCall(ocx.COMM_RQ_DATA, req.rqname, req.trcode, req.prev_next, req.screen))
        if code == 0:
            self._pending[req.rqname] = (req, now_ms())
        return code

    def forget(self, feed: str) -> None:
        """Stop waiting for a feed's answer (it timed out); a late answer is then ignored."""
        self._pending = {k: v for k, v in self._pending.items() if v[0].feed != feed}

    def release_screen(self, screen: str) -> None:
        # opt10023 may register real-time data on its screen; release it so screens never pile up.
        self.control.dynamicCall(ocx.DISCONNECT_REAL_DATA, screen)

    def _on_receive_tr_data(self, screen: str, rqname: str, trcode: str, record: str, prev_next: str,
                            *_unused: object) -> None:
        pending = self._pending.pop(rqname, None)
        if pending is None:
            log.warning("ignoring unexpected TR answer %s %s on screen %s", trcode, rqname, screen)
            return
        req, requested_at = pending
        received_at = now_ms()
        rows = self._read_rows(trcode, rqname)
        self.responseReceived.emit(RawResponse(
            feed=req.feed, trcode=req.trcode, screen=screen, inputs=req.inputs, prev_next=prev_next.strip(),
            rows=rows, requested_at_ms=requested_at, received_at_ms=received_at,
        ))

    def _read_rows(self, trcode: str, rqname: str) -> tuple[dict[str, str], ...]:
        # Only valid inside OnReceiveTrData: the control frees the buffer when the slot returns.
        call = self.control.dynamicCall
        count = int(call(ocx.GET_REPEAT_CNT, trcode, rqname) or 0)
        return tuple(
            {item: str(call(ocx.GET_COMM_DATA, trcode, rqname, i, item)) for item in _ITEMS} for i in range(count)
        )

    def _on_receive_msg(self, screen: str, rqname: str, trcode: str, msg: str) -> None:
        self.messageReceived.emit(screen, rqname, trcode, msg)

    @staticmethod
    def feed_of(rqname: str) -> str | None:
        """The feed a sRQName we sent belongs to (see TrRequest.rqname), else None."""
        head, sep, feed = rqname.partition(":")
        return feed if sep and head == OPT10023_RQNAME and feed else None

    def pending_feeds(self) -> Sequence[str]:
        return [req.feed for req, _ in self._pending.values()]
