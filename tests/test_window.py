"""The operator window against a running publisher (simulated control, real redis-server)."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from PyQt5.QtWidgets import QTableWidget

from kiwoom_cache import contract as c
from publisher.app import Publisher
from publisher.controls.simulated import SimulatedControl
from publisher.settings import FeedSettings, load_settings
from publisher.window import COLUMNS, OperatorWindow
from tests.publishers import ocx_publisher

pytestmark = pytest.mark.integration

FEEDS = [FeedSettings(feed="kospi-surge", title="코스피 거래량급증", market="001", interval_s=1.0),
         FeedSettings(feed="kosdaq-surge", title="코스닥 거래량급증", market="101", interval_s=1.0)]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def make(qtbot, redis_url: str) -> Iterator:
    made: list[Publisher] = []

    def create(*, refuse: tuple[int, ...] = (), **over: object) -> tuple[Publisher, OperatorWindow]:
        # No refusal penalty, so a -200 costs this test nothing.
        settings = load_settings(redis_url=redis_url, feeds=FEEDS, tr_limits=[(5, 1.0)], safety_margin=0.8,
                                 heartbeat_s=0.5, status_ttl_s=2.0, refusal_backoff_s=0.0, **over)
        control = SimulatedControl(seed=5, latency_ms=5, login_delay_ms=10)
        control.faults.refuse_codes = collections.deque(refuse)
        publisher = ocx_publisher(settings, control)
        made.append(publisher)
        window = OperatorWindow(publisher, quit_on_close=False, refresh_ms=200)
        qtbot.addWidget(window)
        window.show()
        publisher.start()
        return publisher, window

    yield create
    for publisher in made:
        if publisher.writer.stats().state.value != "stopped":
            publisher.stop()


def cell(table: QTableWidget, row: int, name: str) -> str:
    item = table.item(row, COLUMNS.index(name))
    return item.text() if item is not None else ""


def latest_id(client: redis.Redis, feed: str) -> str | None:
    raw = client.get(c.latest_key(feed))
    return json.loads(raw)["id"] if raw else None


def test_window_shows_feeds_as_redis_has_them(qtbot, make, redis_client: redis.Redis) -> None:
    _publisher, window = make()

    def shown() -> None:
        window.refresh()
        for row, feed in enumerate(("kospi-surge", "kosdaq-surge")):
            assert cell(window.table, row, "feed") == feed
            assert cell(window.table, row, "last id") == latest_id(redis_client, feed) is not None

    qtbot.waitUntil(shown, timeout=10000)
    assert "running" in window.state_label.text() and "sim" in window.state_label.text()
    assert cell(window.table, 0, "title") == "코스피 거래량급증"
    assert cell(window.table, 0, "published (KST)").count(":") == 2
    assert int(cell(window.table, 0, "rows")) > 0
    assert window.budget_bars["1s"].maximum() == 4, "5/s with a 0.8 margin"
    assert "connected" in window.writer_label.text()


def test_errors_are_listed_newest_first(qtbot, make) -> None:
    _publisher, window = make(refuse=(-200,))
    qtbot.waitUntil(lambda: window.error_list.count() >= 1 and "-200" in window.error_list.item(0).text(),
                    timeout=10000)
    stamp, _, text = window.error_list.item(0).text().partition("  ")
    assert len(stamp) == 8 and stamp.count(":") == 2, "KST HH:MM:SS"
    assert text.startswith("kospi-surge: "), "the first due feed takes the refusal"
    qtbot.waitUntil(lambda: cell(window.table, 0, "req / refused / err").split(" / ")[1] == "1", timeout=5000)


def test_closing_the_window_stops_the_publisher(qtbot, make) -> None:
    publisher, window = make()
    qtbot.waitUntil(lambda: publisher.writer.stats().written >= 2, timeout=10000)
    with qtbot.waitSignal(window.closed, timeout=10000):
        window.close()
    stats = publisher.writer.stats()
    assert stats.state.value == "stopped" and stats.pending == 0
    assert window.statusBar().currentMessage().startswith("stopped: ")
    assert "0 unsent" in window.statusBar().currentMessage()


def test_window_shows_the_role_and_closing_it_hands_over(qtbot, make, redis_client: redis.Redis) -> None:
    """Two publishers, one window each: the leader's says so, the standby's too; closing the leader's window
    releases the leases and the standby's window turns leader (docs/high-availability.md)."""
    leader, leader_window = make(lease_ttl_s=30.0, lease_check_s=0.1)
    qtbot.waitUntil(lambda: leader.writer.stats().written >= 1, timeout=10000)
    standby, standby_window = make(lease_ttl_s=30.0, lease_check_s=0.1)

    def roles(lead_text: str, standby_text: str) -> None:
        leader_window.refresh()
        standby_window.refresh()
        assert lead_text in leader_window.role_label.text() and leader.id in leader_window.role_label.text()
        assert standby_text in standby_window.role_label.text()
        assert standby_text in standby_window.state_label.text(), "logged in (hot), standing by"

    qtbot.waitUntil(lambda: roles("leader", "standby"), timeout=10000)
    with qtbot.waitSignal(leader_window.closed, timeout=10000):
        leader_window.close()
    # The 30 s lease would still run for ~30 s: taking over now proves the close released it.
    qtbot.waitUntil(lambda: standby.writer.stats().written >= 1, timeout=10000)
    standby_window.refresh()
    assert "leader" in standby_window.role_label.text() and "running" in standby_window.state_label.text()
    assert "fenced 0" in leader_window.writer_label.text(), "refusals are shown (none on a graceful hand-over)"
    assert leader.writer.stats().fenced == 0 and leader.writer.stats().pending == 0
    assert redis_client.get(c.lease_key("kospi-surge")) == standby.id.encode()


def test_screenshot(qtbot, make) -> None:
    _publisher, window = make(refuse=(-200,))
    qtbot.waitUntil(lambda: all(cell(window.table, r, "last id") not in ("", "—") for r in (0, 1))
                    and window.error_list.count() >= 1, timeout=10000)
    window.refresh()
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "operator-window.png"
    image = window.grab()
    assert not image.isNull() and image.width() > 0
    assert image.save(str(path))
    assert path.stat().st_size > 0
