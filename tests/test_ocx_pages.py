"""Continuation pages (issue 23 #2): the simulated control pages a ranking the way Kiwoom does (sPrevNext "2",
the next page asked with CommRqData nPrevNext 2 and the same inputs), and the OCX source merges the pages into
one ranking, bounded, each page a request of its own under the limits."""

from __future__ import annotations

import time

from kiwoom_cache.contract import Ranking
from publisher.controls import ocx
from publisher.controls.simulated import SimulatedControl
from publisher.kiwoom_errors import OP_ERR_NONE, OP_ERR_RQ_STRUCT_FAIL, OP_ERR_SISE_OVERFLOW
from publisher.limiter import RateLimiter, with_margin
from publisher.poller import Poller
from publisher.qt_loop import QtLoop
from publisher.settings import FeedSettings
from publisher.sources.ocx import OcxSource
from publisher.trs import OPT10032

#: opt10032 answers every stock of the market: the simulated universe's 56, i.e. 20 + 20 + 16 rows in pages of 20.
FEED = FeedSettings(feed="all-value", tr="opt10032", market="000", interval_s=0.5)
UNIVERSE_ROWS = 56
PAGE = 20


def logged_in(qtbot, cls: type[SimulatedControl] = SimulatedControl, **sim_kw) -> SimulatedControl:
    control = cls(seed=3, latency_ms=2, login_delay_ms=2, page_rows=PAGE, **sim_kw)
    control.dynamicCall(ocx.COMM_CONNECT)
    qtbot.waitUntil(lambda: control.connected == 1, timeout=2000)
    return control


def test_simulated_control_pages_like_kiwoom(qtbot) -> None:
    control = logged_in(qtbot, limits=((50, 1.0),))
    answers: list[tuple[str, int, list[str]]] = []

    def on_data(screen, rqname, trcode, record, prev_next, *_):
        count = control.dynamicCall(ocx.GET_REPEAT_CNT, trcode, OPT10032.ocx.record)
        codes = [control.dynamicCall(ocx.GET_COMM_DATA, trcode, OPT10032.ocx.record, i, "종목코드").strip()
                 for i in range(count)]
        answers.append((prev_next, count, codes))

    control.OnReceiveTrData.connect(on_data)

    def ask(prev_next: int, screen: str = "2001") -> int:
        for param, value in FEED.inputs():
            control.dynamicCall(ocx.SET_INPUT_VALUE, OPT10032.ocx.inputs[param], value)
        return control.dynamicCall(ocx.COMM_RQ_DATA, f"p{len(answers)}", "opt10032", prev_next, screen)

    # A next page before any first page: nothing to continue on this screen.
    assert ask(2) == OP_ERR_RQ_STRUCT_FAIL
    before = control.requests
    for page, prev_next in enumerate((0, 2, 2)):
        assert ask(prev_next) == OP_ERR_NONE
        qtbot.waitUntil(lambda n=page + 1: len(answers) == n, timeout=2000)
    assert [(p, n) for p, n, _ in answers] == [("2", 20), ("2", 20), ("0", 16)]
    codes = [c for _, _, page_codes in answers for c in page_codes]
    assert len(codes) == len(set(codes)) == UNIVERSE_ROWS, "the pages continue the ranking, no row twice"
    assert control.requests - before == 3, "every page is a request of its own"
    # The query is over: another next page has nothing to continue; a first page starts over.
    assert ask(2) == OP_ERR_RQ_STRUCT_FAIL
    assert ask(0) == OP_ERR_NONE


def make(qtbot, *, max_pages: int = 5, budget_s: float = 5.0, limits=((50, 1.0),), timeout_s: float = 10.0,
         **sim_kw):
    control = logged_in(qtbot, limits=limits, **sim_kw)
    source = OcxSource(control, loop=QtLoop(), max_pages=max_pages, budget_s=budget_s)
    poller = Poller(source, [FEED], RateLimiter(with_margin(limits, 1.0)), loop=QtLoop(), source_name="sim",
                    request_timeout_s=timeout_s, refusal_backoff_s=0.2)
    got: list[Ranking] = []
    poller.rankingReady.connect(got.append)
    failures: list[tuple[str, int, str]] = []
    poller.requestFailed.connect(lambda *a: failures.append(a))
    return control, source, poller, got, failures


def assert_whole(ranking: Ranking, rows: int = UNIVERSE_ROWS) -> None:
    assert [r.rank for r in ranking.rows] == list(range(1, rows + 1))
    assert len({r.code for r in ranking.rows}) == rows
    # Kiwoom's own 현재순위 runs on across the pages: page 2 starts at 21, not at 1 again.
    assert [r.own["now_rank"] for r in ranking.rows] == list(range(1, rows + 1))


def test_source_publishes_every_page_merged_once(qtbot) -> None:
    """Fails on the old source: it published the first page (20 rows) and only logged the "2"."""
    control, _source, poller, got, failures = make(qtbot)
    poller.start()
    qtbot.waitUntil(lambda: len(got) >= 2, timeout=8000)
    poller.stop()
    assert not failures
    for ranking in got:
        assert_whole(ranking)
    pages = [a for f, a in control.calls if f == ocx.COMM_RQ_DATA]
    assert [a[2] for a in pages[:3]] == [0, 2, 2], "first page, then nPrevNext 2 for each next page"
    assert len({a[3] for a in pages}) == 1, "every page on the feed's screen"
    assert len({a[0] for a in pages}) == len(pages), "each page its own sRQName"
    assert control.refused == 0


def test_pages_are_bounded_by_max_pages(qtbot) -> None:
    _control, _source, poller, got, _failures = make(qtbot, max_pages=2)
    poller.start()
    qtbot.waitUntil(lambda: len(got) >= 1, timeout=5000)
    poller.stop()
    assert_whole(got[0], rows=2 * PAGE)


def test_each_page_takes_a_slot_within_the_controls_limits(qtbot) -> None:
    # 2 requests per second on both sides: three pages cannot go out in one second, the limiter spaces them.
    control, _source, poller, got, failures = make(qtbot, limits=((2, 1.0),))
    poller.start()
    qtbot.waitUntil(lambda: len(got) >= 2, timeout=10000)
    poller.stop()
    assert not failures and control.refused == 0
    assert control.max_in_window[1.0] <= 2
    for ranking in got:
        assert_whole(ranking)


class SlowFirstArrival(SimulatedControl):
    """The first request reaches the server 50 ms after CommRqData was called (a busy machine, a slow link); the
    others at once."""

    def request(self, *args, **kwargs) -> int:
        if self.requests == 0:
            time.sleep(0.05)  # the delay being modelled, not a wait for something to happen
        return super().request(*args, **kwargs)


def test_a_request_slow_to_leave_does_not_crowd_the_servers_window(qtbot) -> None:
    """Fails when the limiter times a slot from its grant: page 1 arrived 50 ms late, page 3 was granted one
    second after page 1's grant and so arrived inside the server's window for page 1 (-200, then the penalty)."""
    control, _source, poller, got, failures = make(qtbot, limits=((2, 1.0),), cls=SlowFirstArrival)
    poller.start()
    qtbot.waitUntil(lambda: bool(got or failures), timeout=10000)
    poller.stop()
    assert not failures and control.refused == 0
    assert_whole(got[0])


def test_no_slot_within_the_budget_publishes_the_pages_read(qtbot) -> None:
    # One request per 10 s: page 2 cannot go out within the 0.3 s budget, so the first page is the ranking.
    control, _source, poller, got, failures = make(qtbot, limits=((1, 10.0),), budget_s=0.3)
    poller.start()
    qtbot.waitUntil(lambda: len(got) >= 1, timeout=5000)
    poller.stop()
    assert not failures and control.refused == 0
    assert_whole(got[0], rows=PAGE)


def test_a_refused_page_fails_the_whole_ranking_then_it_recovers(qtbot) -> None:
    control, source, poller, got, failures = make(qtbot)
    control.faults.page_faults[2] = OP_ERR_SISE_OVERFLOW
    poller.start()
    qtbot.waitUntil(lambda: len(got) >= 1, timeout=8000)
    poller.stop()
    assert [f[1] for f in failures] == [OP_ERR_SISE_OVERFLOW], "the refusal reaches the poller as a -200"
    assert poller.feeds[FEED.feed].refusals == 1
    assert_whole(got[0])  # nothing partial was published before it
    assert not source.pending_feeds()


def test_a_lost_page_fails_the_whole_ranking_at_the_budget(qtbot) -> None:
    control, source, poller, got, failures = make(qtbot, budget_s=0.5, timeout_s=3.0)
    control.faults.page_faults[3] = OP_ERR_NONE  # page 3 accepted, never answered
    poller.start()
    qtbot.waitUntil(lambda: len(got) >= 1, timeout=8000)
    poller.stop()
    assert len(failures) == 1 and "page 3 not answered within the request budget" in failures[0][2]
    assert poller.feeds[FEED.feed].errors == 1
    assert_whole(got[0])  # the 40 rows of pages 1-2 were dropped, not published
    assert not source.pending_feeds()
