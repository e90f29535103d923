"""One connection, many feeds: the multiplexed SSE stream and the WebSocket against a real replica and Redis."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import httpx
import pytest

from api.auth import COOKIE
from api.mux import fingerprint, format_id
from tests.api.sse_client import read_events
from tests.api.test_auth_units import table, write
from tests.api.writer import DEFAULT_FEED, Writer
from tests.api.ws_client import Ws
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

A, B = "feed-a", "feed-b"
KEY = "kc_mux-0123456789abcdef0123456789abcdef0123456"


@pytest.fixture
def two_feeds(writer: Writer) -> Writer:
    for feed in (A, B):
        writer.register(feed)
        writer.write(feed)
    return writer


def test_mux_sse_tags_every_event_and_resumes_every_feed(redis_url, two_feeds: Writer, replica) -> None:
    writer = two_feeds
    rep = replica(redis_url)
    url = f"{rep.url}/v1/events?feeds={B},{A}"
    opening = read_events(url, 3, hello=True)
    hello, snaps = opening[0], opening[1:]
    assert hello.event == "hello" and json.loads(hello.data)["feeds"] == [A, B]
    assert sorted(json.loads(e.data)["feed"] for e in snaps) == [A, B] and {e.event for e in snaps} == {"snapshot"}
    fp = fingerprint([A, B])
    assert all(e.event_id.startswith(fp + ":") for e in snaps)
    resume = snaps[-1].event_id
    positions = resume.split(":", 1)[1].split(",")
    assert all(p for p in positions), "after both snapshots the id holds both feeds' positions"

    later = {A: [writer.write(A), writer.write(A)], B: [writer.write(B)]}
    events = read_events(url, 3, headers={"Last-Event-ID": resume})
    assert [e.event for e in events] == ["ranking"] * 3
    got: dict[str, list[str]] = {A: [], B: []}
    for e in events:
        doc = json.loads(e.data)
        got[doc["feed"]].append(doc["id"])
    assert got == later, "exactly the entries after each feed's position, once"
    # the last id resumes both feeds again: nothing new, so a new entry is the next event
    newest = writer.write(B)
    tail = read_events(url, 1, headers={"Last-Event-ID": events[-1].event_id})
    assert json.loads(tail[0].data)["id"] == newest


def test_mux_sse_bad_input_gets_a_clear_error(redis_url, two_feeds: Writer, replica) -> None:
    rep = replica(redis_url, mux_max_feeds="3")
    base = f"{rep.url}/v1/events"
    cases = [
        ("", {}, 422, "name the feeds"),
        ("?feeds=Bad_Name", {}, 422, "invalid feed slug"),
        ("?feeds=a,b,c,d", {}, 422, "too many feeds"),
        (f"?feeds={A},nope", {}, 404, "nope"),
        (f"?feeds={A},{B}", {"Last-Event-ID": "garbage"}, 400, "malformed Last-Event-ID"),
        (f"?feeds={A},{B}", {"Last-Event-ID": f"{fingerprint([A])}:1-0"}, 400, "another list of feeds"),
        (f"?feeds={A},{B}", {"Last-Event-ID": f"{fingerprint([A, B])}:1-0"}, 400, "1 positions for 2 feeds"),
        (f"?feeds={A},{B}", {"Last-Event-ID": f"{fingerprint([A, B])}:1-0,x@y"}, 400, "malformed position"),
    ]
    for query, headers, status, detail in cases:
        response = httpx.get(base + query, headers=headers, timeout=5)
        assert response.status_code == status, (query, response.text)
        assert detail in response.json()["detail"], (query, response.text)
    # and the stream still works for a good request
    assert read_events(f"{base}?feeds={A}", 1)[0].event == "snapshot"


def _ranking(feed: str, rid: str):  # ids are per stream: two feeds may have the same one
    return lambda m: m.get("event") == "ranking" and m["feed"] == feed and m["data"]["id"] == rid


def test_ws_subscribe_unsubscribe_mid_stream_and_resume(redis_url, two_feeds: Writer, replica) -> None:
    writer = two_feeds
    rep = replica(redis_url)
    ws = Ws(rep.url)
    hello = ws.recv()
    assert hello["event"] == "hello" and hello["auth"] == "off" and hello["replica"]
    ws.send(op="subscribe", feed=A)
    sub, snap = ws.recv(), ws.recv()
    assert sub == {"event": "subscribed", "feed": A, "resumed_from": None}
    assert snap["event"] == "snapshot" and snap["feed"] == A and snap["data"]["feed"] == A
    assert snap["id"] == f"{snap['data']['id']}@{snap['data']['epoch']}"

    b_old = writer.ids[1]  # B's first entry: subscribing after it replays what came since
    b_new = [writer.write(B), writer.write(B)]
    ws.send(op="subscribe", feed=B, last_id=b_old)
    got = ws.until(_ranking(B, b_new[-1]))
    assert got[0] == {"event": "subscribed", "feed": B, "resumed_from": b_old}
    assert [m["data"]["id"] for m in got[1:]] == b_new

    a1, b1 = writer.write(A), writer.write(B)
    got = ws.until(_ranking(B, b1))
    assert {(m["feed"], m["data"]["id"]) for m in got if m.get("event") == "ranking"} == {(A, a1), (B, b1)}

    ws.send(op="unsubscribe", feed=A)
    assert ws.until(lambda m: m.get("event") == "unsubscribed")[-1] == {"event": "unsubscribed", "feed": A}
    writer.write(A)
    b2 = writer.write(B)
    got = ws.until(_ranking(B, b2))
    assert all(m["feed"] == B for m in got if m.get("event") == "ranking"), "no event of an unsubscribed feed"
    ws.send(op="ping")
    assert ws.recv() == {"event": "pong"}
    ws.close()
    wait_until(lambda: rep.metric("kiwoom_api_multiplexed_connections{transport=\"ws\"}") == 0,
               what="the closed WebSocket uncounted")


def test_ws_bad_input_gets_a_clear_error_and_loses_nothing(redis_url, two_feeds: Writer, replica) -> None:
    writer = two_feeds
    rep = replica(redis_url, mux_max_feeds="1")
    ws = Ws(rep.url)
    ws.recv()
    ws.send(op="subscribe", feed=A)
    assert [m["event"] for m in (ws.recv(), ws.recv())] == ["subscribed", "snapshot"]
    cases = [
        ("{not json", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"op": "dance"}), "unknown op"),
        (json.dumps({"op": "subscribe"}), 'needs "feed"'),
        (json.dumps({"op": "subscribe", "feed": "Bad_Name"}), "invalid feed name"),
        (json.dumps({"op": "subscribe", "feed": "nope"}), "too many feeds"),  # the cap is checked first
        (json.dumps({"op": "subscribe", "feed": A, "last_id": "x@y"}), "malformed last_id"),
        (json.dumps({"op": "unsubscribe", "feed": B}), "not subscribed"),
        ("x" * 5000, "message too large"),
    ]
    for text, detail in cases:
        ws.send_raw(text)
        message = ws.recv()
        assert message["event"] == "error" and detail in message["detail"], (text[:40], message)
    ws.send(op="unsubscribe", feed=A)
    assert ws.recv()["event"] == "unsubscribed"
    ws.send(op="subscribe", feed="nope")
    assert ws.recv() == {"event": "error", "op": "subscribe", "feed": "nope", "detail": "unknown feed 'nope'"}
    ws.send(op="subscribe", feed=B)
    assert [m["event"] for m in (ws.recv(), ws.recv())] == ["subscribed", "snapshot"]
    rid = writer.write(B)
    assert ws.recv()["data"]["id"] == rid, "the connection still delivers after every error"
    ws.close()


@pytest.fixture
def mux_keys(tmp_path: Path) -> Path:
    path = tmp_path / "keys.toml"
    write(path, table("mux", KEY, f'["{A}"]'))
    return path


def test_ws_authentication_from_a_browser(redis_url, two_feeds: Writer, replica, mux_keys: Path) -> None:
    rep = replica(redis_url, auth_keys_file=str(mux_keys), ws_auth_timeout_s="30")
    # the login cookie, sent with the handshake (same origin)
    ws = Ws(rep.url, {"Cookie": f"{COOKIE}={KEY}", "Origin": rep.url})
    assert ws.recv()["auth"] == "ok"
    ws.send(op="subscribe", feed=B)
    assert ws.recv() == {"event": "error", "op": "subscribe", "feed": B, "detail": "this key may not read this feed"}
    ws.send(op="subscribe", feed=A)
    assert ws.recv()["event"] == "subscribed"
    ws.close()
    # or the key in the first message
    ws = Ws(rep.url)
    assert ws.recv()["auth"] == "required"
    ws.send(op="auth", key=KEY)
    assert ws.recv() == {"event": "authenticated"}
    ws.send(op="subscribe", feed=A)
    assert ws.recv()["event"] == "subscribed"
    ws.close()
    # refused: an invalid key (cookie or message), anything before auth, another site's page
    for headers, first in [({"Cookie": f"{COOKIE}=kc_wrong"}, None), ({}, {"op": "auth", "key": "kc_wrong"}),
                           ({}, {"op": "subscribe", "feed": A}),
                           ({"Cookie": f"{COOKIE}={KEY}", "Origin": "https://evil.example"}, None)]:
        ws = Ws(rep.url, headers)
        if first is not None:
            assert ws.recv()["auth"] == "required"
            ws.send(**first)
        code, reason = ws.close_code()
        expected = 4403 if "Origin" in headers else 4401
        assert code == expected and reason, (headers, first, code, reason)


def _masked_text_frame(text: str) -> bytes:
    """A client's WebSocket text frame (RFC 6455 §5.2: clients mask), payload under 126 bytes."""
    payload, mask = text.encode(), os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_ws_slow_client_is_dropped_without_delaying_others(redis_url, writer: Writer, replica) -> None:
    writer.write()
    rep = replica(redis_url, send_timeout_s="1")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window: its socket fills fast
    slow.connect(("127.0.0.1", rep.port))
    slow.sendall(b"GET /v1/ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert slow.recv(12) == b"HTTP/1.1 101"
    slow.sendall(_masked_text_frame(json.dumps({"op": "subscribe", "feed": DEFAULT_FEED})))
    try:  # ...and it reads nothing more
        wait_until(lambda: rep.metric("kiwoom_api_sse_clients") == 1, what="slow client subscribed")
        fast = Ws(rep.url)
        fast.recv()
        fast.send(op="subscribe", feed=DEFAULT_FEED)
        fast.until(lambda m: m.get("event") == "snapshot")
        # ~90 KB per ranking, ~13 MB in all: far more than the slow client's socket buffers hold
        ids = [writer.write(n=400) for _ in range(150)]
        got = fast.until(lambda m: m.get("event") == "ranking" and m["data"]["id"] == ids[-1], timeout=60)
        assert [m["data"]["id"] for m in got] == ids
        wait_until(lambda: rep.metric("kiwoom_api_sse_dropped_slow_clients_total") >= 1, timeout=60,
                   what="the slow client dropped")
        wait_until(lambda: rep.metric("kiwoom_api_sse_clients") == 1, what="only the fast client left")
        fast.close()
    finally:
        slow.close()


def test_both_transports_with_the_fast_path_off(redis_url, two_feeds: Writer, replica) -> None:
    rep = replica(redis_url, fast_path="false")  # FastAPI's routes answer, through the same handlers
    events = read_events(f"{rep.url}/v1/events?feeds={A},{B}", 2)
    assert sorted(json.loads(e.data)["feed"] for e in events) == [A, B]
    assert httpx.head(f"{rep.url}/v1/events?feeds={A}", timeout=5).status_code == 200
    ws = Ws(rep.url)
    assert ws.recv()["event"] == "hello"
    ws.send(op="subscribe", feed=B)
    assert [m["event"] for m in (ws.recv(), ws.recv())] == ["subscribed", "snapshot"]
    ws.close()


def test_websockets_count_against_the_connection_cap(redis_url, two_feeds: Writer, replica) -> None:
    rep = replica(redis_url, max_connections="2")
    held = [Ws(rep.url), Ws(rep.url)]
    for ws in held:
        assert ws.recv()["event"] == "hello"
    refused = Ws(rep.url)
    assert refused.close_code() == (1013, "replica at its connection cap (2); retry later")
    assert httpx.get(f"{rep.url}/v1/rankings/{A}", timeout=5).status_code == 503
    held.pop().close()
    wait_until(lambda: httpx.get(f"{rep.url}/v1/rankings/{A}", timeout=5).status_code == 200,
               what="a slot freed by the closed WebSocket")
    for ws in held:
        ws.close()


def test_mux_sse_applies_the_reset_rules_per_feed(redis_url, two_feeds: Writer, replica) -> None:
    writer = two_feeds
    rep = replica(redis_url, ring_size="1")  # the ring holds only the newest: resuming reads the stream
    url = f"{rep.url}/v1/events?feeds={A},{B}"
    snaps = read_events(url, 2)
    epoch = {json.loads(e.data)["feed"]: json.loads(e.data)["epoch"] for e in snaps}
    b_from = json.loads(next(e.data for e in snaps if json.loads(e.data)["feed"] == B))["id"]
    b_new = [writer.write(B), writer.write(B)]
    cases = {"unknown": f"99999999999999-0@{epoch[A]}", "epoch": "1-0@otherepoch"}
    for reason, a_position in cases.items():
        resume = format_id([A, B], [a_position, f"{b_from}@{epoch[B]}"])
        events = read_events(url, 3, headers={"Last-Event-ID": resume})
        a_events = [e for e in events if json.loads(e.data)["feed"] == A]
        b_ids = [json.loads(e.data)["id"] for e in events if json.loads(e.data)["feed"] == B]
        assert [(e.event, json.loads(e.data)["reset_reason"]) for e in a_events] == [("reset", reason)], reason
        assert b_ids == b_new, "the other feed resumes as if alone"
