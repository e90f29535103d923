"""Reading a feed's stream from one Redis, with every contract fault counted once.

The hub holds two readers over the same :class:`Faults`: the main one (sync, replay after Last-Event-ID), which
must see at least what the subscription saw, and the history one (``/v1/rankings/{feed}/history``), which may
be a Redis replica (``KIWOOM_API_HISTORY_REDIS_URL``): a page read from a replica that lags by a few entries is
still a correct page, while a replay that lags would leave a gap before the ring.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from api.ring import FeedState
from api.stream import Page, read_entries
from kiwoom_cache import contract
from kiwoom_cache.errors import ContractError

log = logging.getLogger(__name__)

#: Distinct bad stream entries remembered per replica, so re-reading one is not counted again.
_BAD_IDS_KEPT = 1024


class Faults:
    """Contract violations this replica saw: counted (metric), and the last one per feed shown in /v1/feeds."""

    def __init__(self, state: Callable[[str], FeedState]) -> None:
        self.count = 0
        #: The feed's state (created on first use): where a feed's faults are shown.
        self.state = state
        self._bad_ids: OrderedDict[tuple[str, str], None] = OrderedDict()

    def report(self, st: FeedState, reason: str, what: str) -> None:
        self.count += 1
        st.bad_entries += 1
        st.error = reason
        log.warning("feed %s: ignoring bad %s: %s", st.feed, what, reason)

    def report_entries(self, feed: str, bad: list[tuple[str, str]]) -> None:
        """Skipped stream entries, each counted the first time any reader meets it."""
        st = self.state(feed)
        for rid, reason in bad:
            key = (feed, rid)
            if key in self._bad_ids:
                continue
            self._bad_ids[key] = None
            if len(self._bad_ids) > _BAD_IDS_KEPT:
                self._bad_ids.popitem(last=False)
            self.report(st, reason, f"stream entry {rid}")


class StreamReader:
    """:func:`api.stream.read_entries` on one Redis, with every skipped entry counted once and shown in /v1/feeds."""

    def __init__(self, redis: aioredis.Redis, faults: Faults) -> None:
        self.redis = redis
        self._faults = faults

    async def read(self, feed: str, *, low: str = "-", high: str = "+", count: int,
                   newest_first: bool = False) -> Page:
        try:
            page = await read_entries(self.redis, feed, low=low, high=high, count=count, newest_first=newest_first)
        except ResponseError as exc:
            if not str(exc).startswith("WRONGTYPE"):
                raise
            # Redis is up; the key holds something else. A contract fault (502, /v1/feeds shows it), not a 503.
            st, reason = self._faults.state(feed), f"{contract.history_key(feed)} is not a stream"
            if st.error != reason:
                self._faults.report(st, reason, "history key")
            raise ContractError(reason) from exc
        if page.bad:
            self._faults.report_entries(feed, page.bad)
        return page
