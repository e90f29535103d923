"""The replica's one Redis subscription: every feed's update channel, handed to the hub message by message.

It sits on one of its node clients at a time (a plain or Sentinel URL gives one; a cluster URL one per node listed,
any of which receives every ``PUBLISH``: kiwoom_cache/connect.py). A failure moves it to the next node at once;
only after every node failed in a row does it wait the shared backoff. After each (re)subscription the hub catches
up from the streams, so nothing is lost while it moves.

This is the seam for another way of subscribing (e.g. Redis Cluster's sharded pub/sub, one SSUBSCRIBE per
shard): a replacement owns its connections the same way and drives the same :class:`SubscriptionSink`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Sequence
from typing import Protocol

import redis.asyncio as aioredis
from redis.backoff import AbstractBackoff
from redis.exceptions import RedisError

from kiwoom_cache import contract

log = logging.getLogger(__name__)

#: Seconds without a message after which the connection is PINGed: a silent peer is only noticed by talking.
_IDLE_PING_S = 5.0


class Step(enum.StrEnum):
    """What the subscription was doing on a node when it failed there (for the log)."""

    SUBSCRIBE = "subscribe"
    CATCH_UP = "catch up from the streams"
    RECEIVE = "receive"


class SubscriptionSink(Protocol):
    """What the subscription tells the hub."""

    #: True once the replica shuts down: the subscription ends.
    draining: bool

    async def subscribed(self) -> int:
        """The subscription is confirmed: catch up with the streams before reporting live; returns the feeds
        caught up."""
        ...

    def message(self, channel: bytes, data: bytes) -> None: ...

    def lost(self, error: str) -> None:
        """The connection failed; the subscription retries after a backoff."""
        ...


class Subscription:
    """Owns the pub/sub connection: PSUBSCRIBE ``kiwoom:{*}:updates`` on one of ``nodes``, move on or reconnect with
    backoff (see the module docstring), hand on messages."""

    def __init__(self, nodes: Sequence[aioredis.Redis], sink: SubscriptionSink, *, confirm_s: float,
                 backoff: AbstractBackoff) -> None:
        self._nodes = nodes
        self._sink = sink
        self._confirm_s = confirm_s
        self._backoff = backoff
        self.reconnects = 0
        #: Index in ``nodes`` of the node the subscription is on, or tries next.
        self.node = 0

    async def run(self) -> None:
        if not self._nodes:
            raise ValueError("the subscription needs at least one Redis client")
        failed = 0  # nodes failed in a row
        connected_before = False
        while not self._sink.draining:
            client = self._nodes[self.node]
            pubsub = client.pubsub()
            step = Step.SUBSCRIBE
            try:
                await pubsub.psubscribe(contract.UPDATES_PATTERN)
                await self._confirm(pubsub)
                step = Step.CATCH_UP  # through the command client: a cluster's other nodes too
                feeds = await self._sink.subscribed()
                if connected_before:
                    self.reconnects += 1
                    log.info("redis subscription restored on %s; %d feeds caught up from their streams",
                             node_name(client), feeds)
                else:
                    log.info("redis subscription on %s", node_name(client))
                connected_before = True
                failed = 0
                step = Step.RECEIVE
                await self._receive(pubsub)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                self._sink.lost(error)
                failed += 1
                self.node = (self.node + 1) % len(self._nodes)
                if failed % len(self._nodes):
                    log.warning("redis subscription on %s lost (%s failed: %s); moving to %s", node_name(client),
                                step, error, node_name(self._nodes[self.node]))
                    continue
                delay = self._backoff.compute(failed // len(self._nodes) - 1)
                log.warning("redis subscription lost (%s failed: %s)%s; retrying %s in %.2fs", step, error,
                            f", on all {len(self._nodes)} nodes in a row" if len(self._nodes) > 1 else "",
                            node_name(self._nodes[self.node]), delay)
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _receive(self, pubsub: aioredis.client.PubSub) -> None:
        idle = 0.0
        while not self._sink.draining:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is None:
                idle += 1.0
                if idle >= _IDLE_PING_S:
                    await pubsub.ping()
                    idle = 0.0
                continue
            idle = 0.0
            if msg["type"] == "pmessage":
                self._sink.message(msg["channel"], msg["data"])

    async def _confirm(self, pubsub: aioredis.client.PubSub) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._confirm_s
        while loop.time() < deadline:
            msg = await pubsub.get_message(timeout=0.5)
            if msg is not None and msg["type"] == "psubscribe":
                return
        raise RedisError("no psubscribe confirmation")


def node_name(client: aioredis.Redis) -> str:
    """Where a subscription client connects, for the logs: ``HOST:PORT``, a socket path or a Sentinel service."""
    pool = client.connection_pool
    service = getattr(pool, "service_name", None)
    if service:
        return f"the primary of Sentinel service {service}"
    kwargs = pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
