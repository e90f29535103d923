"""nginx follows the replicas as compose's DNS announces them (deploy/nginx.conf: proxy_pass through a variable
and a resolver), under SSE load: a replica added to the name gets new clients, one removed from it loses its
clients to the others, and no client is stuck. A fake DNS server on loopback plays Docker's embedded one;
the replicas listen on 127.0.0.2, .3 and .4 with the same port, as containers would on their own addresses."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
import redis

from kiwoom_cache import contract as c
from stack import nginx
from stack.localredis import free_port
from tests.api.conftest import Replica
from tests.api.sse_client import ResumingSse
from tests.api.writer import DEFAULT_FEED, BackgroundWriter, Writer
from tests.fake_dns import FakeDns
from tests.tools import Tool, needs
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, needs(Tool.NGINX)]
NAME = "api.kiwoom.test"


def test_nginx_follows_replicas_added_and_removed_under_sse_load(tmp_path: Path, redis_url: str) -> None:
    setup = Writer(redis_url)
    setup.register()
    setup.heartbeat()
    setup.write()
    port, lb_port = free_port(), free_port()
    replicas: dict[str, Replica] = {}

    def add(name: str, host: str) -> None:
        replicas[name] = Replica(redis_url, tmp_path / f"{name}.log", {"KIWOOM_API_REPLICA_ID": name},
                                 host=host, port=port).wait_ready()

    with FakeDns() as dns:
        add("a", "127.0.0.2")
        dns.set(NAME, ["127.0.0.2"])
        proxy = nginx.start(tmp_path / "nginx", lb_port, nginx.ByName(NAME, port, f"127.0.0.1:{dns.port}"),
                            tmp_path / "nginx.log")
        base = f"http://127.0.0.1:{lb_port}"
        writer = BackgroundWriter(redis_url, period=0.1)
        clients: list[ResumingSse] = []
        try:
            wait_until(lambda: httpx.get(base + "/readyz", timeout=2).status_code == 200, 30, "nginx up")
            writer.start()
            url = f"{base}/v1/rankings/{DEFAULT_FEED}/events"

            def connect(n: int) -> list[ResumingSse]:
                made = [ResumingSse(url, read_timeout=10.0) for _ in range(n)]
                for client in made:
                    client.start()
                clients.extend(made)
                return made

            first = connect(4)
            wait_until(lambda: all(cl.on() == "a" and len(cl.ids()) >= 3 for cl in first), 30, "clients on a")

            # Scale up: the name gets two more addresses; new clients spread over all three.
            add("b", "127.0.0.3")
            add("c", "127.0.0.4")
            dns.set(NAME, ["127.0.0.2", "127.0.0.3", "127.0.0.4"])
            queries = dns.queries.get(NAME, 0)
            wait_until(lambda: httpx.get(base + "/readyz", timeout=2) and dns.queries.get(NAME, 0) > queries, 30,
                       "nginx asking the DNS again")
            # nginx starts each new connection at a random one of the addresses (it rotates a cached answer), so
            # clients come in batches until both new replicas have some (30 clients miss one with p < 1e-5).
            later: list[ResumingSse] = []
            for _ in range(10):
                batch = connect(3)
                wait_until(lambda b=batch: all(cl.on() for cl in b), 30, "the batch connected")
                later += batch
                if {"b", "c"} <= {cl.on() for cl in later}:
                    break
            assert {"b", "c"} <= {cl.on() for cl in later}, "new clients reach the added replicas"

            # Scale down: "a" leaves the name, then stops; its clients resume on the others.
            dns.set(NAME, ["127.0.0.3", "127.0.0.4"])
            queries = dns.queries.get(NAME, 0)
            wait_until(lambda: httpx.get(base + "/readyz", timeout=2) and dns.queries.get(NAME, 0) > queries, 30,
                       "nginx asking the DNS again")
            replicas.pop("a").stop()
            wait_until(lambda: all(cl.on() in ("b", "c") for cl in clients), 30, "every client off the removed one")
            before = {id(cl): len(cl.ids()) for cl in clients}
            wait_until(lambda: all(len(cl.ids()) >= before[id(cl)] + 3 for cl in clients), 30,
                       "every client still receiving (none stuck)")
            written = writer.stop()
            r = redis.Redis.from_url(redis_url)
            history = [i.decode() for i, _ in r.xrange(c.history_key(DEFAULT_FEED))]
            r.close()
            wait_until(lambda: all(cl.ids() and cl.ids()[-1] == history[-1] for cl in clients), 30,
                       "every client at the last ranking")
        finally:
            for client in clients:
                client.stop()
            writer.stop_event.set()
            proxy.terminate()
            try:
                proxy.wait(10)
            except subprocess.TimeoutExpired:
                proxy.kill()
            for rep in replicas.values():
                rep.stop()
            setup.close()
    assert written, "the writer wrote"
    for client in clients:  # resumed across replicas without a gap or a repeat
        start = history.index(client.ids()[0])
        ids = client.ids()
        assert ids == history[start:start + len(ids)], client.hellos
