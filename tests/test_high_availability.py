"""Two real publisher processes on one real redis-server (least-privilege users) and a real replica: one leads,
the other stands by; SIGKILL, SIGSTOP/SIGCONT, SIGTERM and a preferred publisher move the lead
(docs/high-availability.md). Conditions are waited for with deadlines; the deadlines bound failures, not speed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from kiwoom_cache import contract as c
from kiwoom_cache.clock import now_ms
from kiwoom_cache.contract import PublisherRole, PublisherStatus
from stack import Stack
from stack.local import FEED_NAMES
from tests.api.sse_client import Collector
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

FEEDS = FEED_NAMES  # every feed the stack configures
LEASE_TTL_S, LEASE_CHECK_S = 2.0, 0.2
#: Short periods so a takeover takes seconds; the leases live 2 s and a standby looks every 0.2 s.
FAST = {"KIWOOM_PUBLISHER_HEARTBEAT_S": "0.5", "KIWOOM_PUBLISHER_STATUS_TTL_S": "2",
        "KIWOOM_PUBLISHER_LEASE_TTL_S": str(LEASE_TTL_S), "KIWOOM_PUBLISHER_LEASE_CHECK_S": str(LEASE_CHECK_S)}
#: Generous: a failure takes this long to show, a pass does not wait for it (the machine is shared).
DEADLINE_S = 60.0
TAKEOVERS = Path(os.environ.get("KIWOOM_TAKEOVER_LOG", "")) if os.environ.get("KIWOOM_TAKEOVER_LOG") else None


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(tmp_path, replicas=1, pace="fast", persist=False, publisher_env=FAST) as running:
        yield running


@pytest.fixture
def admin(stack: Stack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.redis_url)
    yield client
    client.close()


def publisher(admin: redis.Redis, proc: subprocess.Popen[bytes]) -> PublisherStatus | None:
    """The heartbeat entry of the publisher process ``proc`` in the publishers hash (None: none yet)."""
    for raw in admin.hgetall(c.PUBLISHERS_KEY).values():
        status = PublisherStatus.decode(raw)
        if status.pid == proc.pid:
            return status
    return None


def holders(admin: redis.Redis) -> set[str | None]:
    return {v.decode() if v else None for v in admin.mget([c.lease_key(f) for f in FEEDS])}


def leads(admin: redis.Redis, proc: subprocess.Popen[bytes]) -> PublisherStatus | None:
    """``proc``'s entry once it holds every feed's lease and says it leads."""
    status = publisher(admin, proc)
    ok = status is not None and status.role is PublisherRole.leader and holders(admin) == {status.id}
    return status if ok else None


def standing_by(admin: redis.Redis, proc: subprocess.Popen[bytes]) -> PublisherStatus | None:
    status = publisher(admin, proc)
    return status if status is not None and status.role is PublisherRole.standby and status.state == "standby" else None


def entries(admin: redis.Redis, feed: str) -> list[tuple[str, int, str, str]]:
    """(id, seq, epoch, source) of every stream entry."""
    out = []
    for entry_id, fields in admin.xrange(c.history_key(feed)):
        doc = json.loads(c.document_from_entry(entry_id, fields))
        out.append((entry_id.decode(), doc["seq"], doc["epoch"], doc["source"]))
    return out


def assert_one_gap_free_history(admin: redis.Redis) -> None:
    for feed in FEEDS:
        got = entries(admin, feed)
        assert [seq for _, seq, _, _ in got] == list(range(1, len(got) + 1)), f"{feed}: a seq gap"
        assert len({epoch for _, _, epoch, _ in got}) == 1, f"{feed}: the epoch changed (readers would reset)"


def written_since(admin: redis.Redis, mark: dict[str, int], n: int) -> bool:
    return all(len(entries(admin, f)) >= mark[f] + n for f in FEEDS)


def counts(admin: redis.Redis) -> dict[str, int]:
    return {f: len(entries(admin, f)) for f in FEEDS}


def no_tr_sent(status: PublisherStatus) -> bool:
    return set(status.feeds) == set(FEEDS) and all(v.get("requests") == 0 for v in status.feeds.values())


def sse(stack: Stack, feed: str = "kospi-surge") -> Collector:
    collector = Collector(f"{stack.replicas[0].url}/v1/rankings/{feed}/events")
    collector.start()
    wait_until(collector.ids, DEADLINE_S, "a first event through the replica")
    return collector


def assert_continuous(admin: redis.Redis, collector: Collector, feed: str = "kospi-surge") -> None:
    """The client saw exactly the stream's entries between its first and last event, and no reset."""
    collector.stop()
    with collector.lock:
        events = list(collector.events)
    assert collector.error is None, collector.error
    kinds = [e.event for e in events]
    assert kinds[0] == "snapshot" and set(kinds[1:]) == {"ranking"}, f"no reset across takeovers: {kinds}"
    ids = [e.id for e in events]
    stream = [entry_id.decode() for entry_id, _ in admin.xrange(c.history_key(feed), ids[0], ids[-1])]
    assert ids == stream, "one continuous stream: every entry once, in order"
    assert len({e.epoch for e in events}) == 1


def record(kind: str, seconds: float) -> None:
    """Takeover times for docs/high-availability.md (set KIWOOM_TAKEOVER_LOG to collect them)."""
    if TAKEOVERS is not None:
        with TAKEOVERS.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"kind": kind, "seconds": round(seconds, 3)}) + "\n")


@pytest.mark.parametrize("login", ["hot", "cold"])
def test_killed_leader_standby_takes_over_without_a_gap(stack: Stack, admin: redis.Redis, login: str) -> None:
    leader = stack.publisher
    assert leader is not None
    wait_until(lambda: leads(admin, leader), DEADLINE_S, "the first publisher leads")
    standby = stack.start_publisher("standby", env={**FAST, "KIWOOM_PUBLISHER_STANDBY_LOGIN": login})
    idle = wait_until(lambda: standing_by(admin, standby), DEADLINE_S, "the second publisher stands by")
    assert idle.account_mode == ("sim" if login == "hot" else None), "hot: logged in; cold: not yet"
    collector = sse(stack)
    mark = counts(admin)
    wait_until(lambda: written_since(admin, mark, 3), DEADLINE_S, "the leader writing while the standby watches")
    idle = standing_by(admin, standby)
    assert idle is not None and no_tr_sent(idle), f"the standby sent no TR: {idle and idle.feeds}"
    leader.kill()
    killed_at = time.monotonic()
    leader.wait()
    mark = counts(admin)
    wait_until(lambda: written_since(admin, mark, 1), DEADLINE_S, "the standby's first ranking")
    record(f"sigkill-{login}", time.monotonic() - killed_at)
    wait_until(lambda: leads(admin, standby), DEADLINE_S, "the standby leads")
    wait_until(lambda: written_since(admin, mark, 3), DEADLINE_S, "the new leader writing")
    assert_one_gap_free_history(admin)
    assert_continuous(admin, collector)
    status = PublisherStatus.decode(admin.get(c.STATUS_KEY))
    assert status.pid == standby.pid and status.role is PublisherRole.leader, "the status key is the new leader's"


def test_stopped_leader_is_fenced_after_its_lease(stack: Stack, admin: redis.Redis) -> None:
    """SIGSTOP past the lease TTL: a REST standby takes over; SIGCONT: nothing the old (sim) leader sends lands."""
    leader = stack.publisher
    assert leader is not None
    wait_until(lambda: leads(admin, leader), DEADLINE_S, "the sim publisher leads")
    standby = stack.start_publisher("standby", source="rest", env=FAST)
    wait_until(lambda: standing_by(admin, standby), DEADLINE_S, "the REST publisher stands by")
    collector = sse(stack)
    leader.send_signal(signal.SIGSTOP)
    try:
        mark = counts(admin)
        wait_until(lambda: written_since(admin, mark, 1), DEADLINE_S, "the standby's first ranking")
        wait_until(lambda: leads(admin, standby), DEADLINE_S, "the standby leads")
        takeover = {f: len(entries(admin, f)) for f in FEEDS}
    finally:
        resumed_ms = now_ms()
        leader.send_signal(signal.SIGCONT)
    wait_until(lambda: (s := publisher(admin, leader)) and s.role is PublisherRole.standby
               and s.heartbeat_at_ms > resumed_ms, DEADLINE_S, "the old leader back, and standing by")
    mark = counts(admin)
    wait_until(lambda: written_since(admin, mark, 3), DEADLINE_S, "the REST leader writing on")
    for feed in FEEDS:
        after = entries(admin, feed)[takeover[feed] - 1:]
        assert {source for *_, source in after} == {"rest"}, f"{feed}: a fenced (sim) ranking landed"
    assert_one_gap_free_history(admin)
    assert_continuous(admin, collector)
    assert leads(admin, standby) is not None
    assert "NOPERM" not in (stack.data / "publisher.log").read_text()


def test_graceful_hand_over_loses_nothing(tmp_path: Path) -> None:
    """SIGTERM: the leader flushes, writes its final status and releases the leases; a cold standby takes over
    long before the (60 s) leases would have expired."""
    slow = {**FAST, "KIWOOM_PUBLISHER_LEASE_TTL_S": "60"}
    with Stack(tmp_path, replicas=1, pace="fast", persist=False, publisher_env=slow) as stack:
        admin = redis.Redis.from_url(stack.redis_url)
        leader = stack.publisher
        assert leader is not None
        wait_until(lambda: leads(admin, leader), DEADLINE_S, "the first publisher leads")
        standby = stack.start_publisher("standby", env={**slow, "KIWOOM_PUBLISHER_STANDBY_LOGIN": "cold"})
        wait_until(lambda: standing_by(admin, standby), DEADLINE_S, "the second publisher stands by")
        collector = sse(stack)
        mark = counts(admin)
        wait_until(lambda: written_since(admin, mark, 2), DEADLINE_S, "the leader writing")
        leader.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        assert leader.wait(DEADLINE_S) == 0, "exit 0: nothing left unsent"
        log = (stack.data / "publisher.log").read_text()
        assert ", 0 unsent" in log and "leases released" in log
        final = publisher(admin, leader)
        assert final is not None and final.state == "stopped" and final.fenced == 0
        mark = counts(admin)
        wait_until(lambda: written_since(admin, mark, 1), 30, "the standby's first ranking (the leases are free)")
        record("sigterm-cold", time.monotonic() - stopped_at)
        wait_until(lambda: leads(admin, standby), DEADLINE_S, "the standby leads")
        wait_until(lambda: written_since(admin, mark, 3), DEADLINE_S, "the new leader writing")
        assert_one_gap_free_history(admin)
        assert_continuous(admin, collector)
        admin.close()


def test_preferred_publisher_takes_the_lead_when_ready(stack: Stack, admin: redis.Redis) -> None:
    first = stack.publisher
    assert first is not None
    wait_until(lambda: leads(admin, first), DEADLINE_S, "the first publisher leads")
    preferred = stack.start_publisher("preferred", env={**FAST, "KIWOOM_PUBLISHER_PREFER_LEADER": "true"})
    wait_until(lambda: leads(admin, preferred), DEADLINE_S, "the preferred publisher leads")
    wait_until(lambda: standing_by(admin, first), DEADLINE_S, "the first one stands by")
    mark = counts(admin)
    wait_until(lambda: written_since(admin, mark, 3), DEADLINE_S, "the preferred leader writing")
    assert leads(admin, preferred) is not None, "no ping-pong: the preferred one keeps the lead"
    assert_one_gap_free_history(admin)
    lead, other = publisher(admin, preferred), publisher(admin, first)
    assert lead is not None and other is not None

    def feeds_show_both() -> dict[str, Any]:
        doc = httpx.get(f"{stack.replicas[0].url}/v1/feeds", timeout=10).json()
        shown = [(p["id"], p["role"], p["liveness"]) for p in doc["publishers"]]
        want = [(lead.id, "leader", "alive"), (other.id, "standby", "alive")]
        ok = doc["publisher"]["id"] == lead.id and shown == want
        return doc if ok else {}

    doc = wait_until(feeds_show_both, DEADLINE_S, "/v1/feeds naming the leader and the standby")
    assert doc["publishers"][0]["preferred"] is True
    assert "host" not in doc["publishers"][0] and socket.gethostname() not in json.dumps(doc), "no host in public"


def lead_env(feeds: tuple[str, ...]) -> dict[str, str]:
    return {**FAST, "KIWOOM_PUBLISHER_LEAD": json.dumps(list(feeds))}


def leads_exactly(admin: redis.Redis, proc: subprocess.Popen[bytes], feeds: tuple[str, ...]) -> PublisherStatus | None:
    """``proc``'s entry once it holds the leases of exactly ``feeds`` and says so."""
    status = publisher(admin, proc)
    if status is None or status.role is not PublisherRole.leader or status.leads != feeds:
        return None
    held = {f for f, v in zip(FEEDS, admin.mget([c.lease_key(f) for f in FEEDS]), strict=True)
            if v is not None and v.decode() == status.id}
    return status if held == set(feeds) else None


def test_publishers_on_disjoint_feeds_and_a_standby_for_both(tmp_path: Path) -> None:
    """Issue 23 item 8: two publishers lead disjoint feeds (their ``lead`` settings), a third stands by for all.
    SIGKILL one leader: the standby takes over exactly that leader's feeds, the other leader keeps its own, and a
    reader sees the stream's entries once each, in order, with no seq reused, across the takeover."""
    first_feeds, second_feeds = tuple(sorted(FEEDS)[:3]), tuple(sorted(FEEDS)[3:])
    with Stack(tmp_path, replicas=1, pace="fast", persist=False, publisher_env=lead_env(first_feeds)) as stack:
        admin = redis.Redis.from_url(stack.redis_url)
        first = stack.publisher
        assert first is not None
        wait_until(lambda: leads_exactly(admin, first, first_feeds), DEADLINE_S, "the first publisher leads its feeds")
        second = stack.start_publisher("second", env=lead_env(second_feeds))
        wait_until(lambda: leads_exactly(admin, second, second_feeds), DEADLINE_S, "the second leads the others")
        standby = stack.start_publisher("standby", env=FAST)
        wait_until(lambda: standing_by(admin, standby), DEADLINE_S, "the third stands by for both")
        taken_over, kept = sse(stack, first_feeds[-1]), sse(stack, second_feeds[-1])
        mark = counts(admin)
        wait_until(lambda: written_since(admin, mark, 3), DEADLINE_S, "both leaders writing every feed")
        idle = standing_by(admin, standby)
        assert idle is not None and no_tr_sent(idle), f"the standby sent no TR: {idle and idle.feeds}"
        second_id = leads_exactly(admin, second, second_feeds)
        assert second_id is not None
        first.kill()
        first.wait()
        mark = counts(admin)
        wait_until(lambda: leads_exactly(admin, standby, first_feeds), DEADLINE_S,
                   "the standby leads exactly the killed leader's feeds")
        wait_until(lambda: written_since(admin, mark, 3), DEADLINE_S, "every feed written on")
        still = leads_exactly(admin, second, second_feeds)
        assert still is not None and still.id == second_id.id, "the other leader kept its feeds throughout"
        after = leads_exactly(admin, standby, first_feeds)
        assert after is not None
        assert all(after.feeds[f]["requests"] == 0 for f in second_feeds), "the standby never polled the others"
        assert_one_gap_free_history(admin)
        assert_continuous(admin, taken_over, first_feeds[-1])
        assert_continuous(admin, kept, second_feeds[-1])
        status = PublisherStatus.decode(admin.get(c.STATUS_KEY))
        assert status.pid == standby.pid and status.leads == first_feeds, "one status writer: the first feed's leader"
        assert "NOPERM" not in (stack.data / "standby.log").read_text()
        admin.close()
