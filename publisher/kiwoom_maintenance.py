"""Kiwoom's daily server maintenance, when its servers drop every session (docs/kiwoom-openapi.md §8).

Kiwoom prints the window at login: Monday to Saturday 05:05–05:10 KST, Sunday 04:00–04:30 KST. A session lost
or a login refused around it is expected, not a fault: the publisher pauses (state ``paused`` with the reason)
and logs in again once the window and a grace period are over, instead of reporting ``degraded`` and retrying
through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Final

from kiwoom_cache.clock import KST

#: weekday (Monday = 0) -> (start, end), KST.
WINDOWS: Final[dict[int, tuple[time, time]]] = {
    **{day: (time(5, 5), time(5, 10)) for day in range(6)},
    6: (time(4, 0), time(4, 30)),
}
#: Clocks differ and the servers go down and come back a little off the minute: a failure this close to the
#: window counts as maintenance, and the publisher waits this long after the end before logging in again.
GRACE: Final = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class Maintenance:
    start: datetime
    end: datetime

    @property
    def resume_at(self) -> datetime:
        """When the publisher logs in again."""
        return self.end + GRACE

    def describe(self) -> str:
        return (f"Kiwoom server maintenance {self.start:%a %H:%M}–{self.end:%H:%M} KST; "
                f"logging in again at {self.resume_at:%H:%M}")


def maintenance_at(when: datetime) -> Maintenance | None:
    """The maintenance window ``when`` (an aware datetime) falls in, grace included, or None."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"naive datetime {when.isoformat()} has no time zone; pass an aware datetime")
    local = when.astimezone(KST)
    for day in (local.date(), local.date() - timedelta(days=1)):  # a window near midnight would span two days
        start_t, end_t = WINDOWS[day.weekday()]
        start, end = datetime.combine(day, start_t, KST), datetime.combine(day, end_t, KST)
        if start - GRACE <= local < end + GRACE:
            return Maintenance(start, end)
    return None
