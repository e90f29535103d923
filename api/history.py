"""History pages read from the feed's stream (XRANGE / XREVRANGE), bounded and cursor-paginated."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import redis.asyncio as aioredis

from api.replies import stream_entries
from kiwoom_cache import contract
from kiwoom_cache.clock import KST

MAX_SEQ: Final = 18446744073709551615  # the largest sequence part of a stream id


class HistoryQueryError(ValueError):
    def __init__(self, name: str, msg: str, value: object) -> None:
        super().__init__(msg)
        self.name, self.value = name, value


def parse_time(name: str, value: str) -> int:
    """Epoch milliseconds from ``1764050400123`` or ISO 8601 (``2026-11-25T09:00:00+09:00``; naive = KST)."""
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise HistoryQueryError(name, f"{name} must be epoch milliseconds or ISO 8601: {exc}", value) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=KST)
    return int(moment.timestamp() * 1000)


def parse_id(name: str, value: str) -> tuple[int, int]:
    try:
        return contract.parse_stream_id(value.strip())
    except contract.ContractError as exc:
        raise HistoryQueryError(name, exc.reason, value) from exc


def bounds(*, after: str | None, before: str | None, since: str | None,
           until: str | None) -> tuple[str, str]:
    """(min, max) XRANGE arguments; ``after``/``before`` exclusive, ``since``/``until`` inclusive, tightest wins."""
    low, low_arg = (0, 0), "-"
    if since is not None:
        low = (parse_time("since", since), 0)
        low_arg = f"{low[0]}-0"
    if after is not None and parse_id("after", after) >= low:
        low_arg = "(" + after.strip()
    high, high_arg = (MAX_SEQ * 2, 0), "+"
    if until is not None:
        high = (parse_time("until", until), MAX_SEQ)
        high_arg = f"{high[0]}-{MAX_SEQ}"
    if before is not None and parse_id("before", before) <= high:
        high_arg = "(" + before.strip()
    return low_arg, high_arg


async def read_page(redis: aioredis.Redis, feed: str, *, low: str, high: str, limit: int,
                    newest_first: bool) -> tuple[list[bytes], str | None]:
    """Up to ``limit`` validated documents, and the id to continue from (None on the last page)."""
    key = contract.history_key(feed)
    if newest_first:
        entries = stream_entries(await redis.xrevrange(key, high, low, count=limit + 1))
    else:
        entries = stream_entries(await redis.xrange(key, low, high, count=limit + 1))
    more = len(entries) > limit
    entries = entries[:limit]
    docs = []
    for entry_id, fields in entries:
        doc = contract.document_from_entry(entry_id, fields)
        contract.decode_ranking(doc, key=f"{key} {entry_id.decode()}")  # a bad entry is a 502, not a silent skip
        docs.append(doc)
    return docs, entries[-1][0].decode() if more and entries else None
