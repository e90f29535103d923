"""The feeds registry: every configured feed's description under :data:`~kiwoom_cache.keys.FEEDS_KEY`,
so readers list feeds without knowing the publisher's config."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from kiwoom_cache.errors import ContractError
from kiwoom_cache.jsonfields import dumps, required
from kiwoom_cache.keys import FEEDS_KEY, check_feed

__all__ = ["FeedInfo"]


@dataclass(frozen=True, slots=True)
class FeedInfo:
    """One configured feed as registered under :data:`FEEDS_KEY`."""

    feed: str
    title: str
    tr: str
    params: Mapping[str, str]
    interval_s: float

    def encode(self) -> bytes:
        return dumps({"feed": self.feed, "title": self.title, "tr": self.tr, "params": dict(self.params),
                       "interval_s": self.interval_s})

    @classmethod
    def decode(cls, data: bytes | str) -> FeedInfo:
        try:
            doc = json.loads(data)
            return cls(
                feed=check_feed(required(doc, "feed", str)),
                title=required(doc, "title", str),
                tr=required(doc, "tr", str),
                params=required(doc, "params", dict),
                interval_s=required(doc, "interval_s", float),
            )
        except ValueError as exc:
            raise ContractError(f"bad feed description: {exc}", key=FEEDS_KEY) from exc

