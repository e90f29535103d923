"""Redis fails over under load: a primary, its replica and three sentinels on loopback (the shipped users on
every node), the publisher at 2 Hz and two API replicas, all on a ``redis+sentinel://`` URL, SSE clients on both.

The replica is made to lag first (its replication user is switched off on the primary, so it misses the last
rankings but keeps answering the sentinels), then the primary is SIGKILLed. The replica is promoted without the
newest rankings while the feed's epoch key survives. What must hold: the publisher and the replicas follow the
new primary by themselves, no ``seq`` is ever reused for another ranking (the write script starts a new epoch
instead), and every client ends with the surviving stream's ids after an explicit ``reset``.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import redis

from kiwoom_cache import contract as c
from kiwoom_cache.connect import parse_sentinel_url, sync_client
from kiwoom_cache.errors import ContractError
from stack.launch import terminate
from stack.redisacl import Role
from stack.sentinel import SentinelGroup
from tests import sim_publisher
from tests.api.conftest import Replica
from tests.api.sse_client import ResumingSse
from tests.test_doctor import assert_publisher_user_passes
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
FEED = "kospi-surge"


def stream(client: redis.Redis) -> list[c.Ranking]:
    return [c.decode_ranking(c.document_from_entry(i, f)) for i, f in client.xrange(c.history_key(FEED))]


def test_sentinel_url_parses_and_refuses_what_it_cannot_use() -> None:
    parsed = parse_sentinel_url("redis+sentinel://kiwoom-api:p%40ss@127.0.0.1:26379,[::1]:26380/kiwoom/2"
                                "?sentinel_password=s")
    assert parsed.sentinels == (("127.0.0.1", 26379), ("::1", 26380)) and parsed.service == "kiwoom"
    assert (parsed.db, parsed.username, parsed.password, parsed.sentinel_password) == (2, "kiwoom-api", "p@ss", "s")
    for bad, why in [("redis+sentinel:///kiwoom", "no sentinel"), ("redis+sentinel://h:1", "/SERVICE"),
                     ("redis+sentinel://h/kiwoom", "HOST:PORT"), ("redis+sentinel://h:1/kiwoom/x", "/SERVICE/DB"),
                     ("redis+sentinel://h:1/kiwoom?ssl=true", "unsupported query parameter")]:
        with pytest.raises(ContractError, match=why):
            parse_sentinel_url(bad)


def test_sentinel_failover_to_a_lagging_replica_under_load(tmp_path: Path) -> None:
    with SentinelGroup(tmp_path / "redis") as group:
        old_port = group.primary.port
        publisher = sim_publisher.start(group.url(Role.PUBLISHER), tmp_path, (FEED,))
        replicas = [Replica(group.url(Role.API), tmp_path / f"api-{i}.log", {}) for i in (1, 2)]
        clients: list[ResumingSse] = []
        try:
            for replica in replicas:
                replica.wait_ready()
            clients = [ResumingSse(f"{r.url}/v1/rankings/{FEED}/events") for r in replicas]
            for client in clients:
                client.start()
            wait_until(lambda: all(len(cl.rankings()) >= 3 for cl in clients), 60, "rankings on both replicas")

            # The replica falls behind: the primary refuses its replication user, the link drops and stays down.
            with group.admin(old_port) as primary:
                primary.acl_setuser(Role.REPLICA.user, enabled=False)
                primary.client_kill_filter(_type="slave")  # the lowest supported redis-py knows only the old name
                behind = primary.xlen(c.history_key(FEED))
                wait_until(lambda: primary.xlen(c.history_key(FEED)) >= behind + 3, 30, "rankings the replica lacks")
                last = stream(primary)[-1]
                seen, lost_epoch = last.seq, last.epoch
            wait_until(lambda: all(cl.rankings() and cl.rankings()[-1]["seq"] >= seen for cl in clients), 30,
                       "clients holding rankings that the failover will lose")
            assert group.primary.proc is not None
            group.primary.proc.send_signal(signal.SIGKILL)
            killed, killed_ms = time.monotonic(), int(time.time() * 1000)

            new_port = wait_until(lambda: (p := group.primary_port()) not in (None, old_port) and p, 60,
                                  "the sentinels to promote the replica")
            assert new_port == group.replica.port
            admin = sync_client(group.url(Role.ADMIN), socket_timeout=2)
            try:
                first_new = wait_until(lambda: next((r for r in stream(admin) if r.published_at_ms >= killed_ms),
                                                    None), 60, "a ranking on the new primary")
                took = time.monotonic() - killed
                print(f"\nkill -> first ranking on the new primary: {took:.2f} s")  # README quotes it (pytest -s)
                assert (first_new.seq, first_new.epoch != lost_epoch) == (1, True), \
                    f"a new epoch, not the lost seqs counted again: {first_new.epoch} seq {first_new.seq}"
                wait_until(lambda: all(any(doc["epoch"] == first_new.epoch for doc in cl.rankings())
                                       and cl.rankings()[-1]["seq"] >= 3 for cl in clients), 60,
                           "both clients following the new epoch")
            finally:
                admin.close()
        finally:
            for client in clients:
                client.stop()
            for client in clients:
                client.join(10)
            for replica in replicas:
                replica.stop()
            terminate(publisher)
        with sync_client(group.url(Role.ADMIN), socket_timeout=2) as admin:
            survivors = stream(admin)  # everything written: what the clients got is a part of it

    truth = {(r.epoch, r.seq): r.id for r in survivors}
    for n, client in enumerate(clients, 1):
        with client.lock:
            events = list(client.events)
        # never a reused seq: within an epoch, one seq is one ranking, on every client and in the surviving stream
        for kind, doc in events:
            if kind == "ranking" and (doc["epoch"], doc["seq"]) in truth:
                assert truth[(doc["epoch"], doc["seq"])] == doc["id"], f"client {n}: seq {doc['seq']} reused"
        kinds = [kind for kind, doc in events]
        reset_at = max(i for i, kind in enumerate(kinds) if kind in ("reset", "snapshot"))
        assert kinds[reset_at] == "reset", f"client {n}: told to reset on the new epoch, got {kinds[-10:]}"
        assert events[reset_at][1]["reset_reason"] in ("epoch", "unknown"), events[reset_at][1]
        after = [doc["id"] for kind, doc in events[reset_at + 1:] if kind == "ranking"]
        ids = [r.id for r in survivors]
        # after a reset with a snapshot: the entries after it; without: the new epoch from its first ranking
        start = ids.index(events[reset_at][1]["id"]) + 1 if events[reset_at][1].get("id") else \
            next(i for i, r in enumerate(survivors) if r.epoch == first_new.epoch)
        tail = [(k, d.get("epoch"), d.get("seq"), d.get("id"), d.get("reset_reason")) for k, d in events[-10:]]
        assert after and after == ids[start:start + len(after)], (
            f"client {n}: ids differ from XRANGE: got {tail}, stream {[(r.epoch, r.seq, r.id) for r in survivors]}")
    log = (tmp_path / "publisher.log").read_text()
    assert "history replaced in Redis" in log


def test_doctor_checks_the_publisher_user_through_the_sentinels(tmp_path: Path) -> None:
    """`kiwoom-publisher doctor` takes the Sentinel URL the publisher takes: it asks the sentinels for the
    primary and checks the publisher user of the shipped file there."""
    with SentinelGroup(tmp_path / "redis") as group:
        assert_publisher_user_passes(group.url(Role.PUBLISHER))
