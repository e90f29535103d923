"""From a Redis URL to a client, for both sides: a plain ``redis://`` (``rediss://``, ``unix://``) URL, or a
Sentinel URL that names the sentinels and the service, so the publisher and the replicas follow a failover.

``redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB][?sentinel_username=U&sentinel_password=P]``

``USER:PASSWORD`` log in to the data nodes (the users of deploy/redis-users.acl); ``sentinel_username`` and
``sentinel_password`` to the sentinels, when they have users of their own. Each connection asks the sentinels
for the current primary when it connects, so after a failover the next reconnect reaches the new one.

Unlike :mod:`kiwoom_cache.contract` this module imports redis-py (a base dependency, pure Python, also on 32-bit
Windows): it is the one place both sides turn a URL into a client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelPool
from redis.sentinel import Sentinel

from kiwoom_cache.errors import ContractError

SENTINEL_SCHEME: Final = "redis+sentinel"
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
    parts = urlsplit(url)
    if parts.scheme.lower() != SENTINEL_SCHEME:
        raise ContractError(f"not a Sentinel URL: the scheme must be {SENTINEL_SCHEME}://")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    sentinels = []
    for host in filter(None, hosts.split(",")):
        name, sep, port = host.rpartition(":")
        if not sep or not port.isdigit() or not name:
            raise ContractError(f"Sentinel URL: {host!r} is not HOST:PORT")
        sentinels.append((name.strip("[]"), int(port)))
    if not sentinels:
        raise ContractError("Sentinel URL: no sentinel HOST:PORT given")
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ContractError("Sentinel URL: the path must be /SERVICE or /SERVICE/DB")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - _SENTINEL_QUERY
    if unknown:
        raise ContractError(f"Sentinel URL: unsupported query parameter(s) {', '.join(sorted(unknown))}; "
                            f"allowed: {', '.join(sorted(_SENTINEL_QUERY))}")
    return SentinelUrl(tuple(sentinels), path[0], int(path[1]) if len(path) == 2 else 0,
                       unquote(user) or None, unquote(password) if colon else None,
                       query.get("sentinel_username"), query.get("sentinel_password"))


def sync_client(url: str, **kwargs: Any) -> redis.Redis:
    """A client for ``url``; ``kwargs`` (timeouts, retry) apply to every data-node connection."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **kwargs)
    parsed = parse_sentinel_url(url)
    timeouts = {k: v for k, v in kwargs.items() if k in ("socket_timeout", "socket_connect_timeout")}
    manager = Sentinel(parsed.sentinels, sentinel_kwargs={**timeouts, **parsed.sentinel_kwargs()})
    return manager.master_for(parsed.service, **parsed.node_kwargs(), **kwargs)


def async_client(url: str, **kwargs: Any) -> aioredis.Redis:
    """:func:`sync_client` for asyncio (the replica's subscription)."""
    if not is_sentinel(url):
        return aioredis.Redis.from_url(url, **kwargs)
    parsed = parse_sentinel_url(url)
    return _async_manager(parsed, kwargs).master_for(parsed.service, **parsed.node_kwargs(), **kwargs)


def async_pool(url: str, *, max_connections: int, timeout: float, **kwargs: Any) -> aioredis.ConnectionPool:
    """The replica's command pool: bounded and blocking (a reconnect storm waits for a connection) for a plain
    URL; for Sentinel the sentinel-managed pool, bounded too, which asks for the primary on each connect."""
    if not is_sentinel(url):
        return aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout,
                                                        **kwargs)
    parsed = parse_sentinel_url(url)
    return AsyncSentinelPool(parsed.service, _async_manager(parsed, kwargs), max_connections=max_connections,
                             **parsed.node_kwargs(), **kwargs)


def _async_manager(parsed: SentinelUrl, kwargs: dict[str, Any]) -> AsyncSentinel:
    timeouts = {k: v for k, v in kwargs.items() if k in ("socket_timeout", "socket_connect_timeout")}
    return AsyncSentinel(parsed.sentinels, sentinel_kwargs={**timeouts, **parsed.sentinel_kwargs()})
