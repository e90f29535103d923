"""The whole system on one machine: Redis, the publisher (simulated Kiwoom), N API replicas, a balancer.

With ``source="rest"`` the publisher runs the REST source against the fake Kiwoom REST server (also a child
process; simulated data, the same market model), to show the Linux path without a Kiwoom app key.

Used by ``scripts/demo.py`` and by the end-to-end tests; development tooling, run from a checkout (not
packaged). Every part is a child process with its log in the data dir, started by :func:`stack.launch.spawn`: in
its own process group so a terminal's Ctrl-C reaches only the demo, which then stops them in dependency order
(:meth:`Stack.stop`), and tied to the demo's life so none outlives it however it ends.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, TypeGuard

import redis

from kiwoom_cache.contract import STATUS_KEY
from stack import nginx
from stack.launch import spawn, terminate
from stack.localredis import LocalRedis, free_port
from stack.redisacl import RedisUsers, Role, prepare

ROOT = Path(__file__).resolve().parent.parent

#: Publisher pacing. "kiwoom": the real limits (each feed every 10 s). "demo": a lively demo; the simulated
#: server still refuses more than 5 TR/s, but Kiwoom's hourly budget is lifted. "fast": for tests.
PACES: dict[str, str] = {
    "kiwoom": "",
    "demo": "tr_limits = [[5, 1.0]]\nsim_limits = [[5, 1.0]]\n",
    "fast": "tr_limits = [[5, 1.0]]\nsim_limits = [[5, 1.0]]\n",
}
#: (feed, title, TR, market, sort or None): the surge feeds, then one feed of every other ranking TR.
_FEEDS = (("kospi-surge", "코스피 거래량급증", "opt10023", "001", "1"),
          ("kosdaq-surge", "코스닥 거래량급증", "opt10023", "101", "1"),
          ("all-surge-rate", "전체 거래량급증률", "opt10023", "000", "2"),
          ("kospi-volume", "코스피 당일거래량상위", "opt10030", "001", "1"),
          ("all-gainers", "전체 상승률상위", "opt10027", "000", "1"),
          ("kosdaq-value", "코스닥 거래대금상위", "opt10032", "101", None))
#: The feed names the stack's publishers serve.
FEED_NAMES: Final = tuple(f[0] for f in _FEEDS)
_INTERVAL = {"kiwoom": 10.0, "demo": 2.0, "fast": 1.0}


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s")


class Replica:
    """One API process; ``name`` is also its KIWOOM_API_REPLICA_ID."""

    def __init__(self, name: str, port: int, env: dict[str, str], log: Path) -> None:
        self.name, self.port, self._env, self._log = name, port, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Replica:
        self.proc = spawn([sys.executable, "-m", "api", "--port", str(self.port)], cwd=ROOT, log=self._log,
                          env={**self._env, "KIWOOM_API_REPLICA_ID": self.name})
        _wait_http(f"{self.url}/healthz", timeout, self.proc)
        return self

    def kill(self) -> None:
        """SIGKILL: a replica dying without a goodbye, as a crash or an OOM kill would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        terminate(self.proc)


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"port {port}: process exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


#: Keys the fake Kiwoom REST server accepts in the demo (it is not Kiwoom; these open nothing).
DEMO_REST_KEYS = {"KIWOOM_PUBLISHER_REST_APPKEY": "demo-appkey", "KIWOOM_PUBLISHER_REST_SECRETKEY": "demo-secretkey"}


class Stack:
    def __init__(self, data_dir: str | Path, *, replicas: int = 2, pace: Literal["kiwoom", "demo", "fast"] = "demo",
                 balancer: Literal["auto", "nginx", "python"] = "auto", redis_port: int | None = None,
                 lb_port: int | None = None, persist: bool = True, redis_users: bool = True,
                 api_env: dict[str, str] | None = None, source: Literal["sim", "rest"] = "sim",
                 publisher_env: dict[str, str] | None = None) -> None:
        self.data = Path(data_dir)
        self.data.mkdir(parents=True, exist_ok=True)
        self.pace = pace
        self.source = source
        self._publisher_env = publisher_env or {}
        self.fake_rest: subprocess.Popen[bytes] | None = None
        self.fake_rest_url: str | None = None
        self._want_balancer = balancer
        #: Least-privilege Redis users (deploy/redis-users.acl), passwords generated once into the data dir.
        self.users: RedisUsers | None = prepare(self.data / "redis-users") if redis_users else None
        self.redis = LocalRedis(self.data / "redis", redis_port, persist=persist,
                                aclfile=self.users.acl_file if self.users else None)
        self.lb_port = lb_port or free_port()
        base = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONUNBUFFERED": "1"}
        self._env = {**base, "KIWOOM_CACHE_REDIS_URL": self.role_url(Role.PUBLISHER)}
        api = {**base, **(api_env or {}), "KIWOOM_CACHE_REDIS_URL": self.role_url(Role.API)}
        self.replicas = [Replica(f"api-{i + 1}", free_port(), api, self.data / f"api-{i + 1}.log")
                         for i in range(replicas)]
        #: Publisher processes by name: ``publisher`` (started by :meth:`start`) and any added standby.
        self.publishers: dict[str, subprocess.Popen[bytes]] = {}
        self._publisher_config = self.data / "publisher.toml"
        self._balancer: subprocess.Popen[bytes] | None = None
        self.balancer: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    @property
    def redis_url(self) -> str:
        """For operators and tests: the admin user's URL when Redis has users."""
        return self.role_url(Role.ADMIN)

    @property
    def publisher(self) -> subprocess.Popen[bytes] | None:
        return self.publishers.get("publisher")

    def role_url(self, role: Role) -> str:
        return self.users.url(self.redis.url, role) if self.users else self.redis.url

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return spawn(argv, cwd=ROOT, env={**self._env, **(env or {})}, log=self.data / f"{name}.log")

    def start_publisher(self, name: str = "publisher", source: Literal["sim", "rest"] | None = None,
                        env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """One more publisher on the same feeds and Redis user (a standby, docs/high-availability.md); its log is
        ``<name>.log``. ``env`` adds ``KIWOOM_PUBLISHER_*`` settings; a REST one uses the fake Kiwoom REST server."""
        if name in self.publishers and _running(self.publishers[name]):
            raise RuntimeError(f"publisher {name} is already running")
        source = source or self.source
        extra = dict(env or {})
        if source == "rest" and self.source != "rest":
            if self.fake_rest_url is None:
                self._start_fake_rest()
            extra = {"KIWOOM_PUBLISHER_REST_BASE_URL": str(self.fake_rest_url),
                     "KIWOOM_PUBLISHER_RESPECT_MARKET_HOURS": "false",
                     "KIWOOM_PUBLISHER_RESPECT_MAINTENANCE": "false", **extra}
        proc = self._spawn(name, [sys.executable, "-m", "publisher", "--source", source, "--headless", "--config",
                                  str(self._publisher_config)], extra)
        self.publishers[name] = proc
        return proc

    def start(self) -> Stack:
        try:
            self.redis.start()
            config = self._publisher_config
            feeds = "".join(f'\n[[feeds]]\nfeed = "{f}"\ntitle = "{t}"\ntr = "{tr}"\nmarket = "{m}"\n'
                            + (f'sort = "{s}"\n' if s else "") + f"interval_s = {_INTERVAL[self.pace]}\n"
                            for f, t, tr, m, s in _FEEDS)
            extra = self._start_fake_rest() if self.source == "rest" else ""
            config.write_text(PACES[self.pace] + extra + feeds, encoding="utf-8")
            self.start_publisher("publisher", env=self._publisher_env)
            for replica in self.replicas:
                replica.start()
            self._start_balancer()
            _wait_http(f"{self.url}/healthz", 30, self._balancer)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_fake_rest(self) -> str:
        """Start the fake Kiwoom REST server; the publisher settings that point the REST source at it."""
        port = free_port()
        self._env.update(DEMO_REST_KEYS)
        self.fake_rest = self._spawn("fake-kiwoom-rest", [sys.executable, "-m", "publisher.sources.rest_fake",
                                                          "--port", str(port)])
        _wait_port(port, 30, self.fake_rest)
        self.fake_rest_url = f"http://127.0.0.1:{port}"
        # The fake market never closes, like the simulated one.
        return f'rest_base_url = "{self.fake_rest_url}"\nrespect_market_hours = false\nrespect_maintenance = false\n'

    def _start_balancer(self) -> None:
        ports = [r.port for r in self.replicas]
        use_nginx = self._want_balancer == "nginx" or (self._want_balancer == "auto" and nginx.find_nginx())
        if use_nginx:
            self._balancer = nginx.start(self.data / "nginx", self.lb_port, ports, self.data / "nginx.log")
            self.balancer = "nginx"
        else:
            self._balancer = self._spawn("balancer", [
                sys.executable, "-m", "stack.balancer", "--listen", str(self.lb_port),
                *[arg for p in ports for arg in ("--backend", f"127.0.0.1:{p}")]])
            self.balancer = "python"

    def dead(self) -> list[str]:
        """Names of parts that exited on their own (the demo watches this)."""
        parts = [*self.publishers.items(), ("balancer", self._balancer), ("redis", self.redis.proc),
                 ("fake-kiwoom-rest", self.fake_rest)]
        return [name for name, proc in parts if proc is not None and proc.poll() is not None]

    def publisher_state(self) -> str | None:
        """The ``state`` in the publisher's status key (None: no key, or Redis does not answer)."""
        try:
            with redis.Redis.from_url(self.redis_url, socket_timeout=2) as client:
                raw = client.get(STATUS_KEY)
        except redis.RedisError:
            return None
        return str(json.loads(raw)["state"]) if raw else None

    def stop(self, say: Callable[[str], None] = lambda _: None) -> None:
        """Stop in dependency order, waiting for each: balancer, replicas, publisher, then Redis.

        Redis goes last so the publisher can flush what it holds and write its ``stopped`` status.
        ``say`` hears one line per part that was running. Safe to call twice.
        """
        if _running(self._balancer):
            terminate(self._balancer)
            say(f"balancer ({self.balancer}) stopped")
        for replica in self.replicas:
            if _running(replica.proc):
                replica.stop()
                say(f"{replica.name} stopped")
        for name, publisher in self.publishers.items():
            if _running(publisher):
                terminate(publisher)
                say(f"{name} stopped (exit {publisher.returncode}); status in Redis: {self.publisher_state()}")
        if _running(self.fake_rest):
            terminate(self.fake_rest)
            say("fake Kiwoom REST server stopped")
        if _running(self.redis.proc):
            self.redis.stop()
            say("Redis stopped" + (f"; data kept in {self.redis.data_dir}" if self.redis.persist else ""))

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _running(proc: subprocess.Popen[bytes] | None) -> TypeGuard[subprocess.Popen[bytes]]:
    return proc is not None and proc.poll() is None
