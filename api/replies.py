"""Typed views of redis-py replies.

redis-py 8 types its replies for both ``decode_responses`` modes (``bytes | str``, and ``None`` where the parser
passes a nil reply through). Every client here is created with ``decode_responses=False`` (:mod:`api.state`), so
the replies hold bytes; these helpers narrow each union once instead of a cast at every call site.
"""

from __future__ import annotations

from typing import TypeAlias, cast

from redis.typing import StreamRangeResponse

#: XRANGE / XREVRANGE entries: ``(entry id, {field: value})``, all bytes.
StreamEntries: TypeAlias = list[tuple[bytes, dict[bytes, bytes]]]


def stream_entries(reply: StreamRangeResponse | None) -> StreamEntries:
    """An XRANGE / XREVRANGE reply (a missing stream is an empty list; a nil reply reads as one too)."""
    return cast(StreamEntries, reply if reply is not None else [])


def bytes_value(reply: bytes | str | None) -> bytes | None:
    """A GET reply: the stored bytes, or None for a missing key."""
    return cast("bytes | None", reply)
