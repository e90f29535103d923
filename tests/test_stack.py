"""The local stack behind each balancer: requests keep working when a replica dies."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from stack import Stack
from tests.tools import Tool, needs

pytestmark = pytest.mark.integration

BALANCERS = ["python", pytest.param("nginx", marks=needs(Tool.NGINX))]


def wait_for_snapshot(client: httpx.Client, url: str, timeout: float = 20.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(url)
        if response.status_code == 200:
            return response
        time.sleep(0.2)
    raise AssertionError(f"no snapshot at {url}")


@pytest.mark.parametrize("balancer", BALANCERS)
def test_balancer_survives_a_dead_replica(tmp_path: Path, balancer: str) -> None:
    with Stack(tmp_path, replicas=2, pace="fast", balancer=balancer, persist=False) as stack, \
            httpx.Client(timeout=5) as client:
        assert stack.balancer == balancer
        url = f"{stack.url}/v1/rankings/kospi-surge"
        first = wait_for_snapshot(client, url)
        assert first.json()["feed"] == "kospi-surge"
        stack.replicas[0].kill()
        statuses = [client.get(url).status_code for _ in range(6)]
        assert statuses == [200] * 6, "every request after the kill is served by the survivor"
        assert stack.dead() == []
    assert all(r.proc is None or r.proc.poll() is not None for r in stack.replicas), "no orphan replicas"
