"""KRX session state by the clock, the next-transition chain, the holiday calendar and the poll policy."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from kiwoom_cache.clock import KST
from publisher.market_session import (
    HolidayCalendar,
    SessionState,
    is_trading_day,
    krx_closing_days,
    next_transition,
    poll_interval_for,
    session_at,
)

S = SessionState
CAL = HolidayCalendar.krx(range(2025, 2028))  # fixed years, so the tests mean the same whatever today is

# KRX's weekday closing days, kept here as the reference the `holidays` library must match: KRX's yearly
# notices ("증권·파생상품시장 휴장일") and the public holiday law (관공서의 공휴일에 관한 규정 / 공휴일에 관한 법률),
# lunar dates as published by KASI. Weekend holidays are left out (weekends are closed anyway).
KNOWN_KRX_CLOSING_DAYS = {
    # 2025
    "2025-01-01": "New Year's Day",
    "2025-01-27": "temporary public holiday (designated Jan 2025)",
    "2025-01-28": "Seollal holiday",
    "2025-01-29": "Seollal",
    "2025-01-30": "Seollal holiday",
    "2025-03-03": "substitute for Independence Movement Day (Sat Mar 1)",
    "2025-05-01": "Labor Day (a KRX closure; not yet a public holiday)",
    "2025-05-05": "Children's Day and Buddha's Birthday",
    "2025-05-06": "substitute holiday (Children's Day and Buddha's Birthday on one day)",
    "2025-06-03": "presidential election",
    "2025-06-06": "Memorial Day",
    "2025-08-15": "Liberation Day",
    "2025-10-03": "National Foundation Day",
    "2025-10-06": "Chuseok",
    "2025-10-07": "Chuseok holiday",
    "2025-10-08": "substitute for Chuseok (Sun Oct 5)",
    "2025-10-09": "Hangul Day",
    "2025-12-25": "Christmas Day",
    "2025-12-31": "year-end closing day",
    # 2026 (Memorial Day Jun 6 and Chuseok holiday Sep 26 fall on Saturdays, without substitutes)
    "2026-01-01": "New Year's Day",
    "2026-02-16": "Seollal holiday",
    "2026-02-17": "Seollal",
    "2026-02-18": "Seollal holiday",
    "2026-03-02": "substitute for Independence Movement Day (Sun Mar 1)",
    "2026-05-01": "Labor Day (a public holiday from 2026)",
    "2026-05-05": "Children's Day",
    "2026-05-25": "substitute for Buddha's Birthday (Sun May 24)",
    "2026-06-03": "local elections",
    "2026-07-17": "Constitution Day (a public holiday again from 2026)",
    "2026-08-17": "substitute for Liberation Day (Sat Aug 15)",
    "2026-09-24": "Chuseok holiday",
    "2026-09-25": "Chuseok",
    "2026-10-05": "substitute for National Foundation Day (Sat Oct 3)",
    "2026-10-09": "Hangul Day",
    "2026-12-25": "Christmas Day",
    "2026-12-31": "year-end closing day",
    # 2027 (Memorial Day Jun 6 is a Sunday without a substitute; no election is scheduled)
    "2027-01-01": "New Year's Day",
    "2027-02-08": "Seollal holiday",
    "2027-02-09": "substitute for Seollal (Sun Feb 7)",
    "2027-03-01": "Independence Movement Day",
    "2027-05-03": "substitute for Labor Day (Sat May 1)",
    "2027-05-05": "Children's Day",
    "2027-05-13": "Buddha's Birthday",
    "2027-07-19": "substitute for Constitution Day (Sat Jul 17)",
    "2027-08-16": "substitute for Liberation Day (Sun Aug 15)",
    "2027-09-14": "Chuseok holiday",
    "2027-09-15": "Chuseok",
    "2027-09-16": "Chuseok holiday",
    "2027-10-04": "substitute for National Foundation Day (Sun Oct 3)",
    "2027-10-11": "substitute for Hangul Day (Sat Oct 9)",
    "2027-12-27": "substitute for Christmas Day (Sat Dec 25)",
    "2027-12-31": "year-end closing day",
}
WEDNESDAY = date(2026, 11, 25)


def kst(day: date, hh: int, mm: int = 0, ss: int = 0, us: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, us, tzinfo=KST)


@pytest.mark.parametrize(
    ("hms", "state"),
    [
        ((0, 0, 0), S.closed),
        ((8, 29, 59), S.closed),
        ((8, 30, 0), S.pre_open),
        ((8, 59, 59), S.pre_open),
        ((9, 0, 0), S.regular),
        ((12, 0, 0), S.regular),
        ((15, 19, 59), S.regular),
        ((15, 20, 0), S.closing_auction),
        ((15, 29, 59), S.closing_auction),
        ((15, 30, 0), S.after_hours),
        ((15, 35, 0), S.after_hours),  # the close, before the after-hours closing-price session
        ((15, 40, 0), S.after_hours),
        ((17, 59, 59), S.after_hours),
        ((18, 0, 0), S.closed),
        ((23, 59, 59), S.closed),
    ],
)
def test_weekday_boundaries(hms, state):
    assert session_at(kst(WEDNESDAY, *hms), CAL) is state


def test_sub_second_before_open_is_still_pre_open():
    assert session_at(kst(WEDNESDAY, 8, 59, 59, 999_999), CAL) is S.pre_open


def test_weekend_is_holiday():
    saturday = date(2026, 11, 28)
    assert saturday.weekday() == 5
    assert session_at(kst(saturday, 10), CAL) is S.holiday
    assert session_at(kst(saturday + timedelta(days=1), 10), CAL) is S.holiday


def test_seollal_2026_is_holiday():
    for day in (date(2026, 2, 16), date(2026, 2, 17), date(2026, 2, 18)):
        assert session_at(kst(day, 10), CAL) is S.holiday
    assert session_at(kst(date(2026, 2, 19), 10), CAL) is S.regular


def test_election_and_year_end_are_holidays():
    assert session_at(kst(date(2026, 6, 3), 10), CAL) is S.holiday
    assert session_at(kst(date(2026, 12, 31), 10), CAL) is S.holiday
    assert session_at(kst(date(2026, 12, 30), 10), CAL) is S.regular


def test_aware_utc_is_converted_to_kst():
    # 00:30 UTC is 09:30 KST on the same day.
    assert session_at(datetime(2026, 11, 25, 0, 30, tzinfo=UTC), CAL) is S.regular
    # 23:45 UTC on Tuesday is 08:45 KST on Wednesday.
    assert session_at(datetime(2026, 11, 24, 23, 45, tzinfo=UTC), CAL) is S.pre_open
    # 16:00 UTC on Friday is 01:00 KST on Saturday.
    assert session_at(datetime(2026, 11, 27, 16, 0, tzinfo=UTC), CAL) is S.holiday


def test_other_offsets_are_converted():
    new_york = timezone(timedelta(hours=-5))
    # 19:10 on Tuesday at UTC-5 is 09:10 KST on Wednesday.
    assert session_at(datetime(2026, 11, 24, 19, 10, tzinfo=new_york), CAL) is S.regular


def test_naive_datetime_rejected():
    with pytest.raises(ValueError, match="naive"):
        session_at(datetime(2026, 11, 25, 10, 0), CAL)
    with pytest.raises(ValueError, match="naive"):
        next_transition(datetime(2026, 11, 25, 10, 0), CAL)


def chain(start: datetime, until: datetime) -> list[tuple[datetime, SessionState]]:
    out = []
    at = start
    while True:
        at = next_transition(at, CAL)
        if at > until:
            return out
        out.append((at, session_at(at, CAL)))


def test_next_transition_chains_through_a_day():
    steps = chain(kst(WEDNESDAY, 0, 0), kst(WEDNESDAY, 23, 59))
    assert steps == [
        (kst(WEDNESDAY, 8, 30), S.pre_open),
        (kst(WEDNESDAY, 9, 0), S.regular),
        (kst(WEDNESDAY, 15, 20), S.closing_auction),
        (kst(WEDNESDAY, 15, 30), S.after_hours),
        (kst(WEDNESDAY, 18, 0), S.closed),
    ]


def test_next_transition_from_exact_boundary_moves_on():
    assert next_transition(kst(WEDNESDAY, 9, 0), CAL) == kst(WEDNESDAY, 15, 20)
    assert next_transition(kst(WEDNESDAY, 8, 59, 59, 999_999), CAL) == kst(WEDNESDAY, 9, 0)


def test_next_transition_over_a_weekend():
    friday = date(2026, 11, 27)
    monday = date(2026, 11, 30)
    steps = chain(kst(friday, 17, 0), kst(monday, 9, 0))
    assert steps == [
        (kst(friday, 18, 0), S.closed),
        (kst(date(2026, 11, 28), 0, 0), S.holiday),
        (kst(monday, 0, 0), S.closed),
        (kst(monday, 8, 30), S.pre_open),
        (kst(monday, 9, 0), S.regular),
    ]


def test_next_transition_over_seollal():
    # Fri Feb 13 evening -> weekend -> Seollal Mon-Wed -> Thu Feb 19 trading.
    at = next_transition(kst(date(2026, 2, 13), 18, 30), CAL)
    assert (at, session_at(at, CAL)) == (kst(date(2026, 2, 14), 0, 0), S.holiday)
    at = next_transition(at, CAL)
    assert (at, session_at(at, CAL)) == (kst(date(2026, 2, 19), 0, 0), S.closed)


def test_next_transition_is_kst_and_accepts_utc():
    at = next_transition(datetime(2026, 11, 25, 0, 30, tzinfo=UTC), CAL)  # 09:30 KST
    assert at == kst(WEDNESDAY, 15, 20)
    assert at.utcoffset() == timedelta(hours=9)


def test_next_transition_gives_up_on_an_always_closed_calendar():
    start = date(2026, 1, 1)
    every_day = HolidayCalendar(start + timedelta(days=i) for i in range(5000))
    with pytest.raises(ValueError, match="no session change"):
        next_transition(kst(start, 10), every_day)


# --- calendar ---------------------------------------------------------------------------------------------------


def test_library_matches_the_known_closing_days():
    library = {day.isoformat() for day in krx_closing_days(range(2025, 2028))}
    assert library == set(KNOWN_KRX_CLOSING_DAYS)
    assert CAL.years == {2025, 2026, 2027}
    for day in CAL:
        assert day.weekday() < 5, f"{day} is a weekend day; the calendar holds weekday closures only"


@pytest.mark.parametrize(
    ("year", "closing"),
    [(2025, "2025-12-31"), (2022, "2022-12-30"), (2023, "2023-12-29"), (2028, "2028-12-29")],
)
def test_year_end_closing_day_is_the_last_weekday(year, closing):
    # KRX closes the last weekday of the year for the year-end settlement; when Dec 31 is a weekend that is the
    # Friday before (Dec 30, 2022 and Dec 29, 2023 were KRX closing days). See docs/krx-holidays.md.
    closures = krx_closing_days([year])
    last = max(day for day in closures if day.month == 12)
    assert last.isoformat() == closing
    assert not is_trading_day(last, HolidayCalendar.krx([year]))
    assert is_trading_day(last - timedelta(days=1 if last.weekday() else 3), HolidayCalendar.krx([year]))


def test_default_covers_last_year_to_two_years_ahead():
    assert HolidayCalendar.default(date(2031, 3, 4)).years == {2030, 2031, 2032, 2033}
    today = datetime.now(KST).date()
    assert today.year in HolidayCalendar.default().years
    assert HolidayCalendar.default(date(2026, 11, 25)) == HolidayCalendar.krx(range(2025, 2029))


@pytest.mark.parametrize(
    "iso",
    [
        "2025-01-28",
        "2025-01-29",
        "2025-01-30",
        "2025-05-01",
        "2025-05-06",
        "2025-06-03",
        "2025-10-08",
        "2026-01-01",
        "2026-02-17",
        "2026-03-02",
        "2026-05-01",
        "2026-05-25",
        "2026-06-03",
        "2026-08-17",
        "2026-09-24",
        "2026-09-25",
        "2026-10-05",
        "2026-10-09",
        "2026-12-25",
        "2026-12-31",
        "2027-02-08",
        "2027-02-09",
        "2027-05-13",
        "2027-09-15",
        "2027-12-31",
    ],
)
def test_known_closing_days(iso):
    assert date.fromisoformat(iso) in CAL


@pytest.mark.parametrize("iso", ["2025-10-10", "2026-02-19", "2026-11-25", "2027-01-04"])
def test_known_trading_days(iso):
    assert is_trading_day(date.fromisoformat(iso), CAL)


def test_from_iso_and_union():
    cal = HolidayCalendar.from_iso([" 2026-11-25 ", date(2026, 11, 26)])
    assert cal.days == {date(2026, 11, 25), date(2026, 11, 26)}
    assert session_at(kst(WEDNESDAY, 10), cal) is S.holiday
    bigger = CAL.union([date(2026, 11, 25)])
    assert date(2026, 11, 25) in bigger
    assert date(2026, 11, 25) not in CAL
    assert len(bigger) == len(CAL) + 1


@pytest.mark.parametrize("bad", ["2026-13-01", "2026/02/17", "20260217", "tomorrow", ""])
def test_from_iso_rejects_bad_strings(bad):
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        HolidayCalendar.from_iso([bad])


def test_from_iso_rejects_a_bare_string_and_datetimes():
    with pytest.raises(TypeError):
        HolidayCalendar.from_iso("2026-02-17")
    with pytest.raises(TypeError):
        HolidayCalendar.from_iso([datetime(2026, 2, 17, tzinfo=KST)])
    with pytest.raises(TypeError):
        HolidayCalendar([datetime(2026, 2, 17, tzinfo=KST)])


def test_empty_calendar_only_closes_weekends():
    empty = HolidayCalendar()
    assert session_at(kst(date(2026, 2, 17), 10), empty) is S.regular
    assert repr(empty) == "HolidayCalendar(0 days; years: -)"


# --- poll policy ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [S.pre_open, S.regular, S.closing_auction])
def test_poll_regular_while_trading(state):
    assert poll_interval_for(state, 4.0, None) == 4.0
    assert poll_interval_for(state, 4.0, 60.0) == 4.0


@pytest.mark.parametrize("state", [S.after_hours, S.closed, S.holiday])
def test_poll_off_hours_or_pause(state):
    assert poll_interval_for(state, 4.0, None) is None
    assert poll_interval_for(state, 4.0, 60.0) == 60.0


@pytest.mark.parametrize(("regular_s", "off_hours_s"), [(0, None), (-1, None), (float("nan"), None), (4, 0)])
def test_poll_rejects_bad_intervals(regular_s, off_hours_s):
    with pytest.raises(ValueError):
        poll_interval_for(S.regular, regular_s, off_hours_s)


def test_state_is_a_string():
    assert S.regular == "regular"
    assert S("after_hours") is S.after_hours
