"""Kiwoom OpenAPI+ return codes: the table, the exception families and the helpers."""

from __future__ import annotations

import pickle

import pytest

from kiwoom_cache.errors import KiwoomCacheError
from publisher import kiwoom_errors
from publisher.kiwoom_errors import (
    ERRORS,
    ConnectionClosedError,
    KiwoomApiError,
    LoginError,
    LoginRefusedError,
    RateLimitError,
    RequestInputError,
    VersionUpdateError,
    check_code,
    describe,
    error_for,
    is_retryable,
)

# docs/kiwoom-openapi.md §3, code by code.
DOCUMENTED = {
    0: "OP_ERR_NONE",
    -10: "OP_ERR_FAIL",
    -11: "OP_ERR_COND_NOTFOUND",
    -12: "OP_ERR_COND_MISMATCH",
    -13: "OP_ERR_COND_OVERFLOW",
    -22: "OP_ERR_TR_FAIL",
    -100: "OP_ERR_LOGIN",
    -101: "OP_ERR_CONNECT",
    -102: "OP_ERR_VERSION",
    -103: "OP_ERR_FIREWALL",
    -104: "OP_ERR_MEMORY",
    -105: "OP_ERR_INPUT",
    -106: "OP_ERR_SOCKET_CLOSED",
    -200: "OP_ERR_SISE_OVERFLOW",
    -201: "OP_ERR_RQ_STRUCT_FAIL",
    -202: "OP_ERR_RQ_STRING_FAIL",
    -203: "OP_ERR_NO_DATA",
    -204: "OP_ERR_OVER_MAX_DATA",
    -205: "OP_ERR_DATA_RCV_FAIL",
    -206: "OP_ERR_OVER_MAX_FID",
    -207: "OP_ERR_REAL_CANCEL",
    -300: "OP_ERR_ORD_WRONG_INPUT",
    -301: "OP_ERR_ORD_WRONG_ACCTNO",
    -302: "OP_ERR_OTHER_ACC_USE",
    -303: "OP_ERR_MIS_2BILL_EXC",
    -304: "OP_ERR_MIS_5BILL_EXC",
    -305: "OP_ERR_MIS_1PER_EXC",
    -306: "OP_ERR_MIS_3PER_EXC",
    -307: "OP_ERR_SEND_FAIL",
    -308: "OP_ERR_ORD_OVERFLOW",
    -309: "OP_ERR_MIS_300CNT_EXC",
    -310: "OP_ERR_MIS_500CNT_EXC",
    -311: "OP_ERR_ORD_OVERFLOW2",
    -340: "OP_ERR_ORD_WRONG_ACCTINFO",
    -500: "OP_ERR_ORD_SYMCODE_EMPTY",
}


def test_table_covers_every_documented_code():
    assert {code: row.name for code, row in ERRORS.items()} == DOCUMENTED


def test_table_rows_are_consistent():
    for code, row in ERRORS.items():
        assert row.code == code
        assert getattr(kiwoom_errors, row.name) == code
        assert row.message_ko.strip() == row.message_ko != ""
        assert row.message_en.strip() == row.message_en != ""
        assert row.message_en.isascii()


@pytest.mark.parametrize(
    ("code", "message_ko"),
    [
        (-100, "사용자정보 교환 실패"),
        (-101, "서버접속 실패"),
        (-106, "통신 연결종료"),
        (-200, "시세조회 과부하"),
        (-201, "전문작성 초기화 실패"),
        (-202, "전문작성 입력값 오류"),
        (-340, "계좌정보없음"),
    ],
)
def test_korean_messages_verbatim(code, message_ko):
    assert ERRORS[code].message_ko == message_ko


def test_error_carries_fields_and_context():
    err = error_for(-200, "CommRqData opt10023 kospi-surge")
    assert isinstance(err, RateLimitError)
    assert isinstance(err, KiwoomApiError)
    assert isinstance(err, KiwoomCacheError)
    assert (err.code, err.name, err.message_ko) == (-200, "OP_ERR_SISE_OVERFLOW", "시세조회 과부하")
    assert "query overload" in err.message_en
    assert err.context == "CommRqData opt10023 kospi-surge"
    assert str(err) == (
        "-200 OP_ERR_SISE_OVERFLOW 시세조회 과부하 (market data query overload): CommRqData opt10023 kospi-surge"
    )
    assert repr(err) == "RateLimitError(-200, 'CommRqData opt10023 kospi-surge')"


def test_str_without_context_has_no_trailing_colon():
    assert str(error_for(-203)) == "-203 OP_ERR_NO_DATA 데이터 없음 (no data)"


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (-100, LoginRefusedError),
        (-101, LoginError),
        (-102, VersionUpdateError),
        (-103, LoginError),
        (-104, LoginError),
        (-105, RequestInputError),
        (-106, ConnectionClosedError),
        (-200, RateLimitError),
        (-201, RequestInputError),
        (-202, RequestInputError),
        (-10, KiwoomApiError),
        (-203, KiwoomApiError),
        (-308, KiwoomApiError),
    ],
)
def test_error_for_picks_family(code, cls):
    assert type(error_for(code)) is cls


def test_connection_closed_is_a_login_error():
    assert isinstance(error_for(-106), LoginError)
    assert not isinstance(error_for(-105), LoginError)


@pytest.mark.parametrize("code", [-999, -1, 12345, 1])
def test_unknown_code_never_crashes(code):
    err = error_for(code, "CommRqData opt10023 kosdaq-surge")
    assert type(err) is KiwoomApiError
    assert err.name == "UNKNOWN"
    assert str(code) in str(err)
    assert str(code) in err.message_en
    assert str(err).endswith(": CommRqData opt10023 kosdaq-surge")
    assert describe(code).startswith(f"{code} UNKNOWN ")


def test_retryable():
    for code in (-200, -205, -106, -101):
        assert is_retryable(code)
        assert error_for(code).retryable
    for code in (-201, -202, -105, -100, -203, 0, -999):
        assert not is_retryable(code)


def test_describe():
    assert describe(-106) == "-106 OP_ERR_SOCKET_CLOSED 통신 연결종료 (communication connection closed)"


def test_rate_limit_backoff_hint():
    assert RateLimitError.min_backoff_s >= 17


def test_check_code():
    assert check_code(0) == 0
    assert check_code(3, "CommRqData") == 3
    with pytest.raises(RateLimitError) as info:
        check_code(-200, "CommRqData opt10023 all")
    assert info.value.context == "CommRqData opt10023 all"


def test_error_pickles():
    err = error_for(-202, "CommRqData opt10023 kospi")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is RequestInputError
    assert str(copy) == str(err)
