"""Unit tests of the connection runtime, the cursor, the ring's frames and the edge module, in-process."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.types import Message

from api.connections import Connections
from api.cursor import FeedCursor, Output
from api.edge import (
    EVENT_ID_PATTERN,
    RANKING_ID_PATTERN,
    ResumeId,
    dumps,
    error_body,
    json_reply,
    last_event_id,
    parse_resume_id,
)
from api.frames import SEP, event_frame, reset_frame
from api.hub import Hub
from api.mux import MuxOutput, fingerprint
from api.ring import FeedState, Frame, ResetReason, Snapshot
from api.runtime import Connection
from api.settings import ApiSettings
from api.ws import WsOutput
from kiwoom_cache import contract as c
from kiwoom_cache.errors import ContractError
from tests.api.writer import make_ranking

FEED = "kospi-surge"


# --- edge --------------------------------------------------------------------------------------------------


def test_one_resume_id_parser() -> None:
    assert parse_resume_id("5-1@e1") == ResumeId("5-1@e1", (5, 1), "5-1", "e1")
    assert parse_resume_id("5-1") == ResumeId("5-1", (5, 1), "5-1", None)
    for bad in ("", "5", "x-1", "5-1@", "5-1@UPPER", "5-1@" + "a" * 33, "1" * 21 + "-0"):
        with pytest.raises(ContractError):
            parse_resume_id(bad)
    import re
    for text in ("5-1@e1", "5-1"):
        assert re.match(EVENT_ID_PATTERN, text)
    for bad in ("", "5", "x-1", "5-1@", "5-1@UPPER", "5-1@" + "a" * 33, "1" * 21 + "-0"):
        assert not re.match(EVENT_ID_PATTERN, bad), "OpenAPI's pattern is the parser's rule"
        assert not re.match(RANKING_ID_PATTERN, bad)
    assert re.match(RANKING_ID_PATTERN, "5-1") and not re.match(RANKING_ID_PATTERN, "5-1@e1")


def test_last_event_id_header_first_then_query_and_blank_is_none() -> None:
    assert last_event_id([(b"last-event-id", b" 5-1@e1 ")], b"last_event_id=9-0") == "5-1@e1"
    assert last_event_id([], b"a=1&last_event_id=8-0&last_event_id=9-0") == "9-0"
    assert last_event_id([(b"last-event-id", b"  ")], b"") is None
    assert last_event_id([], b"") is None


def test_one_json_encoding_and_error_shape() -> None:
    assert dumps({"a": "삼성", "b": [1, 2]}) == '{"a":"삼성","b":[1,2]}'.encode()
    assert json.loads(error_body("nope")) == {"detail": "nope"}
    status, headers, body = json_reply(414, "too long", (b"x-kiwoom-replica", b"r1"), [(b"retry-after", b"1")])
    assert status == 414 and json.loads(body) == {"detail": "too long"}
    assert dict(headers) == {b"content-type": b"application/json", b"content-length": b"%d" % len(body),
                             b"cache-control": b"no-store", b"x-kiwoom-replica": b"r1", b"retry-after": b"1"}


# --- connection accounting ---------------------------------------------------------------------------------


class Pending:
    def __init__(self, conns: Connections) -> None:
        self.conns, self.evicted = conns, False

    def evict(self) -> None:
        self.evicted = True
        self.conns.pending.pop(self, None)


def test_connections_shed_the_oldest_pending_then_refuse() -> None:
    conns = Connections()
    conns.cap = 2
    pending = [Pending(conns) for _ in range(conns.limit)]
    for item in pending:
        assert conns.opened()
        conns.pending[item] = None
    assert conns.counted == 0  # all still sending their request: the cap does not count them
    assert conns.opened()  # past the limit: the oldest pending one is shed
    assert pending[0].evicted and not pending[1].evicted and conns.shed.count == 1
    conns.pending.clear()
    assert not conns.opened() and conns.refused.count == 1  # nobody to shed
    conns.closed()
    assert conns.open == conns.limit + 1


# --- ring frames: the document once, one encoding per transport ---------------------------------------------


def _doc(rid: str, ms: int, epoch: str = "e1") -> bytes:
    return c.splice_document(c.encode_body(make_ranking()), rid, ms, epoch)


def test_a_frame_carries_the_document_and_each_transport_encodes_it_once() -> None:
    doc = _doc("7-0", 7)
    frame = Frame.ranking((7, 0), "7-0", doc, "e1", 7)
    assert frame.doc == doc and frame.event_id == "7-0@e1"
    assert frame.data == event_frame("ranking", "7-0@e1", doc)
    assert frame.mux is None and frame.ws is None and frame.chunked is None


class Sink:
    """An ASGI ``send`` that records what it was given."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)


@pytest.fixture
async def hub() -> Hub:
    hub = Hub(ApiSettings(max_batch=4), None, None)  # type: ignore[arg-type]
    hub._loop = asyncio.get_running_loop()
    return hub


def _feed(hub: Hub, n: int, epoch: str = "e1") -> FeedState:
    st = hub.state(FEED)
    for ms in range(1, n + 1):
        rid = f"{ms}-0"
        doc = _doc(rid, ms, epoch)
        st.snapshot = Snapshot(rid, doc, c.decode_ranking(doc))
        st.append(Frame.ranking((ms, 0), rid, doc, epoch, ms))
    return st


async def test_mux_and_ws_encode_from_the_document_as_the_sse_bytes_say(hub: Hub) -> None:
    st = _feed(hub, 2)
    frames = list(st.ring)
    sink = Sink()
    conn = Connection(hub, sink)
    cur = FeedCursor(hub, st)
    mux = MuxOutput(conn, [FEED], [None])
    await mux.frames(cur, frames)
    expected = b"".join(b"id: " + fingerprint([FEED]).encode() + b":" + f.event_id.encode() + SEP
                        + f.data[f.data.index(SEP) + 2:] for f in frames)  # the SSE frame behind another id line
    assert sink.messages[-1]["body"] == expected
    assert frames[0].mux is not None  # cached: the next client reuses it
    ws = WsOutput(conn)
    await ws.frames(cur, frames[:1])
    message = json.loads(sink.messages[-1]["text"])
    assert message == {"feed": FEED, "event": "ranking", "id": "1-0@e1", "data": json.loads(frames[0].doc)}
    assert frames[0].ws == (sink.messages[-1]["text"], len(sink.messages[-1]["text"].encode()))


# --- the runtime ---------------------------------------------------------------------------------------------


async def test_one_counted_and_timed_send(hub: Hub) -> None:
    seen: list[float] = []
    conn: Connection

    async def send(message: Message) -> None:
        seen.append(conn.client.send_since)

    conn = Connection(hub, send)
    await conn.body(b"12345")
    await conn.text("삼", 0)
    assert conn.client.written == 5 + 3  # bytes, UTF-8
    assert all(since > 0 for since in seen) and conn.client.send_since == 0.0


async def test_the_watch_marks_the_client_gone(hub: Hub) -> None:
    left = asyncio.Event()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    conn = Connection(hub, Sink())
    task = conn.watch(queue.get, left.set)
    await queue.put({"type": "http.request"})
    await queue.put({"type": "http.disconnect"})
    async with asyncio.timeout(5):
        await left.wait()
    await task
    assert conn.client.gone


async def test_leaving_absorbs_only_the_hubs_drop(hub: Hub) -> None:
    async def served(dropped: bool) -> str:
        async with Connection(hub, Sink()) as conn:
            conn.client.dropped = dropped
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(1)
        return "ended"

    assert await asyncio.create_task(served(True)) == "ended"
    other = asyncio.create_task(served(False))
    with pytest.raises(asyncio.CancelledError):
        await other


# --- the cursor ----------------------------------------------------------------------------------------------


class Recorder(Output):
    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    async def snapshot(self, cur: FeedCursor, snap: Snapshot) -> None:
        self.events.append(("snapshot", snap.id))

    async def empty(self, cur: FeedCursor) -> None:
        self.events.append(("empty", None))

    async def reset(self, cur: FeedCursor, reason: ResetReason, snap: Snapshot | None) -> None:
        self.events.append(("reset", reason))

    async def frames(self, cur: FeedCursor, frames: list[Frame]) -> None:
        self.events.append(("frames", [f.id for f in frames]))

    async def resumed(self, cur: FeedCursor) -> None:
        self.events.append(("resumed", None))


async def test_cursor_starts_at_the_snapshot_then_pumps_what_follows(hub: Hub) -> None:
    st = _feed(hub, 3)
    out, cur = Recorder(), FeedCursor(hub, st)
    assert await cur.start(out, None)
    assert not await cur.pump(out, 4)  # caught up
    st.append(Frame.ranking((4, 0), "4-0", _doc("4-0", 4), "e1", 4))
    assert await cur.pump(out, 4)
    assert out.events == [("snapshot", "3-0"), ("frames", ["4-0"])]


async def test_cursor_resumes_from_the_ring_in_batches(hub: Hub) -> None:
    st = _feed(hub, 7)
    out, cur = Recorder(), FeedCursor(hub, st)
    assert await cur.start(out, parse_resume_id("1-0@e1"))
    while await cur.pump(out, 4):
        pass
    assert out.events == [("resumed", None), ("frames", ["2-0", "3-0", "4-0", "5-0"]), ("frames", ["6-0", "7-0"])]


async def test_cursor_resets(hub: Hub) -> None:
    st = _feed(hub, 3)
    out = Recorder()
    assert await FeedCursor(hub, st).start(out, parse_resume_id("2-0@other"))  # another epoch
    behind = FeedCursor(hub, st)
    behind.pos = st.first_pos - 1  # further behind than the ring keeps
    assert await behind.pump(out, 4)
    moved = FeedCursor(hub, st)
    st.restart(ResetReason.epoch)  # the history was lost
    assert await moved.pump(out, 4)
    assert out.events == [("reset", ResetReason.epoch), ("reset", ResetReason.behind), ("reset", ResetReason.epoch)]
    assert hub.counters.resets == 3


async def test_cursor_drops_what_a_replay_already_sent(hub: Hub) -> None:
    st = _feed(hub, 4)
    out, cur = Recorder(), FeedCursor(hub, st)
    cur.pos, cur.last_sid = st.first_pos, (3, 0)  # the replay reached 3-0; the ring still holds 1-0..4-0
    while await cur.pump(out, 2):
        pass
    assert out.events == [("frames", ["4-0"])]  # 1-0..3-0 skipped, nothing written for them


def test_reset_frame_without_a_snapshot_has_no_id() -> None:
    frame = reset_frame(FEED, ResetReason.expired, None)
    assert not frame.startswith(b"id:") and b'"reset_reason":"expired"' in frame
