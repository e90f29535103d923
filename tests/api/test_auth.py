"""API keys and the public surface against real replicas (uvicorn) and a real redis-server."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import httpx
import pytest

from api.auth import COOKIE
from tests.api.sse_client import Collector, read_events
from tests.api.test_auth_units import table, write
from tests.api.writer import Writer
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

FEED, OTHER = "kospi-surge", "kosdaq-surge"
SNAPSHOT = f"/v1/rankings/{FEED}"
EVENTS = f"/v1/rankings/{FEED}/events"
READER, OPS = "kc_reader-0123456789abcdef0123456789abcdef012", "kc_ops-0123456789abcdef0123456789abcdef01234"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.toml"
    write(path, table("reader", READER, f'["{FEED}"]') + table("ops", OPS, "[]", '["metrics", "docs"]')
          .replace("feeds = []\n", ""))
    return path


@pytest.fixture
def secured(redis_url: str, writer: Writer, replica, keys_file: Path):  # type: ignore[no-untyped-def]
    writer.register(OTHER)
    writer.write()
    writer.write(OTHER)
    return replica(redis_url, auth_keys_file=str(keys_file), auth_reload_s="0.1")


def test_no_key_is_401_with_www_authenticate_and_probes_stay_open(secured) -> None:  # type: ignore[no-untyped-def]
    for path in (SNAPSHOT, EVENTS, SNAPSHOT + "/history", "/v1/feeds", "/metrics", "/docs", "/openapi.json",
                 "/no-such-path"):
        r = httpx.get(secured.url + path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == 'Bearer realm="kiwoom-cache"', path
        assert r.json() == {"detail": "authentication required: send Authorization: Bearer <API key>"}, path
        assert r.headers["x-kiwoom-replica"] and r.headers["cache-control"] == "no-store"
    wrong = httpx.get(secured.url + SNAPSHOT, headers=bearer("kc_guess"))
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    basic = httpx.get(secured.url + SNAPSHOT, auth=("user", READER))
    assert basic.status_code == 401 and basic.json()["detail"] == "invalid API key"
    for path in ("/healthz", "/readyz", "/static/app.js", "/login"):
        assert httpx.get(secured.url + path).status_code == 200, path
    page = httpx.get(secured.url + "/")
    assert page.status_code == 303 and page.headers["location"] == "/login"


def test_scopes_feed_403_metrics_docs_and_feeds_listing(secured) -> None:  # type: ignore[no-untyped-def]
    ok = httpx.get(secured.url + SNAPSHOT, headers=bearer(READER))
    assert ok.status_code == 200 and ok.json()["feed"] == FEED
    assert httpx.get(secured.url + SNAPSHOT + "/history", headers=bearer(READER)).json()["count"] == 1
    assert read_events(secured.url + EVENTS, 1, headers=bearer(READER))[0].event == "snapshot"
    for path in (f"/v1/rankings/{OTHER}", f"/v1/rankings/{OTHER}/events", f"/v1/rankings/{OTHER}/history",
                 "/v1/rankings/no-such-feed", "/metrics", "/docs"):
        r = httpx.get(secured.url + path, headers=bearer(READER))
        assert r.status_code == 403, path
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    listing = httpx.get(secured.url + "/v1/feeds", headers=bearer(READER)).json()
    assert [f["feed"] for f in listing["feeds"]] == [FEED]

    assert httpx.get(secured.url + SNAPSHOT, headers=bearer(OPS)).status_code == 403
    metrics = httpx.get(secured.url + "/metrics", headers=bearer(OPS))
    assert metrics.status_code == 200 and "kiwoom_api_sse_clients" in metrics.text
    assert httpx.get(secured.url + "/openapi.json", headers=bearer(OPS)).json()["info"]["title"]
    assert httpx.get(secured.url + "/v1/feeds", headers=bearer(OPS)).json()["feeds"] == []


def test_rotated_key_works_without_restart(secured, keys_file: Path) -> None:  # type: ignore[no-untyped-def]
    rotated = "kc_rotated-0123456789abcdef0123456789abcdef0"
    assert httpx.get(secured.url + SNAPSHOT, headers=bearer(rotated)).status_code == 401
    write(keys_file, table("reader", rotated, f'["{FEED}"]'))
    wait_until(lambda: httpx.get(secured.url + SNAPSHOT, headers=bearer(rotated)).status_code == 200, 10,
               "the rotated key accepted")
    assert httpx.get(secured.url + SNAPSHOT, headers=bearer(READER)).status_code == 401  # the old one is revoked
    write(keys_file, "this is not toml [")
    # the file is checked on requests (at most every auth_reload_s): keep asking until the replica has seen it
    wait_until(lambda: httpx.get(secured.url + SNAPSHOT, headers=bearer(rotated)).status_code == 200
               and "keeping the 1 keys loaded before" in secured.log(), 10, "the bad file reported")
    assert httpx.get(secured.url + SNAPSHOT, headers=bearer(rotated)).status_code == 200


def test_browser_login_cookie_streams_and_resumes_with_last_event_id(
        secured, writer: Writer) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=secured.url) as browser:
        form = browser.get("/login?next=/%23kospi-surge")
        assert 'value="/#kospi-surge"' in form.text
        bad = browser.post("/login", data={"key": "kc_guess", "next": "/"})
        assert bad.status_code == 401 and "That key is not valid." in bad.text and not browser.cookies
        evil = browser.post("/login", data={"key": READER, "next": "//evil.example/"})
        assert evil.status_code == 303 and evil.headers["location"] == "/"
        cookie = evil.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}={READER};") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert browser.get("/").status_code == 200  # the dashboard itself, now
        assert browser.get(SNAPSHOT).status_code == 200
        jar = {"Cookie": f"{COOKIE}={browser.cookies[COOKIE]}"}

    first = read_events(secured.url + EVENTS, 1, headers=jar)
    assert first[0].event == "snapshot"
    collector = Collector(secured.url + EVENTS, headers={**jar, "Last-Event-ID": first[0].id})
    collector.start()
    ids = [writer.write() for _ in range(3)]
    wait_until(lambda: collector.has(ids[-1]), what="live rankings over the cookie-authenticated stream")
    collector.stop()
    extra = writer.write()
    collector.join(10)
    assert collector.ids()[:3] == ids
    # EventSource's reconnect: the same cookie plus Last-Event-ID; everything after it arrives, once, in order
    later = [writer.write() for _ in range(3)]
    resumed = read_events(secured.url + EVENTS, 0, headers={**jar, "Last-Event-ID": ids[0]},
                          until=lambda e: e.id == later[-1])
    assert [e.id for e in resumed] == [*ids[1:], extra, *later]
    with httpx.Client(base_url=secured.url, cookies={COOKIE: READER}) as browser:
        out = browser.post("/logout")
        assert out.status_code == 303 and f"{COOKIE}=;" in out.headers["set-cookie"]


def test_login_posted_from_another_site_is_refused(secured) -> None:  # type: ignore[no-untyped-def]
    """Issue 22 item 5: a foreign page could post the login form and log the victim in with the attacker's key
    (login CSRF). Origin or Sec-Fetch-Site naming another site is refused; the site's own form still works."""
    with httpx.Client(base_url=secured.url) as browser:
        for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                        {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                        {"Origin": secured.url, "Sec-Fetch-Site": "cross-site"},
                        {"Origin": "http://evil.example:" + secured.url.rsplit(":", 1)[1]}):
            r = browser.post("/login", data={"key": READER, "next": "/"}, headers=headers)
            assert r.status_code == 403 and "set-cookie" not in r.headers and not browser.cookies, headers
        # the site's own form: Chromium sends Origin "null" under the page's Referrer-Policy: no-referrer
        own = browser.post("/login", data={"key": READER, "next": "/"},
                           headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
        assert own.status_code == 303 and browser.cookies[COOKIE] == READER
        foreign_out = browser.post("/logout", headers={"Origin": "https://evil.example"})
        assert foreign_out.status_code == 403 and "set-cookie" not in foreign_out.headers


def test_cors_with_auth_allows_credentials_for_listed_origins_only(
        redis_url: str, writer: Writer, replica, keys_file: Path) -> None:  # type: ignore[no-untyped-def]
    writer.write()
    rep = replica(redis_url, auth_keys_file=str(keys_file), cors_origins="https://app.example")
    preflight = httpx.options(rep.url + SNAPSHOT, headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization, last-event-id"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    denied = httpx.options(rep.url + SNAPSHOT, headers={"Origin": "https://evil.example",
                                                        "Access-Control-Request-Method": "GET"})
    assert denied.status_code == 400 and "access-control-allow-origin" not in denied.headers
    # a 401 is readable by the allowed origin (so its page can ask for a key), with Vary: Origin
    r = httpx.get(rep.url + SNAPSHOT, headers={"Origin": "https://app.example"})
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == "https://app.example"
    assert "Origin" in r.headers["vary"]
    ok = httpx.get(rep.url + SNAPSHOT, headers={"Origin": "https://app.example", **bearer(READER)})
    assert ok.status_code == 200 and ok.headers["access-control-allow-credentials"] == "true"


def test_replica_refuses_to_start_with_an_unreadable_key_file(
        redis_url: str, replica, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[keys]]\nname = "x"\nsha256 = "nothex"\n')
    rep = replica(redis_url, ready=False, auth_keys_file=str(bad))
    assert rep.proc.wait(20) != 0
    assert "key #1: sha256" in rep.log()


# --- the public surface: what failed, never where ------------------------------------------------------------


def _no_internals(text: str, port: int) -> None:
    assert "127.0.0.1" not in text and str(port) not in text and "Error" not in text, text
    assert socket.gethostname() not in text, text


def test_error_bodies_name_no_host_port_or_exception(own_redis, replica) -> None:  # type: ignore[no-untyped-def]
    server = own_redis(persist=False)
    w = Writer(server.url)
    w.register()
    w.write()
    rep = replica(server.url)
    feeds = httpx.get(rep.url + "/v1/feeds").json()
    assert "host" not in feeds["publisher"] and socket.gethostname() not in json.dumps(feeds)
    hello = read_events(rep.url + EVENTS, 1, hello=True)[0]
    assert hello.event == "hello" and re.fullmatch(r"replica-[0-9a-f]{6}", json.loads(hello.data)["replica"])
    w.close()
    server.stop()
    for path in (EVENTS, SNAPSHOT + "/history", "/readyz"):
        r = wait_until(lambda p=path: (resp := httpx.get(rep.url + p)).status_code == 503 and resp, 15,
                       f"503 from {path}")
        _no_internals(r.text, server.port)
        assert "redis" in r.text, r.text
    assert httpx.get(rep.url + SNAPSHOT + "/history").json() == {"detail": "redis unavailable"}
    for path in (SNAPSHOT, "/v1/feeds"):  # stale-if-error (issue 10): from memory, and the reason says no more
        r = httpx.get(rep.url + path)
        assert r.status_code == 200 and r.json()["stale"] is True, (path, r.text)
        _no_internals(r.json()["stale_reason"] + r.headers["x-kiwoom-stale-reason"], server.port)
    assert f":{server.port}" in rep.log() or "Connection refused" in rep.log()  # the log keeps the detail


def test_echoed_input_is_clipped_and_size_limits_enforced(redis_url: str, writer: Writer, replica) -> None:  # type: ignore[no-untyped-def]
    writer.write()
    rep = replica(redis_url)
    bad_id = "x" * 4000
    r = httpx.get(rep.url + EVENTS, headers={"Last-Event-ID": bad_id})
    assert r.status_code == 400 and len(r.content) < 300 and "(4000 chars)" in r.json()["detail"]
    r = httpx.get(rep.url + EVENTS + "?last_event_id=" + bad_id)
    assert r.status_code == 400 and len(r.content) < 300
    feed = "f" * 4000
    for path in (f"/v1/rankings/{feed}", f"/v1/rankings/{feed}/history"):
        r = httpx.get(rep.url + path)
        assert r.status_code == 404 and len(r.content) < 300 and "(4000 chars)" in r.text, path
    r = httpx.get(rep.url + SNAPSHOT + "/history?limit=" + "9" * 4000)
    assert r.status_code == 422 and len(r.content) < 600
    r = httpx.get(rep.url + SNAPSHOT + "/history?since=" + "z" * 4000)
    assert r.status_code == 422 and len(r.content) < 800

    huge = httpx.get(rep.url + EVENTS, headers={"Last-Event-ID": "1-" + "0" * 100_000})
    assert huge.status_code == 431 and len(huge.content) < 200
    many = httpx.get(rep.url + SNAPSHOT, headers={f"X-Pad-{i}": "p" * 4000 for i in range(10)})
    assert many.status_code == 431
    assert httpx.get(rep.url + "/v1/rankings/" + "f" * 10_000).status_code == 414
    assert httpx.get(rep.url + SNAPSHOT + "?fields=" + "a," * 5000).status_code == 414
    # just inside the limits still works
    assert httpx.get(rep.url + SNAPSHOT, headers={"X-Pad": "p" * 8000}).status_code == 200
    assert httpx.get(rep.url + "/healthz").status_code == 200


def test_keys_hold_with_the_fast_path_off(redis_url: str, writer: Writer, replica, keys_file: Path) -> None:  # type: ignore[no-untyped-def]
    """The gate sits in front of FastAPI as well, so turning the fast path off changes nothing here."""
    writer.write()
    rep = replica(redis_url, auth_keys_file=str(keys_file), fast_path="false")
    assert httpx.get(rep.url + SNAPSHOT).status_code == 401
    assert httpx.get(rep.url + SNAPSHOT, headers=bearer(OPS)).status_code == 403
    assert httpx.get(rep.url + SNAPSHOT, headers=bearer(READER)).json()["feed"] == FEED
