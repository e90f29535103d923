"""KIWOOM_API_WORKERS: several replica processes on one port (SO_REUSEPORT), each with its own subscription."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from api.settings import ApiSettings
from api.workers import reuseport_socket
from tests.api.conftest import ROOT, TEST_ENV
from tests.api.writer import Writer
from tests.procs import children
from tests.waiting import wait_until

SNAPSHOT = "/v1/rankings/kospi-surge"


def test_workers_setting() -> None:
    assert ApiSettings().workers == 1
    assert ApiSettings(workers="auto").workers == len(os.sched_getaffinity(0))
    assert ApiSettings(workers="3").workers == 3
    for bad in ("0", "-1", "many"):
        with pytest.raises(ValidationError, match="workers"):
            ApiSettings(workers=bad)


def test_reuseport_socket_shares_a_port_and_refuses_one_taken_without_it() -> None:
    first = reuseport_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = reuseport_socket("127.0.0.1", port)  # a second worker on the same port
    second.close()
    first.close()
    plain = socket.socket()
    plain.bind(("127.0.0.1", 0))
    plain.listen()
    try:
        with pytest.raises(OSError):
            reuseport_socket("127.0.0.1", plain.getsockname()[1])
    finally:
        plain.close()


@pytest.mark.integration
def test_two_workers_both_serve_and_stop_cleanly(redis_url: str, writer: Writer, replica) -> None:
    rid = writer.write()
    rep = replica(redis_url, workers="2")
    seen: dict[str, int] = {}

    def both_answered() -> bool:
        with httpx.Client() as client:  # a new connection each time: the kernel picks the worker per connection
            response = client.get(rep.url + SNAPSHOT, timeout=5.0)
        assert response.status_code == 200 and response.headers["x-kiwoom-ranking-id"] == rid
        name = response.headers["x-kiwoom-replica"]
        seen[name] = seen.get(name, 0) + 1
        return len(seen) == 2

    wait_until(both_answered, 60, "snapshots from two different workers")
    workers = children(rep.proc.pid)
    assert len(workers) >= 2  # the two workers (multiprocessing may add its resource tracker)
    assert rep.terminate() == 0
    assert rep.log().count("Application shutdown complete") == 2
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), 30, "every worker gone")


@pytest.mark.integration
def test_a_port_in_use_stops_the_parent_with_an_error(redis_url: str) -> None:
    plain = socket.socket()
    plain.bind(("127.0.0.1", 0))
    plain.listen()
    try:
        env = {**os.environ, **TEST_ENV, "KIWOOM_CACHE_REDIS_URL": redis_url, "KIWOOM_API_WORKERS": "2"}
        done = subprocess.run([sys.executable, "-m", "api", "--host", "127.0.0.1", "--port",
                               str(plain.getsockname()[1])], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode != 0
        assert "cannot bind" in done.stderr and "Address already in use" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        plain.close()
