"""The subscription seam (api/subscription.py) against a real redis-server: messages reach the sink, a killed
connection is reported and re-subscribed. A sharded subscriber must pass the same checks."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff, NoBackoff

from api.subscription import Subscription
from kiwoom_cache import contract as c
from tests.waiting import async_wait_until


class Sink:
    """Records what the subscription tells the hub."""

    def __init__(self) -> None:
        self.draining = False
        self.subscribed_times = 0
        self.messages: list[tuple[bytes, bytes]] = []
        self.errors: list[str] = []

    async def subscribed(self) -> int:
        self.subscribed_times += 1
        return 0

    def message(self, channel: bytes, data: bytes) -> None:
        self.messages.append((channel, data))

    def lost(self, error: str) -> None:
        self.errors.append(error)


async def test_messages_reach_the_sink_and_a_lost_connection_comes_back(redis_url: str) -> None:
    sink = Sink()
    conn = aioredis.Redis.from_url(redis_url, retry=Retry(NoBackoff(), 0))
    admin = redis.Redis.from_url(redis_url)
    sub = Subscription(conn, sink, confirm_s=5.0, backoff=EqualJitterBackoff(cap=0.05, base=0.01))
    task = asyncio.create_task(sub.run())
    try:
        await async_wait_until(lambda: sink.subscribed_times == 1, 10, "subscribed")
        channel = c.updates_channel("kospi-surge")
        await async_wait_until(lambda: admin.publish(channel, b"one") == 1 and sink.messages, 10, "a message")
        assert sink.messages[0] == (channel.encode(), b"one")

        assert admin.client_kill_filter(_type="pubsub") == 1
        await async_wait_until(lambda: sink.subscribed_times == 2, 10, "subscribed again")
        assert len(sink.errors) == 1 and sub.reconnects == 1
        sink.messages.clear()
        await async_wait_until(lambda: admin.publish(channel, b"two") == 1 and sink.messages, 10, "a message again")
        assert sink.messages[0] == (channel.encode(), b"two")
    finally:
        sink.draining = True
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await conn.aclose()
        admin.close()
