"""History pages read from the feed's stream (XRANGE / XREVRANGE), bounded and cursor-paginated.

Entries come through the hub's history reader (``Hub.history``, a :class:`api.reader.StreamReader` on
``KIWOOM_API_HISTORY_REDIS_URL`` or the main Redis): a bad entry is skipped and counted, never a 502 for the page.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Final

from kiwoom_cache import contract
from kiwoom_cache.clock import KST

if TYPE_CHECKING:
    from api.hub import Hub

MAX_SEQ: Final = contract.MAX_ID_PART  # the largest sequence part of a stream id
#: Times are epoch milliseconds, which a stream id's first part holds (at most 2**64 - 1).
MAX_TIME_MS: Final = contract.MAX_ID_PART


class HistoryQueryError(ValueError):
    def __init__(self, name: str, msg: str, value: object) -> None:
        super().__init__(msg)
        self.name, self.value = name, value


def parse_time(name: str, value: str) -> int:
    """Epoch milliseconds from ``1764050400123`` or ISO 8601 (``2026-11-25T09:00:00+09:00``; naive = KST)."""
    text = value.strip()
    if text.isascii() and text.isdigit():
        if len(text) > len(str(MAX_TIME_MS)) or int(text) > MAX_TIME_MS:
            raise HistoryQueryError(name, f"{name} must be at most {MAX_TIME_MS} (epoch milliseconds)", value)
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise HistoryQueryError(name, f"{name} must be epoch milliseconds or ISO 8601: {exc}", value) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=KST)
    try:
        ms = int(moment.timestamp() * 1000)
    except (OverflowError, ValueError, OSError) as exc:
        raise HistoryQueryError(name, f"{name} is out of range: {exc}", value) from exc
    if ms < 0:
        raise HistoryQueryError(name, f"{name} must be at or after 1970-01-01T00:00:00Z", value)
    return ms


def parse_id(name: str, value: str) -> tuple[int, int]:
    try:
        return contract.parse_stream_id(value.strip())
    except contract.ContractError as exc:
        raise HistoryQueryError(name, exc.reason, value) from exc


_EMPTY: Final = ("1-0", "0-0")  # low above high: XRANGE answers an empty list, never an error


def bounds(*, after: str | None, before: str | None, since: str | None,
           until: str | None) -> tuple[str, str]:
    """(min, max) XRANGE arguments; ``after``/``before`` exclusive, ``since``/``until`` inclusive, tightest wins.

    Exclusive bounds become the adjacent inclusive id here, so the edges (``before=0-0``,
    ``after=<max>-<max>``) give an empty page instead of a Redis error.
    """
    low: tuple[int, int] = (0, 0)
    high: tuple[int, int] = (MAX_TIME_MS, MAX_SEQ)
    if since is not None:
        low = max(low, (parse_time("since", since), 0))
    if after is not None:
        ms, seq = parse_id("after", after)
        if (ms, seq) == (MAX_TIME_MS, MAX_SEQ):
            return _EMPTY
        low = max(low, (ms, seq + 1) if seq < MAX_SEQ else (ms + 1, 0))
    if until is not None:
        high = min(high, (parse_time("until", until), MAX_SEQ))
    if before is not None:
        ms, seq = parse_id("before", before)
        if (ms, seq) == (0, 0):
            return _EMPTY
        high = min(high, (ms, seq - 1) if seq > 0 else (ms - 1, MAX_SEQ))
    if low > high:
        return _EMPTY
    low_arg = "-" if low == (0, 0) else f"{low[0]}-{low[1]}"
    high_arg = "+" if high == (MAX_TIME_MS, MAX_SEQ) else f"{high[0]}-{high[1]}"
    return low_arg, high_arg


async def read_page(hub: Hub, feed: str, *, low: str, high: str, limit: int,
                    newest_first: bool) -> tuple[list[bytes], str | None, int]:
    """Up to ``limit`` entries' documents, the id to continue from (None on the last page), and how many
    entries of the page were skipped because they break the contract."""
    page = await hub.history.read(feed, low=low, high=high, count=limit + 1, newest_first=newest_first)
    more = page.read > limit
    cut = page.ids[limit - 1] if more else None
    docs, skipped = [], 0
    for rid in page.ids[:limit]:
        entry = page.by_id.get(rid)
        if entry is None:
            skipped += 1
        else:
            docs.append(entry.doc)
    return docs, cut, skipped
