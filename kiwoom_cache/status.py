"""Publisher status: the heartbeat document every publisher writes, and what readers make of it (liveness).

Written every ``heartbeat_s`` into :data:`~kiwoom_cache.keys.PUBLISHERS_KEY` under the publisher's id and,
by the leader, into :data:`~kiwoom_cache.keys.STATUS_KEY` with a TTL of ``status_ttl_s``: no key means no
publisher (crashed or stopped), while a paused publisher in a quiet market still heartbeats.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from kiwoom_cache.clock import iso_kst
from kiwoom_cache.document import Source
from kiwoom_cache.errors import ContractError
from kiwoom_cache.jsonfields import dumps, required
from kiwoom_cache.keys import STATUS_KEY, check_feed
from kiwoom_cache.leases import PublisherRole, check_publisher_id

__all__ = [
    "DEFAULT_HEARTBEAT_S", "DEFAULT_STATUS_TTL_S", "PUBLISHER_STATES", "AccountMode", "Liveness", "PublisherState",
    "PublisherStatus", "publisher_liveness",
]

DEFAULT_HEARTBEAT_S: Final = 5.0
#: The status key outlives three missed heartbeats, then expires: no key means no publisher.
DEFAULT_STATUS_TTL_S: Final = 15.0



class PublisherState(StrEnum):
    """What a publisher is doing: the status's ``state`` (the operator window and ``/v1/feeds`` show it)."""

    starting = "starting"
    #: Logging in to its source.
    connecting = "connecting"
    #: Not leading: sends no TR (logged in and idle, or logs in when it takes over).
    standby = "standby"
    #: Leading and polling.
    running = "running"
    #: Leading outside trading hours, or waiting out Kiwoom's maintenance: heartbeats, sends no TR.
    paused = "paused"
    #: The source's session is lost; logging in again.
    degraded = "degraded"
    stopping = "stopping"
    #: The final status of a publisher that stopped (readers: dead).
    stopped = "stopped"


#: Every state's value, in the order above.
PUBLISHER_STATES: Final = tuple(s.value for s in PublisherState)
#: States in which a live publisher is not keeping its feeds fresh.
_UNHEALTHY: Final = frozenset({PublisherState.degraded, PublisherState.connecting, PublisherState.starting})


class Liveness(StrEnum):
    """What a reader makes of a publisher's heartbeat (:func:`publisher_liveness`)."""

    #: Heartbeating in time and healthy (also paused in a quiet market).
    alive = "alive"
    #: Heartbeat late, or the publisher says it is not healthy (logging in, session lost).
    stale = "stale"
    #: No heartbeat key, or a final ``stopped`` status.
    dead = "dead"


class AccountMode(StrEnum):
    """Which server the source is logged in to: the status's ``account_mode``."""

    #: Kiwoom's real server.
    real = "real"
    #: 모의투자, Kiwoom's paper-trading server.
    mock = "mock"
    #: The simulated control (no server at all).
    sim = "sim"
    #: A recording played back.
    replay = "replay"


@dataclass(frozen=True, slots=True)
class PublisherStatus:
    """The heartbeat document under :data:`STATUS_KEY` (written with a TTL)."""

    state: PublisherState
    source: Source
    account_mode: AccountMode | None
    version: str
    host: str
    pid: int
    started_at_ms: int
    heartbeat_at_ms: int
    last_success_ms: int | None
    heartbeat_s: float
    session: str | None = None
    message: str | None = None
    redis: str | None = None
    feeds: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: The publisher's id, also its lease value (None: a status written before leases existed).
    id: str | None = None
    role: PublisherRole | None = None
    #: Configured to lead whenever it is healthy (``KIWOOM_PUBLISHER_PREFER_LEADER``).
    preferred: bool = False
    #: Rankings the write script refused because this publisher no longer held the lease.
    fenced: int = 0
    #: How often ``kiwoom-publisher supervise`` restarted this publisher (0 without a supervisor).
    restarts: int = 0
    #: The feeds whose lease this publisher holds now (sorted; empty for a standby).
    leads: tuple[str, ...] = ()
    #: The feeds it may lead (its ``lead`` setting); None: every feed it polls.
    may_lead: tuple[str, ...] | None = None

    def encode(self) -> bytes:
        last = self.last_success_ms
        return dumps({
            "state": self.state, "source": self.source, "account_mode": self.account_mode,
            "version": self.version, "host": self.host, "pid": self.pid,
            "started_at": iso_kst(self.started_at_ms), "started_at_ms": self.started_at_ms,
            "heartbeat_at": iso_kst(self.heartbeat_at_ms), "heartbeat_at_ms": self.heartbeat_at_ms,
            "last_success": iso_kst(last) if last is not None else None, "last_success_ms": last,
            "heartbeat_s": self.heartbeat_s, "session": self.session, "message": self.message,
            "redis": self.redis, "feeds": {k: dict(v) for k, v in self.feeds.items()},
            "id": self.id, "role": self.role.value if self.role else None, "preferred": self.preferred,
            "fenced": self.fenced, "restarts": self.restarts, "leads": list(self.leads),
            "may_lead": list(self.may_lead) if self.may_lead is not None else None,
        })

    @classmethod
    def decode(cls, data: bytes | str) -> PublisherStatus:
        try:
            doc = json.loads(data)
            last = doc.get("last_success_ms")
            if last is not None and not isinstance(last, int):
                raise ContractError("'last_success_ms' must be an integer or null")
            pid_, role, mode = doc.get("id"), doc.get("role"), doc.get("account_mode")
            if pid_ is not None:
                check_publisher_id(pid_)
            fenced = doc.get("fenced", 0)
            if not isinstance(fenced, int) or isinstance(fenced, bool):
                raise ContractError("'fenced' must be an integer")
            restarts = doc.get("restarts", 0)
            if not isinstance(restarts, int) or isinstance(restarts, bool):
                raise ContractError("'restarts' must be an integer")
            may_lead = doc.get("may_lead")
            return cls(
                state=PublisherState(required(doc, "state", str)),
                source=Source(required(doc, "source", str)),
                account_mode=AccountMode(mode) if mode is not None else None,
                version=required(doc, "version", str),
                host=required(doc, "host", str),
                pid=required(doc, "pid", int),
                started_at_ms=required(doc, "started_at_ms", int),
                heartbeat_at_ms=required(doc, "heartbeat_at_ms", int),
                last_success_ms=last,
                heartbeat_s=required(doc, "heartbeat_s", float),
                session=doc.get("session"),
                message=doc.get("message"),
                redis=doc.get("redis"),
                feeds=required(doc, "feeds", dict),
                id=pid_,
                role=PublisherRole(role) if role is not None else None,
                preferred=doc.get("preferred") is True,
                fenced=fenced,
                restarts=restarts,
                leads=_feeds(doc.get("leads", []), "leads"),
                may_lead=_feeds(may_lead, "may_lead") if may_lead is not None else None,
            )
        except ValueError as exc:  # also the enums' ValueError for an unknown state, role or account mode
            raise ContractError(f"bad publisher status: {exc}", key=STATUS_KEY) from exc


def publisher_liveness(status: PublisherStatus | None, now_ms: int) -> Liveness:
    """``dead`` (no heartbeat key), ``stale`` (heartbeat late or publisher not healthy) or ``alive``.

    A quiet market is not staleness: a paused publisher outside trading hours still heartbeats and
    reports ``alive`` with its state ``paused``.
    """
    if status is None or status.state == PublisherState.stopped:
        return Liveness.dead
    late = now_ms - status.heartbeat_at_ms > 2 * status.heartbeat_s * 1000
    if late or status.state in _UNHEALTHY:
        return Liveness.stale
    return Liveness.alive


def _feeds(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ContractError(f"{name!r} must be a list of feeds")
    return tuple(check_feed(f) for f in value)
