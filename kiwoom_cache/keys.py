"""Every key name and id format of the contract: per-feed keys, the global keys, stream and event ids, epochs.

Per feed ``<feed>`` (a slug such as ``kospi-surge``) the keys share the hash tag ``{<feed>}`` so they live in one
Redis Cluster slot and one Lua script may touch them all. Operators type these into ``redis-cli``, so
``tests/test_contract.py`` pins the exact strings.
"""

from __future__ import annotations

import re
import secrets
from typing import Final

from kiwoom_cache.errors import ContractError

__all__ = [
    "FEEDS_KEY", "MAX_ID_PART", "PREFIX", "PUBLISHERS_KEY", "STATUS_KEY", "STREAM_DOC_FIELD", "STREAM_EPOCH_FIELD",
    "STREAM_SEQ_FIELD", "UPDATES_PATTERN", "check_epoch", "check_feed", "epoch_key", "event_id", "feed_of_channel",
    "history_key", "latest_key", "lease_key", "new_epoch", "parse_event_id", "parse_stream_id", "seq_key",
    "updates_channel",
]

PREFIX: Final = "kiwoom"
#: The heartbeat of the publisher leading the first feed (by name); see :mod:`kiwoom_cache.status`.
STATUS_KEY: Final = f"{PREFIX}:publisher:status"
#: Publisher id -> heartbeat JSON of every publisher, leaders and standbys.
PUBLISHERS_KEY: Final = f"{PREFIX}:publishers"
#: Feed -> feed description JSON (:class:`~kiwoom_cache.registry.FeedInfo`).
FEEDS_KEY: Final = f"{PREFIX}:feeds"
STREAM_SEQ_FIELD: Final = "seq"
STREAM_DOC_FIELD: Final = "doc"
STREAM_EPOCH_FIELD: Final = "epoch"
# ASCII classes and \Z: Python's \d takes other scripts' digits and $ a trailing newline.
_FEED_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\Z")
_STREAM_ID_RE = re.compile(r"^([0-9]{1,20})-([0-9]{1,20})\Z")
_EPOCH_RE = re.compile(r"^[0-9a-z]{1,32}\Z")
#: The largest part of a stream id (Redis ids are two unsigned 64-bit integers).
MAX_ID_PART: Final = 2**64 - 1


def check_feed(feed: str) -> str:
    """Return ``feed`` if it is a valid slug (lower-case letters, digits, inner dashes), else raise."""
    if not isinstance(feed, str) or not _FEED_RE.match(feed):
        raise ContractError(f"invalid feed slug {feed!r}: use 1-64 of [a-z0-9-], not starting or ending with '-'")
    return feed


def latest_key(feed: str) -> str:
    return f"{PREFIX}:{{{check_feed(feed)}}}:latest"


def history_key(feed: str) -> str:
    return f"{PREFIX}:{{{check_feed(feed)}}}:history"


def updates_channel(feed: str) -> str:
    return f"{PREFIX}:{{{check_feed(feed)}}}:updates"


def seq_key(feed: str) -> str:
    return f"{PREFIX}:{{{check_feed(feed)}}}:seq"


def epoch_key(feed: str) -> str:
    return f"{PREFIX}:{{{check_feed(feed)}}}:epoch"


def lease_key(feed: str) -> str:
    return f"{PREFIX}:{{{check_feed(feed)}}}:lease"


def feed_of_channel(channel: str | bytes) -> str | None:
    """The feed an updates channel belongs to, or None for any other channel name."""
    text = channel.decode() if isinstance(channel, bytes) else channel
    head, sep, rest = text.partition(":{")
    if head != PREFIX or not sep or not rest.endswith("}:updates"):
        return None
    feed = rest[: -len("}:updates")]
    return feed if _FEED_RE.match(feed) else None


#: Pattern matching every feed's updates channel, for one PSUBSCRIBE per API replica.
UPDATES_PATTERN: Final = f"{PREFIX}:{{*}}:updates"


def parse_stream_id(value: str | bytes) -> tuple[int, int]:
    """``"1764050400123-0"`` -> ``(1764050400123, 0)``; a clear ContractError otherwise."""
    text = value.decode() if isinstance(value, bytes) else value
    match = _STREAM_ID_RE.match(text) if isinstance(text, str) else None
    if not match:
        raise ContractError(f"invalid ranking id {text!r}: expected '<ms>-<seq>' like 1764050400123-0")
    ms, seq = int(match.group(1)), int(match.group(2))
    if ms > MAX_ID_PART or seq > MAX_ID_PART:
        raise ContractError(f"invalid ranking id {text!r}: each part must be at most {MAX_ID_PART}")
    return ms, seq


def check_epoch(epoch: str) -> str:
    if not isinstance(epoch, str) or not _EPOCH_RE.match(epoch):
        raise ContractError(f"invalid epoch {epoch!r}: expected 1-32 of [0-9a-z]")
    return epoch


def event_id(ranking_id: str, epoch: str | None) -> str:
    """The SSE ``id:`` of a ranking: ``<ranking id>@<epoch>`` (just the ranking id for a schema-1 entry)."""
    return ranking_id if epoch is None else f"{ranking_id}@{epoch}"


def parse_event_id(value: str) -> tuple[tuple[int, int], str, str | None]:
    """``Last-Event-ID`` -> (stream id, ranking id, epoch or None); a bare ranking id is accepted too."""
    rid, sep, epoch = value.partition("@")
    sid = parse_stream_id(rid)
    return sid, rid, check_epoch(epoch) if sep else None


def new_epoch() -> str:
    """A random epoch candidate (48 bits, hex): two histories of one feed never share one by chance."""
    return secrets.token_hex(6)
