"""The Redis writer thread against a real redis-server: atomic write, conflation, outages, bad keys."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest
import redis

from kiwoom_cache import contract as c
from publisher.writer import RedisWriter
from publisher.writer_records import WriterState
from stack.localredis import LocalRedis, free_port
from tests.test_contract import make_ranking
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def status() -> c.PublisherStatus:
    return c.PublisherStatus(state="running", source="sim", account_mode="sim", version="t", host="h", pid=1,
                             started_at_ms=1, heartbeat_at_ms=1, last_success_ms=None, heartbeat_s=1.0)


def make_writer(url: str, **kw: object) -> RedisWriter:
    kw.setdefault("heartbeat_s", 0.2)
    kw.setdefault("status_ttl_s", 1.0)
    return RedisWriter(url, feeds=[c.FeedInfo("kospi-surge", "코스피", "opt10023", {"market": "001"}, 1.0)],
                       status=status, backoff_min_s=0.02, backoff_max_s=0.2, **kw)  # type: ignore[arg-type]


def test_one_ranking_lands_atomically_with_one_id(redis_url: str, redis_client: redis.Redis) -> None:
    pubsub = redis_client.pubsub()
    pubsub.subscribe(c.updates_channel("kospi-surge"))
    pubsub.get_message(timeout=1)
    writer = make_writer(redis_url, history_maxlen=3)
    writer.start()
    for i in range(5):
        writer.submit(make_ranking(requested_at_ms=1764028800000 + i))
        wait_until(lambda i=i: writer.stats().written == i + 1, what="write")
    stats = writer.stop()
    assert (stats.written, stats.superseded, stats.pending, stats.state) == (5, 0, 0, WriterState.stopped)
    latest = redis_client.get(c.latest_key("kospi-surge"))
    [(entry_id, fields)] = redis_client.xrevrange(c.history_key("kospi-surge"), count=1)
    assert latest == c.document_from_entry(entry_id, fields)
    doc = c.decode_ranking(latest)
    assert doc.id == entry_id.decode() and doc.seq == 5
    assert doc.requested_at_ms <= doc.received_at_ms <= doc.published_at_ms <= c.parse_stream_id(doc.id)[0]
    messages = []
    while (m := pubsub.get_message(timeout=0.5)) is not None:
        messages.append(m["data"])
    assert [c.decode_ranking(m).seq for m in messages] == [1, 2, 3, 4, 5]
    assert messages[-1] == latest
    # MAXLEN ~ 3 trims approximately (whole macro nodes), never below 3.
    assert 3 <= redis_client.xlen(c.history_key("kospi-surge")) <= 5
    info = c.FeedInfo.decode(redis_client.hget(c.FEEDS_KEY, "kospi-surge"))
    assert info.params == {"market": "001"}
    final = c.PublisherStatus.decode(redis_client.get(c.STATUS_KEY))
    assert final.state == "stopped" and 0 < redis_client.pttl(c.STATUS_KEY) <= 1000


def test_heartbeat_expires_when_the_writer_is_gone(redis_url: str, redis_client: redis.Redis) -> None:
    writer = make_writer(redis_url)
    writer.start()
    wait_until(lambda: redis_client.exists(c.STATUS_KEY), what="heartbeat")
    assert c.PublisherStatus.decode(redis_client.get(c.STATUS_KEY)).redis == "connected"
    writer._stopping = True  # simulate a crash: no final status, the key must simply expire
    wait_until(lambda: not redis_client.exists(c.STATUS_KEY), what="status key to expire")
    writer.stop()


def test_outage_keeps_newest_per_feed_then_flushes(own_redis: Callable[..., LocalRedis]) -> None:
    port = free_port()
    writer = make_writer(f"redis://127.0.0.1:{port}/0")
    writer.start()
    for i in range(3):
        writer.submit(make_ranking("kospi-surge", requested_at_ms=100 + i))
    writer.submit(make_ranking("kosdaq-surge", requested_at_ms=200))
    # pending is 1 while the writer holds a ranking in a failing attempt: wait for it to be queued again
    stats = wait_until(lambda: writer.state is WriterState.disconnected and (st := writer.stats()).pending == 2
                       and st, what="disconnected, both feeds pending")
    assert (stats.superseded, stats.pending, stats.written) == (2, 2, 0)
    assert "Error" in (stats.last_error or "")
    server = own_redis(port)  # Redis comes (back) up on the same port
    wait_until(lambda: writer.stats().written == 2, what="flush after reconnect")
    client = redis.Redis(port=port)
    assert c.decode_ranking(client.get(c.latest_key("kospi-surge"))).requested_at_ms == 102
    assert client.xlen(c.history_key("kospi-surge")) == 1
    stats = writer.stop()
    assert stats.submitted == stats.written + stats.superseded + stats.pending
    client.close()
    server.stop()


def test_stop_while_redis_is_down_reports_unsent() -> None:
    writer = make_writer(f"redis://127.0.0.1:{free_port()}/0")
    writer.start()
    writer.submit(make_ranking())
    stats = writer.stop(flush_timeout_s=0.3)
    assert stats.pending == 1 and stats.written == 0 and stats.state is WriterState.stopped


def test_wrong_type_key_is_retried_not_lost(redis_url: str, redis_client: redis.Redis,
                                            caplog: pytest.LogCaptureFixture) -> None:
    redis_client.set(c.history_key("kospi-surge"), "someone typed SET by hand")
    writer = make_writer(redis_url)
    writer.start()
    writer.submit(make_ranking())
    wait_until(lambda: "WRONGTYPE" in (writer.stats().last_error or ""), what="WRONGTYPE error")
    assert writer.stats().pending == 1
    redis_client.delete(c.history_key("kospi-surge"))
    wait_until(lambda: writer.stats().written == 1, what="write after the key was fixed")
    writer.stop()
    assert "Redis refused the write" in caplog.text
    assert json.loads(redis_client.get(c.latest_key("kospi-surge")))["seq"] == 1


class GatedRedis(redis.Redis):
    """A real client whose script calls wait at a gate, so a test can look at the writer mid-write."""

    def __init__(self, url: str) -> None:
        super().__init__(connection_pool=redis.ConnectionPool.from_url(url))
        self.entered = threading.Event()
        self.release = threading.Event()

    def evalsha(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        self.entered.set()
        assert self.release.wait(10), "the test never released the gate"
        return super().evalsha(*args, **kwargs)  # type: ignore[arg-type]


def test_a_ranking_being_written_still_counts_as_pending(redis_url: str) -> None:
    client = GatedRedis(redis_url)
    writer = make_writer(redis_url, client=client)
    writer.start()
    writer.submit(make_ranking())
    assert client.entered.wait(10), "the writer never tried to write"
    stats = writer.stats()
    assert (stats.pending, stats.written) == (1, 0)
    writer.submit(make_ranking(requested_at_ms=1764028800001))  # queued behind the one in flight
    stats = writer.stats()
    assert (stats.pending, stats.superseded) == (2, 0)
    assert stats.submitted == stats.written + stats.superseded + stats.rejected + stats.pending
    client.release.set()
    wait_until(lambda: writer.stats().written == 2, what="both writes")
    stats = writer.stop()
    assert (stats.pending, stats.submitted) == (0, stats.written)


def test_unencodable_ranking_is_rejected_and_counted(redis_url: str) -> None:
    writer = make_writer(redis_url)
    writer.start()
    writer.submit(make_ranking(source="nowhere"))
    writer.submit(make_ranking("kosdaq-surge"))
    wait_until(lambda: writer.stats().written == 1, what="the good ranking")
    stats = writer.stop()
    assert stats.rejected == 1 and "unknown source" in (stats.last_error or "")


def test_status_ttl_must_exceed_heartbeat() -> None:
    with pytest.raises(ValueError, match="must exceed"):
        make_writer("redis://127.0.0.1:1/0", heartbeat_s=2.0, status_ttl_s=1.0)


def test_refresh_status_writes_at_once(redis_url: str, redis_client: redis.Redis) -> None:
    state = {"value": "connecting"}

    def current() -> c.PublisherStatus:
        return c.PublisherStatus(state=state["value"], source="sim", account_mode="sim", version="t", host="h",
                                 pid=1, started_at_ms=1, heartbeat_at_ms=1, last_success_ms=None, heartbeat_s=60.0)

    writer = RedisWriter(redis_url, feeds=[], status=current, heartbeat_s=60.0, status_ttl_s=120.0)
    writer.start()
    wait_until(lambda: redis_client.exists(c.STATUS_KEY), what="first heartbeat")
    state["value"] = "running"
    writer.refresh_status()  # a minute before the next periodic heartbeat
    wait_until(lambda: c.PublisherStatus.decode(redis_client.get(c.STATUS_KEY)).state == "running",
             what="refreshed status")
    writer.stop()


def test_epoch_is_new_whenever_the_history_is_gone(redis_url: str, redis_client: redis.Redis) -> None:
    """Issue 10 (2): the write script makes a new epoch and restarts seq when the feed's keys are absent."""
    script = redis_client.register_script(c.WRITE_RANKING_LUA)

    def write() -> tuple[str, int, str]:
        rid, seq, epoch = script(*c.write_ranking_args(make_ranking()))
        doc = c.decode_ranking(redis_client.get(c.latest_key("kospi-surge")))
        assert (doc.id, doc.seq, doc.epoch) == (rid.decode(), seq, epoch.decode())
        return rid.decode(), seq, epoch.decode()

    _, seq1, epoch1 = write()
    _, seq2, epoch2 = write()
    assert (seq1, seq2) == (1, 2) and epoch1 == epoch2
    redis_client.delete(c.history_key("kospi-surge"))  # the stream alone is lost
    _, seq3, epoch3 = write()
    assert seq3 == 1 and epoch3 != epoch1
    redis_client.flushall()
    _, seq4, epoch4 = write()
    assert seq4 == 1 and epoch4 not in (epoch1, epoch3)
    redis_client.delete(c.epoch_key("kospi-surge"))  # the epoch alone is lost: the stream can't be trusted
    _, seq5, epoch5 = write()
    assert seq5 == 1 and epoch5 != epoch4
    [(_, fields)] = redis_client.xrevrange(c.history_key("kospi-surge"), count=1)
    assert fields[b"epoch"].decode() == epoch5


def test_registry_is_rewritten_on_the_heartbeat(redis_url: str, redis_client: redis.Redis) -> None:
    """Issue 10 (3): after FLUSHALL the feed registry is back within one heartbeat, not at the next reconnect."""
    writer = make_writer(redis_url)
    writer.start()
    try:
        wait_until(lambda: redis_client.hexists(c.FEEDS_KEY, "kospi-surge"), what="registry written")
        redis_client.flushall()
        wait_until(lambda: redis_client.hexists(c.FEEDS_KEY, "kospi-surge"), timeout=5, what="registry back")
        assert writer.stats().reconnects == 0
    finally:
        writer.stop()
