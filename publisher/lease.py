"""Leadership among publishers: every feed's lease in Redis, and who should hold them.

Several publishers may run on the same feeds (a second desktop, a REST box); only the one holding the leases
polls Kiwoom and writes. A lease is one key per feed in the feed's hash slot (``contract.lease_key``), set with
``SET key id NX PX ttl`` and renewed with the leader's heartbeat; the write script refuses a ranking whose id is
not the lease's value, so a leader stalled past its TTL writes nothing once it lost the lease (fencing).

A publisher leads only while it holds *all* its feeds' leases: it takes them in sorted order and gives back
the ones it got when another publisher holds one, so two publishers never split the feeds between them.
Everything here runs on the writer thread, on the writer's own Redis connection.
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
    #: May take the leases now (logged in, or a cold standby that logs in on takeover).
    eligible: Callable[[], bool] = lambda: True
    #: Still fit to lead (no lost Kiwoom session); a leader that is not hands over to a ready standby.
    healthy: Callable[[], bool] = lambda: True

    def __post_init__(self) -> None:
        contract.check_publisher_id(self.holder)
        if self.ttl_s <= 0 or self.check_s <= 0:
            raise ValueError("lease TTL and check period must be positive")


class Lease:
    """The leases of a set of feeds, taken and given back together (Redis calls only; no policy)."""

    def __init__(self, client: redis.Redis, feeds: Iterable[str], holder: str, ttl_s: float) -> None:
        self._client = client
        self.keys = [contract.lease_key(f) for f in sorted(feeds)]
        self.holder = holder
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._renew = client.register_script(contract.RENEW_LEASE_LUA)
        self._release = client.register_script(contract.RELEASE_LEASE_LUA)

    def acquire(self) -> bool:
        """Take every lease (``SET NX PX``; one already ours is renewed); all or none."""
        taken: list[str] = []
        for key in self.keys:
            if self._client.set(key, self.holder, nx=True, px=self._ttl_ms) or self._renew_one(key):
                taken.append(key)
                continue
            for got in taken:  # another publisher holds one: give back the rest, stay standby
                self._release(keys=[got], args=[self.holder])
            return False
        return True

    def renew(self) -> bool:
        """Extend every lease; False if any is gone or held by another (leadership is lost)."""
        return all([self._renew_one(key) for key in self.keys])  # a list: renew them all even after a miss

    def release(self) -> None:
        """Give back the leases still ours (graceful hand-over: a standby takes over at its next check)."""
        for key in self.keys:
            self._release(keys=[key], args=[self.holder])

    def _renew_one(self, key: str) -> bool:
        return bool(self._renew(keys=[key], args=[self.holder, self._ttl_ms]))


def alive(peer: PublisherStatus, now_ms: int) -> bool:
    return contract.publisher_liveness(peer, now_ms) is Liveness.alive


class Elector:
    """Decides this publisher's role at each lease check, from the leases and the other publishers' heartbeats."""

    def __init__(self, client: redis.Redis, feeds: Iterable[str], policy: LeasePolicy,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.lease = Lease(client, feeds, policy.holder, policy.ttl_s)
        self.role = PublisherRole.standby
        self._clock = clock
        self._hold_off_until = 0.0
        #: Why the role last changed (logged, and shown in the status message).
        self.reason = "not started"

    @property
    def holder(self) -> str:
        return self.policy.holder

    def tick(self, peers: Iterable[PublisherStatus], now_ms: int) -> PublisherRole:
        others = [p for p in peers if p.id != self.holder and alive(p, now_ms)]
        if self.role is PublisherRole.leader:
            if not self.lease.renew():
                self.lost("the lease was lost (expired or taken over)")
            elif (better := self._better_standby(others)) is not None:
                self.step_down(f"handing over to {better.id} ({'preferred' if better.preferred else 'healthy'})")
        elif self._clock() >= self._hold_off_until and self.policy.eligible():
            if any(p.preferred and not self.policy.preferred for p in self._ready(others)):
                self.reason = "a preferred standby is ready: letting it lead"
            elif self.lease.acquire():
                self._become(PublisherRole.leader, "took every feed's lease")
        return self.role

    def reacquire(self) -> bool:
        """After a fenced write that found *no* holder (the lease expired, e.g. during a Redis outage): take it back."""
        return self.role is PublisherRole.leader and self.lease.acquire()

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
        """A ready standby that should lead instead: a preferred one (we are not), or any while we are unhealthy."""
        sick = not self.policy.healthy()
        for peer in self._ready(others):
            if sick or (peer.preferred and not self.policy.preferred):
                return peer
        return None

    def _become(self, role: PublisherRole, why: str, *, on_purpose: bool = False) -> None:
        self.reason = why
        if role is not self.role:
            # Losing the lead unasked is worth a warning; taking it, or giving it up on purpose, is not.
            level = logging.WARNING if role is PublisherRole.standby and not on_purpose else logging.INFO
            log.log(level, "publisher %s is now %s: %s", self.holder, role.value, why)
            self.role = role
