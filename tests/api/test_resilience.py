"""Redis restarts under connected clients, and a client that stops reading."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from tests.api.sse_client import Collector, read_events
from tests.api.writer import Writer
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

EVENTS = "/v1/rankings/kospi-surge/events"


def test_redis_restart_with_clients_connected(own_redis, replica) -> None:
    server = own_redis()
    writer = Writer(server.url)
    writer.register()
    writer.heartbeat()
    first = writer.write()
    rep = replica(server.url)
    connected = Collector(rep.url + EVENTS)
    connected.start()
    wait_until(lambda: connected.has(first), what="snapshot before the outage")
    before = writer.write()
    wait_until(lambda: connected.has(before), what="a live event before the outage")

    server.stop()
    wait_until(lambda: httpx.get(rep.url + "/readyz").status_code == 503, what="readiness false")
    ready = httpx.get(rep.url + "/readyz").json()
    assert ready["ready"] is False and ready["reason"]
    stale = httpx.get(rep.url + "/v1/rankings/kospi-surge")  # stale-if-error: from memory, flagged
    assert stale.status_code == 200 and stale.json()["stale"] is True and stale.json()["id"] == before
    assert httpx.get(rep.url + "/v1/rankings/kospi-surge/history").status_code == 503

    server.start()  # same port and data directory: the stream survives (append-only file)
    during = wait_until(writer.write, what="writer reconnected")  # may land before the resubscribe
    wait_until(lambda: httpx.get(rep.url + "/readyz").status_code == 200, what="readiness back")
    after = [writer.write() for _ in range(3)]
    wait_until(lambda: connected.has(after[-1]), what="events after the restart")
    connected.stop()
    assert connected.ids() == [first, before, during, *after], "a connected client lost or repeated an entry"
    assert rep.metric("kiwoom_api_redis_reconnects_total") >= 1

    # a client that reconnects with its last id gets everything the stream holds after it
    events = read_events(rep.url + EVENTS, 0, headers={"Last-Event-ID": before}, until=lambda e: e.id == after[-1])
    assert [e.id for e in events] == [during, *after]
    writer.close()


def test_slow_client_does_not_delay_others(redis_url: str, writer: Writer, replica) -> None:
    writer.write()
    rep = replica(redis_url, send_timeout_s="1")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window: its socket fills fast
    slow.connect(("127.0.0.1", rep.port))
    slow.sendall(f"GET {EVENTS} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    try:
        wait_until(lambda: rep.metric("kiwoom_api_sse_clients") == 1, what="slow client connected")
        fast = Collector(rep.url + EVENTS)
        fast.start()
        wait_until(lambda: rep.metric("kiwoom_api_sse_clients") == 2, what="fast client connected")
        # ~90 KB per ranking, ~13 MB in all: far more than the slow client's socket buffers hold
        ids = [writer.write(n=400) for _ in range(150)]
        wait_until(lambda: fast.has(ids[-1]), timeout=60, what="the fast client received everything")
        fast.stop()
        got = [e for e in fast.events if e.event == "ranking"]
        assert [e.id for e in got] == ids
        assert [json.loads(e.data)["row_count"] for e in got[:1]] == [400]
        wait_until(lambda: rep.metric("kiwoom_api_sse_dropped_slow_clients_total") >= 1, timeout=60,
                   what="the slow client dropped")
        wait_until(lambda: rep.metric("kiwoom_api_sse_clients") == 1, what="only the fast client left")
        writer.write()  # releases the stopped fast collector
        fast.join(10)
    finally:
        slow.close()
