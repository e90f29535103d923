"""A control that answers TR requests from a recording, through the same ``dynamicCall`` surface.

It matches each ``CommRqData`` by TR code and the exact ``SetInputValue`` inputs, and answers with the
next recorded response for them (looping at the end when ``loop``), so the parser, the poller and the
writer run exactly as they do live. Pacing comes from the publisher's timers; see
:func:`feeds_from_recording` for how ``--speed`` maps onto them.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from typing import Any

from PyQt5.QtCore import QObject, QTimer, pyqtSignal

from kiwoom_cache.contract import OPT10023_INPUTS, OPT10023_RECORD
from publisher.controls import ocx
from publisher.kiwoom_errors import OP_ERR_NONE, OP_ERR_RQ_STRING_FAIL, OP_ERR_RQ_STRUCT_FAIL, OP_ERR_SOCKET_CLOSED
from publisher.settings import FeedSettings
from publisher.tr import RawResponse

_Key = tuple[str, tuple[tuple[str, str], ...]]


def _key(trcode: str, inputs: Sequence[tuple[str, str]]) -> _Key:
    return trcode.lower(), tuple(sorted(inputs))


class ReplayControl(QObject):
    OnEventConnect = pyqtSignal(int)
    OnReceiveTrData = pyqtSignal(str, str, str, str, str, int, str, str, str)
    OnReceiveMsg = pyqtSignal(str, str, str, str)

    def __init__(self, responses: Sequence[RawResponse], *, loop: bool = True, latency_ms: int = 5,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        if not responses:
            raise ValueError("a replay needs at least one recorded response")
        self._all: dict[_Key, list[RawResponse]] = defaultdict(list)
        for response in responses:
            self._all[_key(response.trcode, response.inputs)].append(response)
        self._queues = {k: deque(v) for k, v in self._all.items()}
        self._loop = loop
        self._latency_ms = latency_ms
        self._connected = 0
        self._inputs: dict[str, str] = {}
        self._current: tuple[str, RawResponse] | None = None
        self.replayed = 0
        self._dispatch: dict[str, Callable[..., Any]] = {
            ocx.COMM_CONNECT: self._comm_connect,
            ocx.GET_CONNECT_STATE: lambda: self._connected,
            ocx.GET_LOGIN_INFO: lambda tag: "",
            ocx.SET_INPUT_VALUE: self._set_input,
            ocx.COMM_RQ_DATA: self._comm_rq_data,
            ocx.GET_REPEAT_CNT: self._repeat_cnt,
            ocx.GET_COMM_DATA: self._comm_data,
            ocx.DISCONNECT_REAL_DATA: lambda screen: None,
            ocx.COMM_TERMINATE: lambda: None,
        }

    def dynamicCall(self, function: str, *args: Any) -> Any:
        handler = self._dispatch.get(function)
        if handler is None:
            raise ValueError(f"ReplayControl: unknown dynamicCall signature {function!r}")
        return handler(*args)

    @property
    def exhausted(self) -> bool:
        return not self._loop and not any(self._queues.values())

    def _set_input(self, name: str, value: str) -> None:
        self._inputs[name] = value

    def _comm_connect(self) -> int:
        def finish() -> None:
            self._connected = 1
            self.OnEventConnect.emit(0)

        QTimer.singleShot(self._latency_ms, finish)
        return OP_ERR_NONE

    def _comm_rq_data(self, rqname: str, trcode: str, prev_next: int, screen: str) -> int:
        inputs, self._inputs = self._inputs, {}
        if not self._connected:
            return OP_ERR_SOCKET_CLOSED
        if not (len(screen) == 4 and screen.isdigit() and screen != "0000"):
            return OP_ERR_RQ_STRUCT_FAIL
        key = _key(trcode, list(inputs.items()))
        queue = self._queues.get(key)
        if queue is None:
            self.OnReceiveMsg.emit(screen, rqname, trcode, "[replay] 녹화에 없는 조회입니다 (no recorded answer for "
                                   f"{trcode} with inputs {dict(inputs)})")
            return OP_ERR_RQ_STRING_FAIL
        if not queue:
            if not self._loop:
                self.OnReceiveMsg.emit(screen, rqname, trcode, "[replay] recording exhausted")
                return OP_ERR_RQ_STRING_FAIL
            queue.extend(self._all[key])
        response = queue.popleft()
        QTimer.singleShot(self._latency_ms, lambda: self._answer(screen, rqname, response))
        return OP_ERR_NONE

    def _answer(self, screen: str, rqname: str, response: RawResponse) -> None:
        self._current = (rqname, response)
        self.replayed += 1
        try:
            self.OnReceiveTrData.emit(screen, rqname, response.trcode, "", response.prev_next, 0, "", "", "")
        finally:
            self._current = None

    def _matches(self, trcode: str, name: str) -> RawResponse | None:
        if self._current is None:
            return None
        rqname, response = self._current
        ok = trcode.lower() == response.trcode.lower() and name in (rqname, OPT10023_RECORD)
        return response if ok else None

    def _repeat_cnt(self, trcode: str, name: str) -> int:
        response = self._matches(trcode, name)
        return len(response.rows) if response else 0

    def _comm_data(self, trcode: str, name: str, index: int, item: str) -> str:
        response = self._matches(trcode, name)
        if response is None or not 0 <= index < len(response.rows):
            return ""
        return response.rows[index].get(item, "")


_PARAMS = dict(OPT10023_INPUTS)


def feeds_from_recording(responses: Sequence[RawResponse], speed: float = 1.0) -> list[FeedSettings]:
    """One feed per recorded feed, with its recorded inputs and its median recorded period ÷ ``speed``."""
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    by_feed: dict[str, list[RawResponse]] = defaultdict(list)
    for response in responses:
        by_feed[response.feed].append(response)
    feeds = []
    for feed, items in by_feed.items():
        gaps = [(b.requested_at_ms - a.requested_at_ms) / 1000 for a, b in itertools.pairwise(items)]
        period = statistics.median(gaps) if gaps else 10.0
        params = {_PARAMS[k]: v for k, v in items[0].inputs if k in _PARAMS}
        feeds.append(FeedSettings(feed=feed, interval_s=max(0.1, period / speed), **params))
    return feeds
