"""Kiwoom REST API ``return_code`` values and the error family each belongs to.

Kiwoom's REST answers carry ``return_code`` (0 = success) and ``return_msg``. The groups below follow the
official client (``kiwoom/core/errors.py`` in github.com/Kiwoom-Securities/Kiwoom-REST-API, see
docs/kiwoom-rest.md); the Korean texts are short descriptions of each group, while the server's own
``return_msg`` travels in the error's context. Families are those of :mod:`publisher.kiwoom_errors`, so the
poller treats a REST ``1700`` exactly like an OCX ``-200``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from publisher.kiwoom_errors import (
    ConnectionClosedError,
    ErrorInfo,
    KiwoomApiError,
    LoginError,
    RateLimitError,
    RequestInputError,
)

OK: Final = 0
RATE_LIMIT: Final = 1700


class TokenInvalidError(ConnectionClosedError):
    """The access token is invalid or expired and issuing a new one did not help: log in again."""


class CredentialsError(LoginError):
    """The app key or secret key is wrong (or belongs to the other domain, real vs mock)."""


class _Group:
    def __init__(self, name: str, family: type[KiwoomApiError], ko: str, en: str, codes: tuple[int, ...]) -> None:
        self.name, self.family, self.ko, self.en, self.codes = name, family, ko, en, codes


_GROUPS: Final = (
    _Group("REST_INPUT_INVALID", RequestInputError, "입력값 오류", "invalid request input",
           (1501, 1504, 1505, 1511, 1512, 1513, 1514, 1515, 1516, 1517, 1687, 8020)),
    _Group("REST_RATE_LIMIT", RateLimitError, "허용된 요청 개수 초과", "too many requests", (RATE_LIMIT,)),
    _Group("REST_SYMBOL_NOT_FOUND", KiwoomApiError, "종목 또는 시장 정보 없음", "symbol or market not found",
           (1901, 1902)),
    _Group("REST_CREDENTIALS_INVALID", CredentialsError, "앱키 또는 시크릿키 오류", "invalid app key or secret key",
           (8001, 8002, 8011, 8012)),
    _Group("REST_TOKEN_INVALID", TokenInvalidError, "접근 토큰 오류 또는 만료", "access token invalid or expired",
           (8003, 8005, 8006, 8009, 8015, 8016)),
    _Group("REST_MODE_MISMATCH", CredentialsError, "실전/모의 구분 불일치", "real/mock domain mismatch", (8030, 8031)),
    _Group("REST_DEVICE_AUTH", LoginError, "단말기 인증 실패", "device (IP) authentication failed",
           (8010, 8040, 8050, 8103)),
)

#: code -> (table row, family) for every code Kiwoom's official client lists.
CODES: Final[Mapping[int, tuple[ErrorInfo, type[KiwoomApiError]]]] = MappingProxyType({
    code: (ErrorInfo(code, g.name, g.ko, g.en), g.family) for g in _GROUPS for code in g.codes
})
#: Codes after which the official client issues a new token and retries once (plus HTTP 401).
RENEW_TOKEN_CODES: Final = frozenset({*next(g for g in _GROUPS if g.family is TokenInvalidError).codes, 8031, 8103})


def rest_error(code: int, message: str, context: str) -> KiwoomApiError:
    """The exception for a non-zero ``return_code``; the server's ``return_msg`` is kept in the context."""
    row, family = CODES.get(code, (ErrorInfo(code, "REST_UNKNOWN", "알 수 없는 오류", "unknown REST return code"),
                                   KiwoomApiError))
    text = f"{context}: {message}" if message else context
    return family(code, text, row)
