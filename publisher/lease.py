"""Leadership among publishers: every feed's lease in Redis, and who should hold them.

Several publishers may run on the same feeds (a second desktop, a REST box); only the one holding the leases
polls Kiwoom and writes. A lease is one key per feed in the feed's hash slot (``contract.lease_key``), set with
``SET key id NX PX ttl`` and renewed with the leader's heartbeat; the write script refuses a ranking whose id is
not the lease's value, so a leader stalled past its TTL writes nothing once it lost the lease (fencing).

A publisher may lead the feeds of its ``lead`` setting (default: all it polls) and leads those whose lease it holds.
It takes the leases nobody holds, in sorted order, all of them or none (:class:`Lease`), so two standbys racing for
the same free feeds do not split them, while publishers configured for disjoint feeds lead side by side and a
standby for all of them takes over exactly the feeds of a leader that went away (docs/high-availability.md).
Everything here runs on the writer thread, on the writer's own Redis connection: a leader renews only while its
write path works. The publisher never gets called back for a decision: it pushes its :class:`Fitness` (may it take
leases, is it healthy) whenever its state changes, and hears which feeds it leads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis

from kiwoom_cache import contract
from kiwoom_cache.contract import Liveness, PublisherRole, PublisherState, PublisherStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """How a publisher competes for the leases (the ``lease_*``/``prefer_leader`` settings)."""

    #: The publisher's id: the value of every lease it holds.
    holder: str
    ttl_s: float
    #: How often a standby looks at the leases (the leader renews with its heartbeat instead).
    check_s: float
    #: Lead whenever healthy: a non-preferred leader hands over to a preferred standby that is ready.
    preferred: bool = False
    #: The feeds this publisher may lead (None: every feed it is given).
    lead: frozenset[str] | None = None

    def __post_init__(self) -> None:
        contract.check_publisher_id(self.holder)
        if self.ttl_s <= 0 or self.check_s <= 0:
            raise ValueError("lease TTL and check period must be positive")


class Lease:
    """The leases of the feeds a publisher may lead (Redis calls only; no policy).

    ``held`` is the feeds whose lease this holder has. It takes the leases nobody holds, all of those or none: two
    publishers that race for free leases try them in the same (sorted) order, so the first contested one decides
    and the loser gives back what it got instead of splitting the feeds with the winner.
    """

    def __init__(self, client: redis.Redis, feeds: Iterable[str], holder: str, ttl_s: float) -> None:
        self._client = client
        self.feeds = sorted(feeds)
        self.keys = [contract.lease_key(f) for f in self.feeds]
        self.holder = holder
        self.held: frozenset[str] = frozenset()
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._renew = client.register_script(contract.RENEW_LEASE_LUA)
        self._release = client.register_script(contract.RELEASE_LEASE_LUA)

    def free(self) -> list[str]:
        """The feeds nobody holds a lease on (in order), besides the ones already ours."""
        # One GET per key in a pipeline, not MGET: the keys live in different Cluster slots, and the publisher's
        # ACL user runs GET only (deploy/redis-users.acl).
        with self._client.pipeline(transaction=False) as pipe:
            for key in self.keys:
                pipe.get(key)
            values = pipe.execute()
        return [f for f, v in zip(self.feeds, values, strict=True) if v is None and f not in self.held]

    def acquire(self) -> bool:
        """Take every free lease (``SET NX PX``), all or none of them; True if it took any."""
        taken: list[str] = []
        for feed in self.free():
            if self._client.set(contract.lease_key(feed), self.holder, nx=True, px=self._ttl_ms):
                taken.append(feed)
                continue
            for got in taken:  # another publisher took one first: give back the rest
                self._release(keys=[contract.lease_key(got)], args=[self.holder])
            return False
        self.held |= frozenset(taken)
        return bool(taken)

    def renew(self) -> bool:
        """Extend every lease held; False if any is gone or held by another (those are no longer ours)."""
        kept = frozenset(f for f in sorted(self.held) if self._renew_one(contract.lease_key(f)))
        lost, self.held = self.held - kept, kept
        return not lost

    def release(self) -> None:
        """Give back the leases still ours (graceful hand-over: a standby takes over at its next check)."""
        for feed in sorted(self.held):
            self._release(keys=[contract.lease_key(feed)], args=[self.holder])
        self.held = frozenset()

    def take_back(self) -> frozenset[str]:
        """Take back the leases of ours that expired while nobody else took them (after a Redis outage, a restart
        without persistence); the ones another publisher took meanwhile are no longer held. Returns ``held``."""
        kept = [f for f in sorted(self.held)
                if self._client.set(key := contract.lease_key(f), self.holder, nx=True, px=self._ttl_ms)
                or self._renew_one(key)]
        self.held = frozenset(kept)
        return self.held

    def _renew_one(self, key: str) -> bool:
        return bool(self._renew(keys=[key], args=[self.holder, self._ttl_ms]))


def alive(peer: PublisherStatus, now_ms: int) -> bool:
    return contract.publisher_liveness(peer, now_ms) is Liveness.alive


@dataclass(frozen=True, slots=True)
class Fitness:
    """What the publisher says about itself, pushed to the elector whenever its state changes (never read back
    from the publisher by the writer thread)."""

    #: May take leases now: standing by (logged in, or a cold standby that logs in on takeover), or leading and
    #: at work (it may take feeds nobody leads).
    eligible: bool = True
    #: Still fit to lead (no lost Kiwoom session); a leader that is not hands over to a ready standby.
    healthy: bool = True


class Elector:
    """Decides, at each lease check, which feeds this publisher leads, from the leases and the other publishers'
    heartbeats. It leads (``role``) while it holds any lease."""

    def __init__(self, client: redis.Redis, feeds: Iterable[str], policy: LeasePolicy,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        lead = [f for f in feeds if policy.lead is None or f in policy.lead]
        self.lease = Lease(client, lead, policy.holder, policy.ttl_s)
        #: Replaced as a whole by the publisher's thread (:meth:`publisher.writer_lease.WriterLeadership.set_fitness`).
        self.fitness = Fitness()
        self.role = PublisherRole.standby
        self._clock = clock
        self._hold_off_until = 0.0
        #: Why the role last changed (logged, and shown in the status message).
        self.reason = "not started"

    @property
    def holder(self) -> str:
        return self.policy.holder

    @property
    def leads(self) -> frozenset[str]:
        """The feeds whose lease this publisher holds."""
        return self.lease.held

    def tick(self, peers: Iterable[PublisherStatus], now_ms: int) -> frozenset[str]:
        """Renew, hand over or take leases; returns the feeds led afterwards."""
        others = [p for p in peers if p.id != self.holder and alive(p, now_ms)]
        if self.lease.held:
            if not self.lease.renew():
                self.lost("a lease was lost (expired or taken over)")
                return self.leads
            if (better := self._better_standby(others)) is not None:
                self.step_down(f"handing over to {better.id} ({'preferred' if better.preferred else 'healthy'})")
                return self.leads
        if self._clock() < self._hold_off_until or not self.fitness.eligible:
            return self.leads
        if any(p.preferred and not self.policy.preferred for p in self._ready(others)):
            self.reason = "a preferred standby is ready: letting it lead"
        else:
            before = self.lease.held
            if self.lease.acquire():
                self._become(PublisherRole.leader, f"took the lease of {', '.join(sorted(self.lease.held - before))}")
        return self.leads

    def reacquire(self, feed: str) -> bool:
        """After a fenced write that found *no* holder (the lease expired, e.g. during a Redis outage): take it back."""
        return feed in self.lease.held and feed in self.lease.take_back()

    def lost(self, why: str) -> None:
        self.lease.release()  # the leases still ours, if only some were lost
        self._become(PublisherRole.standby, why)

    def step_down(self, why: str) -> None:
        """Give the leases back on purpose; stay away for one TTL so the other publisher takes them."""
        self.lease.release()
        self._hold_off_until = self._clock() + self.policy.ttl_s
        self._become(PublisherRole.standby, why, on_purpose=True)

    def _ready(self, others: list[PublisherStatus]) -> list[PublisherStatus]:
        return [p for p in others if p.role is PublisherRole.standby and p.state == PublisherState.standby]

    def _better_standby(self, others: list[PublisherStatus]) -> PublisherStatus | None:
        """A ready standby that should lead instead: a preferred one (we are not), or any while we are unhealthy;
        one that may lead every feed we lead (a standby for other feeds cannot take ours)."""
        sick = not self.fitness.healthy
        for peer in self._ready(others):
            covers = peer.may_lead is None or self.lease.held <= set(peer.may_lead)
            if covers and (sick or (peer.preferred and not self.policy.preferred)):
                return peer
        return None

    def _become(self, role: PublisherRole, why: str, *, on_purpose: bool = False) -> None:
        self.reason = why
        if role is not self.role:
            # Losing the lead unasked is worth a warning; taking it, or giving it up on purpose, is not.
            level = logging.WARNING if role is PublisherRole.standby and not on_purpose else logging.INFO
            log.log(level, "publisher %s is now %s: %s", self.holder, role.value, why)
            self.role = role
        elif role is PublisherRole.leader:
            log.info("publisher %s leads %s: %s", self.holder, ", ".join(sorted(self.leads)), why)
