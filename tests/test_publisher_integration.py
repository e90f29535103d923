"""The whole publisher (simulated control, Qt timers, writer thread) against a real redis-server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
import redis

from kiwoom_cache import contract as c
from kiwoom_cache.contract import Ranking
from publisher.app import Publisher
from publisher.controls.simulated import SimulatedControl
from publisher.settings import FeedSettings, load_settings
from stack.localredis import LocalRedis
from tests.publishers import ocx_publisher

pytestmark = pytest.mark.integration

FEEDS = [FeedSettings(feed="kospi-surge", market="001", interval_s=1.0),
         FeedSettings(feed="kosdaq-surge", market="101", interval_s=1.0)]


def make_publisher(url: str, **over: object) -> tuple[Publisher, SimulatedControl, list[Ranking]]:
    settings = load_settings(redis_url=url, feeds=FEEDS, tr_limits=[(5, 1.0)], safety_margin=0.8, heartbeat_s=0.5,
                             status_ttl_s=2.0, **over)
    control = SimulatedControl(seed=5, latency_ms=5, login_delay_ms=10)
    publisher = ocx_publisher(settings, control)
    produced: list[Ranking] = []
    publisher.poller.rankingReady.connect(produced.append)
    return publisher, control, produced


def entries(client: redis.Redis, feed: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return client.xrange(c.history_key(feed))


def test_latest_history_and_updates_agree(qtbot, redis_url: str, redis_client: redis.Redis) -> None:
    pubsub = redis_client.pubsub()
    pubsub.psubscribe(c.UPDATES_PATTERN)
    pubsub.get_message(timeout=1)
    publisher, _control, _produced = make_publisher(redis_url)
    publisher.start()
    qtbot.waitUntil(lambda: all(len(entries(redis_client, f.feed)) >= 3 for f in FEEDS), timeout=15000)
    publisher.stop()
    assert publisher.state == "stopping"
    publisher.stop()  # idempotent: the window and the CLI may both stop it
    messages: dict[str, list[bytes]] = {}
    while (m := pubsub.get_message(timeout=0.5)) is not None:
        messages.setdefault(c.feed_of_channel(m["channel"]) or "?", []).append(m["data"])
    for feed in (f.feed for f in FEEDS):
        stream = entries(redis_client, feed)
        docs = [c.document_from_entry(i, f) for i, f in stream]
        assert redis_client.get(c.latest_key(feed)) == docs[-1], "latest = the last stream entry, byte for byte"
        assert messages[feed] == docs, "one channel message per entry, same bytes, same order"
        rankings = [c.decode_ranking(d) for d in docs]
        assert [r.seq for r in rankings] == list(range(1, len(rankings) + 1))
        for r, (entry_id, _) in zip(rankings, stream, strict=True):
            assert r.id == entry_id.decode() and r.feed == feed and r.source == "sim" and r.rows
            assert r.requested_at_ms <= r.received_at_ms <= r.published_at_ms <= c.parse_stream_id(r.id)[0]
    assert set(redis_client.hkeys(c.FEEDS_KEY)) == {b"kospi-surge", b"kosdaq-surge"}
    status = c.PublisherStatus.decode(redis_client.get(c.STATUS_KEY))
    assert status.state == "stopped" and status.account_mode == "sim"
    assert status.feeds["kospi-surge"]["last_id"] == c.decode_ranking(redis_client.get(c.latest_key("kospi-surge"))).id


def test_redis_outage_loses_only_superseded_rankings(qtbot, own_redis: Callable[..., LocalRedis]) -> None:
    server = own_redis()
    client = redis.Redis(port=server.port)
    publisher, _control, produced = make_publisher(server.url)
    publisher.start()
    qtbot.waitUntil(lambda: publisher.writer.stats().written >= 4, timeout=15000)
    server.stop()  # SIGTERM: Redis persists its AOF and goes away mid-run
    before = len(produced)
    qtbot.waitUntil(lambda: len(produced) >= before + 6, timeout=20000)
    stats = publisher.writer.stats()
    assert stats.state.value == "disconnected" and stats.superseded >= 2 and stats.pending >= 1
    assert publisher.state == "running", "polling goes on while Redis is away"
    own_redis(server.port)  # back on the same port with its data
    qtbot.waitUntil(lambda: publisher.writer.stats().written >= stats.written + 4, timeout=20000)
    publisher.stop()
    stats = publisher.writer.stats()
    assert stats.pending == 0 and stats.reconnects >= 1
    assert stats.submitted == len(produced) == stats.written + stats.superseded + stats.rejected
    for feed in ("kospi-surge", "kosdaq-surge"):
        docs = [c.decode_ranking(c.document_from_entry(i, f)) for i, f in entries(client, feed)]
        assert [d.seq for d in docs] == list(range(1, len(docs) + 1)), "no written ranking lost, no seq gap"
        last_produced = [r for r in produced if r.feed == feed][-1]
        assert docs[-1].requested_at_ms == last_produced.requested_at_ms, "the newest ranking always lands"
    client.close()


def test_cli_runs_headless_and_exits_cleanly(redis_url: str, redis_client: redis.Redis) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "publisher", "--source", "sim", "--redis-url", redis_url, "--duration", "2.5"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "publisher stopped" in proc.stderr
    latest = c.decode_ranking(redis_client.get(c.latest_key("kospi-surge")))
    [(last_id, _)] = redis_client.xrevrange(c.history_key("kospi-surge"), count=1)
    assert latest.id == last_id.decode()


def test_cli_rejects_bad_config_clearly(tmp_path) -> None:
    bad = tmp_path / "feeds.toml"
    bad.write_text('[[feeds]]\nfeed = "KOSPI"\n', encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "publisher", "--config", str(bad)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2
    assert "invalid feed slug 'KOSPI'" in proc.stderr
