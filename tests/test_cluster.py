"""Both sides against a Redis Cluster: three primaries on loopback (stack/cluster.py), the publisher writing three
feeds whose keys live on three different nodes, two API replicas on a ``redis+cluster://`` URL, each on its user
of deploy/redis-users.acl, unchanged. A multiplexed
SSE client resumes from one replica on the other: per feed one snapshot, then exactly the stream's entries.

The subscription stays classic pub/sub (kiwoom_cache/connect.py): each node receives every PUBLISH over the
cluster bus, which the test measures and prints (docs/scaling.md quotes it, ``pytest -s``).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from redis.cluster import key_slot

from kiwoom_cache import contract as c
from kiwoom_cache.connect import parse_cluster_url, sync_client
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


def test_cluster_url_parses_and_refuses_what_it_cannot_use() -> None:
    parsed = parse_cluster_url("redis+cluster://kiwoom-api:p%40ss@10.0.0.1:7000,[::1]:7001/0")
    assert parsed.nodes == (("10.0.0.1", 7000), ("::1", 7001))
    assert (parsed.username, parsed.password) == ("kiwoom-api", "p@ss")
    for bad, why in [("redis+cluster:///", "no node"), ("redis+cluster://h/0", "HOST:PORT"),
                     ("redis+cluster://h:1/2", "only database 0"), ("redis+cluster://h:1?ssl=true", "no query"),
                     ("redis://h:1", "not a Cluster URL")]:
        with pytest.raises(ContractError, match=why):
            parse_cluster_url(bad)


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
    assert client.error is None, client.error
    for feed in FEEDS:
        snapshots = client.ids(feed, ("snapshot",))
        assert len(snapshots) == 1 and not client.documents(feed, ("reset",)), f"{feed}: one snapshot, no reset"
        got = client.ids(feed)
        start = history[feed].index(snapshots[0]) + 1
        assert got == history[feed][start:start + len(got)], f"{feed}: the stream's entries, once, in order"
    for log in [tmp_path / "publisher.log", *(r.log_path for r in replicas)]:
        assert "NOPERM" not in log.read_text(errors="replace"), log
    written = sum(len(h) for h in history.values())
    # Classic PUBLISH is broadcast: the nodes that do not own a feed's slot receive its messages too.
    print(f"\nclassic pub/sub over the cluster bus: {written} rankings written, PUBLISH messages received per "
          f"node {received}")
    assert all(count > 0 for count in received.values())


def test_doctor_checks_the_publisher_user_on_a_cluster(tmp_path: Path) -> None:
    """`kiwoom-publisher doctor` takes the same URLs as the publisher: on a cluster every probe is routed to the
    node that owns its key, and the publisher user of the shipped file passes each."""
    with LocalCluster(tmp_path / "cluster", users=prepare(tmp_path / "users")) as cluster:
        assert_publisher_user_passes(cluster.url(Role.PUBLISHER))
