"""What the Redis writer reports: its connection state, a ranking written, its counters, a fenced write."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kiwoom_cache.contract import PublisherRole


class WriterState(StrEnum):
    #: Not started yet.
    idle = "idle"
    #: Connected; writes go through.
    connected = "connected"
    #: Redis unreachable; retrying with backoff, keeping the newest ranking per feed.
    disconnected = "disconnected"
    #: Stopped; see ``stats()`` for anything left unsent.
    stopped = "stopped"


@dataclass(frozen=True, slots=True)
class Written:
    feed: str
    id: str
    seq: int
    published_at_ms: int


@dataclass(frozen=True, slots=True)
class WriterStats:
    state: WriterState
    submitted: int
    written: int
    superseded: int
    #: Rankings that could never be written (e.g. not encodable); each was logged.
    rejected: int
    #: Rankings submitted and not yet written, superseded, rejected or fenced, including the one being written
    #: or retried right now, so ``submitted == written + superseded + rejected + fenced + pending`` always holds.
    pending: int
    reconnects: int
    last_error: str | None
    last_written: Written | None
    #: Rankings the write script refused because this publisher no longer held the feed's lease.
    fenced: int = 0
    #: None without a lease policy (a single writer that always writes).
    role: PublisherRole | None = None


class Fenced(Exception):
    """The write script refused the ranking: the feed's lease is not ours."""

    def __init__(self, feed: str, holder: str) -> None:
        super().__init__(f"{feed}: the lease is held by {holder or 'nobody'}")
        self.holder = holder
