"""Time in Korea Standard Time, the only zone the market and the contract speak."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

#: KST has no daylight saving time, so a fixed offset is exact.
KST = timezone(timedelta(hours=9), "KST")


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000


def iso_kst(epoch_ms: int) -> str:
    """``2026-11-25T09:00:00.123+09:00`` for an epoch-ms instant."""
    return datetime.fromtimestamp(epoch_ms / 1000, KST).isoformat(timespec="milliseconds")


def kst_datetime(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, KST)
