"""SSE frames as bytes, built once and shared by every client.

The wire format is sse-starlette's (``ServerSentEvent.encode``: ``\\r\\n`` line ends, ``: `` comments);
``tests/api/test_units.py`` pins the equality. The concatenation here skips its StringIO and regex
because a ranking document is one JSON line (json escapes newlines) and ids are ``<ms>-<seq>``.
"""

from __future__ import annotations

import json
from typing import Final

from sse_starlette.event import ServerSentEvent

from kiwoom_cache.contract import EventName

SEP: Final = b"\r\n"
#: Event names a client can listen to with ``addEventListener``.
EVENT_SNAPSHOT: Final = EventName.snapshot
EVENT_RANKING: Final = EventName.ranking
EVENT_RESET: Final = EventName.reset
#: First event of every stream: which replica serves it and where it resumed from. It has no ``id:`` line, so
#: EventSource's last event id (and hence ``Last-Event-ID`` on the next reconnect) is left untouched.
EVENT_HELLO: Final = EventName.hello
REPLICA_HEADER: Final = b"x-kiwoom-replica"
PING: Final = ServerSentEvent(comment="ping").encode()


def chunk(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk (RFC 9112 §7.1), the framing uvicorn gives a streamed body: written as
    is to the transport of a caught-up stream (``api.ring.FeedState.push``)."""
    return b"%x\r\n" % len(data) + data + b"\r\n"


PING_CHUNK: Final = chunk(PING)


def event_frame(event: str, event_id: str, data: bytes) -> bytes:
    """``id:``/``event:``/``data:`` frame; ``data`` must be a single line (a compact JSON document)."""
    return b"id: " + event_id.encode() + SEP + b"event: " + event.encode() + SEP + b"data: " + data + SEP + SEP


def hello_frame(replica: str, resumed_from: str | None) -> bytes:
    data = json.dumps({"replica": replica, "resumed_from": resumed_from}, separators=(",", ":")).encode()
    return b"event: " + EVENT_HELLO.encode() + SEP + b"data: " + data + SEP + SEP


def retry_frame(retry_ms: int, comment: str) -> bytes:
    return ServerSentEvent(comment=comment, retry=retry_ms).encode()


def comment_frame(text: str) -> bytes:
    return ServerSentEvent(comment=text).encode()


def with_field(doc: bytes, name: str, json_value: bytes) -> bytes:
    """Insert ``"name":value`` at the front of a JSON object, as the contract splices ``id``/``seq``."""
    return b'{"' + name.encode() + b'":' + json_value + b"," + doc[1:]
