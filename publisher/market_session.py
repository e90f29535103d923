"""KRX (KOSPI/KOSDAQ) session state by the clock, in KST, and the polling policy that follows from it.

Session times are docs/kiwoom-openapi.md §7.1. Deliberate simplifications (do not "fix" without changing the publisher):

- 15:30–15:40, the gap between the close and the after-hours closing-price session, is reported as
  ``after_hours``, not as a state of its own: no new trades print then, but the day's final ranking can still
  be fetched, and the after-hours poll interval suits it.
- The 08:30–08:40 pre-market closing-price session overlaps the opening auction and is part of ``pre_open``.
- Special days are not modelled: the first trading day of the year and the CSAT day open an hour late
  (10:00), and KRX can change hours at short notice. The OCX's own ``장시작시간`` real-time feed (FID 215,
  docs/kiwoom-openapi.md §7.2) is the authority on the day; this module is the schedule.
- NXT (Nextrade) hours are ignored; the publisher only polls KRX.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from enum import Enum
from typing import Final, Protocol

import holidays

from kiwoom_cache.clock import KST


class SessionState(str, Enum):  # noqa: UP042 - the project's status enums are `str, Enum` (like arq's ``JobStatus``)
    """Where a KRX trading day stands at a given instant."""

    #: 08:30–09:00 opening call auction (orders collected, no trades; includes the pre-market closing-price
    #: session 08:30–08:40).
    pre_open = "pre_open"
    #: 09:00–15:20 continuous trading.
    regular = "regular"
    #: 15:20–15:30 closing call auction.
    closing_auction = "closing_auction"
    #: 15:30–18:00: the close (15:30–15:40), the after-hours closing-price session (15:40–16:00) and the
    #: after-hours single-price session (16:00–18:00, 10-minute batches).
    after_hours = "after_hours"
    #: A trading day outside all of the above (before 08:30 or from 18:00).
    closed = "closed"
    #: Saturday, Sunday, or a KRX closing day from the calendar.
    holiday = "holiday"


#: Start of each state on a trading day; before the first entry it is ``closed``.
PRE_OPEN_START: Final = time(8, 30)
REGULAR_START: Final = time(9, 0)
CLOSING_AUCTION_START: Final = time(15, 20)
AFTER_HOURS_START: Final = time(15, 30)
AFTER_HOURS_END: Final = time(18, 0)

_SCHEDULE: Final[tuple[tuple[time, SessionState], ...]] = (
    (PRE_OPEN_START, SessionState.pre_open),
    (REGULAR_START, SessionState.regular),
    (CLOSING_AUCTION_START, SessionState.closing_auction),
    (AFTER_HOURS_START, SessionState.after_hours),
    (AFTER_HOURS_END, SessionState.closed),
)
#: Every instant of a day at which the state can change (midnight for holiday <-> trading day).
_BOUNDARIES: Final[tuple[time, ...]] = (time(0, 0), *(start for start, _ in _SCHEDULE))
#: How far :func:`next_transition` looks ahead before concluding the calendar is broken.
_MAX_SEARCH_DAYS: Final = 3660

#: States in which the publisher polls at its regular interval.
TRADING_STATES: Final[frozenset[SessionState]] = frozenset(
    {SessionState.pre_open, SessionState.regular, SessionState.closing_auction}
)


class Calendar(Protocol):
    """Anything that knows KRX closing days besides weekends."""

    def is_holiday(self, day: date) -> bool: ...


#: Years :meth:`HolidayCalendar.default` covers around the current one (KST): last year, and two ahead so a
#: publisher left running over New Year keeps its calendar.
DEFAULT_YEARS_BEFORE: Final = 1
DEFAULT_YEARS_AFTER: Final = 2


def krx_closing_days(years: Iterable[int]) -> dict[date, str]:
    """KRX's weekday closing days in ``years``, named, from the ``holidays`` library's XKRX market calendar.

    That calendar is the public holidays of Korea (substitute holidays, elections and temporary holidays the
    library knows of when released) plus KRX's own closures: Labor Day (a public holiday itself from 2026) and
    the year-end closing day (연말휴장일). The year-end closing day is the last weekday of the year that is not a
    holiday (Dec 31, or Dec 30/29 when Dec 31 falls on a weekend, as in 2022 and 2023); KRX closes it for the
    year-end settlement, so it counts as a holiday here on purpose (docs/krx-holidays.md). Closures announced
    after the library's release need a newer ``holidays`` or the config's ``holidays = [...]``.
    """
    calendar = holidays.financial_holidays("XKRX", years=sorted(set(years)))
    return {day: name for day, name in sorted(calendar.items()) if day.weekday() < 5}


class HolidayCalendar:
    """A fixed set of KRX closing days (weekends are handled by :func:`session_at`, not stored here)."""

    def __init__(self, days: Iterable[date] = ()) -> None:
        checked: set[date] = set()
        for day in days:
            # datetime is a date subclass; a datetime here is almost certainly a config mistake.
            if not isinstance(day, date) or isinstance(day, datetime):
                raise TypeError(f"holiday must be a datetime.date, got {day!r}")
            checked.add(day)
        self._days = frozenset(checked)

    @classmethod
    def from_iso(cls, items: Iterable[str | date]) -> HolidayCalendar:
        """Build from ``"YYYY-MM-DD"`` strings (or TOML's native dates), e.g. a ``holidays = [...]`` setting."""
        if isinstance(items, str):
            raise TypeError("from_iso() takes a list of dates, not a single string")
        days: list[date] = []
        for item in items:
            if isinstance(item, date) and not isinstance(item, datetime):
                days.append(item)
                continue
            if not isinstance(item, str):
                raise TypeError(f"holiday must be an ISO date string, got {item!r}")
            text = item.strip()
            try:
                if len(text) != 10:
                    raise ValueError(text)
                days.append(date.fromisoformat(text))
            except ValueError as e:
                raise ValueError(f"holiday {item!r} is not a YYYY-MM-DD date") from e
        return cls(days)

    @classmethod
    def default(cls, today: date | None = None) -> HolidayCalendar:
        """KRX's closing days from last year to two years ahead of ``today`` (default: today in KST)."""
        year = (today or datetime.now(KST).date()).year
        return cls.krx(range(year - DEFAULT_YEARS_BEFORE, year + DEFAULT_YEARS_AFTER + 1))

    @classmethod
    def krx(cls, years: Iterable[int]) -> HolidayCalendar:
        """KRX's closing days in ``years`` (:func:`krx_closing_days`)."""
        return cls(krx_closing_days(years))

    @property
    def days(self) -> frozenset[date]:
        return self._days

    @property
    def years(self) -> frozenset[int]:
        """Years with at least one entry; a publisher can warn when the current year is missing."""
        return frozenset(day.year for day in self._days)

    def is_holiday(self, day: date) -> bool:
        return day in self._days

    def union(self, days: Iterable[date]) -> HolidayCalendar:
        """A new calendar with ``days`` added (e.g. a closure announced after release)."""
        return HolidayCalendar(self._days | HolidayCalendar(days).days)

    def __contains__(self, day: object) -> bool:
        return day in self._days

    def __iter__(self) -> Iterator[date]:
        return iter(sorted(self._days))

    def __len__(self) -> int:
        return len(self._days)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HolidayCalendar):
            return NotImplemented
        return self._days == other._days

    def __hash__(self) -> int:
        return hash(self._days)

    def __repr__(self) -> str:
        years = ", ".join(str(y) for y in sorted(self.years))
        return f"HolidayCalendar({len(self._days)} days; years: {years or '-'})"


def _to_kst(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"naive datetime {when.isoformat()} has no time zone; pass an aware datetime")
    return when.astimezone(KST)


def is_trading_day(day: date, holidays: Calendar) -> bool:
    """A weekday that is not a KRX closing day."""
    return day.weekday() < 5 and not holidays.is_holiday(day)


def session_at(when: datetime, holidays: Calendar) -> SessionState:
    """The KRX session state at ``when`` (any aware datetime; judged in KST).

    :raises ValueError: when ``when`` is naive.
    """
    local = _to_kst(when)
    if not is_trading_day(local.date(), holidays):
        return SessionState.holiday
    clock = local.time()
    state = SessionState.closed
    for start, starting in _SCHEDULE:
        if clock < start:
            break
        state = starting
    return state


def next_transition(when: datetime, holidays: Calendar) -> datetime:
    """The first instant after ``when`` at which :func:`session_at` differs, as a KST datetime.

    Midnight counts when it turns a holiday into a trading day or back (``holiday`` -> ``closed``), so from a
    Friday evening the chain is Sat 00:00 (holiday), Mon 00:00 (closed), Mon 08:30 (pre_open).

    :raises ValueError: when ``when`` is naive, or when nothing changes for ten years (a calendar that closes
        every day).
    """
    local = _to_kst(when)
    current = session_at(local, holidays)
    day = local.date()
    for _ in range(_MAX_SEARCH_DAYS):
        for boundary in _BOUNDARIES:
            candidate = datetime.combine(day, boundary, KST)
            if candidate > local and session_at(candidate, holidays) is not current:
                return candidate
        day += timedelta(days=1)
    raise ValueError(f"no session change within {_MAX_SEARCH_DAYS} days of {local.isoformat()}")


def poll_interval_for(state: SessionState, regular_s: float, off_hours_s: float | None = None) -> float | None:
    """Seconds between polls in ``state``; ``None`` means pause polling.

    ``regular_s`` applies in ``pre_open``, ``regular`` and ``closing_auction``. Outside them (``after_hours``,
    ``closed``, ``holiday``) the publisher polls every ``off_hours_s`` seconds, or pauses when it is ``None``.
    """
    if not (math.isfinite(regular_s) and regular_s > 0):
        raise ValueError(f"regular_s must be a positive number of seconds, got {regular_s!r}")
    if off_hours_s is not None and not (math.isfinite(off_hours_s) and off_hours_s > 0):
        raise ValueError(f"off_hours_s must be a positive number of seconds or None, got {off_hours_s!r}")
    if state in TRADING_STATES:
        return regular_s
    return off_hours_s
