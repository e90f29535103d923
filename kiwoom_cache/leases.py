"""Leases: who may write a feed. A publisher's id is the value of every lease it holds (docs/high-availability.md).

Several publishers may run; for each feed one leads. The leader holds the feed's lease (``SET lease id NX PX
ttl``, renewed with its heartbeat) and passes its id to the write script, which refuses the ranking (a ``FENCED``
error) unless the id is the lease's current value. A lease per feed, not one lease mirrored into each feed: the
check and the lease are then the same key in the feed's slot, so the check is exact at the moment the lease
expires and the script still runs on Redis Cluster; a mirror would be copied across slots non-atomically and could
lag the lease it copies.
"""

from __future__ import annotations

import re
import secrets
from enum import StrEnum

from kiwoom_cache.errors import ContractError

__all__ = ["PublisherRole", "check_publisher_id", "new_publisher_id"]

_LEASE_ID_RE = re.compile(r"^[0-9a-z][0-9a-z.-]{0,79}\Z")


def new_publisher_id() -> str:
    """A publisher's id and lease value: 64 random bits, new at every start. No host name in it: the id is shown
    by the public ``/v1/feeds``, the host only in the status inside Redis."""
    return secrets.token_hex(8)


def check_publisher_id(value: str) -> str:
    if not isinstance(value, str) or not _LEASE_ID_RE.match(value):
        raise ContractError(f"invalid publisher id {value!r}: expected 1-80 of [0-9a-z.-]")
    return value




class PublisherRole(StrEnum):
    """Whether a publisher holds the feeds' leases (docs/high-availability.md)."""

    #: Holds every feed's lease: polls Kiwoom and writes.
    leader = "leader"
    #: Watches the leases and sends no TR; takes over when the leader stops renewing.
    standby = "standby"


