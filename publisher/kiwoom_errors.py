"""Kiwoom OpenAPI+ return codes and the exceptions the publisher raises for them.

The OCX answers ``CommConnect``/``OnEventConnect``, ``CommRqData`` and friends with a negative ``int``.
:func:`error_for` turns such a code into a :class:`KiwoomApiError` of the right family, so callers branch on
the class (back off on :class:`RateLimitError`, log in again on :class:`ConnectionClosedError`, give up on
:class:`RequestInputError`) instead of on magic numbers.

The table follows the dev-guide list as transcribed in koapy's ``KiwoomOpenApiPlusError.py`` (the source cited
in docs/kiwoom-openapi.md §3); the Korean texts are koapy's, unabridged. No Qt import: this module is shared with tests
and tools that never load the OCX.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, NamedTuple

from kiwoom_cache.errors import KiwoomCacheError

OP_ERR_NONE: Final = 0
OP_ERR_FAIL: Final = -10
OP_ERR_COND_NOTFOUND: Final = -11
OP_ERR_COND_MISMATCH: Final = -12
OP_ERR_COND_OVERFLOW: Final = -13
OP_ERR_TR_FAIL: Final = -22
OP_ERR_LOGIN: Final = -100
OP_ERR_CONNECT: Final = -101
OP_ERR_VERSION: Final = -102
OP_ERR_FIREWALL: Final = -103
OP_ERR_MEMORY: Final = -104
OP_ERR_INPUT: Final = -105
OP_ERR_SOCKET_CLOSED: Final = -106
OP_ERR_SISE_OVERFLOW: Final = -200
OP_ERR_RQ_STRUCT_FAIL: Final = -201
OP_ERR_RQ_STRING_FAIL: Final = -202
OP_ERR_NO_DATA: Final = -203
OP_ERR_OVER_MAX_DATA: Final = -204
OP_ERR_DATA_RCV_FAIL: Final = -205
OP_ERR_OVER_MAX_FID: Final = -206
OP_ERR_REAL_CANCEL: Final = -207
OP_ERR_ORD_WRONG_INPUT: Final = -300
OP_ERR_ORD_WRONG_ACCTNO: Final = -301
OP_ERR_OTHER_ACC_USE: Final = -302
OP_ERR_MIS_2BILL_EXC: Final = -303
OP_ERR_MIS_5BILL_EXC: Final = -304
OP_ERR_MIS_1PER_EXC: Final = -305
OP_ERR_MIS_3PER_EXC: Final = -306
OP_ERR_SEND_FAIL: Final = -307
OP_ERR_ORD_OVERFLOW: Final = -308
OP_ERR_MIS_300CNT_EXC: Final = -309
OP_ERR_MIS_500CNT_EXC: Final = -310
OP_ERR_ORD_OVERFLOW2: Final = -311
OP_ERR_ORD_WRONG_ACCTINFO: Final = -340
OP_ERR_ORD_SYMCODE_EMPTY: Final = -500

#: Name given to codes missing from the table (a newer OCX, or a garbled value).
UNKNOWN_NAME: Final = "UNKNOWN"


class ErrorInfo(NamedTuple):
    """One row of the dev-guide error table."""

    code: int
    name: str
    message_ko: str
    message_en: str


_ROWS: tuple[ErrorInfo, ...] = (
    ErrorInfo(OP_ERR_NONE, "OP_ERR_NONE", "정상처리", "processed normally"),
    ErrorInfo(OP_ERR_FAIL, "OP_ERR_FAIL", "실패", "failure"),
    ErrorInfo(OP_ERR_COND_NOTFOUND, "OP_ERR_COND_NOTFOUND", "조건번호 없음", "condition number not found"),
    ErrorInfo(
        OP_ERR_COND_MISMATCH,
        "OP_ERR_COND_MISMATCH",
        "조건번호와 조건식 틀림",
        "condition number and condition expression do not match",
    ),
    ErrorInfo(
        OP_ERR_COND_OVERFLOW, "OP_ERR_COND_OVERFLOW", "조건검색 조회요청 초과", "too many condition-search requests"
    ),
    ErrorInfo(OP_ERR_TR_FAIL, "OP_ERR_TR_FAIL", "전문 처리 실패", "TR message processing failed"),
    ErrorInfo(OP_ERR_LOGIN, "OP_ERR_LOGIN", "사용자정보 교환 실패", "user information exchange failed"),
    ErrorInfo(OP_ERR_CONNECT, "OP_ERR_CONNECT", "서버접속 실패", "server connection failed"),
    ErrorInfo(OP_ERR_VERSION, "OP_ERR_VERSION", "버전처리 실패", "version processing failed"),
    ErrorInfo(OP_ERR_FIREWALL, "OP_ERR_FIREWALL", "개인방화벽 실패", "personal firewall failure"),
    ErrorInfo(OP_ERR_MEMORY, "OP_ERR_MEMORY", "메모리보호 실패", "memory protection failure"),
    ErrorInfo(OP_ERR_INPUT, "OP_ERR_INPUT", "함수입력값 오류", "invalid function input"),
    ErrorInfo(OP_ERR_SOCKET_CLOSED, "OP_ERR_SOCKET_CLOSED", "통신 연결종료", "communication connection closed"),
    ErrorInfo(OP_ERR_SISE_OVERFLOW, "OP_ERR_SISE_OVERFLOW", "시세조회 과부하", "market data query overload"),
    ErrorInfo(
        OP_ERR_RQ_STRUCT_FAIL, "OP_ERR_RQ_STRUCT_FAIL", "전문작성 초기화 실패", "request message initialisation failed"
    ),
    ErrorInfo(
        OP_ERR_RQ_STRING_FAIL, "OP_ERR_RQ_STRING_FAIL", "전문작성 입력값 오류", "invalid input in request message"
    ),
    ErrorInfo(OP_ERR_NO_DATA, "OP_ERR_NO_DATA", "데이터 없음", "no data"),
    ErrorInfo(
        OP_ERR_OVER_MAX_DATA,
        "OP_ERR_OVER_MAX_DATA",
        "조회 가능한 종목수 초과",
        "more symbols than can be queried at once",
    ),
    ErrorInfo(OP_ERR_DATA_RCV_FAIL, "OP_ERR_DATA_RCV_FAIL", "데이터수신 실패", "data reception failed"),
    ErrorInfo(
        OP_ERR_OVER_MAX_FID, "OP_ERR_OVER_MAX_FID", "조회 가능한 FID수 초과", "more FIDs than can be queried at once"
    ),
    ErrorInfo(OP_ERR_REAL_CANCEL, "OP_ERR_REAL_CANCEL", "실시간 해제 오류", "real-time deregistration error"),
    ErrorInfo(OP_ERR_ORD_WRONG_INPUT, "OP_ERR_ORD_WRONG_INPUT", "입력값 오류", "invalid input value (order)"),
    ErrorInfo(OP_ERR_ORD_WRONG_ACCTNO, "OP_ERR_ORD_WRONG_ACCTNO", "계좌 비밀번호 없음", "no account password"),
    ErrorInfo(OP_ERR_OTHER_ACC_USE, "OP_ERR_OTHER_ACC_USE", "타인계좌사용 오류", "use of another person's account"),
    ErrorInfo(
        OP_ERR_MIS_2BILL_EXC, "OP_ERR_MIS_2BILL_EXC", "주문가격이 20억원을 초과", "order price exceeds KRW 2 billion"
    ),
    ErrorInfo(
        OP_ERR_MIS_5BILL_EXC, "OP_ERR_MIS_5BILL_EXC", "주문가격이 50억원을 초과", "order price exceeds KRW 5 billion"
    ),
    ErrorInfo(
        OP_ERR_MIS_1PER_EXC,
        "OP_ERR_MIS_1PER_EXC",
        "주문수량이 총발행주수의 1%초과오류",
        "order quantity exceeds 1% of total shares outstanding",
    ),
    ErrorInfo(
        OP_ERR_MIS_3PER_EXC,
        "OP_ERR_MIS_3PER_EXC",
        "주문수량이 총발행주수의 3%초과오류",
        "order quantity exceeds 3% of total shares outstanding",
    ),
    ErrorInfo(OP_ERR_SEND_FAIL, "OP_ERR_SEND_FAIL", "주문전송 실패", "order transmission failed"),
    ErrorInfo(OP_ERR_ORD_OVERFLOW, "OP_ERR_ORD_OVERFLOW", "주문전송 과부하", "order transmission overload"),
    ErrorInfo(
        OP_ERR_MIS_300CNT_EXC, "OP_ERR_MIS_300CNT_EXC", "주문수량 300계약 초과", "order quantity exceeds 300 contracts"
    ),
    ErrorInfo(
        OP_ERR_MIS_500CNT_EXC, "OP_ERR_MIS_500CNT_EXC", "주문수량 500계약 초과", "order quantity exceeds 500 contracts"
    ),
    ErrorInfo(OP_ERR_ORD_OVERFLOW2, "OP_ERR_ORD_OVERFLOW2", "주문전송 과부하", "order transmission overload"),
    ErrorInfo(OP_ERR_ORD_WRONG_ACCTINFO, "OP_ERR_ORD_WRONG_ACCTINFO", "계좌정보없음", "no account information"),
    ErrorInfo(OP_ERR_ORD_SYMCODE_EMPTY, "OP_ERR_ORD_SYMCODE_EMPTY", "종목코드없음", "no symbol code"),
)

#: code -> row, for every code in docs/kiwoom-openapi.md §3.
ERRORS: Final[Mapping[int, ErrorInfo]] = MappingProxyType({row.code: row for row in _ROWS})

#: Codes worth retrying after a pause: query overload (back off first), a failed receive, a lost or refused
#: connection (log in again first). Everything else repeats identically when retried.
RETRYABLE_CODES: Final[frozenset[int]] = frozenset(
    {OP_ERR_CONNECT, OP_ERR_SOCKET_CLOSED, OP_ERR_SISE_OVERFLOW, OP_ERR_DATA_RCV_FAIL}
)


def info_for(code: int) -> ErrorInfo:
    """The table row for ``code``; an ``UNKNOWN`` row naming the code when it is not in the table."""
    row = ERRORS.get(code)
    if row is not None:
        return row
    return ErrorInfo(code, UNKNOWN_NAME, "알 수 없는 오류", f"unknown Kiwoom error code {code}")


def describe(code: int) -> str:
    """``-200 OP_ERR_SISE_OVERFLOW 시세조회 과부하 (market data query overload)``."""
    row = info_for(code)
    return f"{row.code} {row.name} {row.message_ko} ({row.message_en})"


def is_retryable(code: int) -> bool:
    """True for codes a caller may retry after a pause (see :data:`RETRYABLE_CODES`)."""
    return code in RETRYABLE_CODES


class KiwoomApiError(KiwoomCacheError):
    """A return code from Kiwoom: negative from the OCX, positive from the REST API (``return_code``).

    The classes below are the families a caller branches on; which table a code comes from does not
    matter to it (a REST 1700 and an OCX -200 are both :class:`RateLimitError`).

    :param code: the ``int`` the OCX returned (or passed to ``OnEventConnect``), or a REST ``return_code``.
    :param context: what was being done, e.g. ``"CommRqData opt10023 kospi-surge"``.
    :param info: the code's table row when it is not an OCX code (REST codes: ``publisher.sources.rest_codes``).
    """

    def __init__(self, code: int, context: str = "", info: ErrorInfo | None = None) -> None:
        super().__init__(code, context)
        row = info or info_for(code)
        self.code = code
        self.name = row.name
        self.message_ko = row.message_ko
        self.message_en = row.message_en
        self.context = context

    @property
    def retryable(self) -> bool:
        return is_retryable(self.code)

    def __str__(self) -> str:
        text = f"{self.code} {self.name} {self.message_ko} ({self.message_en})"
        return f"{text}: {self.context}" if self.context else text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.context!r})"


class LoginError(KiwoomApiError):
    """``OnEventConnect`` failed (-100..-104); -100, -102 and -106 have subclasses of their own."""


class LoginRefusedError(LoginError):
    """-100 (사용자정보 교환 실패): the server refused the login, typically a wrong or stale 자동로그인 password.

    Retrying the same login repeats it; the publisher gives up after ``login_max_failures`` in a row and exits
    asking to be restarted (docs/kiwoom-openapi.md §8).
    """


class VersionUpdateError(LoginError):
    """-102 (버전처리 실패): Kiwoom updated OpenAPI+ at login. Every program holding the control must exit and
    start again before a login can succeed, so the publisher exits at once asking to be restarted."""


class ConnectionClosedError(LoginError):
    """-106 (REST: a token that stays invalid after re-issuing): the session is gone; log in again.

    Whether the OCX reconnects by itself is undocumented (docs/kiwoom-openapi.md §3): the publisher never waits for it.
    """


class RateLimitError(KiwoomApiError):
    """-200 (REST: 1700): query overload; wait before the next request."""

    #: Kiwoom's penalty guide: one 5-per-second burst costs a 17 s wait (docs/kiwoom-openapi.md §5).
    min_backoff_s: float = 17.0


class RequestInputError(KiwoomApiError):
    """-201, -202, -105 (REST: input validation codes): the request is malformed; retrying it unchanged fails again.

    -105 (``OP_ERR_INPUT``) sits in the login range but means a bad function argument wherever it comes from,
    so it lands here rather than under :class:`LoginError`.
    """


class SourceUnavailableError(KiwoomCacheError):
    """The source could not be reached or answered garbage (timeouts, refused connections, a body that is not
    Kiwoom's shape) after its own retries; the feed is retried on its next period."""


_FAMILY: Final[Mapping[int, type[KiwoomApiError]]] = MappingProxyType(
    {
        OP_ERR_LOGIN: LoginRefusedError,
        OP_ERR_CONNECT: LoginError,
        OP_ERR_VERSION: VersionUpdateError,
        OP_ERR_FIREWALL: LoginError,
        OP_ERR_MEMORY: LoginError,
        OP_ERR_SOCKET_CLOSED: ConnectionClosedError,
        OP_ERR_SISE_OVERFLOW: RateLimitError,
        OP_ERR_RQ_STRUCT_FAIL: RequestInputError,
        OP_ERR_RQ_STRING_FAIL: RequestInputError,
        OP_ERR_INPUT: RequestInputError,
    }
)


def error_for(code: int, context: str = "") -> KiwoomApiError:
    """The exception for ``code``: the family subclass when there is one, else :class:`KiwoomApiError`.

    Never raises; a code missing from the table gives a ``KiwoomApiError`` named ``UNKNOWN``.
    """
    return _FAMILY.get(code, KiwoomApiError)(code, context)


def check_code(code: int, context: str = "") -> int:
    """Return ``code`` when it is not negative, else raise :func:`error_for` of it."""
    if code < 0:
        raise error_for(code, context)
    return code
