"""The fan-out writing to caught-up streams itself (``FeedState.push``), driven through ``serve_events`` with a
stand-in for uvicorn's httptools request cycle: its ``send`` frames bodies as chunks on a transport, as
uvicorn's does. Real uvicorn runs the same path in every stream test of tests/api (its default protocol)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.frames import KEEPALIVE_CHUNK, chunk, event_frame
from api.hub import Frame, Hub, ResetReason, Snapshot
from api.settings import ApiSettings
from api.sse import serve_events
from api.wake import Wake
from kiwoom_cache import contract as c
from tests.api.writer import make_ranking

FEED = "kospi-surge"


class Transport:
    """What the hub uses of an asyncio transport; ``buffered`` stands for bytes the kernel did not take."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.buffered = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        assert not self.closing, "wrote to a closed connection"
        self.writes.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str) -> Any:
        return None

    def events(self) -> list[str]:
        """The SSE event names (comments as ``:``) in the chunked body written so far."""
        raw, body = b"".join(self.writes), b""
        while raw:
            size, _, raw = raw.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                body += b"<end>\r\n\r\n"
                break
            body, raw = body + raw[:n], raw[n + 2:]
        names = []
        for block in body.split(b"\r\n\r\n")[:-1]:
            lines = block.split(b"\r\n")
            event = next((ln[7:].decode() for ln in lines if ln.startswith(b"event: ")), None)
            names.append(event or ("<end>" if lines == [b"<end>"] else ":" if lines[0].startswith(b":") else "?"))
        return names


class Cycle:
    """uvicorn's httptools ``RequestResponseCycle`` as far as the replica can see it."""

    def __init__(self) -> None:
        self.transport = Transport()
        self.chunked_encoding: bool | None = None
        self.sends = 0
        self.disconnected = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.chunked_encoding = True
            return
        self.sends += 1
        body = message.get("body", b"")
        if body:
            self.transport.write(chunk(body))
        if not message.get("more_body", False):
            self.transport.write(b"0\r\n\r\n")

    async def receive(self) -> dict[str, Any]:
        await self.disconnected.wait()
        self.transport.closing = True
        return {"type": "http.disconnect"}


async def until(cond: Any, what: str) -> None:
    async with asyncio.timeout(5):
        while not cond():
            await asyncio.sleep(0)
    assert cond(), what


class Feed:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.st = hub.state(FEED)
        self.st.synced = True
        self.ms = 0

    def publish(self, n: int = 1, epoch: str = "e1") -> None:
        for _ in range(n):
            self.ms += 1
            rid = f"{self.ms}-0"
            doc = c.splice_document(c.encode_body(make_ranking()), rid, self.ms, epoch)
            self.st.snapshot = Snapshot(rid, doc, c.decode_ranking(doc))
            self.st.append(Frame((self.ms, 0), rid, event_frame("ranking", c.event_id(rid, epoch), doc), epoch,
                                 self.ms))
        self.st.wake(Wake.data)


@pytest.fixture
async def feed() -> Any:
    hub = Hub(ApiSettings(max_batch=4), None, None)  # type: ignore[arg-type]
    hub._loop = asyncio.get_running_loop()
    f = Feed(hub)
    f.publish()
    yield f
    hub.draining = True
    f.st.wake(Wake.close)


async def connect(feed: Feed, last_event_id: str | None = None) -> tuple[Cycle, asyncio.Task[None]]:
    cycle = Cycle()
    task = asyncio.create_task(serve_events(feed.hub, feed.st, last_event_id, cycle.receive, cycle.send))
    await until(lambda: any(cl.transport is cycle.transport for cl in feed.st.parked), "client parked")
    return cycle, task


async def test_caught_up_clients_get_one_shared_chunk_without_waking_their_tasks(feed: Feed) -> None:
    (a, _), (b, _) = await connect(feed), await connect(feed)
    sends, sent = a.sends + b.sends, feed.hub.counters.events_sent
    feed.publish()
    frame = feed.st.ring[-1]
    assert a.transport.writes[-1] is b.transport.writes[-1] is frame.chunked  # built once, shared
    assert frame.chunked == chunk(frame.data)
    assert a.sends + b.sends == sends and len(feed.st.parked) == 2  # written by the fan-out, tasks asleep
    assert feed.hub.counters.events_sent == sent + 2
    feed.st.wake(Wake.ping)
    assert a.transport.writes[-1] is KEEPALIVE_CHUNK
    assert a.transport.events() == [":", "hello", "snapshot", "ranking", ":"]  # retry:, hello, ...


async def test_several_frames_go_as_one_chunk_and_more_than_a_batch_wake_the_task(feed: Feed) -> None:
    a, _ = await connect(feed)
    feed.publish(3)  # a sync that appended three frames at once
    assert len(a.transport.writes) == 2 and a.transport.events()[-3:] == ["ranking"] * 3
    feed.publish(5)  # more than max_batch: the task sends them in batches, then parks again
    await until(lambda: len(a.transport.events()) == 3 + 3 + 5 and feed.st.parked, "task caught up and re-parked")
    assert b"id: 9-0@e1" in b"".join(a.transport.writes)


async def test_a_client_with_bytes_queued_goes_back_to_its_task(feed: Feed) -> None:
    a, _ = await connect(feed)
    sends = a.sends
    a.transport.buffered = 100
    feed.publish()
    assert not feed.st.parked  # handed back: its send applies uvicorn's flow control and the send timeout
    await until(lambda: a.sends == sends + 1, "the task sent the frame")
    a.transport.buffered = 0
    await until(lambda: bool(feed.st.parked), "parked again")
    feed.publish()
    assert a.transport.events()[-2:] == ["ranking", "ranking"]


async def test_a_new_history_resets_parked_clients_through_their_task(feed: Feed) -> None:
    a, _ = await connect(feed)
    feed.st.restart(ResetReason.epoch)  # the history is gone (FLUSHALL), nothing new written yet
    await until(lambda: "reset" in a.transport.events() and feed.st.parked, "reset sent, parked again")
    feed.publish(epoch="e2")
    assert a.transport.events()[-2:] == ["reset", "ranking"]
    assert b"id: 2-0@e2" in a.transport.writes[-1]


async def test_disconnect_ends_a_parked_stream_and_closed_connections_are_not_written(feed: Feed) -> None:
    a, task = await connect(feed)
    b, _ = await connect(feed)
    a.transport.closing = True  # closed, the server has not told the app yet: skipped, not handed back
    feed.publish()
    assert len(feed.st.parked) == 2 and b.transport.events()[-1] == "ranking"
    a.disconnected.set()
    await asyncio.wait_for(task, 5)
    assert len(feed.st.parked) == 1 and len(feed.st.clients) == 1


async def test_shutdown_ends_parked_streams(feed: Feed) -> None:
    a, task = await connect(feed)
    feed.hub.draining = True
    feed.st.wake(Wake.close)
    await asyncio.wait_for(task, 5)
    assert a.transport.events()[-1] == "<end>" and not feed.st.parked and not feed.st.clients


async def test_without_a_chunked_transport_every_frame_goes_through_send(feed: Feed) -> None:
    bodies: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:  # another server: no transport to write to
        if message["type"] == "http.response.body":
            bodies.append(message["body"])

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    task = asyncio.create_task(serve_events(feed.hub, feed.st, None, receive, send))
    await until(lambda: bool(bodies), "opening written")
    feed.publish()
    await until(lambda: len(bodies) == 2, "ranking sent")
    assert not feed.st.parked and bodies[1].startswith(b"id: 2-0@e1\r\nevent: ranking")
    feed.hub.draining = True
    feed.st.wake(Wake.close)
    await asyncio.wait_for(task, 5)
