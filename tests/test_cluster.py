"""Both sides against a Redis Cluster: three primaries on loopback (stack/cluster.py), the publisher writing three
feeds whose keys live on three different nodes, two API replicas on a ``redis+cluster://`` URL, each on its user
of deploy/redis-users.acl, unchanged. A multiplexed
SSE client resumes from one replica on the other: per feed one snapshot, then exactly the stream's entries.

The subscription stays classic pub/sub (kiwoom_cache/connect.py): each node receives every PUBLISH over the
cluster bus, which the test measures and prints (docs/scaling.md quotes it, ``pytest -s``).

With a replica per primary, the primary the subscription sits on (the URL's first node) is SIGKILLed: its replica
is promoted, the publisher writes on, the subscription moves to the next node and the client misses nothing. The
failover figures are printed (docs/scaling.md quotes them).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from redis.cluster import key_slot

from api.subscription import node_name
from kiwoom_cache import contract as c
from kiwoom_cache.connect import parse_cluster_url, subscription_clients, sync_client
from kiwoom_cache.errors import ContractError
from stack.cluster import LocalCluster
from stack.launch import terminate
from stack.redisacl import Role, prepare
from tests import sim_publisher
from tests.api.conftest import Replica
from tests.api.sse_client import ResumingSse
from tests.test_doctor import assert_publisher_user_passes
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
#: One feed on each primary's slot range (checked below).
FEEDS = ("feed-a", "feed-c", "feed-b")
#: CLUSTER INFO's count of PUBLISH messages a node got from the others over the cluster bus.
PUBLISH_RECEIVED = "cluster_stats_messages_publish_received"
#: The failover test's node timeout: a primary is failed (and its replica elected) this long after it went silent.
NODE_TIMEOUT_MS = 1000


def test_cluster_url_parses_and_refuses_what_it_cannot_use() -> None:
    parsed = parse_cluster_url("redis+cluster://kiwoom-api:p%40ss@10.0.0.1:7000,[::1]:7001/0")
    assert parsed.nodes == (("10.0.0.1", 7000), ("::1", 7001))
    assert (parsed.username, parsed.password) == ("kiwoom-api", "p@ss")
    for bad, why in [("redis+cluster:///", "no node"), ("redis+cluster://h/0", "HOST:PORT"),
                     ("redis+cluster://h:1/2", "only database 0"), ("redis+cluster://h:1?ssl=true", "no query"),
                     ("redis://h:1", "not a Cluster URL")]:
        with pytest.raises(ContractError, match=why):
            parse_cluster_url(bad)


async def test_the_subscription_gets_a_client_per_node_in_the_urls_order() -> None:
    """What the subscription rotates over: each node the URL lists, as listed, logged in as the URL's user; one
    client for a plain or a Sentinel URL."""
    clients = subscription_clients("redis+cluster://kiwoom-api:pw@10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:7002")
    try:
        assert [node_name(n) for n in clients] == ["10.0.0.1:7000", "10.0.0.2:7001", "10.0.0.3:7002"]
        assert {n.connection_pool.connection_kwargs["username"] for n in clients} == {"kiwoom-api"}
    finally:
        for client in clients:
            await client.aclose()
    for url in ("redis://127.0.0.1:6379/0", "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/kiwoom/0"):
        single = subscription_clients(url)
        assert len(single) == 1
        await single[0].aclose()


def test_cluster_of_three_primaries_serves_several_feeds_with_resume_across_replicas(tmp_path: Path) -> None:
    with LocalCluster(tmp_path / "cluster", users=prepare(tmp_path / "users")) as cluster:
        ranges = cluster.slot_ranges()
        owners = {next(n for n, (lo, hi) in enumerate(ranges) if lo <= key_slot(c.history_key(f).encode()) <= hi)
                  for f in FEEDS}
        assert owners == {0, 1, 2}, "the feeds are spread over every primary"
        published = {n: int(cluster.info(node).get(PUBLISH_RECEIVED, 0)) for n, node in enumerate(cluster.nodes)}
        publisher = sim_publisher.start(cluster.url(Role.PUBLISHER), tmp_path, FEEDS)
        replicas = [Replica(cluster.url(Role.API), tmp_path / f"api-{i}.log", {"KIWOOM_API_REPLICA_ID": f"r{i}"})
                    for i in (1, 2)]
        client = ResumingSse(f"{replicas[0].url}/v1/events?feeds={','.join(FEEDS)}")
        admin = sync_client(cluster.url(Role.ADMIN), socket_timeout=2)
        try:
            for replica in replicas:
                replica.wait_ready()
            wait_until(lambda: {f["feed"] for f in httpx.get(f"{replicas[1].url}/v1/feeds", timeout=5).json()
                                ["feeds"]} >= set(FEEDS), 60, "the registry (another slot) lists every feed")
            # Every feed holds a ranking before the client comes, so each stream opens with its snapshot (a feed
            # listed by the heartbeat before its first ranking would open with a plain ranking event instead).
            wait_until(lambda: all(httpx.get(f"{replicas[0].url}/v1/rankings/{f}", timeout=5).status_code == 200
                                   for f in FEEDS), 60, "a snapshot of every feed on r1")
            client.start()
            wait_until(lambda: all(len(client.ids(f)) >= 3 for f in FEEDS), 60, "rankings of every feed on r1")
            replicas[0].stop()  # the client resumes on the other replica with its Last-Event-ID
            client.url = f"{replicas[1].url}/v1/events?feeds={','.join(FEEDS)}"
            wait_until(lambda: client.on() == "r2", 60, "the client resumed on r2")
            before = {f: len(client.ids(f)) for f in FEEDS}
            wait_until(lambda: all(len(client.ids(f)) >= before[f] + 3 for f in FEEDS), 60, "rankings after resuming")
            terminate(publisher)
            history = {f: [i.decode() for i, _ in admin.xrange(c.history_key(f))] for f in FEEDS}
            wait_until(lambda: all(client.ids(f)[-1] == history[f][-1] for f in FEEDS), 30, "the last entries")
            received = {n: int(cluster.info(node).get(PUBLISH_RECEIVED, 0)) - published[n]
                        for n, node in enumerate(cluster.nodes)}
        finally:
            client.stop()
            client.join(10)
            terminate(publisher)
            for replica in replicas:
                replica.stop()
            admin.close()
    assert_each_feed_got_its_stream(client, history)
    for log in [tmp_path / "publisher.log", *(r.log_path for r in replicas)]:
        assert "NOPERM" not in log.read_text(errors="replace"), log
    written = sum(len(h) for h in history.values())
    # Classic PUBLISH is broadcast: the nodes that do not own a feed's slot receive its messages too.
    print(f"\nclassic pub/sub over the cluster bus: {written} rankings written, PUBLISH messages received per "
          f"node {received}")
    assert all(count > 0 for count in received.values())


def assert_each_feed_got_its_stream(client: ResumingSse, history: dict[str, list[str]]) -> None:
    """Per feed one snapshot and no reset, then exactly the stream's entries after it, once, in order."""
    assert client.error is None, client.error
    for feed, entries in history.items():
        snapshots = client.ids(feed, ("snapshot",))
        assert len(snapshots) == 1 and not client.documents(feed, ("reset",)), f"{feed}: one snapshot, no reset"
        got = client.ids(feed)
        start = entries.index(snapshots[0]) + 1
        assert got == entries[start:start + len(got)], f"{feed}: the stream's entries, once, in order"


def stream_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def test_a_primary_failing_over_loses_no_ranking(tmp_path: Path) -> None:
    """The primary under the subscription dies: its replica takes over its slots, the publisher writes every feed
    on, and the SSE client keeps getting every feed's rankings with no gap (docs/scaling.md, "Cluster")."""
    with LocalCluster(tmp_path / "cluster", replicas=1, node_timeout_ms=NODE_TIMEOUT_MS,
                      users=prepare(tmp_path / "users")) as cluster:
        first, successor = cluster.primaries[0], cluster.replicas[0]
        assert cluster.url().split("//", 1)[1].startswith(f"127.0.0.1:{first.port},"), "the URL's first node"
        low, high = cluster.slot_ranges()[0]
        slots = {f: key_slot(c.history_key(f).encode()) for f in FEEDS}
        orphan = next(f for f in FEEDS if low <= slots[f] <= high)  # the feed whose primary dies
        publisher = sim_publisher.start(cluster.url(Role.PUBLISHER), tmp_path, FEEDS)
        replica = Replica(cluster.url(Role.API), tmp_path / "api.log", {"KIWOOM_API_REPLICA_ID": "r1"})
        client = ResumingSse(f"{replica.url}/v1/events?feeds={','.join(FEEDS)}")
        admin = sync_client(cluster.url(Role.ADMIN), socket_timeout=2)
        try:
            replica.wait_ready()
            wait_until(lambda: all(httpx.get(f"{replica.url}/v1/rankings/{f}", timeout=5).status_code == 200
                                   for f in FEEDS), 60, "a snapshot of every feed")
            client.start()
            wait_until(lambda: all(len(client.ids(f)) >= 3 for f in FEEDS), 60, "rankings of every feed")
            # Replication is asynchronous: kill once the replica holds all the primary has, so that no entry the
            # client got dies with the primary (docs/sentinel.md covers a replica that lagged).
            with cluster.client(first) as primary_admin, cluster.client(successor) as successor_admin:
                wait_until(lambda: primary_admin.info("replication")["master_repl_offset"]
                           == successor_admin.info("replication")["slave_repl_offset"], 30, "the replica in step")
                cluster.kill(first)
            killed, killed_ms = time.monotonic(), int(time.time() * 1000)
            before = {f: len(client.ids(f)) for f in FEEDS}
            wait_until(lambda: cluster.owner(slots[orphan]) is successor, 60, "the replica promoted")
            promoted = time.monotonic() - killed
            last = wait_until(lambda: [i for i, _ in admin.xrevrange(c.history_key(orphan), count=1)
                                       if stream_ms(i.decode()) > killed_ms], 60, "a write on the new primary")
            written = stream_ms(last[0].decode()) - killed_ms
            wait_until(lambda: any(stream_ms(i) > killed_ms for i in client.ids(orphan)), 60,
                       f"a new ranking of {orphan} on the client")
            delivered = time.monotonic() - killed
            wait_until(lambda: all(len(client.ids(f)) >= before[f] + 3 for f in FEEDS), 60,
                       "rankings of every feed after the failover")
            terminate(publisher)
            history = {f: [i.decode() for i, _ in admin.xrange(c.history_key(f))] for f in FEEDS}
            wait_until(lambda: all(client.ids(f)[-1] == history[f][-1] for f in FEEDS), 30, "the last entries")
        finally:
            client.stop()
            client.join(10)
            terminate(publisher)
            replica.stop()
            admin.close()
    assert_each_feed_got_its_stream(client, history)
    log = replica.log()
    assert f"moving to 127.0.0.1:{cluster.nodes[1].port}" in log, "the subscription moved to the next node"
    assert "NOPERM" not in log and "NOPERM" not in (tmp_path / "publisher.log").read_text(errors="replace")
    print(f"\ncluster failover (node timeout {NODE_TIMEOUT_MS} ms): kill -> replica promoted {promoted:.2f} s, "
          f"-> first write of {orphan} on it {written / 1000:.2f} s, -> that feed's next ranking on the client "
          f"{delivered:.2f} s")


def test_doctor_checks_the_publisher_user_on_a_cluster(tmp_path: Path) -> None:
    """`kiwoom-publisher doctor` takes the same URLs as the publisher: on a cluster every probe is routed to the
    node that owns its key, and the publisher user of the shipped file passes each."""
    with LocalCluster(tmp_path / "cluster", users=prepare(tmp_path / "users")) as cluster:
        assert_publisher_user_passes(cluster.url(Role.PUBLISHER))
