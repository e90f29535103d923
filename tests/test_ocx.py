"""The exact dynamicCall strings: a typo would make the real OCX return an invalid QVariant silently."""

from publisher.controls import ocx


def test_exact_dynamic_call_strings() -> None:
    assert ocx.PROG_ID == "KHOPENAPI.KHOpenAPICtrl.1"
    assert ocx.COMM_CONNECT == "CommConnect()"
    assert ocx.GET_CONNECT_STATE == "GetConnectState()"
    assert ocx.GET_LOGIN_INFO == "GetLoginInfo(QString)"
    assert ocx.SET_INPUT_VALUE == "SetInputValue(QString, QString)"
    assert ocx.COMM_RQ_DATA == "CommRqData(QString, QString, int, QString)"
    assert ocx.GET_REPEAT_CNT == "GetRepeatCnt(QString, QString)"
    assert ocx.GET_COMM_DATA == "GetCommData(QString, QString, int, QString)"
    assert ocx.DISCONNECT_REAL_DATA == "DisconnectRealData(QString)"
    assert ocx.SET_REAL_REG == "SetRealReg(QString, QString, QString, QString)"
    assert ocx.GET_COMM_REAL_DATA == "GetCommRealData(QString, int)"
    assert ocx.ON_RECEIVE_REAL_DATA == "OnReceiveRealData(QString, QString, QString)"
    assert (ocx.REAL_MARKET_OPERATION, ocx.FID_MARKET_OPERATION, ocx.FID_TIME, ocx.FID_REMAINING) == (
        "장시작시간", 215, 20, 214)
