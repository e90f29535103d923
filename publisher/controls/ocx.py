"""The OpenAPI+ control's exact ``dynamicCall`` strings and event signatures, in one place.

The adapter only ever calls these strings, so the real ``QAxWidget`` and our simulated and replay controls
are interchangeable. ``tests/test_ocx.py`` pins them: a typo here would silently return an invalid
QVariant from the real control.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

PROG_ID: Final = "KHOPENAPI.KHOpenAPICtrl.1"

COMM_CONNECT: Final = "CommConnect()"
GET_CONNECT_STATE: Final = "GetConnectState()"
GET_LOGIN_INFO: Final = "GetLoginInfo(QString)"
SET_INPUT_VALUE: Final = "SetInputValue(QString, QString)"
COMM_RQ_DATA: Final = "CommRqData(QString, QString, int, QString)"
GET_REPEAT_CNT: Final = "GetRepeatCnt(QString, QString)"
GET_COMM_DATA: Final = "GetCommData(QString, QString, int, QString)"
DISCONNECT_REAL_DATA: Final = "DisconnectRealData(QString)"
COMM_TERMINATE: Final = "CommTerminate()"
SET_REAL_REG: Final = "SetRealReg(QString, QString, QString, QString)"
GET_COMM_REAL_DATA: Final = "GetCommRealData(QString, int)"

#: Event signatures as the control declares them (sScrNo, sRQName, sTrCode, sRecordName, sPrevNext, ...).
ON_EVENT_CONNECT: Final = "OnEventConnect(int)"
ON_RECEIVE_TR_DATA: Final = (
    "OnReceiveTrData(QString, QString, QString, QString, QString, int, QString, QString, QString)"
)
ON_RECEIVE_MSG: Final = "OnReceiveMsg(QString, QString, QString, QString)"
#: (sRealKey, sRealType, sRealData); the values are read with GetCommRealData inside the event.
ON_RECEIVE_REAL_DATA: Final = "OnReceiveRealData(QString, QString, QString)"

#: GetLoginInfo tags.
LOGIN_ACCOUNT_LIST: Final = "ACCNO"
LOGIN_USER_ID: Final = "USER_ID"
LOGIN_SERVER: Final = "GetServerGubun"
#: GetServerGubun answers "1" on the mock-trading (모의투자) server, anything else on the real one.
MOCK_SERVER: Final = "1"
#: sPrevNext "2" means Kiwoom holds another page.
MORE_PAGES: Final = "2"

#: Real-time type 장시작시간 (market operation) and its FIDs: 215 장운영구분, 20 the time (HHMMSS), 214 the time left
#: (HHMMSS). Registered with an empty code list: it belongs to no stock (docs/kiwoom-openapi.md §7.2).
REAL_MARKET_OPERATION: Final = "장시작시간"
FID_MARKET_OPERATION: Final = 215
FID_TIME: Final = 20
FID_REMAINING: Final = 214
#: SetRealReg's strOptType: "0" replaces the screen's registrations, "1" adds to them.
REAL_REG_REPLACE: Final = "0"


class SignalLike(Protocol):
    def connect(self, slot: Any) -> Any: ...
    def disconnect(self, slot: Any = ...) -> Any: ...


class Control(Protocol):
    """What the adapter needs from a control: ``dynamicCall`` and four signals."""

    OnEventConnect: SignalLike
    OnReceiveTrData: SignalLike
    OnReceiveMsg: SignalLike
    OnReceiveRealData: SignalLike

    def dynamicCall(self, function: str, *args: Any) -> Any: ...
