"""A WebSocket client and a multiplexed SSE client resume across a replica kill behind nginx: per feed, every
entry of the stream once (compared with XRANGE), none missing, none repeated."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import redis
from httpx_sse import connect_sse

from kiwoom_cache import contract
from stack import nginx
from stack.localredis import free_port
from tests.api.writer import BackgroundWriter, Writer
from tests.api.ws_client import ResumingWs
from tests.tools import Tool, needs
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration,
              needs(Tool.NGINX)]

FEEDS = ["feed-a", "feed-b", "feed-c"]


class ResumingMuxSse(threading.Thread):
    """What EventSource does: on any end of the stream, reconnect with the last id as Last-Event-ID."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.events: list[tuple[str, dict]] = []
        self.hellos: list[str] = []
        self.last_id: str | None = None
        self.error: BaseException | None = None
        self._stop_flag = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        try:
            while not self._stop_flag.is_set():
                headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
                try:
                    with httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0)) as client, \
                            connect_sse(client, "GET", self.url, headers=headers) as source:
                        if source.response.status_code != 200:
                            time.sleep(0.1)
                            continue
                        for event in source.iter_sse():
                            if event.event == "hello":
                                with self.lock:
                                    self.hellos.append(json.loads(event.data)["replica"])
                            elif event.event in ("snapshot", "ranking", "reset"):
                                with self.lock:
                                    self.events.append((event.event, json.loads(event.data)))
                                    self.last_id = event.id
                            if self._stop_flag.is_set():
                                return
                except (httpx.HTTPError, OSError):
                    time.sleep(0.1)
        except BaseException as exc:
            self.error = exc

    def ids(self, feed: str, kinds: tuple[str, ...] = ("ranking",)) -> list[str]:
        with self.lock:
            return [doc["id"] for kind, doc in self.events if doc["feed"] == feed and kind in kinds]

    def stop(self) -> None:
        self._stop_flag.set()


def _check(name: str, client: ResumingMuxSse | ResumingWs, history: dict[str, list[str]]) -> None:
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
        client: ResumingMuxSse | ResumingWs = ResumingWs(base, FEEDS) if transport == "ws" else ResumingMuxSse(mux_url)
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
