"""The writer thread's heartbeat, mixed into :class:`~publisher.writer.RedisWriter`: the feeds registry, the
status key (one writer at a time) and this publisher's entry in the publishers hash."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import redis

from kiwoom_cache import contract
from kiwoom_cache.clock import now_ms
from kiwoom_cache.contract import FeedInfo, PublisherRole, PublisherState, PublisherStatus
from publisher.lease import Elector
from publisher.writer_records import WriterState

log = logging.getLogger(__name__)


class StatusHeartbeat:
    """Builds and writes the publisher's status with the writer's own view (connection, role, leases, fences)."""

    if TYPE_CHECKING:  # set by RedisWriter.__init__; role and leads come from WriterLeadership
        _client: redis.Redis
        _feeds: list[FeedInfo]
        _status: Callable[[], PublisherStatus]
        _ttl_ms: int
        _elector: Elector | None
        _status_feed: str | None
        _registered: bool
        _fenced: int

        @property
        def role(self) -> PublisherRole | None: ...

        @property
        def leads(self) -> frozenset[str]: ...

    def _register(self) -> None:
        """The feeds registry: readers list feeds without knowing the publisher's config."""
        if self._feeds:
            self._client.hset(contract.FEEDS_KEY, mapping={f.feed: f.encode() for f in self._feeds})
        self._registered = True

    def _stamped(self, status: PublisherStatus) -> PublisherStatus:
        lead = self._elector.policy.lead if self._elector is not None else None
        return replace(status, heartbeat_at_ms=now_ms(), redis=WriterState.connected.value, role=self.role,
                       fenced=self._fenced, leads=tuple(sorted(self.leads)),
                       may_lead=tuple(sorted(lead)) if lead is not None else None)

    def _writes_status_key(self) -> bool:
        """The status key has one writer at a time: the holder of the first feed's lease (every leader writes its
        own entry in the publishers hash). Without a lease policy: this writer."""
        return self._elector is None or self._status_feed in self._elector.leads

    def _heartbeat(self) -> None:
        """The status key, and the feeds registry again: readers must find it after a FLUSHALL or a restart
        of Redis without persistence, not only after the writer's next reconnect.

        Every publisher with an id heartbeats into the publishers hash, naming the feeds it leads; the status key has
        one writer, the holder of the first feed's lease (:meth:`_writes_status_key`), so two leaders of disjoint
        feeds never overwrite each other's status."""
        status = self._stamped(self._status())
        with self._client.pipeline(transaction=False) as pipe:
            if self._feeds:
                pipe.hset(contract.FEEDS_KEY, mapping={f.feed: f.encode() for f in self._feeds})
            if status.id is not None:
                pipe.hset(contract.PUBLISHERS_KEY, status.id, status.encode())
            if self._writes_status_key():
                pipe.set(contract.STATUS_KEY, status.encode(), px=self._ttl_ms)
            pipe.execute()

    def _final_status(self) -> None:
        status = replace(self._stamped(self._status()), state=PublisherState.stopped)
        try:
            with self._client.pipeline(transaction=False) as pipe:
                if status.id is not None:
                    pipe.hset(contract.PUBLISHERS_KEY, status.id, status.encode())
                if self._writes_status_key():
                    pipe.set(contract.STATUS_KEY, status.encode(), px=self._ttl_ms)
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not write the final status: %s", exc)
