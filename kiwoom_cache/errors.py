"""Exception roots shared by the publisher and the API."""

from __future__ import annotations


class KiwoomCacheError(Exception):
    """Root of every error kiwoom-cache raises on purpose."""


class ContractError(KiwoomCacheError, ValueError):
    """A value in Redis (or about to go there) does not follow the documented contract."""

    def __init__(self, reason: str, *, key: str | None = None) -> None:
        self.reason = reason
        self.key = key
        super().__init__(f"{key}: {reason}" if key else reason)
