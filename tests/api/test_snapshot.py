"""Snapshot, feeds, errors and ops endpoints against a real replica and a real redis-server."""

from __future__ import annotations

import json

import httpx
import pytest

from api.models import FeedsModel, ReadyModel, SnapshotModel
from kiwoom_cache import contract as c
from tests.api.conftest import wait_until
from tests.api.sse_client import read_events
from tests.api.writer import Writer

#: Replicas in tests that expect a fresh snapshot: on a loaded machine starting a replica can take longer
#: than three 1 s poll periods, which would (rightly) flag the ranking written before it as overdue.
SLOW_MACHINE = "60"

pytestmark = pytest.mark.integration


def test_snapshot_etag_304_and_new_ranking(redis_url: str, writer: Writer, replica) -> None:
    first = writer.write()
    rep = replica(redis_url, stale_factor=SLOW_MACHINE)
    url = rep.url + "/v1/rankings/kospi-surge"
    r = httpx.get(url)
    assert r.status_code == 200
    body = SnapshotModel.model_validate(r.json())
    assert body.id == first and body.stale is False and r.headers["x-kiwoom-stale"] == "false"
    assert r.headers["etag"] == f'W/"{first}"'
    assert r.headers["last-modified"].endswith("GMT")
    assert r.headers["cache-control"].startswith("public, max-age=")
    assert r.json()["rows"][0]["name"] == "삼성전자"

    for tag in (r.headers["etag"], f'"{first}"', first):
        not_modified = httpx.get(url, headers={"If-None-Match": tag})
        assert not_modified.status_code == 304 and not_modified.content == b""
        assert not_modified.headers["etag"] == r.headers["etag"]

    second = writer.write()
    fresh = wait_until(lambda: (resp := httpx.get(url, headers={"If-None-Match": r.headers["etag"]})).status_code
                       == 200 and resp, what="a 200 with the new ranking")
    assert fresh.json()["id"] == second and fresh.headers["etag"] == f'W/"{second}"'


def test_snapshot_limit_and_fields(redis_url: str, writer: Writer, replica) -> None:
    writer.write(n=10)
    rep = replica(redis_url)
    doc = httpx.get(rep.url + "/v1/rankings/kospi-surge", params={"limit": 3, "fields": "code,surge_rate"}).json()
    assert [row["rank"] for row in doc["rows"]] == [1, 2, 3]
    assert set(doc["rows"][0]) == {"rank", "code", "surge_rate"}
    assert doc["row_count"] == 10
    for params in ({"limit": "0"}, {"limit": "x"}, {"fields": "code,bogus"}):
        r = httpx.get(rep.url + "/v1/rankings/kospi-surge", params=params)
        assert r.status_code == 422, params
        assert r.json()["detail"][0]["loc"][0] == "query"


def test_stale_snapshot_is_flagged_not_hidden(redis_url: str, writer: Writer, replica) -> None:
    writer.write()
    writer.client.delete(c.STATUS_KEY)  # no heartbeat: the publisher is dead
    rep = replica(redis_url, stale_factor=SLOW_MACHINE)
    r = httpx.get(rep.url + "/v1/rankings/kospi-surge")
    assert r.status_code == 200
    assert r.json()["stale"] is True and r.json()["stale_reason"] == "publisher dead"
    assert r.headers["x-kiwoom-stale"] == "true" and r.headers["x-kiwoom-publisher"] == "dead"
    assert r.headers["cache-control"] == "no-cache"

    writer.heartbeat()  # alive again: the replica's poll picks it up
    wait_until(lambda: httpx.get(rep.url + "/v1/rankings/kospi-surge").json()["stale"] is False,
               what="snapshot fresh after a heartbeat")
    writer.heartbeat(state="paused")  # a quiet market is not staleness
    wait_until(lambda: httpx.get(rep.url + "/v1/feeds").json()["publisher"]["state"] == "paused", what="paused")
    assert httpx.get(rep.url + "/v1/rankings/kospi-surge").json()["stale"] is False


def test_feeds_lists_parameters_age_and_publisher(redis_url: str, writer: Writer, replica) -> None:
    writer.register("kosdaq-surge", interval_s=2.0)
    rid = writer.write()
    rep = replica(redis_url)
    doc = FeedsModel.model_validate(httpx.get(rep.url + "/v1/feeds").json())
    assert doc.publisher.liveness == "alive" and doc.publisher.session == "regular"
    by_name = {f.feed: f for f in doc.feeds}
    assert by_name["kospi-surge"].last_id == rid and by_name["kospi-surge"].age_s is not None
    assert by_name["kosdaq-surge"].last_id is None and by_name["kosdaq-surge"].interval_s == 2.0
    assert by_name["kospi-surge"].params == {"market": "001"}


def test_unknown_feed_404_and_no_ranking_yet(redis_url: str, writer: Writer, replica) -> None:
    rep = replica(redis_url)
    for path in ("/v1/rankings/nope", "/v1/rankings/nope/events", "/v1/rankings/nope/history",
                 "/v1/rankings/BAD_SLUG"):
        r = httpx.get(rep.url + path)
        assert r.status_code == 404, path
        assert "unknown feed" in r.json()["detail"]
    r = httpx.get(rep.url + "/v1/rankings/kospi-surge")  # registered, never written
    assert r.status_code == 404 and "no ranking yet" in r.json()["detail"]


def test_bad_documents_are_502_and_other_feeds_keep_serving(redis_url: str, writer: Writer, replica) -> None:
    writer.write()
    writer.register("garbage-feed")
    writer.register("schema-feed")
    rep = replica(redis_url)
    writer.client.set(c.latest_key("garbage-feed"), b"{not json")
    wrong = json.dumps({"id": "1-0", "seq": 1, "schema": 99, "feed": "schema-feed"})
    writer.client.set(c.latest_key("schema-feed"), wrong)
    for feed, reason in (("garbage-feed", "not JSON"), ("schema-feed", "unsupported schema 99")):
        r = httpx.get(f"{rep.url}/v1/rankings/{feed}")
        assert r.status_code == 502
        assert reason in r.json()["reason"]
    assert httpx.get(rep.url + "/v1/rankings/kospi-surge").status_code == 200
    wait_until(lambda: "breaks the contract" in rep.log(), what="a log line for the bad document")
    # a bad published document is logged and skipped by the hub; the replica keeps serving
    writer.client.publish(c.updates_channel("kospi-surge"), b"[1,2]")
    wait_until(lambda: rep.metric("kiwoom_api_contract_errors_total") >= 3, what="contract error counted")
    assert httpx.get(rep.url + "/v1/rankings/kospi-surge").status_code == 200


def test_health_ready_metrics_docs(redis_url: str, writer: Writer, replica) -> None:
    writer.write()
    rep = replica(redis_url)
    assert httpx.get(rep.url + "/healthz").json() == {"status": "ok"}
    ready = ReadyModel.model_validate(httpx.get(rep.url + "/readyz").json())
    assert ready.ready and ready.subscription_live and ready.redis == "ok"
    httpx.get(rep.url + "/v1/rankings/kospi-surge")
    text = httpx.get(rep.url + "/metrics").text
    for name in ("kiwoom_api_sse_clients", "kiwoom_api_sse_events_sent_total",
                 "kiwoom_api_sse_dropped_slow_clients_total", "kiwoom_api_redis_reconnects_total",
                 'kiwoom_api_request_seconds_bucket{le="0.0005",route="snapshot"}'):
        assert name in text
    paths = httpx.get(rep.url + "/openapi.json").json()["paths"]
    assert {"/v1/feeds", "/v1/rankings/{feed}", "/v1/rankings/{feed}/history", "/v1/rankings/{feed}/events",
            "/healthz", "/readyz", "/metrics"} <= set(paths)
    assert httpx.get(rep.url + "/docs").status_code == 200


def test_cors_headers_on_fast_path(redis_url: str, writer: Writer, replica) -> None:
    writer.write()
    rep = replica(redis_url, cors_origins="http://example.test")
    r = httpx.get(rep.url + "/v1/rankings/kospi-surge", headers={"Origin": "http://example.test"})
    assert r.headers["access-control-allow-origin"] == "http://example.test"
    assert "etag" in r.headers["access-control-expose-headers"].lower()
    pre = httpx.options(rep.url + "/v1/rankings/kospi-surge/events",
                        headers={"Origin": "http://example.test", "Access-Control-Request-Method": "GET",
                                 "Access-Control-Request-Headers": "last-event-id"})
    assert pre.status_code == 200


def test_cors_vary_stays_bounded_across_many_origins(redis_url: str, writer: Writer, replica) -> None:
    """Issue 22 item 3: the CORS layer edited the prepared snapshot's shared header list in place, so Vary grew
    by one Origin per request. Prepared answers are tuples behind a fresh start message now."""
    rid = writer.write()
    origins = [f"http://site-{i}.test" for i in range(20)]
    rep = replica(redis_url, cors_origins=",".join(origins))
    url = rep.url + "/v1/rankings/kospi-surge"
    with httpx.Client() as client:
        for i in range(300):
            origin = origins[i % len(origins)] if i % 3 else f"http://other-{i}.test"
            headers = {"Origin": origin, **({"If-None-Match": f'W/"{rid}"'} if i % 5 == 0 else {})}
            r = client.get(url, headers=headers)
            assert r.status_code in (200, 304)
            vary = [v.strip() for v in r.headers.get_list("vary") for v in v.split(",")]
            assert vary.count("Origin") <= 1, (i, r.headers.get_list("vary"))
            if origin in origins:
                assert r.headers["access-control-allow-origin"] == origin and vary.count("Origin") == 1
        last = client.get(url, headers={"Origin": origins[0]})
    assert len(last.headers.raw) < 30 and sum(len(k) + len(v) for k, v in last.headers.raw) < 2000


@pytest.mark.parametrize("fast_path", ["true", "false"])
def test_long_bad_parameters_are_not_echoed_whole(redis_url: str, writer: Writer, replica, fast_path: str) -> None:
    """Issue 22 item 5: a 5,000-character fields= or limit= came back whole in the 422."""
    writer.write()
    rep = replica(redis_url, fast_path=fast_path)
    for name, value in (("fields", "x" * 5000), ("limit", "9" * 5000)):
        r = httpx.get(rep.url + "/v1/rankings/kospi-surge", params={name: value})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", name]
        assert r.json()["detail"][0]["input"].endswith("(5000 chars)") and len(r.content) < 1000, len(r.content)


def test_fastapi_route_matches_fast_path(redis_url: str, writer: Writer, replica) -> None:
    """With the fast path off, FastAPI's declared routes answer through the same code."""
    rid = writer.write(n=4)
    fast = replica(redis_url, stale_factor=SLOW_MACHINE)
    slow = replica(redis_url, fast_path="false", stale_factor=SLOW_MACHINE)
    a = httpx.get(fast.url + "/v1/rankings/kospi-surge", params={"limit": 2})
    b = httpx.get(slow.url + "/v1/rankings/kospi-surge", params={"limit": 2})
    assert a.content == b.content and a.headers["etag"] == b.headers["etag"] == f'W/"{rid}"'
    assert httpx.get(slow.url + "/v1/rankings/kospi-surge", headers={"If-None-Match": rid}).status_code == 304
    assert httpx.get(slow.url + "/v1/rankings/nope").status_code == 404
    event = read_events(slow.url + "/v1/rankings/kospi-surge/events", 1)[0]
    assert (event.event, event.id) == ("snapshot", rid)
