"""The subscription seam (api/subscription.py) against a real redis-server: messages reach the sink, a killed
connection is reported and re-subscribed. A sharded subscriber must pass the same checks. With several nodes (a
cluster URL's) it moves to the next at once and backs off only after a full round of failures (stub nodes)."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace
from typing import Any, cast

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import AbstractBackoff, EqualJitterBackoff, NoBackoff

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
    sub = Subscription([conn], sink, confirm_s=5.0, backoff=EqualJitterBackoff(cap=0.05, base=0.01))
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


class StubNode:
    """A node the test takes down and brings up: its pub/sub fails while it is down, as a refused or dropped
    connection does. Every subscription attempt is logged in ``log``."""

    def __init__(self, name: str, log: list[str], *, up: bool) -> None:
        self.name, self.log, self.up = name, log, up
        self.dropped = asyncio.Event()
        self.connection_pool = SimpleNamespace(connection_kwargs={"host": name, "port": 1})

    def pubsub(self) -> StubPubSub:
        return StubPubSub(self)

    def down(self) -> None:
        self.up = False
        self.dropped.set()


class StubPubSub:
    def __init__(self, node: StubNode) -> None:
        self.node = node
        self.confirmed = False

    async def psubscribe(self, pattern: str) -> None:
        self.node.log.append(self.node.name)
        if not self.node.up:
            raise redis.ConnectionError(f"{self.node.name} refused the connection")

    async def get_message(self, ignore_subscribe_messages: bool = False, timeout: float = 0.0) -> dict[str, Any] | None:
        if not self.confirmed:
            self.confirmed = True
            return {"type": "psubscribe", "channel": c.UPDATES_PATTERN.encode(), "data": 1}
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.node.dropped.wait(), timeout)
        if not self.node.up:
            raise redis.ConnectionError(f"{self.node.name} closed the connection")
        return None

    async def ping(self) -> None:
        if not self.node.up:
            raise redis.ConnectionError(f"{self.node.name} closed the connection")

    async def aclose(self) -> None:
        pass


class CountingBackoff(AbstractBackoff):
    """No wait; each use is logged where it happened between the nodes' attempts."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def reset(self) -> None:
        pass

    def compute(self, failures: int) -> float:
        self.log.append(f"backoff {failures}")
        return 0.0


def subscription(nodes: list[StubNode], sink: Sink, log: list[str]) -> Subscription:
    return Subscription(cast(Any, nodes), sink, confirm_s=5.0, backoff=CountingBackoff(log))


class DrainAfter(Sink):
    """Shuts the subscription down at its ``limit``-th failure."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def lost(self, error: str) -> None:
        super().lost(error)
        self.draining = len(self.errors) >= self.limit


async def test_a_failed_node_moves_the_subscription_to_the_next_at_once_and_a_failed_round_backs_off() -> None:
    log: list[str] = []
    sink = DrainAfter(6)
    await asyncio.wait_for(subscription([StubNode(name, log, up=False) for name in "abc"], sink, log).run(), 10)
    assert log == ["a", "b", "c", "backoff 0", "a", "b", "c", "backoff 1"]
    assert len(sink.errors) == 6 and sink.subscribed_times == 0


async def test_the_subscription_moves_off_a_node_that_dies_without_waiting() -> None:
    log: list[str] = []
    a, b, c_ = (StubNode(name, log, up=name == "b") for name in "abc")
    sink = Sink()
    sub = subscription([a, b, c_], sink, log)
    task = asyncio.create_task(sub.run())
    try:
        await async_wait_until(lambda: sink.subscribed_times == 1, 10, "subscribed on b")
        assert log == ["a", "b"] and sub.node == 1
        a.up = True
        b.down()  # c is down too: the subscription goes round to a, still within one round of failures
        await async_wait_until(lambda: sink.subscribed_times == 2, 10, "subscribed again")
        assert log == ["a", "b", "c", "a"] and sub.node == 0 and sub.reconnects == 1
        assert len(sink.errors) == 3, "each failed node is reported to the hub"
    finally:
        sink.draining = True
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_subscription_without_nodes_is_refused() -> None:
    sub = Subscription([], Sink(), confirm_s=1.0, backoff=EqualJitterBackoff(cap=0.05, base=0.01))
    with pytest.raises(ValueError, match="at least one"):
        await sub.run()
