"""The local stack on the REST source: the fake Kiwoom REST server feeds the publisher, the replicas serve it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from stack import Stack

pytestmark = pytest.mark.integration


def test_stack_runs_the_rest_source_against_the_fake_server(tmp_path: Path) -> None:
    with Stack(tmp_path, replicas=1, pace="fast", balancer="python", persist=False, source="rest") as stack, \
            httpx.Client(timeout=5) as client:
        assert stack.fake_rest_url is not None
        deadline = time.monotonic() + 30
        while (response := client.get(f"{stack.url}/v1/rankings/kospi-surge")).status_code != 200:
            assert time.monotonic() < deadline, "no ranking from the REST source"
            time.sleep(0.2)
        doc = response.json()
        assert doc["source"] == "rest" and doc["rows"]
        assert stack.dead() == []
    assert stack.fake_rest is not None and stack.fake_rest.poll() is not None, "the fake server stopped with the stack"
