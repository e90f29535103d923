"""Fixtures for the API tests: real replicas (``python -m api`` under uvicorn) on free ports, a writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from stack.localredis import free_port
from tests.api.writer import Writer
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
#: Defaults for test replicas: fast polls and reconnects; no heartbeat unless a test asks (a silent
#: stream then fails fast on the client's read timeout instead of idling on pings).
TEST_ENV = {
    "KIWOOM_API_PING_S": "60",
    "KIWOOM_API_POLL_S": "0.2",
    "KIWOOM_API_RECONNECT_MIN_S": "0.05",
    "KIWOOM_API_RECONNECT_MAX_S": "0.5",
    "KIWOOM_API_REDIS_TIMEOUT_S": "2",
    "KIWOOM_API_LOG_LEVEL": "info",
}




class Replica:
    """One ``python -m api`` process."""

    def __init__(self, redis_url: str, log_path: Path, env: dict[str, str], nofile: int | None = None, *,
                 host: str = "127.0.0.1", port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        self.log_path = log_path
        full_env = {**os.environ, **TEST_ENV, **env, "KIWOOM_CACHE_REDIS_URL": redis_url,
                    "KIWOOM_API_PORT": str(self.port), "KIWOOM_API_HOST": host}
        self._log = log_path.open("wb")
        # util-linux's prlimit sets the descriptor limit and execs the command (same pid)
        limit = ["prlimit", f"--nofile={nofile}:{nofile}"] if nofile else []
        self.proc = subprocess.Popen([*limit, sys.executable, "-m", "api"], cwd=ROOT, env=full_env, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    # Generous: on a loaded shared machine importing the API alone took 12 s; an exit fails at once anyway.
    def wait_ready(self, timeout: float = 60.0) -> Replica:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica exited: {self.log()}")
            return httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200
        wait_until(ready, timeout, f"replica on {self.port} ready")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metric(self, name: str) -> float:
        text = httpx.get(self.url + "/metrics", timeout=2.0).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def terminate(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)  # a deadline, not a timing claim: a loaded 2-core machine shuts down slowly
        finally:
            self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[Callable[..., Replica]]:
    """Factory: ``replica(redis_url, **env)`` starts a ready replica; all are stopped after the test."""
    made: list[Replica] = []

    def start(redis_url: str, *, ready: bool = True, nofile: int | None = None, **env: str) -> Replica:
        rep = Replica(redis_url, tmp_path / f"replica-{len(made)}.log",
                      {f"KIWOOM_API_{k.upper()}": str(v) for k, v in env.items()}, nofile)
        made.append(rep)
        return rep.wait_ready() if ready else rep

    yield start
    for rep in made:
        rep.stop()


@pytest.fixture
def writer(redis_url: str) -> Iterator[Writer]:
    w = Writer(redis_url)
    w.register()
    w.heartbeat()
    yield w
    w.close()
