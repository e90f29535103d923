"""The prepared snapshot answers (api.snapshot.PreparedCache): per feed, current snapshot only, bounded."""

from __future__ import annotations

import httpx
import pytest

from api.snapshot import Prepared, PreparedCache
from tests.api.writer import Writer
from tests.waiting import wait_until

SNAPSHOT = "/v1/rankings/kospi-surge"


class Feed:
    def __init__(self, name: str) -> None:
        self.feed = name


class Snap:
    """Stands in for api.ring.Snapshot: the cache keys on the object's identity only."""


def prepared(body: bytes = b"{}") -> Prepared:
    return Prepared([(b"etag", b'W/"1-0"')], body, "1-0")


def test_prepared_answer_holds_both_header_lists_and_the_etag() -> None:
    p = prepared(b'{"stale":false}')
    assert p.headers_304 == ((b"etag", b'W/"1-0"'),)
    assert p.headers_200[-2:] == ((b"content-type", b"application/json"), (b"content-length", b"15"))
    assert p.body_message == {"type": "http.response.body", "body": b'{"stale":false}'}
    assert p.start_200 == {"type": "http.response.start", "status": 200, "headers": p.headers_200}
    assert p.start_304 == {"type": "http.response.start", "status": 304, "headers": p.headers_304}
    assert p.etag == b'W/"1-0"'


def test_a_304_leaves_out_what_its_etag_already_says() -> None:
    """RFC 9110 §15.4.5: no Last-Modified next to an ETag; the ranking id is the ETag's; the flags stay."""
    headers = [(b"etag", b'W/"1-0"'), (b"last-modified", b"Thu, 26 Nov 2026 04:08:50 GMT"),
               (b"cache-control", b"no-cache"), (b"x-kiwoom-ranking-id", b"1-0"), (b"x-kiwoom-stale", b"true"),
               (b"x-kiwoom-publisher", b"stale"), (b"x-kiwoom-stale-reason", b"publisher stale"),
               (b"x-kiwoom-replica", b"r1")]
    p = Prepared(headers, b"{}", "1-0")
    assert [name for name, _ in p.headers_304] == [b"etag", b"cache-control", b"x-kiwoom-stale",
                                                   b"x-kiwoom-publisher", b"x-kiwoom-stale-reason",
                                                   b"x-kiwoom-replica"]
    assert list(p.headers_200[:len(headers)]) == headers


def test_a_new_snapshot_drops_the_feeds_entries() -> None:
    cache, st, old, new = PreparedCache(), Feed("a"), Snap(), Snap()
    cache.put(st, old, ("k",), prepared())  # type: ignore[arg-type]
    assert cache.get(st, old, ("k",)) is not None  # type: ignore[arg-type]
    assert cache.get(st, new, ("k",)) is None  # type: ignore[arg-type]
    cache.put(st, new, ("k2",), prepared())  # type: ignore[arg-type]
    assert cache.get(st, old, ("k",)) is None  # type: ignore[arg-type]
    assert len(cache.feeds["a"][1]) == 1


def test_what_varies_per_request_is_part_of_the_key() -> None:
    cache, st, snap = PreparedCache(), Feed("a"), Snap()
    fresh = cache.put(st, snap, (None, None, None, "alive", b"public, max-age=1"), prepared())  # type: ignore[arg-type]
    assert cache.get(st, snap, (None, None, "publisher stale", "stale", b"no-cache")) is None  # type: ignore[arg-type]
    assert cache.get(st, snap, (None, None, None, "alive", b"public, max-age=1")) is fresh  # type: ignore[arg-type]


def test_feeds_are_separate_and_each_is_bounded() -> None:
    cache, a, b, snap = PreparedCache(max_entries=4), Feed("a"), Feed("b"), Snap()
    cache.put(b, snap, ("kept",), prepared())  # type: ignore[arg-type]
    for i in range(10):
        cache.put(a, snap, (i,), prepared())  # type: ignore[arg-type]
        assert len(cache.feeds["a"][1]) <= 4
    assert cache.get(a, snap, (9,)) is not None  # type: ignore[arg-type]
    assert cache.get(b, snap, ("kept",)) is not None  # type: ignore[arg-type]


@pytest.mark.integration
def test_answers_follow_new_rankings_and_staleness(redis_url: str, writer: Writer, replica) -> None:
    first = writer.write()
    rep = replica(redis_url)
    one = httpx.get(rep.url + SNAPSHOT)
    assert one.headers["x-kiwoom-ranking-id"] == first and one.headers["x-kiwoom-stale"] == "false"
    assert httpx.get(rep.url + SNAPSHOT, headers={"If-None-Match": one.headers["etag"]}).status_code == 304
    second = writer.write()

    def new_ranking() -> httpx.Response | None:
        r = httpx.get(rep.url + SNAPSHOT, headers={"If-None-Match": one.headers["etag"]})
        return r if r.status_code == 200 and r.headers["x-kiwoom-ranking-id"] == second else None

    two = wait_until(new_ranking, 30, "the second ranking")
    assert two.json()["stale"] is False
    writer.heartbeat(state="stopped")  # the publisher says it stopped: the same ranking is now stale

    def stale() -> httpx.Response | None:
        r = httpx.get(rep.url + SNAPSHOT, headers={"If-None-Match": two.headers["etag"]})
        return r if r.headers["x-kiwoom-stale"] == "true" else None

    three = wait_until(stale, 30, "the stale flag")
    assert three.status_code == 304 and three.headers["etag"] == f'W/"{second}"'
    assert three.headers["cache-control"] == "no-cache" and "x-kiwoom-stale-reason" in three.headers
    body = httpx.get(rep.url + SNAPSHOT).json()
    assert body["stale"] is True and body["stale_reason"] == three.headers["x-kiwoom-stale-reason"]
