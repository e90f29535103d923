"""SSE: first snapshot, live updates, Last-Event-ID resume with no gap and no duplicate, resets."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from kiwoom_cache import contract as c
from tests.api.sse_client import Collector, read_events
from tests.api.writer import BackgroundWriter, Writer
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

EVENTS = "/v1/rankings/kospi-surge/events"


def test_first_event_is_the_snapshot_then_live_rankings(redis_url: str, writer: Writer, replica) -> None:
    first = writer.write()
    rep = replica(redis_url)
    collector = Collector(rep.url + EVENTS)
    collector.start()
    wait_until(lambda: collector.events, what="the snapshot event")
    snap = collector.events[0]
    assert (snap.event, snap.id, json.loads(snap.data)["id"]) == ("snapshot", first, first)
    later = [writer.write() for _ in range(3)]
    wait_until(lambda: collector.has(later[-1]), what="live rankings")
    collector.stop()
    assert [(e.event, e.id) for e in collector.events[1:]] == [("ranking", i) for i in later]
    assert [json.loads(e.data)["seq"] for e in collector.events] == [1, 2, 3, 4]


def test_stream_headers_retry_and_heartbeat(redis_url: str, writer: Writer, replica) -> None:
    writer.write()
    rep = replica(redis_url, ping_s="0.2", retry_ms="1500")
    seen: list[str] = []
    with httpx.stream("GET", rep.url + EVENTS, timeout=10) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-store" and r.headers["x-accel-buffering"] == "no"
        for line in r.iter_lines():
            seen.append(line)
            if line == ": ping":
                break
    assert "retry: 1500" in seen and ": ping" in seen


def _resume_rounds(urls: list[str], redis_url: str, rounds: int, use_query: bool = False) -> None:
    """Read a few events, disconnect, let the publisher write on, resume elsewhere; finally compare."""
    bg = BackgroundWriter(redis_url, period=0.05)
    bg.start()
    try:
        wait_until(lambda: bg.ids, what="first background write")
        received = read_events(urls[0] + EVENTS, 3)
        assert received[0].event == "snapshot"
        for i in range(rounds):
            written_so_far = len(bg.ids)
            wait_until(lambda n=written_so_far: len(bg.ids) >= n + 3, what="writes while disconnected")
            last = received[-1].id
            base = urls[(i + 1) % len(urls)] + EVENTS
            if use_query and i % 2:
                part = read_events(f"{base}?last_event_id={last}", 4)
            else:
                part = read_events(base, 4, headers={"Last-Event-ID": last})
            assert all(e.event == "ranking" for e in part), [e.event for e in part]
            received += part
    finally:
        written = bg.stop()
    tail = read_events(urls[-1] + EVENTS, 0, headers={"Last-Event-ID": received[-1].id},
                       until=lambda e: e.id == written[-1]) if received[-1].id != written[-1] else []
    received += tail
    ids = [e.id for e in received]
    start = written.index(ids[0])
    assert ids == written[start:], "gap or duplicate at a hand-over"
    seqs = [json.loads(e.data)["seq"] for e in received]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_resume_same_replica_no_gap_no_duplicate(redis_url: str, writer: Writer, replica) -> None:
    rep = replica(redis_url)
    _resume_rounds([rep.url], redis_url, rounds=5, use_query=True)


def test_resume_on_a_second_replica(redis_url: str, writer: Writer, replica) -> None:
    """Replica B keeps a tiny ring, so resuming there goes through the XRANGE replay and hand-over."""
    a = replica(redis_url)
    b = replica(redis_url, ring_size="2", replay_page="3")
    _resume_rounds([a.url, b.url], redis_url, rounds=6)


def test_expired_and_unknown_ids_get_a_reset(redis_url: str, writer: Writer, replica) -> None:
    ids = [writer.write() for _ in range(10)]
    writer.client.xtrim(c.history_key("kospi-surge"), maxlen=3, approximate=False)
    rep = replica(redis_url, ring_size="2")
    for last, reason in ((ids[0], "expired"), ("99999999999999-0", "unknown")):
        event = read_events(rep.url + EVENTS, 1, headers={"Last-Event-ID": last})[0]
        doc = json.loads(event.data)
        assert (event.event, event.id, doc["id"], doc["reset_reason"]) == ("reset", ids[-1], ids[-1], reason)
    # an id the stream still holds resumes exactly
    events = read_events(rep.url + EVENTS, 0, headers={"Last-Event-ID": ids[-3]}, until=lambda e: e.id == ids[-1])
    assert [e.id for e in events] == ids[-2:] and {e.event for e in events} == {"ranking"}
    assert rep.metric("kiwoom_api_sse_resets_total") == 2


def test_malformed_last_event_id_is_400(redis_url: str, writer: Writer, replica) -> None:
    writer.write()
    rep = replica(redis_url)
    for headers, query in (({"Last-Event-ID": "abc"}, ""), ({}, "?last_event_id=1-2-3")):
        r = httpx.get(rep.url + EVENTS + query, headers=headers)
        assert r.status_code == 400 and "Last-Event-ID" in r.json()["detail"]


def test_clients_gauge_and_graceful_shutdown(redis_url: str, writer: Writer, replica) -> None:
    writer.write()
    rep = replica(redis_url)
    collectors = [Collector(rep.url + EVENTS) for _ in range(3)]
    for col in collectors:
        col.start()
    wait_until(lambda: rep.metric("kiwoom_api_sse_clients") == 3, what="3 connected clients")
    collectors[0].stop()
    writer.write()  # the stopped collector returns after this event and disconnects
    wait_until(lambda: rep.metric("kiwoom_api_sse_clients") == 2, what="the disconnect noticed")
    started = time.monotonic()
    rep.terminate()  # uvicorn re-raises SIGTERM after a graceful shutdown, so the exit code is -15
    assert "Application shutdown complete" in rep.log() and "ending 2 event streams" in rep.log()
    for col in collectors[1:]:
        col.join(10)
        assert col.ended and col.error is None, col.error
    assert time.monotonic() - started < 60  # sanity only: the stream ended on SIGTERM, not on a timeout
