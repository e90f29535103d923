"""Publisher behaviour the real Kiwoom demands: login errors, refusals, reconnects, screens, market hours."""

from __future__ import annotations

import os
from collections import deque
from datetime import datetime

import pytest
import redis

from kiwoom_cache import contract as c
from kiwoom_cache.clock import KST
from kiwoom_cache.contract import Ranking
from publisher.controls import ocx
from publisher.controls.simulated import SimulatedControl
from publisher.exit_codes import ExitCode
from publisher.settings import FeedSettings, load_settings
from publisher.sources.ocx import OcxSource
from tests.publishers import ocx_publisher

pytestmark = pytest.mark.integration

FEEDS = [FeedSettings(feed="kospi-surge", market="001", interval_s=0.2),
         FeedSettings(feed="kosdaq-surge", market="101", interval_s=0.2),
         FeedSettings(feed="all-surge", market="000", interval_s=0.2)]


class Clock:
    def __init__(self, when: datetime) -> None:
        self.now = when
        self.reads = 0

    def __call__(self) -> datetime:
        self.reads += 1
        return self.now


def make(redis_url: str, *, clock: Clock | None = None, feeds=FEEDS[:2], sim: dict | None = None, **over):
    params = dict(redis_url=redis_url, feeds=feeds, tr_limits=[(20, 1.0)], safety_margin=1.0, heartbeat_s=0.2,
                  status_ttl_s=2.0, login_retry_s=0.2, connection_check_s=0.1, refusal_backoff_s=0.2)
    settings = load_settings(**{**params, **over})
    control = SimulatedControl(**{"seed": 9, "latency_ms": 2, "login_delay_ms": 5, "limits": ((20, 1.0),),
                                  **(sim or {})})
    kw = {"clock": clock} if clock else {}
    publisher = ocx_publisher(settings, control, **kw)
    got: list[Ranking] = []
    publisher.poller.rankingReady.connect(got.append)
    return publisher, control, got


def test_account_mode_from_server_gubun(qtbot) -> None:
    for gubun, mode in (("1", "mock"), ("0", "real"), ("", "real")):
        source = OcxSource(SimulatedControl(server_gubun=gubun))
        assert source.account_mode == mode


@pytest.mark.parametrize(("code", "name"), [(-100, "OP_ERR_LOGIN"), (-101, "OP_ERR_CONNECT")])
def test_login_error_is_named_reported_and_retried(qtbot, redis_url: str, code: int, name: str) -> None:
    publisher, control, got = make(redis_url)
    control.faults.login_result = code
    errors: list[str] = []
    publisher.errorOccurred.connect(errors.append)
    publisher.start()
    qtbot.waitUntil(lambda: bool(errors), timeout=3000)
    assert name in errors[0] and "retrying" in errors[0]
    assert publisher.state == "degraded"
    status = publisher.status()
    assert status.state == "degraded" and name in (status.message or "")
    # The next CommConnect succeeds (faults are one-shot): polling starts.
    qtbot.waitUntil(lambda: len(got) >= 2, timeout=5000)
    assert publisher.state == "running"
    publisher.stop()


def test_refusal_then_recovery_keeps_every_feed(qtbot, redis_url: str) -> None:
    publisher, control, got = make(redis_url)
    control.faults.refuse_codes = deque([-200, -200, -200])
    publisher.start()
    qtbot.waitUntil(lambda: {r.feed for r in got[-4:]} == {"kospi-surge", "kosdaq-surge"}, timeout=8000)
    publisher.stop()
    refusals = sum(s.refusals for s in publisher.poller.feeds.values())
    assert refusals == 3
    assert any("OP_ERR_SISE_OVERFLOW" in text for _, text in publisher.recent_errors)


def test_disconnect_is_detected_reported_and_relogged(qtbot, redis_url: str, redis_client: redis.Redis) -> None:
    publisher, control, got = make(redis_url)
    publisher.start()
    qtbot.waitUntil(lambda: len(got) >= 2, timeout=5000)
    logins = sum(1 for call, _ in control.calls if call == ocx.COMM_CONNECT)
    states: list[str] = []
    publisher.stateChanged.connect(states.append)
    control.drop_connection()  # GetConnectState() -> 0; the watchdog notices
    qtbot.waitUntil(lambda: "degraded" in states, timeout=3000)
    qtbot.waitUntil(lambda: publisher.state == "running", timeout=5000)
    assert sum(1 for call, _ in control.calls if call == ocx.COMM_CONNECT) == logins + 1
    before = len(got)
    qtbot.waitUntil(lambda: len(got) >= before + 2, timeout=5000)
    assert any("connection to Kiwoom lost" in text for _, text in publisher.recent_errors)
    publisher.stop()


def test_socket_closed_from_commrqdata_triggers_relogin(qtbot, redis_url: str) -> None:
    publisher, control, got = make(redis_url)
    publisher.start()
    qtbot.waitUntil(lambda: len(got) >= 1, timeout=5000)
    control.faults.refuse_codes = deque([-106])
    qtbot.waitUntil(lambda: any("OP_ERR_SOCKET_CLOSED" in t for _, t in publisher.recent_errors), timeout=3000)
    before = len(got)
    qtbot.waitUntil(lambda: len(got) >= before + 2 and publisher.state == "running", timeout=5000)
    publisher.stop()


def test_screens_are_reused_over_a_thousand_requests(qtbot, redis_url: str) -> None:
    publisher, control, got = make(redis_url, feeds=FEEDS, sim={"limits": ((100_000, 1.0),)},
                                   tr_limits=[(100_000, 1.0)])
    # Re-mark each feed due the moment its answer arrives: back-to-back requests, far faster than Kiwoom allows.
    publisher.poller.rankingReady.connect(lambda r: publisher.poller._mark_due(r.feed))
    publisher.start()
    qtbot.waitUntil(lambda: control.requests >= 1000, timeout=60000)
    publisher.stop()
    # 2000 holds the 장시작시간 registration (made at login); the TRs use one screen per feed.
    assert control.screens_seen == {"2001", "2002", "2003"}, "one screen per feed, never a new one per request"
    assert publisher.source.screens.in_use == 4 <= 200
    released = [args[0] for call, args in control.calls if call == ocx.DISCONNECT_REAL_DATA]
    assert len(released) >= len(got) - 1 and set(released) <= control.screens_seen


def test_market_session_pauses_and_resumes(qtbot, redis_url: str, redis_client: redis.Redis) -> None:
    clock = Clock(datetime(2026, 11, 25, 8, 29, 0, tzinfo=KST))  # a Wednesday, before the opening auction
    publisher, control, got = make(redis_url, clock=clock, respect_market_hours=True)
    publisher.start()
    qtbot.waitUntil(lambda: publisher.state == "paused", timeout=3000)
    assert publisher.session.value == "closed" and control.requests == 0
    assert "paused until 2026-11-25T08:30:00+09:00" in (publisher.status().message or "")
    def heartbeat() -> c.PublisherStatus | None:
        raw = redis_client.get(c.STATUS_KEY)
        return c.PublisherStatus.decode(raw) if raw else None

    qtbot.waitUntil(lambda: (s := heartbeat()) is not None and s.state == "paused", timeout=3000)
    status = heartbeat()
    assert status is not None and status.session == "closed"
    assert c.publisher_liveness(status, status.heartbeat_at_ms) == "alive", "a quiet market is not a dead publisher"

    clock.now = datetime(2026, 11, 25, 9, 0, 0, tzinfo=KST)
    publisher.update_session()
    qtbot.waitUntil(lambda: len(got) >= 2, timeout=5000)
    assert publisher.state == "running" and got[-1].session == "regular"

    clock.now = datetime(2026, 11, 25, 15, 20, 0, tzinfo=KST)
    publisher.update_session()
    assert publisher.state == "running" and publisher.session.value == "closing_auction"

    clock.now = datetime(2026, 11, 25, 15, 30, 0, tzinfo=KST)
    publisher.update_session()
    assert publisher.state == "paused" and publisher.session.value == "after_hours"
    stopped_at = control.requests
    poller = publisher.poller
    for feed in poller.feeds:  # every feed falls due: a paused poller sends nothing and schedules nothing
        poller._mark_due(feed)
    assert control.requests == stopped_at, "no TR while paused"
    timers = [*poller._feed_timers.values(), poller._dispatch_timer]
    assert not any(timer.is_active() for timer in timers), "no poll scheduled while paused"

    clock.now = datetime(2026, 11, 28, 10, 0, 0, tzinfo=KST)  # Saturday
    publisher.update_session()
    assert publisher.session.value == "holiday" and publisher.state == "paused"
    assert "paused until 2026-11-30T00:00:00+09:00" in (publisher.status().message or "")
    publisher.stop()


def test_off_hours_interval_slows_instead_of_pausing(qtbot, redis_url: str) -> None:
    clock = Clock(datetime(2026, 11, 25, 16, 0, 0, tzinfo=KST))
    publisher, _control, got = make(redis_url, clock=clock, respect_market_hours=True, off_hours_interval_s=1.0)
    publisher.start()
    qtbot.waitUntil(lambda: len(got) >= 1, timeout=5000)
    assert publisher.state == "running" and "polling every 1s" in (publisher.status().message or "")
    assert got[0].session == "after_hours"
    publisher.stop()


def test_sim_ignores_market_hours_by_default(qtbot, redis_url: str) -> None:
    clock = Clock(datetime(2026, 11, 28, 3, 0, 0, tzinfo=KST))  # Saturday night
    publisher, _control, got = make(redis_url, clock=clock)
    publisher.start()
    qtbot.waitUntil(lambda: len(got) >= 1, timeout=5000)
    assert publisher.state == "running" and got[0].session == "holiday", "the session is still stamped"
    publisher.stop()


def test_kiwoom_messages_are_kept_per_feed(qtbot, redis_url: str) -> None:
    publisher, _control, got = make(redis_url)
    publisher.start()
    qtbot.waitUntil(lambda: len(got) >= 2, timeout=5000)
    qtbot.waitUntil(lambda: "last_message" in publisher.status().feeds.get("kospi-surge", {}), timeout=3000)
    assert "조회가 완료되었습니다" in publisher.status().feeds["kospi-surge"]["last_message"]
    publisher.stop()


def test_on_event_connect_error_while_running_stops_polling(qtbot, redis_url: str) -> None:
    publisher, control, got = make(redis_url)
    publisher.start()
    qtbot.waitUntil(lambda: len(got) >= 1, timeout=5000)
    control.connected = 0
    control.faults.login_result = -101  # the re-login fails once too
    control.OnEventConnect.emit(-106)  # the OCX reports the session closed
    assert publisher.state == "degraded" and not publisher.poller.running
    assert "OP_ERR_SOCKET_CLOSED" in publisher.recent_errors[-1][1]
    qtbot.waitUntil(lambda: publisher.state == "running", timeout=5000)
    before = len(got)
    qtbot.waitUntil(lambda: len(got) > before, timeout=5000)
    publisher.stop()


def test_missing_holiday_year_is_warned(qtbot, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(datetime(2031, 3, 4, 10, 0, tzinfo=KST))
    make(redis_url, clock=clock, respect_market_hours=True)  # the library's calendar covers the clock's year
    assert "no dates" not in caplog.text
    make(redis_url, clock=clock, respect_market_hours=True, holidays=["2030-01-01"])
    assert "no dates for 2031" in caplog.text
    caplog.clear()
    make(redis_url, clock=clock, respect_market_hours=True, holidays=["2031-01-01"])
    assert "no dates" not in caplog.text


def logins(control: SimulatedControl) -> int:
    return sum(1 for call, _ in control.calls if call == ocx.COMM_CONNECT)


def test_version_update_exits_asking_for_a_restart(qtbot, redis_url: str, redis_client: redis.Redis) -> None:
    """-102 (버전처리): every program holding the control must exit, so retrying in-process is pointless."""
    publisher, control, got = make(redis_url)
    control.require_version_update()
    exits: list[ExitCode] = []
    publisher.exitRequested.connect(exits.append)
    publisher.start()
    qtbot.waitUntil(lambda: bool(exits), timeout=3000)
    assert exits == [ExitCode.RESTART] and publisher.exit_code is ExitCode.RESTART
    assert publisher.state == "stopping" and "OP_ERR_VERSION" in (publisher.status().message or "")
    assert logins(control) == 1 and not publisher.poller.running and not got
    publisher.stop()
    final = c.PublisherStatus.decode(redis_client.hget(c.PUBLISHERS_KEY, publisher.id))
    assert final.state == "stopped" and "버전처리" in (final.message or "")


def test_logins_refused_in_a_row_exit_asking_for_a_restart(qtbot, redis_url: str) -> None:
    """-100 (a wrong or stale 자동로그인 password) is retried login_max_failures times, not for ever."""
    publisher, control, got = make(redis_url, login_max_failures=3)
    control.faults.login_result = -100
    control.OnEventConnect.connect(lambda code: setattr(control.faults, "login_result", -100))
    publisher.start()
    qtbot.waitUntil(lambda: publisher.exit_code is not None, timeout=5000)
    assert publisher.exit_code is ExitCode.RESTART and logins(control) == 3 and not got
    assert "refused 3 times in a row" in (publisher.status().message or "")
    publisher.stop()


def test_one_refused_login_then_success_resets_the_count(qtbot, redis_url: str) -> None:
    publisher, control, got = make(redis_url, login_max_failures=2)
    control.faults.login_result = -100
    publisher.start()
    qtbot.waitUntil(lambda: len(got) >= 1, timeout=5000)
    control.faults.login_result = -100
    control.drop_connection()
    qtbot.waitUntil(lambda: logins(control) == 4 and publisher.state == "running", timeout=5000)
    assert publisher.exit_code is None
    publisher.stop()


def test_maintenance_window_pauses_and_logs_in_after_it(qtbot, redis_url: str, redis_client: redis.Redis) -> None:
    """An overnight publisher at Kiwoom's daily maintenance: paused with the reason, never degraded, no login
    attempts inside the window, polling again after it."""
    clock = Clock(datetime(2026, 12, 7, 4, 50, tzinfo=KST))  # a Monday: maintenance 05:05-05:10
    publisher, control, got = make(redis_url, clock=clock, respect_maintenance=True)
    states: list[str] = []
    publisher.stateChanged.connect(states.append)
    publisher.start()
    qtbot.waitUntil(lambda: len(got) >= 2, timeout=5000)
    before = logins(control)
    clock.now = datetime(2026, 12, 7, 5, 5, 20, tzinfo=KST)
    control.start_maintenance()  # the server drops the session; logins would fail with -101
    qtbot.waitUntil(lambda: publisher.state == "paused", timeout=3000)
    status = publisher.status()
    assert "maintenance" in (status.message or "") and "05:12" in (status.message or "")
    assert c.publisher_liveness(status, status.heartbeat_at_ms) == "alive"
    reads = clock.reads
    qtbot.waitUntil(lambda: clock.reads >= reads + 3, timeout=3000)  # the login timer looked at the clock again
    assert logins(control) == before and publisher.state == "paused"
    clock.now = datetime(2026, 12, 7, 5, 12, 5, tzinfo=KST)
    control.end_maintenance()
    qtbot.waitUntil(lambda: publisher.state == "running", timeout=5000)
    count = len(got)
    qtbot.waitUntil(lambda: len(got) >= count + 2, timeout=5000)
    assert "degraded" not in states and logins(control) == before + 1
    publisher.stop()


def test_started_inside_the_maintenance_window_waits_for_its_end(qtbot, redis_url: str) -> None:
    clock = Clock(datetime(2026, 12, 6, 4, 10, tzinfo=KST))  # a Sunday: maintenance 04:00-04:30
    publisher, control, got = make(redis_url, clock=clock, respect_maintenance=True)
    publisher.start()
    assert publisher.state == "paused" and "04:00–04:30" in (publisher.status().message or "")
    reads = clock.reads
    qtbot.waitUntil(lambda: clock.reads >= reads + 3, timeout=3000)
    assert logins(control) == 0
    clock.now = datetime(2026, 12, 6, 4, 33, tzinfo=KST)
    qtbot.waitUntil(lambda: len(got) >= 1, timeout=5000)
    assert logins(control) == 1
    publisher.stop()

def test_headless_kiwoom_keeps_the_native_qt_platform(qtbot, monkeypatch: pytest.MonkeyPatch) -> None:
    """--headless --source kiwoom must not force QT_QPA_PLATFORM=offscreen: the ActiveX control needs a window."""
    from publisher.event_loops import make_qt_loop

    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    make_qt_loop(load_settings(source="kiwoom", feeds=FEEDS[:1]), headless=True)
    assert "QT_QPA_PLATFORM" not in os.environ
    make_qt_loop(load_settings(source="sim", feeds=FEEDS[:1]), headless=True)
    assert os.environ.get("QT_QPA_PLATFORM") == "offscreen"


def test_console_close_releases_the_leases_like_sigterm(qtbot, redis_url: str, redis_client: redis.Redis) -> None:
    """Issue 23 #6: Windows console close/log-off/shutdown take the SIGTERM path (leases released at once).
    The handler's callback runs here on its own thread, as Windows calls it; the ctypes SetConsoleCtrlHandler
    registration itself runs only on Windows."""
    import threading

    publisher, _control, got = make(redis_url)
    publisher.start()
    qtbot.waitUntil(lambda: len(got) >= 2 and all(redis_client.exists(c.lease_key(f.feed)) for f in FEEDS[:2]),
                    timeout=5000)
    loop = publisher.loop
    answered: list[bool] = []
    handler = threading.Thread(target=lambda: answered.append(loop.on_console_event(2)))  # CTRL_CLOSE_EVENT
    handler.start()
    deadline = loop.timer(loop.quit, interval_s=10.0)  # a loop the handler never stops must not hang the suite
    deadline.start()
    loop.run()  # returns once the handler asked the loop to quit
    deadline.stop()  # left running, it would quit a later test's loop
    publisher.stop()
    assert not any(redis_client.exists(c.lease_key(f.feed)) for f in FEEDS[:2]), "leases handed over, not left to TTL"
    loop.close()
    handler.join(timeout=10)
    assert answered == [True]
