"""The writer thread's part in leadership (:mod:`publisher.lease`), mixed into :class:`~publisher.writer.RedisWriter`.

With a :class:`~publisher.lease.LeasePolicy` the thread also takes part in leadership: a standby looks at the leases
every ``check_s``, the leader renews them with its heartbeat, every write carries the lease id, and a write the
script fences is counted (``fenced``) and dropped, never retried as if Redis were down: the publisher lost its
lease and another one writes now. Renewing on the writer's thread ties a lease to the write path's progress.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from kiwoom_cache import contract
from kiwoom_cache.clock import now_ms
from kiwoom_cache.contract import FeedInfo, PublisherRole, PublisherStatus
from kiwoom_cache.errors import ContractError
from publisher.lease import Elector, Fitness

log = logging.getLogger(__name__)


class WriterLeadership:
    """The leases, seen from the writer thread: the role, the feeds led, and telling the publisher of changes."""

    if TYPE_CHECKING:  # set by RedisWriter.__init__
        _client: redis.Redis
        _feeds: list[FeedInfo]
        _ttl_ms: int
        _elector: Elector | None
        _on_leads: Callable[[PublisherRole, frozenset[str]], None] | None
        _announced: frozenset[str]

        def refresh_status(self) -> None: ...

    @property
    def role(self) -> PublisherRole | None:
        return self._elector.role if self._elector is not None else None

    def set_fitness(self, fitness: Fitness) -> None:
        """The publisher's word on whether it may lead (any thread); the leases are looked at again at once."""
        if self._elector is not None and fitness != self._elector.fitness:
            self._elector.fitness = fitness  # one reference swapped: the writer thread sees the old or the new
            self.refresh_status()

    @property
    def leads(self) -> frozenset[str]:
        """The feeds whose lease this publisher holds (every feed without a lease policy)."""
        return self._elector.leads if self._elector is not None else frozenset(f.feed for f in self._feeds)

    @property
    def role_reason(self) -> str | None:
        return self._elector.reason if self._elector is not None else None

    def _lease_tick(self) -> bool:
        """Look at the other publishers and the leases; True if the feeds this publisher leads changed."""
        assert self._elector is not None
        now = now_ms()
        peers: list[PublisherStatus] = []
        stale: list[bytes | str] = []
        for pid, raw in self._client.hgetall(contract.PUBLISHERS_KEY).items():
            try:
                peer = PublisherStatus.decode(raw)
            except ContractError as exc:
                log.warning("ignoring a bad entry %r in %s: %s", pid, contract.PUBLISHERS_KEY, exc)
                continue
            if now - peer.heartbeat_at_ms > self._ttl_ms:
                stale.append(pid)  # silent for longer than the status TTL: gone (the status key would have expired)
            else:
                peers.append(peer)
        if stale:
            self._client.hdel(contract.PUBLISHERS_KEY, *stale)
        self._elector.tick(peers, now)
        return self._announce()

    def _announce(self) -> bool:
        """Tell the publisher when the feeds it leads changed (whatever changed them); True if they did."""
        assert self._elector is not None
        leads = self._elector.leads
        if leads == self._announced:
            return False
        self._announced = leads
        if self._on_leads is not None:
            self._on_leads(self._elector.role, leads)
        return True

    def _hand_over(self) -> None:
        """Graceful stop of the leader: every pending ranking is written, so give the leases to the standby now."""
        assert self._elector is not None
        try:
            self._elector.step_down("stopping: leases released for the standby")
        except redis.RedisError as exc:
            log.warning("could not release the leases (they expire by themselves): %s", exc)
