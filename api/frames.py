"""SSE frames as bytes, built once and shared by every client, and the encodings every transport shares.

The wire format is sse-starlette's (``ServerSentEvent.encode``: ``\\r\\n`` line ends, ``: `` comments);
``tests/api/test_units.py`` pins the equality. The concatenation here skips its StringIO and regex
because a ranking document is one JSON line (json escapes newlines) and ids are ``<ms>-<seq>``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Final

from sse_starlette.event import ServerSentEvent

from api.edge import dumps
from kiwoom_cache.contract import EventName

if TYPE_CHECKING:
    from api.ring import ResetReason, Snapshot

SEP: Final = b"\r\n"
REPLICA_HEADER: Final = b"x-kiwoom-replica"
#: The heartbeat: an SSE comment line, which EventSource ignores, so idle proxies keep the stream open.
KEEPALIVE: Final = ServerSentEvent(comment="ping").encode()


def chunk(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk (RFC 9112 §7.1), the framing uvicorn gives a streamed body: written as
    is to the transport of a caught-up stream (``api.ring.FeedState.push``)."""
    return b"%x\r\n" % len(data) + data + b"\r\n"


KEEPALIVE_CHUNK: Final = chunk(KEEPALIVE)


def event_frame(event: str, event_id: str, data: bytes) -> bytes:
    """``id:``/``event:``/``data:`` frame; ``data`` must be a single line (a compact JSON document)."""
    return b"id: " + event_id.encode() + SEP + b"event: " + event.encode() + SEP + b"data: " + data + SEP + SEP


def hello_frame(replica: str, resumed_from: str | None) -> bytes:
    """First event of every stream: which replica serves it and where it resumed from. It has no ``id:`` line,
    so EventSource's last event id (and hence ``Last-Event-ID`` on the next reconnect) is left untouched."""
    data = dumps({"replica": replica, "resumed_from": resumed_from})
    return b"event: " + EventName.hello.encode() + SEP + b"data: " + data + SEP + SEP


def retry_frame(retry_ms: int, comment: str) -> bytes:
    return ServerSentEvent(comment=comment, retry=retry_ms).encode()


def comment_frame(text: str) -> bytes:
    return ServerSentEvent(comment=text).encode()


def with_field(doc: bytes, name: str, json_value: bytes) -> bytes:
    """Insert ``"name":value`` at the front of a JSON object, as the contract splices ``id``/``seq``."""
    return b'{"' + name.encode() + b'":' + json_value + b"," + doc[1:]


SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]
#: The end of a streamed HTTP body.
END: Final = {"type": "http.response.body", "body": b"", "more_body": False}


@lru_cache(maxsize=8)
def stream_headers(replica_id: str) -> list[tuple[bytes, bytes]]:
    """The headers every event stream of a replica starts with: one list, shared by all its streams (read-only)."""
    return [*SSE_HEADERS, (REPLICA_HEADER, replica_id.encode())]


def reset_data(feed: str, reason: ResetReason, snap: Snapshot | None) -> bytes:
    """A reset's JSON: the snapshot with ``reset_reason`` in front, or just the reason and the feed."""
    if snap is None:
        return b'{"reset_reason":"' + reason.value.encode() + b'","feed":"' + feed.encode() + b'"}'
    return with_field(snap.doc, "reset_reason", b'"' + reason.value.encode() + b'"')


def reset_frame(feed: str, reason: ResetReason, snap: Snapshot | None) -> bytes:
    """The ``reset`` event; with no snapshot it carries no ``id:`` (the resume point stays where it was)."""
    if snap is None:
        return b"event: " + EventName.reset.encode() + SEP + b"data: " + reset_data(feed, reason, None) + SEP + SEP
    return event_frame(EventName.reset, snap.event_id, reset_data(feed, reason, snap))


def event_tail(event: str, data: bytes) -> bytes:
    """An event frame without its ``id:`` line (the multiplexed stream writes its own)."""
    return b"event: " + event.encode() + SEP + b"data: " + data + SEP + SEP
