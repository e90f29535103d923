"""The one stream reader: entries of a feed's history, validated by one rule, for sync, replay and history.

The hub's sync, SSE replay after ``Last-Event-ID`` and the history pages all read the stream through
:func:`read_entries`, so an entry is either good for all three or skipped by all three. The rule
(:func:`validate_entry`): the entry has the contract's fields, the spliced document decodes
(:func:`kiwoom_cache.contract.decode_ranking`) and belongs to this feed. A bad entry is skipped and
reported in :attr:`Page.bad` (the hub counts it and shows it in ``/v1/feeds``); it never fails the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis

from api.replies import StreamEntries, stream_entries
from kiwoom_cache import contract
from kiwoom_cache.errors import ContractError

StreamId = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Entry:
    """One valid stream entry: ids, epoch, seq and the full JSON document (as snapshot and channel carry it)."""

    id: str
    sid: StreamId
    epoch: str | None
    seq: int
    doc: bytes
    ranking: contract.Ranking

    @property
    def event_id(self) -> str:
        return contract.event_id(self.id, self.epoch)


@dataclass(slots=True)
class Page:
    entries: list[Entry] = field(default_factory=list)
    #: Entries Redis returned, valid or not (a full page means there may be more).
    read: int = 0
    #: Id of the last entry read, valid or not: where the next page continues.
    last_id: str | None = None
    #: (entry id, reason) of every skipped entry.
    bad: list[tuple[str, str]] = field(default_factory=list)
    #: Every entry id read, valid or not, in the order Redis returned them.
    ids: list[str] = field(default_factory=list)

    @property
    def by_id(self) -> dict[str, Entry]:
        return {e.id: e for e in self.entries}


def validate_entry(feed: str, entry_id: bytes | str, fields: dict[bytes, bytes]) -> Entry:
    """The one validation rule; raises :class:`ContractError` saying what is wrong."""
    rid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    key = f"{contract.history_key(feed)} {rid}"
    try:
        doc = contract.document_from_entry(rid, fields)
    except ContractError as exc:
        raise ContractError(exc.reason, key=key) from exc
    ranking = contract.decode_ranking(doc, key=key)
    if ranking.feed != feed:
        raise ContractError(f"entry belongs to feed {ranking.feed!r}", key=key)
    return Entry(rid, contract.parse_stream_id(rid), ranking.epoch, ranking.seq or 0, doc, ranking)


def validate_page(feed: str, raw: StreamEntries) -> Page:
    page = Page(read=len(raw), last_id=raw[-1][0].decode() if raw else None)
    for entry_id, fields in raw:
        page.ids.append(entry_id.decode())
        try:
            page.entries.append(validate_entry(feed, entry_id, fields))
        except ContractError as exc:
            page.bad.append((entry_id.decode(), str(exc)))
    return page


async def read_entries(redis: aioredis.Redis, feed: str, *, low: str = "-", high: str = "+", count: int,
                       newest_first: bool = False) -> Page:
    """Up to ``count`` entries between ``low`` and ``high`` (XRANGE syntax: ``-``, ``+``, ``(<id>``)."""
    key = contract.history_key(feed)
    if newest_first:
        raw = stream_entries(await redis.xrevrange(key, high, low, count=count))
    else:
        raw = stream_entries(await redis.xrange(key, low, high, count=count))
    return validate_page(feed, raw)
