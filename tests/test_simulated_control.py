"""The simulated control behaves like the OCX where our code can tell (pytest-qt, offscreen)."""

from __future__ import annotations

import re

import pytest

from publisher.controls import ocx
from publisher.controls.sim_market import limit_prices, tick_size
from publisher.controls.simulated import SimulatedControl
from publisher.trs import OPT10023

#: The OCX's input names in SetInputValue order, with values.
INPUTS = dict(zip([OPT10023.ocx.inputs[p] for p in OPT10023.params], ["001", "1", "1", "5", "5", "0", "0"],
                  strict=True))


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def login(qtbot, control: SimulatedControl) -> int:
    with qtbot.waitSignal(control.OnEventConnect, timeout=2000) as blocker:
        assert control.dynamicCall(ocx.COMM_CONNECT) == 0
    return blocker.args[0]


def request(control: SimulatedControl, screen: str = "2000", rqname: str = "rq", **over: str) -> int:
    for name, value in {**INPUTS, **over}.items():
        control.dynamicCall(ocx.SET_INPUT_VALUE, name, value)
    return control.dynamicCall(ocx.COMM_RQ_DATA, rqname, "opt10023", 0, screen)


def test_login_then_answer_raw_strings(qtbot) -> None:
    control = SimulatedControl(seed=3)
    assert control.dynamicCall(ocx.GET_CONNECT_STATE) == 0
    assert login(qtbot, control) == 0
    assert control.dynamicCall(ocx.GET_CONNECT_STATE) == 1
    assert control.dynamicCall(ocx.GET_LOGIN_INFO, "GetServerGubun") == "1"
    seen: list[list[dict[str, str]]] = []

    def on_tr(screen: str, rqname: str, trcode: str, record: str, prev_next: str, *rest: object) -> None:
        n = control.dynamicCall(ocx.GET_REPEAT_CNT, trcode, rqname)
        seen.append([{item: control.dynamicCall(ocx.GET_COMM_DATA, trcode, rqname, i, item)
                      for item in ("종목코드", "종목명", "현재가", "전일대비기호", "급증률")} for i in range(n)])

    control.OnReceiveTrData.connect(on_tr)
    with qtbot.waitSignal(control.OnReceiveTrData, timeout=2000):
        assert request(control) == 0
    [rows] = seen
    assert rows, "a KOSPI ranking has rows"
    for row in rows:
        assert all(len(v) == 20 for v in row.values()), "fixed-width, padded like Kiwoom"
        assert re.fullmatch(r"A?\d{6}", row["종목코드"].strip())
        assert re.fullmatch(r"[+-]{0,2}\d+", row["현재가"].strip())
        assert row["전일대비기호"].strip() in "12345"
        assert re.fullmatch(r"\+\d+\.\d\d", row["급증률"].strip())
    # Outside OnReceiveTrData the buffer is gone, as with the real control.
    assert control.dynamicCall(ocx.GET_REPEAT_CNT, "opt10023", "rq") == 0
    assert control.dynamicCall(ocx.GET_COMM_DATA, "opt10023", "rq", 0, "종목코드") == ""


def test_login_failure_code(qtbot) -> None:
    control = SimulatedControl()
    control.faults.login_result = -101
    assert login(qtbot, control) == -101
    assert control.dynamicCall(ocx.GET_CONNECT_STATE) == 0


def test_unknown_signature_is_loud() -> None:
    with pytest.raises(ValueError, match="unknown dynamicCall signature"):
        SimulatedControl().dynamicCall("CommRqData(QString, QString, QString, QString)", "a", "b", "c", "d")


def test_rate_limit_refusal_and_penalty(qtbot) -> None:
    clock = Clock()
    control = SimulatedControl(clock=clock, penalty_s=17.0, latency_ms=1)
    login(qtbot, control)
    assert [request(control, rqname=f"r{i}") for i in range(5)] == [0] * 5
    assert request(control) == -200, "a sixth TR within one second is refused"
    clock.t += 1.5
    assert request(control) == -200, "and the penalty keeps refusing"
    clock.t += 17.0
    assert request(control) == 0
    assert control.max_in_window[1.0] == 5 and control.refused == 2


def test_inputs_validated_and_cleared(qtbot) -> None:
    control = SimulatedControl(latency_ms=1)
    login(qtbot, control)
    with qtbot.waitSignal(control.OnReceiveMsg, timeout=1000) as msg:
        assert request(control, **{"시장구분": "999"}) == -202
    assert "입력값" in msg.args[3]
    # SetInputValue state does not survive a request: a bare CommRqData lacks every input.
    assert control.dynamicCall(ocx.COMM_RQ_DATA, "rq", "opt10023", 0, "2000") == -202
    assert request(control, screen="0000") == -201


def test_requests_fail_after_connection_drop(qtbot) -> None:
    control = SimulatedControl()
    login(qtbot, control)
    control.drop_connection()
    assert control.dynamicCall(ocx.GET_CONNECT_STATE) == 0
    assert request(control) == -106


def test_seeded_markets_are_deterministic() -> None:
    a, b = SimulatedControl(seed=7), SimulatedControl(seed=7)
    a.market.advance(50)
    b.market.advance(50)
    assert [s.volumes[-1] for s in a.market.stocks] == [s.volumes[-1] for s in b.market.stocks]
    assert all(s.volumes == sorted(s.volumes) for s in a.market.stocks), "cumulative volume never falls"


def test_prices_stay_on_ticks_within_the_daily_band() -> None:
    control = SimulatedControl(seed=2)
    control.market.surge_probability = 0.3  # many surges: jumpy prices, still on ticks and in the band
    control.market.advance(300)
    for stock in control.market.stocks:
        low, high = limit_prices(stock.prev_close)
        assert low <= stock.price <= high
        assert stock.price % tick_size(stock.price) == 0, (stock.name, stock.price)
    assert limit_prices(38250) == (26800, 49700)
