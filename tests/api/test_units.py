"""Unit tests: frames, the ring, query parsing, and the hub/stream loop in-process (fakeredis)."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest
from sse_starlette.event import ServerSentEvent

from api.frames import KEEPALIVE, event_frame
from api.history import MAX_SEQ, HistoryQueryError, bounds
from api.hub import FeedState, Frame, Hub, Snapshot
from api.settings import ApiSettings
from api.snapshot import QueryError, etag_matches, parse_snapshot_query
from api.sse import serve_events
from api.wake import Wake
from kiwoom_cache import contract as c
from kiwoom_cache.urls import mask_url
from tests.api.writer import make_ranking
from tests.waiting import async_wait_until


def test_frames_match_sse_starlette_wire_format() -> None:
    doc = b'{"id":"1-0","name":"\xec\x82\xbc"}'
    assert event_frame("ranking", "1-0", doc) == ServerSentEvent(data=doc.decode(), id="1-0", event="ranking").encode()
    assert KEEPALIVE == b": ping\r\n\r\n"


def _frame(ms: int) -> Frame:
    return Frame((ms, 0), f"{ms}-0", b"f%d" % ms)


def test_ring_positions_dedupe_and_eviction() -> None:
    loop = asyncio.new_event_loop()
    try:
        st = FeedState("f", 3, loop)
        assert st.pos_after((1, 0)) is None
        assert [st.append(_frame(ms)) for ms in (10, 20, 20, 15, 30)] == [True, True, False, False, True]
        assert (st.first_pos, st.next_pos) == (0, 3)
        assert st.pos_after((10, 0)) == 1 and st.pos_after((25, 0)) == 2 and st.pos_after((30, 0)) == 3
        assert st.pos_after((5, 0)) is None and st.pos_after((31, 0)) is None  # before the ring / unknown
        st.append(_frame(40))
        assert (st.first_pos, st.next_pos) == (1, 4) and st.frame_at(1).id == "20-0"
        assert st.pos_after((10, 0)) is None
    finally:
        loop.close()


def test_query_parsing() -> None:
    assert parse_snapshot_query(b"") == (None, None)
    assert parse_snapshot_query(b"limit=3&fields=code,name,code") == (3, ("rank", "code", "name"))
    for bad in (b"limit=0", b"limit=-1", b"limit=1001", b"limit=" + b"9" * 5000, "limit=²".encode(), b"fields=",
                b"fields=nope"):
        with pytest.raises(QueryError):
            parse_snapshot_query(bad)
    assert etag_matches(b'W/"1-0"', "1-0") and etag_matches(b'"2-0", "1-0"', "1-0") and etag_matches(b"*", "x")
    assert not etag_matches(b'"1-1"', "1-0")
    assert bounds(after=None, before=None, since=None, until=None) == ("-", "+")
    assert bounds(after="5-1", before="9-0", since="3", until=None) == ("5-2", f"8-{MAX_SEQ}")
    assert bounds(after="1-0", before=None, since="3", until=None)[0] == "3-0"
    # the edges give an empty range, never an id Redis refuses (a 503 before issue 10)
    assert bounds(after=None, before="0-0", since=None, until=None) == ("1-0", "0-0")
    assert bounds(after=f"{MAX_SEQ}-{MAX_SEQ}", before=None, since=None, until=None) == ("1-0", "0-0")
    assert bounds(after="9-0", before="5-0", since=None, until=None) == ("1-0", "0-0")
    for name, bad in (("since", "9" * 5000), ("since", "9" * 23), ("until", "0001-01-01"), ("since", "²")):
        with pytest.raises(HistoryQueryError) as info:
            bounds(after=None, before=None, since=bad if name == "since" else None,
                   until=bad if name == "until" else None)
        assert info.value.name == name
    with pytest.raises(HistoryQueryError):
        bounds(after="x", before=None, since=None, until=None)


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIWOOM_CACHE_REDIS_URL", "redis://:secret@h:1/0")
    monkeypatch.setenv("KIWOOM_API_CORS_ORIGINS", "http://a, http://b")
    monkeypatch.setenv("KIWOOM_API_RING_SIZE", "8")
    s = ApiSettings()
    assert s.cors_origins == ["http://a", "http://b"] and s.ring_size == 8
    assert "secret" not in repr(s) and mask_url(s.redis_url) == "redis://:***@h:1/0"


async def test_hub_follows_the_subscription_with_fakeredis() -> None:
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeAsyncRedis(server=server)
    writer = fakeredis.FakeRedis(server=server)
    script = writer.register_script(c.WRITE_RANKING_LUA)
    first = script(*c.write_ranking_args(make_ranking()))[0].decode()  # keys, args positional
    hub = Hub(ApiSettings(poll_s=0.05, gc_freeze=False), redis, [fakeredis.FakeAsyncRedis(server=server)])
    await hub.start()
    try:
        await async_wait_until(lambda: hub.live, 10, "the hub's subscription to go live")
        st = await hub.lookup("kospi-surge")
        assert st is not None and st.snapshot is not None and st.snapshot.id == first
        waiter = st.waiter
        second = script(*c.write_ranking_args(make_ranking()))[0].decode()
        assert await asyncio.wait_for(waiter, 5) is Wake.data
        assert [f.id for f in st.ring] == [first, second] and st.snapshot.id == second
        assert await hub.lookup("nope") is None
    finally:
        await hub.aclose()
        await redis.aclose()


async def test_client_behind_the_ring_gets_a_reset() -> None:
    """A client stuck in send while the ring wraps resumes with a reset, not a silent skip."""
    hub = Hub(ApiSettings(ring_size=2), None, None)  # type: ignore[arg-type]
    hub._loop = asyncio.get_running_loop()
    st = hub.state("kospi-surge")
    st.synced = True

    def publish(ms: int) -> None:
        rid = f"{ms}-0"
        doc = c.splice_document(c.encode_body(make_ranking()), rid, ms, "e1")
        st.snapshot = Snapshot(rid, doc, c.decode_ranking(doc))
        st.append(Frame((ms, 0), rid, event_frame("ranking", c.event_id(rid, "e1"), doc), "e1", ms))
        st.wake(Wake.data)

    publish(1)
    bodies: list[bytes] = []
    gate = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message["body"])
            if len(bodies) == 1:
                await gate.wait()  # the first write stalls, like a full socket

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    task = asyncio.create_task(serve_events(hub, st, None, receive, send))
    while not bodies:
        await asyncio.sleep(0)
    for ms in range(2, 7):
        publish(ms)
    gate.set()
    while len(bodies) < 2:
        await asyncio.sleep(0.01)
    assert b"event: snapshot" in bodies[0] and b"id: 1-0@e1" in bodies[0]
    assert bodies[1].startswith(b"id: 6-0@e1\r\nevent: reset\r\n") and b'"reset_reason":"behind"' in bodies[1]
    publish(7)
    while len(bodies) < 3:
        await asyncio.sleep(0.01)
    assert bodies[2].startswith(b"id: 7-0@e1\r\nevent: ranking")
    hub.draining = True
    st.wake(Wake.close)
    await asyncio.wait_for(task, 5)
    assert hub.counters.resets == 1 and not st.clients


async def test_hub_restarts_the_ring_when_the_history_is_replaced() -> None:
    """A new epoch on the channel (FLUSHALL, then a write): the ring restarts, clients are told, no freeze."""
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeAsyncRedis(server=server)
    writer = fakeredis.FakeRedis(server=server)
    script = writer.register_script(c.WRITE_RANKING_LUA)
    first = script(*c.write_ranking_args(make_ranking()))[0].decode()
    hub = Hub(ApiSettings(poll_s=0.05, gc_freeze=False), redis, [fakeredis.FakeAsyncRedis(server=server)])
    await hub.start()
    try:
        await async_wait_until(lambda: hub.live, 10, "the hub's subscription to go live")
        st = await hub.lookup("kospi-surge")
        assert st is not None and [f.id for f in st.ring] == [first]
        generation, old_epoch = st.generation, st.epoch
        writer.flushall()
        fresh = script(*c.write_ranking_args(make_ranking()))[0].decode()
        for _ in range(500):
            if st.snapshot is not None and st.snapshot.id == fresh and st.synced:
                break
            await asyncio.sleep(0.01)
        assert st.generation == generation + 1 and st.epoch != old_epoch
        assert [f.id for f in st.ring] == [fresh] and st.snapshot is not None and st.snapshot.seq == 1
        assert hub.restarts == 1
    finally:
        await hub.aclose()
        await redis.aclose()


async def test_ring_is_bounded_by_bytes_as_well_as_entries() -> None:
    """Issue 10 (8): one huge document cannot grow a replica's memory by the ring's entry count."""
    st = FeedState("kospi-surge", 100, asyncio.get_running_loop(), max_bytes=10_000)

    def frame(ms: int, size: int) -> Frame:
        return Frame((ms, 0), f"{ms}-0", b"x" * size, "e1", ms)

    for ms in range(1, 11):
        assert st.append(frame(ms, 900))
    assert len(st.ring) == 10 and st.ring_bytes == 9_000
    st.append(frame(11, 5_000))  # the oldest frames make room
    assert st.ring_bytes <= 10_000 and st.ring[-1].id == "11-0" and st.ring[0].id == "6-0"
    st.append(frame(12, 15_000))  # larger than the bound alone: kept (the newest is always served), alone
    assert [f.id for f in st.ring] == ["12-0"] and st.ring_bytes == 15_000
    assert st.has((12, 0)) and not st.has((11, 0))
    st.append(frame(13, 100))
    assert [f.id for f in st.ring] == ["13-0"] and st.ring_bytes == 100
    assert not st.append(frame(13, 100))  # an id it already holds is not appended twice
