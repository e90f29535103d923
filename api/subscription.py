"""The replica's one Redis subscription: every feed's update channel, handed to the hub message by message.

This is the seam for another way of subscribing (e.g. Redis Cluster's sharded pub/sub, one SSUBSCRIBE per
shard): a replacement owns its connections the same way and drives the same :class:`SubscriptionSink`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

import redis.asyncio as aioredis
from redis.backoff import AbstractBackoff
from redis.exceptions import RedisError

from kiwoom_cache import contract

log = logging.getLogger(__name__)

#: Seconds without a message after which the connection is PINGed: a silent peer is only noticed by talking.
_IDLE_PING_S = 5.0


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
    """Owns the pub/sub connection: PSUBSCRIBE ``kiwoom:{*}:updates``, reconnect with backoff, hand on messages."""

    def __init__(self, redis: aioredis.Redis, sink: SubscriptionSink, *, confirm_s: float,
                 backoff: AbstractBackoff) -> None:
        self._redis = redis
        self._sink = sink
        self._confirm_s = confirm_s
        self._backoff = backoff
        self.reconnects = 0

    async def run(self) -> None:
        failures = 0
        connected_before = False
        while not self._sink.draining:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.psubscribe(contract.UPDATES_PATTERN)
                await self._confirm(pubsub)
                feeds = await self._sink.subscribed()
                if connected_before:
                    self.reconnects += 1
                    log.info("redis subscription restored; %d feeds caught up from their streams", feeds)
                connected_before = True
                failures = 0
                await self._receive(pubsub)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                self._sink.lost(error)
                delay = self._backoff.compute(failures)
                failures += 1
                log.warning("redis subscription lost (%s); retrying in %.2fs", error, delay)
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
