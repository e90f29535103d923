"""The whole publisher on the REST source (asyncio loop, no Qt) against the fake Kiwoom REST server and a
real redis-server; and the CLI: ``--source rest`` fills the same keys with the same numbers as ``--source sim``."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap

import pytest
import redis

from kiwoom_cache import contract as c
from publisher.aio_loop import AsyncioLoop
from publisher.app import Publisher
from publisher.exit_codes import ExitCode
from publisher.settings import FeedSettings, load_settings
from publisher.sources import create_source
from publisher.sources.base import SourceContext
from publisher.sources.rest import APPKEY_ENV, SECRETKEY_ENV
from tests.rest_fake_server import APPKEY, SECRETKEY, serve
from tests.waiting import async_wait_until

pytestmark = pytest.mark.integration

FEEDS = [FeedSettings(feed="kospi-surge", market="001", interval_s=0.3),
         FeedSettings(feed="kosdaq-surge", market="101", interval_s=0.3)]


def count(client: redis.Redis, feed: str) -> int:
    return client.xlen(c.history_key(feed))


async def test_rest_publisher_writes_the_contract_and_backs_off_on_1700(
        redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv(APPKEY_ENV, APPKEY)
    monkeypatch.setenv(SECRETKEY_ENV, SECRETKEY)
    caplog.set_level(logging.DEBUG)
    # The fake allows 5 requests/s, pages included; the limiter keeps 90% of that for requests and pages alike.
    with serve(seed=2, page_size=10) as (server, url):
        server.faults.refuse = 2
        settings = load_settings(redis_url=redis_url, source="rest", rest_base_url=url, feeds=FEEDS,
                                 tr_limits=[(5, 1.0)], safety_margin=0.9, heartbeat_s=0.3, status_ttl_s=2.0,
                                 refusal_backoff_s=0.3, respect_market_hours=False, respect_maintenance=False)
        loop = AsyncioLoop(asyncio.get_running_loop())
        publisher = Publisher(settings, create_source(settings.source, SourceContext(settings, loop)), loop)
        publisher.start()
        await async_wait_until(lambda: all(count(redis_client, f.feed) >= 2 for f in FEEDS), 20, "rankings in Redis")
        status_while_running = redis_client.get(c.STATUS_KEY)
        publisher.stop()
    assert sum(s.refusals for s in publisher.poller.feeds.values()) == 2 == server.refused, "only the forced ones"
    assert any("1700 REST_RATE_LIMIT" in text and "backing off 0.3s" in text for _, text in publisher.recent_errors)
    for feed in FEEDS:
        docs = [c.decode_ranking(c.document_from_entry(i, f)) for i, f in redis_client.xrange(c.history_key(feed.feed))]
        assert [d.seq for d in docs] == list(range(1, len(docs) + 1))
        assert all(d.source == "rest" and d.tr == "opt10023" and len(d.rows) > 5 for d in docs), "pages merged"
        assert redis_client.get(c.latest_key(feed.feed)) == c.document_from_entry(*redis_client.xrange(
            c.history_key(feed.feed))[-1])
    status = c.PublisherStatus.decode(redis_client.get(c.STATUS_KEY))
    assert status.state == "stopped" and status.source == "rest" and status.account_mode == "real"
    # The keys never leave the environment: not in a log line, the status or any Redis value.
    everything = b"".join(redis_client.dump(k) or b"" for k in redis_client.keys("*")) + (status_while_running or b"")
    for secret in (APPKEY, SECRETKEY):
        assert secret not in caplog.text and secret.encode() not in everything


async def test_a_token_that_stays_invalid_degrades_then_logs_in_again(
        redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(APPKEY_ENV, APPKEY)
    monkeypatch.setenv(SECRETKEY_ENV, SECRETKEY)
    with serve(seed=4, page_size=50) as (server, url):
        settings = load_settings(redis_url=redis_url, source="rest", rest_base_url=url, feeds=FEEDS[:1],
                                 heartbeat_s=0.3, status_ttl_s=2.0, respect_market_hours=False,
                                 respect_maintenance=False)
        loop = AsyncioLoop(asyncio.get_running_loop())
        publisher = Publisher(settings, create_source(settings.source, SourceContext(settings, loop)), loop)
        states: list[str] = []
        publisher.stateChanged.connect(states.append)
        publisher.start()
        await async_wait_until(lambda: count(redis_client, "kospi-surge") >= 1, 20, "a first ranking")
        server.faults.unauthorized = 2  # 401, a new token, 401 again: the session is gone
        await async_wait_until(lambda: "degraded" in states, 20, "the degraded state")
        before = count(redis_client, "kospi-surge")
        await async_wait_until(lambda: publisher.state == "running" and count(redis_client, "kospi-surge") > before,
                               20, "a new login and a new ranking")
        publisher.stop()
    assert server.tokens_issued >= 3, "first login, the retry's token, the new login"
    assert any("REST_TOKEN_INVALID" in t or "HTTP_UNAUTHORIZED" in t for _, t in publisher.recent_errors)


async def test_refused_app_keys_exit_asking_for_a_config_fix(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong key is refused the same way every time: after login_max_failures the publisher exits with
    ExitCode.CONFIG, which a supervisor does not restart (retrying for ever helps nobody)."""
    monkeypatch.setenv(APPKEY_ENV, APPKEY)
    monkeypatch.setenv(SECRETKEY_ENV, "not-the-secret")
    with serve(seed=4) as (_, url):
        settings = load_settings(redis_url=redis_url, source="rest", rest_base_url=url, feeds=FEEDS[:1],
                                 heartbeat_s=0.3, status_ttl_s=2.0, login_retry_s=0.1, login_max_failures=2,
                                 respect_market_hours=False, respect_maintenance=False)
        loop = AsyncioLoop(asyncio.get_running_loop())
        publisher = Publisher(settings, create_source(settings.source, SourceContext(settings, loop)), loop)
        exits: list[ExitCode] = []
        publisher.exitRequested.connect(exits.append)
        publisher.start()
        await async_wait_until(lambda: exits, 20, "the publisher giving up")
        publisher.stop()
    assert exits == [ExitCode.CONFIG] and "REST_CREDENTIALS_INVALID" in (publisher.status().message or "")
    assert "refused 2 times in a row" in (publisher.status().message or "")


# Runs the CLI with PyQt5 made unimportable: the REST publisher must not need it.
WITHOUT_QT = textwrap.dedent("""
    import sys
    class BlockQt:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "PyQt5":
                raise ImportError("PyQt5 is not installed here")
    sys.meta_path.insert(0, BlockQt())
    from publisher.cli import main
    code = main(sys.argv[1:])
    assert not [m for m in sys.modules if m.startswith("PyQt5")], "PyQt5 was imported"
    sys.exit(code)
""")


def run_cli(args: list[str], env: dict[str, str], *, without_qt: bool = False) -> subprocess.CompletedProcess[str]:
    head = [sys.executable, "-c", WITHOUT_QT] if without_qt else [sys.executable, "-m", "publisher"]
    return subprocess.run([*head, *args, "--duration", "3"], capture_output=True, text=True, timeout=90,
                          check=False, env={**os.environ, **env})


def test_cli_rest_without_qt_fills_the_same_keys_with_the_same_numbers_as_sim(redis_url: str) -> None:
    """Same seed, frozen market: the simulated OCX control and the fake REST server hold the same raw values
    (the OCX's padded strings with Kiwoom's quirks, ka10023's JSON strings). Both publishers must write the
    same keys and, field by field, the same rankings."""
    sim_url, rest_url = redis_url[:-1] + "1", redis_url[:-1] + "2"
    frozen = {"KIWOOM_PUBLISHER_SIM_STEP_S": "1e9", "KIWOOM_PUBLISHER_RESPECT_MARKET_HOURS": "false",
              "KIWOOM_PUBLISHER_RESPECT_MAINTENANCE": "false"}
    sim = run_cli(["--source", "sim", "--seed", "7", "--redis-url", sim_url], frozen)
    assert sim.returncode == 0, sim.stderr
    with serve(seed=7, step_s=1e9, page_size=7) as (_server, url):
        rest = run_cli(["--source", "rest", "--redis-url", rest_url],
                       {**frozen, APPKEY_ENV: APPKEY, SECRETKEY_ENV: SECRETKEY, "KIWOOM_PUBLISHER_REST_BASE_URL": url},
                       without_qt=True)
    assert rest.returncode == 0, rest.stderr
    assert APPKEY not in rest.stderr and SECRETKEY not in rest.stderr
    a, b = redis.Redis.from_url(sim_url), redis.Redis.from_url(rest_url)
    keys = sorted(a.keys("*"))
    assert keys == sorted(b.keys("*")) and len(keys) == 2 * 4 + 3, \
        "latest, history, seq, epoch per feed (the leases were released on the way out); feeds; status; publishers"
    assert [a.type(k) for k in keys] == [b.type(k) for k in keys]
    assert a.hgetall(c.FEEDS_KEY) == b.hgetall(c.FEEDS_KEY)
    for feed in ("kospi-surge", "kosdaq-surge"):
        x, y = (c.decode_ranking(r.get(c.latest_key(feed))) for r in (a, b))
        assert (x.source, y.source) == ("sim", "rest")
        same = ("feed", "tr", "params", "schema", "session", "dropped")
        assert [getattr(x, n) for n in same] == [getattr(y, n) for n in same]
        assert len(x.rows) == len(y.rows) > 0
        for row_x, row_y in zip(x.rows, y.rows, strict=True):
            assert row_x.to_dict() == row_y.to_dict(), f"{feed} rank {row_x.rank}"
    for status in (a.get(c.STATUS_KEY), b.get(c.STATUS_KEY)):
        assert c.PublisherStatus.decode(status).state == "stopped"
    a.close()
    b.close()


def test_cli_rest_without_keys_is_a_clear_error(redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in (APPKEY_ENV, SECRETKEY_ENV)}
    proc = subprocess.run([sys.executable, "-c", WITHOUT_QT, "--source", "rest", "--redis-url", redis_url],
                          capture_output=True, text=True, timeout=60, check=False, env=env)
    assert proc.returncode == 2
    assert APPKEY_ENV in proc.stderr and SECRETKEY_ENV in proc.stderr


def rest_publisher(url: str, redis_url: str, **kw) -> Publisher:
    """The publisher wired as the CLI wires it: one limiter shared by the poller and the source's own calls."""
    settings = load_settings(redis_url=redis_url, source="rest", rest_base_url=url, heartbeat_s=0.3,
                             status_ttl_s=2.0, respect_market_hours=False, respect_maintenance=False, **kw)
    loop = AsyncioLoop(asyncio.get_running_loop())
    limiter = settings.limiter()
    source = create_source(settings.source, SourceContext(settings, loop, limiter=limiter))
    return Publisher(settings, source, loop, limiter=limiter)


async def test_calls_keep_kiwoom_spacing_tokens_included(
        redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue: two data calls went out 3 ms apart (a 5/s window allows that) and token calls bypassed the limiter.
    Against a server that refuses calls less than 0.2 s apart, nothing is refused: pages, two feeds, a 401's
    token renewal and the retry all keep the spacing."""
    monkeypatch.setenv(APPKEY_ENV, APPKEY)
    monkeypatch.setenv(SECRETKEY_ENV, SECRETKEY)
    with serve(seed=2, page_size=10, limits=((100, 1.0),), min_spacing_s=0.2) as (server, url):
        publisher = rest_publisher(url, redis_url, feeds=FEEDS)
        publisher.start()
        await async_wait_until(lambda: all(count(redis_client, f.feed) >= 2 for f in FEEDS), 20, "rankings")
        server.faults.unauthorized = 1  # a token renewal mid-run: token call, then the retry
        tokens = server.tokens_issued
        await async_wait_until(lambda: server.tokens_issued > tokens, 20, "a renewed token")
        before = count(redis_client, "kospi-surge")
        await async_wait_until(lambda: count(redis_client, "kospi-surge") > before + 1, 20, "rankings after it")
        publisher.stop()
    assert server.too_soon == 0 and server.refused == 0, [t for _, t in publisher.recent_errors]
    assert len(server.seen) > 10 and server.tokens_issued >= 2


async def test_a_slow_token_renewal_is_not_a_lost_session(
        redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue: a 401 dropped the token while a new one was awaited, so the connection check (here every 0.1 s) read
    "not connected" and forced a second login from scratch. The renewal now keeps the session."""
    monkeypatch.setenv(APPKEY_ENV, APPKEY)
    monkeypatch.setenv(SECRETKEY_ENV, SECRETKEY)
    with serve(seed=4, page_size=50) as (server, url):
        publisher = rest_publisher(url, redis_url, feeds=FEEDS[:1], connection_check_s=0.1)
        states: list[str] = []
        publisher.stateChanged.connect(states.append)
        publisher.start()
        await async_wait_until(lambda: count(redis_client, "kospi-surge") >= 1, 20, "a first ranking")
        server.faults.token_delay_s = 1.0  # Kiwoom's token issue under load
        server.faults.unauthorized = 1
        tokens, before = server.tokens_issued, count(redis_client, "kospi-surge")
        await async_wait_until(lambda: server.tokens_issued > tokens and count(redis_client, "kospi-surge") > before,
                               20, "the renewed token and the next ranking")
        publisher.stop()
    assert not any("connection to Kiwoom lost" in t for _, t in publisher.recent_errors), publisher.recent_errors
    assert "degraded" not in states and "connecting" not in states[1:], states
    assert server.tokens_issued == tokens + 1, "one renewal, no second login"


async def test_a_request_gives_up_within_its_budget_with_its_own_reason(
        redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue: rest_retries=2 with a 5 s HTTP timeout (3 attempts, 15 s and the backoff) outlasted
    request_timeout_s=10, so the poller's timeout cancelled the source mid-retry and the failure said only
    "timed out". Now the source stops at its budget (a little under the timeout) and says why."""
    monkeypatch.setenv(APPKEY_ENV, APPKEY)
    monkeypatch.setenv(SECRETKEY_ENV, SECRETKEY)
    with serve(seed=4, page_size=50) as (server, url):
        publisher = rest_publisher(url, redis_url, feeds=FEEDS[:1], request_timeout_s=2.0, rest_http_timeout_s=1.5,
                                   rest_retries=3)
        publisher.start()
        await async_wait_until(lambda: count(redis_client, "kospi-surge") >= 1, 20, "a first ranking")
        server.faults.delay_s = 1.6  # every call outlasts the HTTP timeout
        await async_wait_until(lambda: any("request budget" in t for _, t in publisher.recent_errors), 20,
                               "the source's own failure")
        server.faults.delay_s = 0.0
        publisher.stop()
    texts = [t for _, t in publisher.recent_errors]
    assert any("no time left in the request budget of 1.8s" in t or "within the request budget of 1.8s" in t
               for t in texts), texts
    assert not any("timed out after 2" in t for t in texts), texts
