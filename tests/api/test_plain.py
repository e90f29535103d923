"""The plain snapshot read (api.plain) and the window its prepared answer holds for (api.snapshot.answer_until)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.snapshot import answer_until, cache_control, freshness
from kiwoom_cache import contract as c
from tests.api.writer import Writer
from tests.waiting import wait_until

SNAPSHOT = "/v1/rankings/kospi-surge"
FEED = "kospi-surge"
T0 = 1_795_666_130_000


class Hub:
    """What freshness(), cache_control() and answer_until() read of api.hub.Hub."""

    def __init__(self, status: c.PublisherStatus | None, interval_s: float | None, stale_factor: float) -> None:
        self.status = status
        self.registry = {} if interval_s is None else {
            FEED: c.FeedInfo(FEED, "t", "opt10023", {"market": "001"}, interval_s)}
        self.settings = SimpleNamespace(stale_factor=stale_factor)

    def liveness(self, at_ms: int) -> str:
        return c.publisher_liveness(self.status, at_ms)


def status(state: str, heartbeat_at_ms: int, heartbeat_s: float) -> c.PublisherStatus:
    return c.PublisherStatus(state=state, source="sim", account_mode=None, version="t", host="h", pid=1,
                             started_at_ms=T0 - 10**6, heartbeat_at_ms=heartbeat_at_ms, last_success_ms=None,
                             heartbeat_s=heartbeat_s)


def answer(hub: Hub, snap: Any, now: int) -> tuple[str | None, str, bytes]:
    stale, liveness = freshness(hub, FEED, snap, now)  # type: ignore[arg-type]
    return stale, liveness, cache_control(hub, SimpleNamespace(feed=FEED), snap, stale=stale,  # type: ignore[arg-type]
                                          now_ms=now)


@settings(max_examples=300, deadline=None)
@given(state=st.sampled_from(["running", "paused", "degraded", "stopped", None]),
       heartbeat_age=st.integers(-2_000, 30_000), heartbeat_s=st.sampled_from([0.5, 1.0, 2.5, 5.0]),
       interval_s=st.sampled_from([None, 0.25, 0.5, 1.0, 1.5, 2.0, 60.0]), stale_factor=st.sampled_from([1.5, 3.0]),
       age=st.integers(0, 200_000))
def test_the_prepared_answer_holds_for_every_ms_of_its_window(state: str | None, heartbeat_age: int,
                                                             heartbeat_s: float, interval_s: float | None,
                                                             stale_factor: float, age: int) -> None:
    now = T0
    hub = Hub(None if state is None else status(state, now - heartbeat_age, heartbeat_s), interval_s, stale_factor)
    snap = SimpleNamespace(published_at_ms=now - age)
    first = answer(hub, snap, now)
    until = answer_until(hub, FEED, snap, stale=first[0], now_ms=now)  # type: ignore[arg-type]
    assert until > now
    # every ms of the window (the windows here are at most a few seconds; a longer one is checked at its end)
    for t in [*range(now, min(until, now + 5_000)), until - 1]:
        assert answer(hub, snap, t) == first, (t - now, until - now)


def test_the_window_ends_where_the_answer_changes() -> None:
    """Not only safe but useful: each clock-driven change ends the window at the ms it happens."""
    now = T0
    fresh = Hub(status("running", now, 5.0), 60.0, 3.0)
    snap = SimpleNamespace(published_at_ms=now - 1_500)  # max-age=59 until 2 s of age, then 58
    until = answer_until(fresh, FEED, snap, stale=None, now_ms=now)  # type: ignore[arg-type]
    assert until == now + 500 and answer(fresh, snap, until)[2] == b"public, max-age=58"
    late = Hub(status("running", now - 9_800, 5.0), 60.0, 3.0)  # the heartbeat turns late after 10 s
    assert answer_until(late, FEED, snap, stale=None, now_ms=now) == now + 201  # type: ignore[arg-type]
    assert answer(late, snap, now + 200)[1] == "alive" and answer(late, snap, now + 201)[1] == "stale"
    old = SimpleNamespace(published_at_ms=now - 200_400)  # stale for 200 s: the reason counts seconds
    stale = answer(fresh, old, now)[0]
    assert stale is not None and "200 s" in stale
    assert answer_until(fresh, FEED, old, stale=stale, now_ms=now) == now + 600  # type: ignore[arg-type]


def metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


@pytest.mark.integration
def test_plain_reads_keep_every_layer_promise(redis_url: str, writer: Writer, replica) -> None:
    """Served by the plain path once prepared, a snapshot still honours the gate's limits, the ETag, the 304's
    headers and the metrics; a query or HEAD goes through the layers and says the same."""
    first = writer.write()
    rep = replica(redis_url)
    count = 'kiwoom_api_request_seconds_count{route="snapshot"}'
    one = httpx.get(rep.url + SNAPSHOT)  # the layered path: prepares the current answer
    two = httpx.get(rep.url + SNAPSHOT)  # the plain path
    assert one.status_code == two.status_code == 200 and one.content == two.content
    # max-age counts down by the second between any two requests: compared by form only
    ticking = {"date": "", "cache-control": ""}
    assert dict(one.headers) | ticking == dict(two.headers) | ticking
    assert two.headers["cache-control"].startswith("public, max-age=")
    assert two.headers["x-kiwoom-ranking-id"] == first and two.headers["x-kiwoom-replica"]
    head = httpx.head(rep.url + SNAPSHOT)
    assert head.status_code == 200 and head.headers["etag"] == two.headers["etag"]
    assert head.headers["content-length"] == two.headers["content-length"]

    not_modified = httpx.get(rep.url + SNAPSHOT, headers={"If-None-Match": two.headers["etag"]})
    assert not_modified.status_code == 304 and not_modified.content == b""
    for name in ("etag", "x-kiwoom-stale", "x-kiwoom-publisher", "x-kiwoom-replica"):
        assert not_modified.headers[name] == two.headers[name], name
    assert not_modified.headers["cache-control"].startswith("public, max-age=")
    assert "last-modified" not in not_modified.headers and "x-kiwoom-ranking-id" not in not_modified.headers
    for tag in (f'"{first}"', first, f'W/"0-1", {two.headers["etag"]}', "*"):
        assert httpx.get(rep.url + SNAPSHOT, headers={"If-None-Match": tag}).status_code == 304, tag
    assert httpx.get(rep.url + SNAPSHOT, headers={"If-None-Match": 'W/"0-1"'}).status_code == 200

    # the gate's limits hold on the plain path too
    assert httpx.get(rep.url + SNAPSHOT, headers={"X-Big": "x" * (9 * 1024)}).status_code == 431
    many = {f"X-Pad-{i}": "y" * 7_000 for i in range(5)}
    assert httpx.get(rep.url + SNAPSHOT, headers=many).status_code == 431
    assert httpx.get(rep.url + "/v1/rankings/kospi%2Dsurge").status_code == 200  # same path, decoded

    before = metric(rep.url, count)
    for _ in range(5):
        assert httpx.get(rep.url + SNAPSHOT).status_code == 200
    assert metric(rep.url, count) == before + 5

    second = writer.write()  # a new ranking: the plain path stops using the old answer at once
    fresh = wait_until(lambda: (r := httpx.get(rep.url + SNAPSHOT)).headers["x-kiwoom-ranking-id"] == second and r,
                       30, "the second ranking")
    assert fresh.json()["id"] == second
    assert httpx.get(rep.url + SNAPSHOT, headers={"If-None-Match": two.headers["etag"]}).status_code == 200


@pytest.mark.integration
def test_the_connection_cap_counts_plain_reads(redis_url: str, writer: Writer, replica) -> None:
    """At the cap a plain read is refused like any request (503), not answered around the cap."""
    writer.write()
    rep = replica(redis_url, max_connections=2)
    assert httpx.get(rep.url + SNAPSHOT).status_code == 200
    assert httpx.get(rep.url + SNAPSHOT).status_code == 200  # plain path, within the cap
    with httpx.stream("GET", rep.url + SNAPSHOT + "/events") as one, \
            httpx.stream("GET", rep.url + SNAPSHOT + "/events") as two:
        assert one.status_code == two.status_code == 200
        refused = httpx.get(rep.url + SNAPSHOT)
        assert refused.status_code == 503 and refused.headers["retry-after"]
    assert wait_until(lambda: httpx.get(rep.url + SNAPSHOT).status_code == 200, 10, "a free slot")
