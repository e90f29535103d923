"""KRX (KOSPI/KOSDAQ) session state by the clock, in KST, and the polling policy that follows from it.

Session times are docs/kiwoom-openapi.md §7.1. Deliberate simplifications (do not "fix" without changing the publisher):

- 15:30–15:40, the gap between the close and the after-hours closing-price session, is reported as
  ``after_hours``, not as a state of its own: no new trades print then, but the day's final ranking can still
  be fetched, and the after-hours poll interval suits it.
- The 08:30–08:40 pre-market closing-price session overlaps the opening auction and is part of ``pre_open``.
- Special days are not in the schedule: the first trading day of the year and the CSAT day open an hour late
  (10:00), and KRX can change hours at short notice. The OCX's own ``장시작시간`` real-time feed (FID 215,
  docs/kiwoom-openapi.md §7.2) is the authority on the day: :class:`SessionModel` takes the latest 장운영구분
  received today over the schedule, and falls back to the schedule when none came today (REST, replay, a
  publisher started after the day's last change, a registration that failed). Before the day's first push the
  schedule decides, so on a delayed day 08:30 until the opening auction starts is still labelled by it.
- NXT (Nextrade) hours are ignored; the publisher only polls KRX.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import Enum
from types import MappingProxyType
from typing import Final, Protocol

import holidays

from kiwoom_cache.clock import KST

log = logging.getLogger(__name__)


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


#: 장운영구분 (FID 215 of real-time type 장시작시간) -> the state it starts. Documented by Kiwoom: 0 before the open
#: (opening auction), 3 open, 2 before the close (closing auction), 4 closing auction over, 8 closed, 9 market closed
#: for the day. koapy's estimates a-d (after-hours closing-price and single-price sessions starting and ending) map
#: onto ``after_hours``/``closed``; the futures codes s/e and anything else are ignored (docs/kiwoom-openapi.md §7.2).
MARKET_OPERATION_STATES: Final[Mapping[str, SessionState]] = MappingProxyType({
    "0": SessionState.pre_open,
    "3": SessionState.regular,
    "2": SessionState.closing_auction,
    "4": SessionState.after_hours,
    "8": SessionState.after_hours,
    "9": SessionState.closed,
    "a": SessionState.after_hours,
    "b": SessionState.after_hours,
    "c": SessionState.after_hours,
    "d": SessionState.closed,
})


@dataclass(frozen=True, slots=True)
class MarketOperation:
    """One 장시작시간 push: 장운영구분 ``value``, received at ``received_at``; FID 20/214 kept as sent, for logs."""

    value: str
    received_at: datetime
    time_text: str = ""
    remaining_text: str = ""

    @property
    def state(self) -> SessionState | None:
        return MARKET_OPERATION_STATES.get(self.value)


class SessionModel:
    """The session now: the latest 장시작시간 push of the day (KST) when there is one, else the KRX schedule.

    A push holds until the next one, with one exception: ``after_hours`` turns ``closed`` at the schedule's
    18:00 (Kiwoom's codes for the end of the after-hours sessions are estimates only). A push of another day
    counts for nothing.
    """

    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar
        self._latest: MarketOperation | None = None

    @property
    def latest(self) -> MarketOperation | None:
        return self._latest

    def observe(self, operation: MarketOperation) -> bool:
        """Take ``operation`` as the day's latest; False (and a log line) for a value that names no state."""
        _to_kst(operation.received_at)  # naive datetimes are refused here, not at the next evaluation
        if operation.state is None:
            log.info("장시작시간 장운영구분 %r (at %s) names no KRX session state; ignored", operation.value,
                     operation.time_text)
            return False
        self._latest = operation
        return True

    def state_at(self, when: datetime) -> SessionState:
        scheduled = session_at(when, self.calendar)
        pushed = self._today(when)
        if pushed is None:
            return scheduled
        state = pushed.state
        assert state is not None  # observe() keeps only values that name a state
        if state is SessionState.after_hours and _to_kst(when).time() >= AFTER_HOURS_END:
            return SessionState.closed
        return state

    def next_check(self, when: datetime) -> datetime:
        """When to evaluate again without a push: the schedule's next transition (pushes re-evaluate themselves)."""
        return next_transition(when, self.calendar)

    def _today(self, when: datetime) -> MarketOperation | None:
        latest = self._latest
        if latest is None:
            return None
        pushed_at, local = _to_kst(latest.received_at), _to_kst(when)
        return latest if pushed_at.date() == local.date() and pushed_at <= local else None
