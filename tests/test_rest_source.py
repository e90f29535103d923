"""The REST source against the fake Kiwoom REST server (real HTTP on a free port, never a Kiwoom host):
documented shapes and headers, paging through the limiter, token expiry and renewal, 1700 refusals, retries,
malformed answers, error families."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from kiwoom_cache.errors import KiwoomCacheError
from publisher.kiwoom_errors import (
    ConnectionClosedError,
    KiwoomApiError,
    LoginError,
    RateLimitError,
    RequestInputError,
    SourceUnavailableError,
)
from publisher.limiter import RateLimiter, Window
from publisher.parser import ranking_from_response
from publisher.settings import FeedSettings
from publisher.sources.rest import RestSource
from publisher.sources.rest_codes import CODES, CredentialsError, TokenInvalidError, rest_error
from publisher.sources.rest_fake import FakeKiwoomRest
from publisher.trs import OPT10023, RawResponse, TrRequest
from tests.rest_fake_server import APPKEY, SECRETKEY, serve
from tests.waiting import async_wait_until

pytestmark = pytest.mark.integration

ALL = FeedSettings(feed="all-surge", market="000")


class Client:
    """Drives one RestSource the way the poller does, and collects what it says."""

    def __init__(self, url: str, *, appkey: str = APPKEY, **kw: float) -> None:
        self.source = RestSource(asyncio.get_running_loop(), base_url=url, appkey=appkey, secretkey=SECRETKEY,
                                 account_mode="mock", **kw)  # type: ignore[arg-type]
        self.logins: list[KiwoomCacheError | None] = []
        self.answers: list[RawResponse] = []
        self.failures: list[KiwoomCacheError] = []
        self.source.loggedIn.connect(self.logins.append)
        self.source.responseReceived.connect(self.answers.append)
        self.source.requestFailed.connect(lambda feed, error: self.failures.append(error))
        self.limiter = RateLimiter([Window(1000, 1.0)])

    async def login(self) -> KiwoomCacheError | None:
        """Start a login and wait for its result."""
        self.source.login()
        await async_wait_until(lambda: self.logins, 10, "a login result")
        return self.logins[-1]


async def last(client: Client, feed: FeedSettings = ALL) -> RawResponse | KiwoomCacheError:
    """Send one request for ``feed`` and wait for its answer or its failure."""
    answers, failures = len(client.answers), len(client.failures)
    client.source.request(TrRequest(feed=feed.feed, trcode=feed.tr, inputs=feed.inputs()), client.limiter)
    await async_wait_until(lambda: len(client.answers) > answers or len(client.failures) > failures, 15, "an answer")
    return client.answers[-1] if len(client.answers) > answers else client.failures[-1]


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeKiwoomRest, str]]:
    # The server runs in its own thread; entering it from a coroutine is fine (it only waits for startup).
    with serve(seed=3, page_size=10, limits=((1000, 1.0),)) as served:
        yield served


async def test_documented_shapes_headers_and_merged_pages(fake) -> None:
    server, url = fake
    client = Client(url)
    assert await client.login() is None
    raw = await last(client)
    assert isinstance(raw, RawResponse)
    ranking = ranking_from_response(raw, source="rest")
    assert len(ranking.rows) > 20 and not ranking.dropped, "several pages of 10 merged into one ranking"
    assert [r.rank for r in ranking.rows] == list(range(1, len(ranking.rows) + 1))
    assert ranking.params == ALL.params and ranking.tr == OPT10023.code
    token_call, *calls = server.seen
    assert token_call.path == "/oauth2/token" and token_call.headers["api-id"] == "au10001"
    assert token_call.body == {"grant_type": "client_credentials", "appkey": APPKEY, "secretkey": SECRETKEY}
    assert len(calls) == (len(ranking.rows) + 9) // 10
    first, *more = calls
    assert first.path == "/api/dostk/rkinfo" and first.headers["api-id"] == "ka10023"
    assert first.headers["authorization"].startswith("Bearer ") and "application/json" in first.headers["content-type"]
    assert first.body == {"mrkt_tp": "000", "sort_tp": "1", "tm_tp": "1", "trde_qty_tp": "5", "tm": "5",
                          "stk_cnd": "0", "pric_tp": "0", "stex_tp": "1"}
    assert "cont-yn" not in first.headers
    assert all(c.headers["cont-yn"] == "Y" and c.headers["next-key"] for c in more)
    assert client.limiter.granted == len(more), "every continuation page took a slot from the shared limiter"
    client.source.close()


async def test_expired_token_is_renewed_and_the_request_retried(fake) -> None:
    server, url = fake
    client = Client(url)
    await client.login()
    server.expire_tokens()
    raw = await last(client)
    assert isinstance(raw, RawResponse) and raw.rows
    assert server.expired == 1 and server.tokens_issued == 2 == client.source.tokens_issued
    client.source.close()


async def test_token_is_renewed_before_expires_dt(fake) -> None:
    server, url = fake
    server.token_ttl_s = 3.0
    client = Client(url)
    await client.login()
    renew_at = client.source._renew_at
    await async_wait_until(lambda: __import__("time").time() >= renew_at, 10, "the renewal point")
    raw = await last(client)
    assert isinstance(raw, RawResponse)
    assert server.tokens_issued == 2 and server.expired == 0, "renewed ahead of expires_dt, never refused"
    client.source.close()


async def test_expires_dt_in_the_past_does_not_reissue_on_every_call(fake, caplog) -> None:
    server, url = fake
    server.faults.expires_dt_skew_s = -86400.0
    client = Client(url)
    await client.login()
    for _ in range(3):
        assert isinstance(await last(client), RawResponse)
    assert server.tokens_issued == 1
    assert "renewing on token errors only" in caplog.text
    client.source.close()


async def test_http_401_renews_once_then_gives_up_as_a_closed_session(fake) -> None:
    server, url = fake
    client = Client(url)
    await client.login()
    server.faults.unauthorized = 1
    assert isinstance(await last(client), RawResponse)
    assert server.tokens_issued == 2
    server.faults.unauthorized = 2
    error = await last(client)
    assert isinstance(error, TokenInvalidError) and isinstance(error, ConnectionClosedError)
    client.source.close()


async def test_1700_is_a_rate_limit_error(fake) -> None:
    server, url = fake
    client = Client(url)
    await client.login()
    server.faults.refuse = 1
    error = await last(client)
    assert isinstance(error, RateLimitError) and error.code == 1700 and error.name == "REST_RATE_LIMIT"
    assert "허용된 요청 개수" in str(error)
    assert isinstance(await last(client), RawResponse)
    client.source.close()


async def test_a_call_slow_to_arrive_does_not_crowd_the_next(fake) -> None:
    """Fails when the limiter times a slot from its grant: the token call reached the server 0.3 s after it was
    granted, and the ranking call, granted 0.5 s after the token call, arrived 0.2 s after it (1700)."""
    server, url = fake
    server.min_spacing_s = 0.5
    server.faults.token_delay_s = 0.3
    limiter = RateLimiter([Window(1000, 1.0)], min_spacing_s=0.5)
    client = Client(url, limiter=limiter)  # type: ignore[arg-type]
    client.limiter = limiter
    assert await client.login() is None
    while (wait := limiter.try_acquire()) > 0:  # the poller's part: a slot before each request
        await asyncio.sleep(wait)
    answer = await last(client)
    assert isinstance(answer, RawResponse), answer
    assert server.too_soon == 0
    client.source.close()


@pytest.mark.parametrize("kind", ["not-json", "array", "no-list", "bad-code", "cont-without-key"])
async def test_malformed_answers_are_clear_errors(fake, kind: str) -> None:
    server, url = fake
    client = Client(url)
    await client.login()
    server.faults.malformed.append(kind)
    error = await last(client)
    assert isinstance(error, SourceUnavailableError) and "ka10023 all-surge" in str(error)
    assert isinstance(await last(client), RawResponse), "the next request is fine again"
    client.source.close()


async def test_malformed_rows_are_dropped_and_reported(fake) -> None:
    server, url = fake
    client = Client(url)
    await client.login()
    server.faults.malformed.append("bad-row")
    raw = await last(client)
    assert isinstance(raw, RawResponse)
    ranking = ranking_from_response(raw, source="rest")
    assert [r.rank for r in ranking.rows] == [2]
    # Each refused value is named by the REST key it came under, as Kiwoom's REST answer spells it.
    assert [(d.rank, d.field, d.reason) for d in ranking.dropped] == [
        (1, "cur_prc", "not a number"), (3, "stk_cd", "missing"), (4, "stk_nm", "missing")]
    client.source.close()


async def test_server_errors_and_timeouts_are_retried_with_backoff(fake) -> None:
    server, url = fake
    client = Client(url, retries=2, http_timeout_s=0.3)
    await client.login()
    server.faults.server_errors = 2
    assert isinstance(await last(client), RawResponse), "two 500s, then the third attempt succeeds"
    server.faults.server_errors = 3
    error = await last(client)
    assert isinstance(error, SourceUnavailableError) and "HTTP 500 (after 3 attempts)" in str(error)
    server.faults.delay_s = 1.0
    error = await last(client)
    assert isinstance(error, SourceUnavailableError) and "Timeout" in str(error)
    server.faults.delay_s = 0.0
    assert isinstance(await last(client), RawResponse)
    client.source.close()


async def test_wrong_keys_fail_login_with_a_named_error(fake) -> None:
    _server, url = fake
    client = Client(url, appkey="wrong")
    error = await client.login()
    assert isinstance(error, CredentialsError) and isinstance(error, LoginError) and error.code == 8001
    assert not client.source.is_connected()
    assert APPKEY not in str(error) and SECRETKEY not in str(error) and "wrong" not in repr(client.source)
    client.source.close()


async def test_unreachable_server_fails_login_clearly() -> None:
    from stack.localredis import free_port

    client = Client(f"http://127.0.0.1:{free_port()}")
    error = await client.login()
    assert isinstance(error, SourceUnavailableError) and "ConnectError" in str(error)
    client.source.close()


def test_every_documented_code_is_named_with_its_family() -> None:
    families = {1700: RateLimitError, 1501: RequestInputError, 1687: RequestInputError, 8020: RequestInputError,
                1901: KiwoomApiError, 8001: CredentialsError, 8012: CredentialsError, 8005: TokenInvalidError,
                8016: TokenInvalidError, 8030: CredentialsError, 8103: LoginError, 8050: LoginError}
    documented = {1501, 1504, 1505, *range(1511, 1518), 1687, 8020, 1700, 1901, 1902, 8001, 8002, 8011, 8012,
                  8003, 8005, 8006, 8009, 8015, 8016, 8030, 8031, 8010, 8040, 8050, 8103}
    assert set(CODES) == documented
    for code in documented:
        error = rest_error(code, "server text", "ka10023 f")
        assert error.name.startswith("REST_") and error.name != "REST_UNKNOWN" and "server text" in str(error)
    for code, family in families.items():
        assert type(rest_error(code, "", "x")) is family
    unknown = rest_error(4242, "?", "x")
    assert type(unknown) is KiwoomApiError and unknown.name == "REST_UNKNOWN"


async def test_factory_picks_the_domain_and_reads_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from publisher.aio_loop import AsyncioLoop
    from publisher.settings import load_settings
    from publisher.sources import create_source
    from publisher.sources.base import SourceContext
    from publisher.sources.rest import APPKEY_ENV, SECRETKEY_ENV

    monkeypatch.setenv(APPKEY_ENV, APPKEY)
    monkeypatch.setenv(SECRETKEY_ENV, SECRETKEY)
    loop = AsyncioLoop(asyncio.get_running_loop())
    for mode, url in (("real", "https://api.kiwoom.com"), ("mock", "https://mockapi.kiwoom.com")):
        settings = load_settings(source="rest", rest_mode=mode)
        source = create_source(settings.source, SourceContext(settings, loop))
        assert isinstance(source, RestSource) and source.base_url == url and source.account_mode == mode
        assert APPKEY not in repr(source) + repr(settings) and SECRETKEY not in repr(source) + repr(settings)
        source.close()
    monkeypatch.delenv(SECRETKEY_ENV)
    with pytest.raises(CredentialsError, match=SECRETKEY_ENV):
        create_source("rest", SourceContext(load_settings(source="rest"), loop))
