"""The doctor's source check: log in and send one request for the first feed (REST: the token and one call)."""

from __future__ import annotations

import sys
from typing import Any

from kiwoom_cache.contract import Source
from kiwoom_cache.errors import KiwoomCacheError
from publisher.doctor_checks import Check, failed, ok, skipped
from publisher.event_loops import make_asyncio_loop, make_qt_loop
from publisher.kiwoom_errors import LoginRefusedError, VersionUpdateError
from publisher.settings import PublisherSettings


def _login_fix(error: KiwoomCacheError, source: Source) -> str:
    from publisher.sources.rest_codes import CredentialsError  # noqa: PLC0415

    if isinstance(error, VersionUpdateError):
        return "Kiwoom updated OpenAPI+: close every program using it (KOA Studio, HTS) and run the doctor again"
    if isinstance(error, LoginRefusedError):
        return ("log in by hand once and save the account password again (tray icon → 계좌비밀번호 저장, AUTO), or "
                "check the ID and password")
    if isinstance(error, CredentialsError):
        return ("set KIWOOM_PUBLISHER_REST_APPKEY and KIWOOM_PUBLISHER_REST_SECRETKEY to the keys issued for "
                "this rest_mode (real or mock) and register this PC's IP with Kiwoom")
    if source is Source.rest:
        return "check the network to Kiwoom's REST domain (rest_base_url / rest_mode)"
    return "check the network and Kiwoom's service hours (daily maintenance 05:05–05:10, Sunday 04:00–04:30 KST)"


def check_source(settings: PublisherSettings, timeout_s: float) -> list[Check]:
    """Log in and send one request for the first feed; two checks (login, request)."""
    source_name = Source(settings.source)
    login_name = "REST token" if source_name is Source.rest else "login"
    request_name = "REST call" if source_name is Source.rest else "TR request"
    if source_name is Source.kiwoom and sys.platform != "win32":
        return [failed(login_name, "only on Windows: the OpenAPI+ control logs in there",
                       "run the doctor on the Windows PC"),
                skipped(request_name, "no login")]
    if source_name is Source.replay:
        return [skipped(login_name, "a replay needs no login"), skipped(request_name, "a replay sends no request")]
    from publisher.limiter import RateLimiter, with_margin  # noqa: PLC0415
    from publisher.parser import ranking_from_response  # noqa: PLC0415
    from publisher.sources import create_source, spec_for  # noqa: PLC0415
    from publisher.sources.base import SourceContext  # noqa: PLC0415
    from publisher.trs import RawResponse, TrRequest  # noqa: PLC0415

    loop = _make_loop(spec_for(source_name).qt, source_name)
    result: dict[str, Any] = {}
    feed = settings.feeds[0]
    limiter = RateLimiter(with_margin(settings.limits(), settings.safety_margin))
    try:
        source = create_source(source_name, SourceContext(settings, loop, (), True))
    except KiwoomCacheError as exc:
        return [failed(login_name, str(exc), _login_fix(exc, source_name)), skipped(request_name, "no login")]

    def on_login(error: KiwoomCacheError | None) -> None:
        if "login" in result:
            return
        result["login"] = error
        if error is not None:
            loop.quit()
            return
        try:
            source.request(TrRequest(feed=feed.feed, trcode=feed.tr, inputs=feed.inputs()), limiter)
        except KiwoomCacheError as exc:
            result["request"] = exc
            loop.quit()

    def on_response(raw: RawResponse) -> None:
        result["request"] = raw
        loop.quit()

    def on_failed(_feed: str, error: KiwoomCacheError) -> None:
        result["request"] = error
        loop.quit()

    source.loggedIn.connect(on_login)
    source.responseReceived.connect(on_response)
    source.requestFailed.connect(on_failed)

    def login() -> None:
        try:
            source.login()
        except KiwoomCacheError as exc:
            on_login(exc)

    start = loop.timer(login)
    start.start(0)
    deadline = loop.timer(loop.quit, interval_s=timeout_s)
    deadline.start()
    try:
        loop.run()
    finally:
        deadline.stop()
        source.close()
        close = getattr(loop, "close", None)
        if close is not None:
            close()
    checks: list[Check] = []
    if "login" not in result:
        return [failed(login_name, f"no answer within {timeout_s:g}s", _login_fix(KiwoomCacheError(), source_name)),
                skipped(request_name, "no login")]
    error = result["login"]
    if error is not None:
        return [failed(login_name, str(error), _login_fix(error, source_name)), skipped(request_name, "no login")]
    checks.append(ok(login_name, f"logged in ({source.account_mode} server)"))
    answer = result.get("request")
    what = f"{feed.tr} for {feed.feed}"
    if answer is None:
        checks.append(failed(request_name, f"{what}: no answer within {timeout_s:g}s",
                             "look at Kiwoom's messages in the publisher log; raise request_timeout_s"))
    elif isinstance(answer, KiwoomCacheError):
        checks.append(failed(request_name, f"{what}: {answer}", "check the feed's TR inputs against "
                                                                "docs/kiwoom-rankings.md"))
    else:
        ranking = ranking_from_response(answer, source=settings.source)
        detail = f"{what}: {len(answer.rows)} rows, {len(ranking.rows)} parsed, {len(ranking.dropped)} dropped"
        if answer.rows and not ranking.rows:
            checks.append(failed(request_name, detail, "the answer's fields do not parse: report it with the log"))
        else:
            checks.append(ok(request_name, detail))
    return checks


def _make_loop(qt: bool, source: Source) -> Any:
    return make_qt_loop(PublisherSettings(source=source), headless=True) if qt else make_asyncio_loop()
