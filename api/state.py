"""What the lifespan owns (Redis clients, the hub), shared by the fast path and the FastAPI routes."""

from __future__ import annotations

import contextlib
import logging

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff

from api.auth import KeyStore
from api.hub import Hub
from api.limits import ConnectionCap
from api.metrics import LatencyHistogram, build_registry
from api.settings import ApiSettings
from kiwoom_cache.connect import async_commands, subscription_clients
from kiwoom_cache.urls import mask_url

log = logging.getLogger(__name__)


class ServiceUnavailable(Exception):
    """The replica cannot answer now (not started, shutting down, or Redis unreachable): 503."""


class AppState:
    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.hub: Hub | None = None
        self.latency = LatencyHistogram()
        #: The connection cap in front of the app (set by api.app), read by the metrics.
        self.cap: ConnectionCap | None = None
        #: The API keys when auth is on (set by api.app); the WebSocket checks keys sent in a message.
        self.keys: KeyStore | None = None
        self.registry = build_registry(lambda: self.hub, self.latency, lambda: self.cap.rejected if self.cap else 0)
        self._clients: list[aioredis.Redis] = []
        self._pools: list[aioredis.ConnectionPool] = []

    def request_exit(self) -> None:
        """The server's exit hook (api.cli): streams end now instead of at the graceful-shutdown timeout."""
        if self.hub is not None:
            self.hub.request_exit()

    def require_hub(self) -> Hub:
        hub = self.hub
        if hub is None or hub.draining:
            raise ServiceUnavailable("replica is not serving (starting or shutting down)")
        return hub

    async def open(self) -> Hub:
        s = self.settings
        redis = self._commands(s.redis_url)
        # The subscription: no hidden retry, so the hub sees every loss and refills its rings from the streams (and
        # the subscription moves to the next node of a cluster at once).
        pubsub_nodes = subscription_clients(
            s.redis_url, socket_connect_timeout=min(2.0, s.redis_timeout_s), socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
        )
        self._clients.extend(pubsub_nodes)
        history_redis = self._commands(s.history_redis_url) if s.history_redis_url else None
        hub = Hub(s, redis, pubsub_nodes, history_redis)
        await hub.start()
        self.hub = hub
        log.info("replica %s serving from %s%s", s.replica_id, mask_url(s.redis_url),
                 f", history from {mask_url(s.history_redis_url)}" if s.history_redis_url else "")
        return hub

    def _commands(self, url: str) -> aioredis.Redis:
        """A command client: a bounded pool (a reconnect storm waits for connections instead of flooding Redis)
        and short retries, so a dead Redis becomes a 503 in well under a second."""
        s = self.settings
        client, pool = async_commands(
            url, max_connections=s.redis_max_connections, timeout=s.redis_timeout_s,
            socket_connect_timeout=min(2.0, s.redis_timeout_s), socket_timeout=s.redis_timeout_s,
            socket_keepalive=True, retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        )
        self._clients.append(client)
        if pool is not None:  # a cluster client owns its pools
            self._pools.append(pool)
        return client

    async def aclose(self) -> None:
        hub, self.hub = self.hub, None
        if hub is not None:
            await hub.aclose()
        for client in self._clients:
            with contextlib.suppress(Exception):
                await client.aclose()
        for pool in self._pools:
            with contextlib.suppress(Exception):
                await pool.aclose()
        self._clients, self._pools = [], []
