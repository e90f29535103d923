"""장시작시간 (issue 23 #4): the simulated control pushes 장운영구분 as a real-time event, on a normal or a delayed
day; the session model takes it over the KRX schedule on the day and falls back to the schedule without it."""

from __future__ import annotations

from datetime import datetime

import pytest

from kiwoom_cache.clock import KST
from kiwoom_cache.contract import Ranking
from publisher.controls import ocx
from publisher.controls.sim_session import CSAT_DAY, FIRST_DAY_OF_YEAR, NORMAL_DAY
from publisher.controls.simulated import SimulatedControl
from publisher.market_session import HolidayCalendar, MarketOperation, SessionModel, SessionState
from publisher.settings import FeedSettings, load_settings
from tests.publishers import ocx_publisher

#: A Thursday that is a trading day; the tests make it a delayed day (like the CSAT day) through the pushes.
DAY = (2026, 11, 19)


def kst(hour: int, minute: int, second: int = 0, day: tuple[int, int, int] = DAY) -> datetime:
    return datetime(*day, hour, minute, second, tzinfo=KST)


class Clock:
    def __init__(self, when: datetime) -> None:
        self.now = when

    def __call__(self) -> datetime:
        return self.now


# --- the session model -------------------------------------------------------------------------------------


def test_no_push_follows_the_schedule() -> None:
    model = SessionModel(HolidayCalendar())
    assert model.state_at(kst(8, 45)) is SessionState.pre_open
    assert model.state_at(kst(9, 30)) is SessionState.regular


def test_a_push_overrules_the_schedule_for_the_day() -> None:
    model = SessionModel(HolidayCalendar())
    assert model.observe(MarketOperation("0", kst(9, 30), "093000", "003000"))
    assert model.state_at(kst(9, 45)) is SessionState.pre_open, "the schedule says regular; the market says auction"
    assert model.observe(MarketOperation("3", kst(10, 0), "100000"))
    assert model.state_at(kst(15, 25)) is SessionState.regular, "no closing auction before Kiwoom says so"
    assert model.observe(MarketOperation("2", kst(16, 20), "162000"))
    assert model.state_at(kst(16, 25)) is SessionState.closing_auction
    assert model.observe(MarketOperation("4", kst(16, 30), "163000"))
    assert model.state_at(kst(17, 0)) is SessionState.after_hours
    assert model.state_at(kst(18, 0)) is SessionState.closed, "after-hours ends with the schedule's 18:00"
    # The next trading day starts on the schedule again.
    assert model.state_at(kst(9, 30, day=(2026, 11, 20))) is SessionState.regular


def test_unknown_values_and_naive_times_are_refused() -> None:
    model = SessionModel(HolidayCalendar())
    assert not model.observe(MarketOperation("s", kst(8, 45)))  # futures auction: no KRX stock state
    assert model.latest is None and model.state_at(kst(8, 45)) is SessionState.pre_open
    with pytest.raises(ValueError, match="naive"):
        model.observe(MarketOperation("3", datetime(*DAY, 9, 0)))


# --- the simulated control ---------------------------------------------------------------------------------


def test_pushes_need_a_registration_and_read_only_inside_the_event(qtbot) -> None:
    clock = Clock(kst(9, 20))
    control = SimulatedControl(latency_ms=1, login_delay_ms=1, wall_clock=clock, trading_day=CSAT_DAY)
    control.dynamicCall(ocx.COMM_CONNECT)
    qtbot.waitUntil(lambda: control.connected == 1, timeout=2000)
    seen: list[tuple[str, str, str, str, str]] = []

    def on_real(key: str, real_type: str, _data: str) -> None:
        seen.append((real_type, *(control.dynamicCall(ocx.GET_COMM_REAL_DATA, key, fid)
                                   for fid in (ocx.FID_MARKET_OPERATION, ocx.FID_TIME, ocx.FID_REMAINING))))

    control.OnReceiveRealData.connect(on_real)
    assert not control.push_market_operation("0", "093000"), "nobody registered: nothing is pushed"
    assert control.dynamicCall(ocx.SET_REAL_REG, "2100", "", "215;20;214", "0") == 0
    clock.now = kst(9, 31)
    qtbot.waitUntil(lambda: len(seen) == 1, timeout=2000)
    assert seen == [("장시작시간", "0", "093000", "003000")], "the delayed day's auction starts 09:30, 30 min left"
    clock.now = kst(16, 31)  # a jump pushes every change passed over, in order
    qtbot.waitUntil(lambda: len(seen) == 4, timeout=2000)
    assert [s[1:3] for s in seen[1:]] == [("3", "100000"), ("2", "162000"), ("4", "163000")]
    assert control.dynamicCall(ocx.GET_COMM_REAL_DATA, "", ocx.FID_MARKET_OPERATION) == "", "outside the event"
    control.dynamicCall(ocx.DISCONNECT_REAL_DATA, "2100")
    clock.now = kst(18, 1)
    control.push_due_operations()
    assert len(seen) == 4, "a released screen gets no more pushes"


def test_the_trading_days() -> None:
    assert [(c.at.strftime("%H:%M"), c.value) for c in NORMAL_DAY] == [
        ("08:30", "0"), ("09:00", "3"), ("15:20", "2"), ("15:30", "4"), ("18:00", "9")]
    assert [c.at.strftime("%H:%M") for c in CSAT_DAY][:4] == ["09:30", "10:00", "16:20", "16:30"]
    assert [c.at.strftime("%H:%M") for c in FIRST_DAY_OF_YEAR][:4] == ["09:30", "10:00", "15:20", "15:30"]


# --- the publisher -----------------------------------------------------------------------------------------


@pytest.mark.integration
def test_publisher_takes_the_session_from_the_pushes_on_a_delayed_day(qtbot, redis_url: str) -> None:
    """Fails on the old publisher: it followed the schedule alone, regular from 09:00 and paused at 15:30."""
    clock = Clock(kst(9, 20))
    settings = load_settings(redis_url=redis_url, feeds=[FeedSettings(feed="kospi-surge", market="001",
                                                                       interval_s=0.2)],
                             tr_limits=[(20, 1.0)], safety_margin=1.0, heartbeat_s=0.2, status_ttl_s=2.0,
                             respect_market_hours=True, holidays=[])
    control = SimulatedControl(seed=9, latency_ms=2, login_delay_ms=5, limits=((20, 1.0),), wall_clock=clock,
                               trading_day=CSAT_DAY)
    publisher = ocx_publisher(settings, control, clock=clock)
    got: list[Ranking] = []
    publisher.poller.rankingReady.connect(got.append)
    publisher.start()
    try:
        qtbot.waitUntil(lambda: bool(got), timeout=5000)
        assert publisher.session is SessionState.regular, "no push yet: the schedule decides"
        assert any(screen for screen, (_, fids) in control.real_registrations.items()
                   if ocx.FID_MARKET_OPERATION in fids), "the publisher registered 장시작시간 after login"

        clock.now = kst(9, 31)  # the delayed opening auction starts at 09:30
        qtbot.waitUntil(lambda: publisher.session is SessionState.pre_open, timeout=3000)
        count = len(got)
        qtbot.waitUntil(lambda: len(got) > count, timeout=3000)
        assert got[-1].session == "pre_open", "rankings carry the market's own session"

        clock.now = kst(10, 0, 1)
        qtbot.waitUntil(lambda: publisher.session is SessionState.regular, timeout=3000)

        clock.now = kst(16, 21)  # the schedule says after-hours (paused); the market is in its closing auction
        qtbot.waitUntil(lambda: publisher.session is SessionState.closing_auction, timeout=3000)
        assert publisher.state == "running"

        clock.now = kst(16, 30, 5)
        qtbot.waitUntil(lambda: publisher.session is SessionState.after_hours, timeout=3000)
        assert publisher.state == "paused"
    finally:
        publisher.stop()
