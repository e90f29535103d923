"""Adapter + poller against the simulated control: pacing, refusals, lost answers, bad rows."""

from __future__ import annotations

from collections import deque

from kiwoom_cache.contract import Ranking
from publisher.controls import ocx
from publisher.controls.simulated import SimulatedControl
from publisher.limiter import RateLimiter, with_margin
from publisher.poller import Poller
from publisher.qt_loop import QtLoop
from publisher.settings import FeedSettings
from publisher.sources.ocx import OcxSource
from publisher.trs import TrRequest

FEEDS = [FeedSettings(feed="kospi-surge", market="001", interval_s=1.0),
         FeedSettings(feed="kosdaq-surge", market="101", interval_s=1.0),
         FeedSettings(feed="all-surge", market="000", sort="2", interval_s=1.0)]


def make(qtbot, *, sim_limits=((5, 1.0),), limits=((5, 1.0),), margin=1.0, feeds=FEEDS, timeout_s=10.0,
         backoff_s=0.3, **sim_kw):
    control = SimulatedControl(seed=11, latency_ms=5, limits=sim_limits, **sim_kw)
    client = OcxSource(control)
    logins: list[object] = []
    client.loggedIn.connect(logins.append)
    client.login()
    qtbot.waitUntil(lambda: logins == [None], timeout=2000)
    poller = Poller(client, feeds, RateLimiter(with_margin(limits, margin)), loop=QtLoop(), source_name="sim",
                    request_timeout_s=timeout_s, refusal_backoff_s=backoff_s)
    got: list[Ranking] = []
    poller.rankingReady.connect(got.append)
    return control, client, poller, got


def test_every_feed_polled_with_exact_calls(qtbot) -> None:
    control, client, poller, got = make(qtbot)
    poller.start()
    qtbot.waitUntil(lambda: {r.feed for r in got} == {f.feed for f in FEEDS}, timeout=5000)
    poller.stop()
    first = next(r for r in got if r.feed == "kospi-surge")
    assert first.params["market"] == "001" and first.rows and first.source == "sim"
    assert first.requested_at_ms <= first.received_at_ms
    # The adapter set the seven inputs in TR order, then CommRqData, then released the screen.
    calls = [c for c in control.calls if c[0] in (ocx.SET_INPUT_VALUE, ocx.COMM_RQ_DATA)]
    assert [a[0] for _, a in calls[:7]] == [
        "시장구분", "정렬구분", "시간구분", "거래량구분", "시간", "종목조건", "가격구분"]
    screen = client.screen_for("kospi-surge")  # 2001: the login registered 장시작시간 on 2000
    assert calls[7] == (ocx.COMM_RQ_DATA, ("거래량급증요청:kospi-surge#1", "opt10023", 0, screen))
    assert (ocx.DISCONNECT_REAL_DATA, (screen,)) in control.calls


def test_limiter_keeps_three_feeds_under_the_controls_limit(qtbot) -> None:
    # Demand 3 TR/s against a server allowing 3 per second: the shared limiter (margin 0.7 -> 2/s) paces them.
    control, _client, poller, got = make(qtbot, sim_limits=((3, 1.0),), limits=((3, 1.0),), margin=0.7)
    granted: list[float] = []
    acquire = poller.limiter.try_acquire

    def spy() -> float:
        wait = acquire()
        if wait == 0:
            granted.append(poller.limiter._stamps[-1])  # the exact time the limiter counted
        return wait

    poller.limiter.try_acquire = spy  # type: ignore[method-assign]
    poller.start()
    qtbot.waitUntil(lambda: len(got) >= 8, timeout=10000)
    poller.stop()
    assert control.refused == 0, "the control never had to refuse"
    # The limiter's promise, on its own clock: no 1 s window holds more than 2 grants. (The control stamps a
    # moment later, so at a window's exact edge it may count one more; its limit of 3 absorbs that.)
    assert max(sum(1 for t in granted if end - 1.0 < t <= end) for end in granted) <= 2
    assert control.max_in_window[1.0] <= 3
    counts = {f.feed: sum(r.feed == f.feed for r in got) for f in FEEDS}
    assert min(counts.values()) >= 2, f"no feed starved: {counts}"


def test_refusal_backs_off_and_recovers(qtbot) -> None:
    control, _client, poller, got = make(qtbot, feeds=FEEDS[:1])
    control.faults.refuse_codes = deque([-200, -200])
    failures: list[tuple[str, int, str]] = []
    poller.requestFailed.connect(lambda *a: failures.append(a))
    poller.start()
    qtbot.waitUntil(lambda: len(got) >= 1, timeout=5000)
    poller.stop()
    assert [f[1] for f in failures] == [-200, -200]
    state = poller.feeds["kospi-surge"]
    assert state.refusals == 2 and state.rankings >= 1 and state.last_error is None


def test_lost_answer_times_out_and_retries(qtbot) -> None:
    control, client, poller, got = make(qtbot, feeds=FEEDS[:1], timeout_s=0.3)
    control.faults.swallow = 1
    poller.start()
    qtbot.waitUntil(lambda: len(got) >= 1, timeout=5000)
    poller.stop()
    assert poller.feeds["kospi-surge"].errors == 1
    assert not client.pending_feeds()


def test_late_answer_is_discarded_not_credited_to_the_resend(qtbot) -> None:
    """Issue 23 #1: an answer arriving after its request was given up must not fill the feed's resend."""
    control, client, _poller, _got = make(qtbot, feeds=FEEDS[:1])
    req = TrRequest(feed=FEEDS[0].feed, trcode=FEEDS[0].tr, inputs=FEEDS[0].inputs())
    arrivals: list[str] = []
    control.OnReceiveTrData.connect(lambda _screen, rqname, *_: arrivals.append(rqname))
    published_after: list[int] = []
    client.responseReceived.connect(lambda _r: published_after.append(len(arrivals)))
    limiter = RateLimiter(with_margin(((5, 1.0),), 1.0))
    control.faults.delay_ms.extend([200, 600])  # the first answer lands while the resend is still pending
    client.request(req, limiter)
    client.forget(req.feed)  # the poller's timeout gave it up
    client.request(req, limiter)
    qtbot.waitUntil(lambda: len(arrivals) == 2, timeout=5000)
    # The source's slot runs before the test's (connected first): 1 = published on the second arrival.
    assert published_after == [1], "only the resend's own (second) answer is published"
    assert client.late_answers == 1
    assert len(set(arrivals)) == 2, "each request carries its own sRQName"


def test_malformed_rows_are_dropped_and_reported(qtbot) -> None:
    control, _client, poller, got = make(qtbot, feeds=FEEDS[2:])
    control.faults.malformed_rate = 0.5
    poller.start()
    qtbot.waitUntil(lambda: len(got) >= 1, timeout=5000)
    poller.stop()
    [ranking] = got[:1]
    assert ranking.dropped, "half the rows are garbage: some must be reported"
    assert all(r.price > 0 and r.volume > 0 for r in ranking.rows), "no garbage became 0"
    assert poller.feeds["all-surge"].dropped_rows == len(ranking.dropped)


def test_connection_lost_is_signalled(qtbot) -> None:
    control, _client, poller, _got = make(qtbot, feeds=FEEDS[:1])
    control.drop_connection()
    lost: list[object] = []
    poller.connectionLost.connect(lambda: lost.append(True))
    poller.start()
    qtbot.waitUntil(lambda: bool(lost), timeout=2000)
    poller.stop()
