"""Leases and fenced writes against a real redis-server: the write script, the lease calls, a stalled leader."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import redis

from kiwoom_cache import contract as c
from kiwoom_cache.contract import PublisherRole
from publisher.app import Publisher
from publisher.controls.simulated import SimulatedControl
from publisher.lease import Elector, Fitness, Lease, LeasePolicy
from publisher.settings import FeedSettings, load_settings
from publisher.writer import RedisWriter
from tests.publishers import ocx_publisher
from tests.test_contract import make_ranking
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

FEED = "kospi-surge"


def test_the_write_script_refuses_a_ranking_without_the_current_lease(redis_client: redis.Redis) -> None:
    script = redis_client.register_script(c.WRITE_RANKING_LUA)

    def write(lease: str) -> int:
        return int(script(*c.write_ranking_args(make_ranking(), lease=lease))[1])

    assert write("") == 1, "no lease held: a writer without one writes (stand-ins, a single old publisher)"
    redis_client.set(c.lease_key(FEED), "desk-a-1", px=60_000)
    before = (redis_client.get(c.latest_key(FEED)), redis_client.xlen(c.history_key(FEED)),
              redis_client.get(c.seq_key(FEED)))
    for wrong in ("", "desk-b-2"):
        with pytest.raises(redis.ResponseError) as refused:
            write(wrong)
        assert c.fenced_holder(str(refused.value)) == "desk-a-1"
    after = (redis_client.get(c.latest_key(FEED)), redis_client.xlen(c.history_key(FEED)),
             redis_client.get(c.seq_key(FEED)))
    assert after == before, "a fenced write leaves no trace"
    assert write("desk-a-1") == 2, "the holder writes on, seq without a gap"
    redis_client.delete(c.lease_key(FEED))  # expired
    with pytest.raises(redis.ResponseError) as refused:
        write("desk-a-1")
    assert c.fenced_holder(str(refused.value)) == "", "an expired lease fences its former holder too"
    assert c.fenced_holder("WRONGTYPE Operation against a key") is None


def test_free_leases_are_taken_all_or_none_renewed_and_released_by_their_holder(redis_client: redis.Redis) -> None:
    feeds = ["kospi-surge", "kosdaq-surge"]
    a = Lease(redis_client, feeds, "desk-a", ttl_s=30)
    b = Lease(redis_client, feeds, "desk-b", ttl_s=30)
    redis_client.set(c.lease_key("kospi-surge"), "desk-b", px=30_000)  # b holds one of the two
    a.free = lambda: ["kosdaq-surge", "kospi-surge"]  # type: ignore[method-assign]  # a race: both looked free to a
    assert not a.acquire() and a.held == frozenset()
    assert redis_client.get(c.lease_key("kosdaq-surge")) is None, "a gave back the lease it had taken"
    del a.free
    assert a.acquire() and a.held == {"kosdaq-surge"}, "a takes the lease nobody holds, never b's"
    redis_client.delete(c.lease_key("kospi-surge"))
    assert a.acquire() and a.held == set(feeds) and not b.acquire() and b.held == frozenset()
    assert {redis_client.get(k) for k in a.keys} == {b"desk-a"}
    redis_client.pexpire(c.lease_key("kospi-surge"), 100)
    assert a.renew() and redis_client.pttl(c.lease_key("kospi-surge")) > 20_000
    b.release()  # not b's: nothing happens
    assert {redis_client.get(k) for k in a.keys} == {b"desk-a"}
    redis_client.set(c.lease_key("kosdaq-surge"), "desk-b", px=30_000)  # taken over (a stalled past its TTL)
    assert not a.renew() and a.held == {"kospi-surge"}
    a.release()
    assert redis_client.get(c.lease_key("kospi-surge")) is None
    assert redis_client.get(c.lease_key("kosdaq-surge")) == b"desk-b"


def test_publishers_on_disjoint_feeds_lead_side_by_side_and_a_standby_takes_only_what_is_left(
        redis_client: redis.Redis) -> None:
    """Issue 23 item 8: each publisher may lead its ``lead`` feeds; a standby for all of them takes over exactly the
    feeds whose leader went away (its leases expired), and later the others too."""
    feeds = ["a-1", "a-2", "b-1", "b-2"]
    group_a, group_b = frozenset(feeds[:2]), frozenset(feeds[2:])

    def elector(name: str, lead: frozenset[str] | None) -> Elector:
        return Elector(redis_client, feeds, LeasePolicy(name, ttl_s=30, check_s=0.1, lead=lead))

    first, second, standby = elector("desk-a", group_a), elector("desk-b", group_b), elector("desk-s", None)
    assert first.tick([], 0) == group_a and first.role is PublisherRole.leader
    assert second.tick([], 0) == group_b and second.role is PublisherRole.leader
    assert standby.tick([], 0) == frozenset() and standby.role is PublisherRole.standby, "nothing free"
    redis_client.delete(*[c.lease_key(f) for f in group_a])  # the first desk died: its leases expired
    standby.fitness = Fitness(eligible=False)  # what its publisher pushes while it logs in, say
    assert standby.tick([], 0) == frozenset(), "not eligible: takes nothing"
    standby.fitness = Fitness()
    assert standby.tick([], 0) == group_a and standby.role is PublisherRole.leader
    assert second.tick([], 0) == group_b, "the other leader keeps its feeds"
    assert not first.tick([], 0) and first.role is PublisherRole.standby, "the dead desk's comeback: fenced out"
    redis_client.delete(*[c.lease_key(f) for f in group_b])
    assert standby.tick([], 0) == frozenset(feeds), "a leader with room takes the feeds nobody leads"
    assert {redis_client.get(c.lease_key(f)) for f in feeds} == {b"desk-s"}


def test_a_stalled_leader_is_fenced_and_counts_it(redis_url: str, redis_client: redis.Redis) -> None:
    """The writer thread of leader A stalls (as a paused desktop would) past its lease; B takes over and writes;
    A wakes with a ranking queued: the script refuses it, A counts it as fenced, stands by and retries nothing."""
    stall, release, stalled = threading.Event(), threading.Event(), threading.Event()
    roles: dict[str, list[PublisherRole]] = {"a": [], "b": []}

    def status_of(name: str) -> Callable[[], c.PublisherStatus]:
        def status() -> c.PublisherStatus:
            if name == "a" and stall.is_set() and not release.is_set():
                stalled.set()
                release.wait(30)  # held here until the test lets go (bounded, so a failure cannot hang)
            return c.PublisherStatus(state="standby" if roles[name][-1:] != [PublisherRole.leader] else "running",
                                     source="sim", account_mode="sim", version="t", host="h", pid=1,
                                     started_at_ms=1, heartbeat_at_ms=1, last_success_ms=None, heartbeat_s=0.1,
                                     id=f"desk-{name}")
        return status

    def writer(name: str) -> RedisWriter:
        return RedisWriter(redis_url, feeds=[c.FeedInfo(FEED, "코스피", "opt10023", {"market": "001"}, 1.0)],
                           status=status_of(name), heartbeat_s=0.1, status_ttl_s=0.5,
                           lease=LeasePolicy(f"desk-{name}", ttl_s=0.5, check_s=0.05),
                           on_leads=lambda role, _: roles[name].append(role))

    a, b = writer("a"), writer("b")
    a.start()
    try:
        wait_until(lambda: a.role is PublisherRole.leader, 10, "a leads")
        a.submit(make_ranking(requested_at_ms=1))
        wait_until(lambda: a.stats().written == 1, 10, "a writes")
        stall.set()
        wait_until(stalled.is_set, 10, "a's writer thread stalled")
        a.submit(make_ranking(requested_at_ms=2))  # queued behind the stall
        b.start()
        wait_until(lambda: b.role is PublisherRole.leader, 10, "b takes over once a's lease expired")
        b.submit(make_ranking(requested_at_ms=3))
        wait_until(lambda: b.stats().written == 1, 10, "b writes")
    finally:
        release.set()  # a wakes up: the queued ranking meets the fence
    wait_until(lambda: a.stats().fenced == 1, 10, "a's ranking fenced")
    stats = a.stats()
    assert (stats.written, stats.pending, stats.role) == (1, 0, PublisherRole.standby)
    assert stats.submitted == stats.written + stats.superseded + stats.rejected + stats.fenced + stats.pending
    assert roles["a"] == [PublisherRole.leader, PublisherRole.standby] and roles["b"] == [PublisherRole.leader]
    docs = [c.decode_ranking(c.document_from_entry(i, f)) for i, f in redis_client.xrange(c.history_key(FEED))]
    assert [(d.seq, d.requested_at_ms) for d in docs] == [(1, 1), (2, 3)], "a's fenced ranking never landed"
    assert redis_client.get(c.lease_key(FEED)) == b"desk-b"
    a.stop()
    b.stop()
    assert redis_client.get(c.lease_key(FEED)) is None, "b released its lease on a graceful stop"


def test_a_leader_that_lost_kiwoom_hands_over_and_the_standby_sent_no_tr(qtbot, redis_url: str,
                                                                         redis_client: redis.Redis) -> None:
    """In one process, two publishers on simulated controls: the standby's control sees no request while the
    leader works; the leader's Kiwoom session goes and cannot come back (login refused), so it hands over to the
    ready standby long before its 30 s lease would expire; seq goes on without a gap."""
    feeds = [FeedSettings(feed=FEED, market="001", interval_s=0.5)]
    made: list[tuple[Publisher, SimulatedControl]] = []
    for _ in range(2):
        settings = load_settings(redis_url=redis_url, feeds=feeds, tr_limits=[(5, 1.0)], heartbeat_s=0.2,
                                 status_ttl_s=1.0, lease_ttl_s=30.0, lease_check_s=0.1, connection_check_s=0.1,
                                 login_retry_s=60.0)
        control = SimulatedControl(seed=5, latency_ms=5, login_delay_ms=10)
        made.append((ocx_publisher(settings, control), control))
    (leader, leader_control), (standby, standby_control) = made
    leader.start()
    try:
        qtbot.waitUntil(lambda: leader.writer.stats().written >= 1, timeout=10000)
        standby.start()
        qtbot.waitUntil(lambda: standby.state == "standby", timeout=10000)
        written = leader.writer.stats().written
        qtbot.waitUntil(lambda: leader.writer.stats().written >= written + 3, timeout=10000)
        assert standby_control.requests == 0 and standby.role is PublisherRole.standby
        assert all(state.requests == 0 for state in standby.poller.feeds.values())
        leader_control.faults.login_result = -100  # the re-login fails too: the session is gone for a while
        leader_control.drop_connection()
        qtbot.waitUntil(lambda: standby.writer.stats().written >= 2, timeout=10000)
        assert leader.role is PublisherRole.standby and leader.state == "degraded"
        assert standby.role is PublisherRole.leader and standby_control.requests >= 2
        assert "handing over" in (leader.writer.role_reason or "")
    finally:
        standby.stop()
        leader.stop()
    seqs = [int(fields[b"seq"]) for _, fields in redis_client.xrange(c.history_key(FEED))]
    assert seqs == list(range(1, len(seqs) + 1))


def test_lead_names_configured_feeds_only() -> None:
    feeds = [FeedSettings(feed=FEED, market="001")]
    assert load_settings(feeds=feeds, lead=[FEED]).lead == [FEED]
    assert load_settings(feeds=feeds).lead is None, "default: lead every feed"
    with pytest.raises(ValueError, match=r"lead names feeds that are not configured: \['kosdaq-surge'\]"):
        load_settings(feeds=feeds, lead=["kosdaq-surge"])
    with pytest.raises(ValueError, match="lead is empty"):
        load_settings(feeds=feeds, lead=[])
