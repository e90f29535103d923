"""Kiwoom's daily maintenance windows (KST), with the grace around them, from any time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kiwoom_cache.clock import KST
from publisher.kiwoom_maintenance import GRACE, maintenance_at


def kst(day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, second, tzinfo=KST)  # 2026-12-07 is a Monday


@pytest.mark.parametrize(("when", "window"), [
    (kst(7, 5, 5), ("05:05", "05:10")),  # Monday
    (kst(12, 5, 9, 59), ("05:05", "05:10")),  # Saturday
    (kst(6, 4, 0), ("04:00", "04:30")),  # Sunday
    (kst(6, 4, 29), ("04:00", "04:30")),
    (kst(7, 5, 3, 30), ("05:05", "05:10")),  # inside the grace before
    (kst(7, 5, 11, 59), ("05:05", "05:10")),  # and after
])
def test_inside(when: datetime, window: tuple[str, str]) -> None:
    found = maintenance_at(when)
    assert found is not None and (f"{found.start:%H:%M}", f"{found.end:%H:%M}") == window
    assert found.resume_at == found.end + GRACE and found.start.date() == when.date()


@pytest.mark.parametrize("when", [kst(7, 5, 2, 59), kst(7, 5, 12), kst(6, 5, 6), kst(7, 4, 10), kst(7, 12, 0),
                                  kst(6, 3, 57, 59), kst(6, 4, 32)])
def test_outside(when: datetime) -> None:
    assert maintenance_at(when) is None


def test_judged_in_kst_whatever_the_zone() -> None:
    utc = kst(7, 5, 7).astimezone(UTC)
    assert utc.hour == 20 and maintenance_at(utc) == maintenance_at(kst(7, 5, 7))


def test_describe_says_when_it_logs_in_again() -> None:
    found = maintenance_at(kst(6, 4, 10))
    assert found is not None
    assert found.describe() == "Kiwoom server maintenance Sun 04:00–04:30 KST; logging in again at 04:32"


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        maintenance_at(datetime(2026, 12, 7, 5, 6))
    assert maintenance_at(kst(7, 5, 6) + timedelta(days=7)) is not None
