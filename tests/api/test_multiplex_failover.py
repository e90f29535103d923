"""A WebSocket client and a multiplexed SSE client resume across a replica kill behind nginx: per feed, every
entry of the stream once (compared with XRANGE), none missing, none repeated."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
import redis

from kiwoom_cache import contract
from stack import nginx
from stack.localredis import free_port
from tests.api.sse_client import ResumingSse
from tests.api.writer import BackgroundWriter, Writer
from tests.api.ws_client import ResumingWs
from tests.tools import Tool, needs
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration,
              needs(Tool.NGINX)]

FEEDS = ["feed-a", "feed-b", "feed-c"]


def _check(name: str, client: ResumingSse | ResumingWs, history: dict[str, list[str]]) -> None:
    for feed in FEEDS:
        opened = client.ids(feed, ("snapshot",))
        assert len(opened) == 1, f"{name} {feed}: one snapshot at the start, no reset: {opened}"
        got = client.ids(feed)
        expected = history[feed][history[feed].index(opened[0]) + 1:]
        assert len(got) == len(set(got)), f"{name} {feed}: duplicate ids"
        assert got == expected, f"{name} {feed}: missing {sorted(set(expected) - set(got))[:5]}"


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_resume_across_a_replica_kill_behind_nginx(tmp_path: Path, redis_url: str, replica, transport: str) -> None:
    setup = Writer(redis_url)
    setup.heartbeat()
    for feed in FEEDS:
        setup.register(feed)
        setup.write(feed)
    reps = {rid: replica(redis_url, replica_id=rid) for rid in ("one", "two")}
    port = free_port()
    proxy = nginx.start(tmp_path / "nginx", port, [r.port for r in reps.values()], tmp_path / "nginx.log")
    writers: list[BackgroundWriter] = []
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(base + "/readyz", timeout=2).status_code == 200, what="nginx up")
        mux_url = f"{base}/v1/events?feeds={','.join(FEEDS)}"
        client: ResumingSse | ResumingWs = ResumingWs(base, FEEDS) if transport == "ws" else ResumingSse(mux_url)
        client.start()
        wait_until(lambda: all(client.ids(f, ("snapshot",)) for f in FEEDS), what="a snapshot of every feed")
        writers = [BackgroundWriter(redis_url, feed, period=0.03) for feed in FEEDS]
        for w in writers:
            w.start()
        wait_until(lambda: all(len(client.ids(f)) >= 10 for f in FEEDS), what="live events before the kill")
        serving = client.hellos[-1]
        reps[serving].proc.kill()  # SIGKILL: no goodbye, the connection just drops
        wait_until(lambda: len(client.hellos) >= 2, what="the client reconnected to the survivor")
        assert client.hellos[-1] != serving
        before = {f: len(client.ids(f)) for f in FEEDS}
        wait_until(lambda: all(len(client.ids(f)) >= before[f] + 10 for f in FEEDS), what="live events after")
        history = {}
        for w in writers:
            w.stop()
        r = redis.Redis.from_url(redis_url)
        for feed in FEEDS:
            history[feed] = [i.decode() for i, _ in r.xrange(contract.history_key(feed))]
        r.close()
        wait_until(lambda: all(client.ids(f) and client.ids(f)[-1] == history[f][-1] for f in FEEDS),
                   what="every feed's last entry delivered")
        client.stop()
        assert client.error is None, client.error
        _check(transport, client, history)
    finally:
        for w in writers:
            w.stop_event.set()
        proxy.terminate()
        try:
            proxy.wait(10)
        except subprocess.TimeoutExpired:
            proxy.kill()
        setup.close()
