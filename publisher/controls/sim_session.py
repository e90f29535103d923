"""The simulated server's 장시작시간 (market operation) pushes: when 장운영구분 (FID 215) changes on a trading day.

A normal KRX day and the delayed ones Kiwoom's real server announces the same way: the college-entrance-exam
(CSAT) day opens at 10:00 and closes at 16:30, the year's first trading day opens at 10:00 and closes as usual
(docs/kiwoom-openapi.md §7). When in the opening auction Kiwoom first sends ``0`` and whether it repeats it
every minute is not documented; the simulation sends one ``0`` when the auction starts, with FID 214 the time
left to the open. ``9`` (장마감) is sent at 18:00, when the after-hours single-price session ends: also a
simulation choice. Simulated behaviour, never a claim about the live server beyond the codes' meanings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Final

#: How long before the open the opening auction starts (08:30 for a 09:00 open).
OPENING_AUCTION: Final = timedelta(minutes=30)
#: How long before the close the closing auction starts (15:20 for a 15:30 close).
CLOSING_AUCTION: Final = timedelta(minutes=10)
_DAY: Final = datetime(2000, 1, 3)  # any date: only the time of day is kept


@dataclass(frozen=True, slots=True)
class OperationChange:
    """One push: at ``at`` (KST), 장운영구분 becomes ``value``; ``remaining`` is FID 214 (HHMMSS)."""

    at: time
    value: str
    remaining: str = "000000"


def _hhmmss(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 3600:02d}{seconds % 3600 // 60:02d}{seconds % 60:02d}"


def trading_day(open_delay_min: int = 0, close_delay_min: int = 0) -> tuple[OperationChange, ...]:
    """The day's pushes with the open (09:00) and the close (15:30) moved later by the given minutes."""
    opens = _DAY.replace(hour=9) + timedelta(minutes=open_delay_min)
    closes = _DAY.replace(hour=15, minute=30) + timedelta(minutes=close_delay_min)
    return (
        OperationChange((opens - OPENING_AUCTION).time(), "0", _hhmmss(OPENING_AUCTION)),
        OperationChange(opens.time(), "3"),
        OperationChange((closes - CLOSING_AUCTION).time(), "2"),
        OperationChange(closes.time(), "4"),
        OperationChange(time(18, 0), "9"),
    )


NORMAL_DAY: Final = trading_day()
#: The CSAT day: the whole day an hour late (KRX's notice, e.g. for 2025-11-13).
CSAT_DAY: Final = trading_day(60, 60)
#: The year's first trading day: the open an hour late, the close as usual.
FIRST_DAY_OF_YEAR: Final = trading_day(60, 0)
