"""From a Redis URL to a client, for both sides: a plain ``redis://`` (``rediss://``, ``unix://``) URL, a
Sentinel URL that names the sentinels and the service, so the publisher and the replicas follow a failover, or a
Cluster URL that names some of a Redis Cluster's nodes.

``redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB][?sentinel_username=U&sentinel_password=P]``

``USER:PASSWORD`` log in to the data nodes (the users of deploy/redis-users.acl); ``sentinel_username`` and
``sentinel_password`` to the sentinels, when they have users of their own. Each connection asks the sentinels
for the current primary when it connects, so after a failover the next reconnect reaches the new one.

``redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...][/0]``

Commands go through redis-py's ``RedisCluster``, which routes each key to the node owning its slot: the write
script touches only one feed's keys (``{feed}`` hash tags: one slot), the registry and status keys are single-key
commands, and the non-transactional pipelines are split per node by redis-py. The replica's subscription takes
one plain client per node of the URL and sits on one at a time, moving to the next when it fails: classic
``PUBLISH`` reaches every node of a cluster, replicas included, so one pattern subscription anywhere receives
every feed (docs/scaling.md says what that costs and why it is kept).

Unlike :mod:`kiwoom_cache.contract` this module imports redis-py (a base dependency, pure Python, also on 32-bit
Windows): it is the one place both sides turn a URL into a client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, cast
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelPool
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from kiwoom_cache.errors import ContractError

SENTINEL_SCHEME: Final = "redis+sentinel"
CLUSTER_SCHEME: Final = "redis+cluster"
_SENTINEL_QUERY: Final = frozenset({"sentinel_username", "sentinel_password"})


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    """A parsed Sentinel URL (see the module docstring)."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None

    def node_kwargs(self) -> dict[str, Any]:
        """What each data-node connection logs in with."""
        return {"db": self.db, "username": self.username, "password": self.password}

    def sentinel_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in (("username", self.sentinel_username), ("password", self.sentinel_password)) if v}


def is_sentinel(url: str) -> bool:
    return url.split("://", 1)[0].lower() == SENTINEL_SCHEME


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Parse ``redis+sentinel://…``; a ContractError says what is wrong with it (never echoing a password)."""
    parts, sentinels, user, password = _split(url, SENTINEL_SCHEME, "Sentinel URL", "sentinel")
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ContractError("Sentinel URL: the path must be /SERVICE or /SERVICE/DB")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - _SENTINEL_QUERY
    if unknown:
        raise ContractError(f"Sentinel URL: unsupported query parameter(s) {', '.join(sorted(unknown))}; "
                            f"allowed: {', '.join(sorted(_SENTINEL_QUERY))}")
    return SentinelUrl(sentinels, path[0], int(path[1]) if len(path) == 2 else 0, user, password,
                       query.get("sentinel_username"), query.get("sentinel_password"))


@dataclass(frozen=True, slots=True)
class ClusterUrl:
    """A parsed Cluster URL (see the module docstring)."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None

    def node_kwargs(self) -> dict[str, Any]:
        return {"username": self.username, "password": self.password}


def is_cluster(url: str) -> bool:
    return url.split("://", 1)[0].lower() == CLUSTER_SCHEME


def parse_cluster_url(url: str) -> ClusterUrl:
    """Parse ``redis+cluster://…``; a ContractError says what is wrong with it (never echoing a password)."""
    parts, nodes, user, password = _split(url, CLUSTER_SCHEME, "Cluster URL", "node")
    if parts.path.strip("/") not in ("", "0"):
        raise ContractError("Cluster URL: a cluster has only database 0 (the path must be empty or /0)")
    if parts.query:
        raise ContractError("Cluster URL: no query parameters are supported")
    return ClusterUrl(nodes, user, password)


def _split(url: str, scheme: str, what: str, kind: str) -> tuple[SplitResult, tuple[tuple[str, int], ...],
                                                                 str | None, str | None]:
    """A multi-host URL's parts, its ``HOST:PORT`` list, user and password (either may be absent)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != scheme:
        raise ContractError(f"not a {what}: the scheme must be {scheme}://")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    return parts, _host_ports(hosts, what, kind), unquote(user) or None, unquote(password) if colon else None


def _host_ports(hosts: str, what: str, kind: str) -> tuple[tuple[str, int], ...]:
    found = []
    for host in filter(None, hosts.split(",")):
        name, sep, port = host.rpartition(":")
        if not sep or not port.isdigit() or not name:
            raise ContractError(f"{what}: {host!r} is not HOST:PORT")
        found.append((name.strip("[]"), int(port)))
    if not found:
        raise ContractError(f"{what}: no {kind} HOST:PORT given")
    return tuple(found)


def sync_client(url: str, **kwargs: Any) -> redis.Redis:
    """A client for ``url``; ``kwargs`` (timeouts, retry) apply to every data-node connection."""
    if is_cluster(url):
        parsed_cluster = parse_cluster_url(url)
        # Typed as redis.Redis for the callers: RedisCluster answers every command the publisher sends (see the
        # module docstring); it is no subclass, hence the cast.
        return cast(redis.Redis, RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in parsed_cluster.nodes],
                                              **parsed_cluster.node_kwargs(), **kwargs))
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **kwargs)
    parsed = parse_sentinel_url(url)
    timeouts = {k: v for k, v in kwargs.items() if k in ("socket_timeout", "socket_connect_timeout")}
    manager = Sentinel(parsed.sentinels, sentinel_kwargs={**timeouts, **parsed.sentinel_kwargs()})
    return manager.master_for(parsed.service, **parsed.node_kwargs(), **kwargs)


def subscription_clients(url: str, **kwargs: Any) -> list[aioredis.Redis]:
    """The replica's subscription clients, in the order to try them: for a cluster one plain client per node of
    the URL (any node receives every ``PUBLISH``; see the module docstring); for a plain or a Sentinel URL the one
    client, which reaches the server, or the current primary, on each connect."""
    if is_cluster(url):
        parsed_cluster = parse_cluster_url(url)
        return [aioredis.Redis(host=host, port=port, **parsed_cluster.node_kwargs(), **kwargs)
                for host, port in parsed_cluster.nodes]
    if not is_sentinel(url):
        return [aioredis.Redis.from_url(url, **kwargs)]
    parsed = parse_sentinel_url(url)
    return [_async_manager(parsed, kwargs).master_for(parsed.service, **parsed.node_kwargs(), **kwargs)]


def async_pool(url: str, *, max_connections: int, timeout: float, **kwargs: Any) -> aioredis.ConnectionPool:
    """The replica's command pool: bounded and blocking (a reconnect storm waits for a connection) for a plain
    URL; for Sentinel the sentinel-managed pool, bounded too, which asks for the primary on each connect."""
    if not is_sentinel(url):
        return aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout,
                                                        **kwargs)
    parsed = parse_sentinel_url(url)
    return AsyncSentinelPool(parsed.service, _async_manager(parsed, kwargs), max_connections=max_connections,
                             **parsed.node_kwargs(), **kwargs)


def async_commands(url: str, *, max_connections: int, timeout: float,
                   **kwargs: Any) -> tuple[aioredis.Redis, aioredis.ConnectionPool | None]:
    """The replica's command client and the pool to close with it: over :func:`async_pool` for a plain or a
    Sentinel URL; for a cluster redis-py's ``RedisCluster`` (``max_connections`` per node; it owns its pools)."""
    if is_cluster(url):
        parsed = parse_cluster_url(url)
        cluster = AsyncRedisCluster(startup_nodes=[AsyncClusterNode(h, p) for h, p in parsed.nodes],
                                    max_connections=max_connections, **parsed.node_kwargs(), **kwargs)
        # Typed as aioredis.Redis for the hub: it sends single-key commands and non-transactional pipelines,
        # which RedisCluster routes per slot (see the module docstring).
        return cast(aioredis.Redis, cluster), None
    pool = async_pool(url, max_connections=max_connections, timeout=timeout, **kwargs)
    return aioredis.Redis(connection_pool=pool), pool


def _async_manager(parsed: SentinelUrl, kwargs: dict[str, Any]) -> AsyncSentinel:
    timeouts = {k: v for k, v in kwargs.items() if k in ("socket_timeout", "socket_connect_timeout")}
    return AsyncSentinel(parsed.sentinels, sentinel_kwargs={**timeouts, **parsed.sentinel_kwargs()})
