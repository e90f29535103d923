"""A control that answers TR requests from a recording, through the same ``dynamicCall`` surface.

It matches each ``CommRqData`` by TR code and the exact ``SetInputValue`` inputs (read back into parameters
through the TR's OCX spelling), and answers with the next recorded response for them, its rows under the OCX's
item names again (looping at the end when ``loop``), so the parser, the poller and the
writer run exactly as they do live. Played once, it says when a request took the last recorded answer
for its inputs (:attr:`ReplayControl.answersExhausted`), so the caller stops asking instead of getting
``-202`` for a recording that simply ended. Pacing comes from the publisher's timers; see
:func:`feeds_from_recording` for how ``--speed`` maps onto them.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict, deque
from collections.abc import Sequence

from PyQt5.QtCore import QObject, pyqtSignal

from publisher.controls.base import OcxControl
from publisher.kiwoom_errors import OP_ERR_NONE, OP_ERR_RQ_STRING_FAIL
from publisher.settings import FeedSettings
from publisher.trs import TRS, RawResponse, tr_spec

_Key = tuple[str, tuple[tuple[str, str], ...]]


def _key(trcode: str, params: Sequence[tuple[str, str]]) -> _Key:
    return trcode.lower(), tuple(sorted(params))


class ReplayControl(OcxControl):
    #: (sRQName) once mode: this request took the last recorded answer for its inputs; ask no more.
    answersExhausted = pyqtSignal(str)

    def __init__(self, responses: Sequence[RawResponse], *, loop: bool = True, latency_ms: int = 5,
                 parent: QObject | None = None) -> None:
        super().__init__(latency_ms=latency_ms, login_delay_ms=latency_ms, parent=parent)
        if not responses:
            raise ValueError("a replay needs at least one recorded response")
        self._all: dict[_Key, list[RawResponse]] = defaultdict(list)
        for response in responses:
            self._all[_key(response.trcode, response.inputs)].append(response)
        self._queues = {k: deque(v) for k, v in self._all.items()}
        self._loop = loop
        self.replayed = 0

    @property
    def exhausted(self) -> bool:
        return not self._loop and not any(self._queues.values())

    def request(self, rqname: str, trcode: str, prev_next: int, screen: str, inputs: dict[str, str]) -> int:
        spec = TRS.get(trcode.lower())
        key = _key(trcode, spec.ocx.params_of(inputs.items()) if spec is not None else list(inputs.items()))
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
        self.replayed += 1
        # A recorded answer is a whole ranking, its pages already merged: there is never another page to fetch.
        names = tr_spec(response.trcode).ocx
        self.answer_later(screen, rqname, response.trcode, [names.named(row) for row in response.rows])
        if not queue and not self._loop:
            self.answersExhausted.emit(rqname)
        return OP_ERR_NONE



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
        spec = tr_spec(items[0].trcode)
        params = {k: v for k, v in items[0].inputs if k in spec.params}
        feeds.append(FeedSettings(feed=feed, tr=spec.code, params=params, interval_s=max(0.1, period / speed)))
    return feeds
