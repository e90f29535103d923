"""Kiwoom's REST API as a ranking source: each ranking TR's ka100xx twin (ka10023 for opt10023, ...), no Qt.

* Login is an OAuth client-credentials token (``au10001``, ``POST /oauth2/token``) from the app key and
  secret key in the environment only (:data:`APPKEY_ENV`, :data:`SECRETKEY_ENV`): they never enter the
  settings, a log line or the status key. The token is issued again shortly before its ``expires_dt``,
  and once more when Kiwoom calls it invalid (token codes, HTTP 401) before the request is given up. A token
  being renewed is not a lost session: :meth:`RestSource.is_connected` stays true meanwhile, so the
  publisher's connection check does not start a second login. Token calls take a slot of the shared limiter
  like every other call.
* One request (its pages, retries and any token renewal) ends within the settings' request budget, a little
  under the poller's timeout: it fails with its own reason instead of being cancelled mid-retry.
* A request is ``POST /api/dostk/rkinfo`` with ``api-id`` the TR's REST id; continuation pages follow the
  ``cont-yn``/``next-key`` headers and are merged into one answer, each page taking a slot from the shared
  limiter first. Timeouts, connection errors and 5xx answers are retried with exponential backoff.
* Answers become the same :class:`RawResponse` as the OCX's: the TR's REST spelling (``spec.rest``) maps each
  answer key straight to its row field, and the one parser does the rest, naming a refused value by its REST
  key. ``return_code`` values become the typed families of :mod:`publisher.sources.rest_codes` (1700 is a
  :class:`RateLimitError`).

Runs on the asyncio loop (:mod:`publisher.aio_loop`) with ``httpx.AsyncClient``: nothing here blocks.
The facts it relies on are in docs/kiwoom-rest.md and docs/kiwoom-rankings.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import httpx

from kiwoom_cache.clock import KST, now_ms
from kiwoom_cache.errors import KiwoomCacheError
from publisher.kiwoom_errors import ErrorInfo, SourceUnavailableError
from publisher.limiter import RateLimiter
from publisher.loop import Signal
from publisher.sources.base import SourceContext
from publisher.sources.rest_answers import int_code, json_object, row_fields
from publisher.sources.rest_codes import OK, RENEW_TOKEN_CODES, CredentialsError, TokenInvalidError, rest_error
from publisher.sources.rest_settings import RestMode, RestSettings
from publisher.trs import Provider, RawResponse, TrRequest, tr_spec

log = logging.getLogger(__name__)

APPKEY_ENV: Final = "KIWOOM_PUBLISHER_REST_APPKEY"
SECRETKEY_ENV: Final = "KIWOOM_PUBLISHER_REST_SECRETKEY"
#: Kiwoom's domains: real trading and 모의투자 (mock, KRX only).
DOMAINS: Final[Mapping[RestMode, str]] = {
    RestMode.real: "https://api.kiwoom.com", RestMode.mock: "https://mockapi.kiwoom.com",
}
TOKEN_PATH: Final = "/oauth2/token"
TOKEN_API_ID: Final = "au10001"
RANKING_PATH: Final = "/api/dostk/rkinfo"
#: ka100xx's extra input: 거래소구분 1 = KRX (2 NXT, 3 통합 append a venue suffix to codes).
EXCHANGE_KEY: Final = "stex_tp"
_JSON: Final = "application/json;charset=UTF-8"
_HTTP_401: Final = ErrorInfo(401, "HTTP_UNAUTHORIZED", "인증 실패", "HTTP 401 Unauthorized")


class RestSource:
    """The ranking TRs' REST twins over httpx on the running asyncio loop."""

    def __init__(self, aio: asyncio.AbstractEventLoop, *, base_url: str, appkey: str, secretkey: str,
                 account_mode: str, exchange: str = "1", max_pages: int = 5, http_timeout_s: float = 5.0,
                 retries: int = 2, limiter: RateLimiter | None = None, budget_s: float | None = None) -> None:
        if not appkey or not secretkey:
            raise CredentialsError(8001, f"--source rest needs ${APPKEY_ENV} and ${SECRETKEY_ENV} in the environment")
        self.loggedIn = Signal()
        self.responseReceived = Signal()
        self.requestFailed = Signal()
        self.messageReceived = Signal()
        self.base_url = base_url.rstrip("/")
        self._credentials = {"grant_type": "client_credentials", "appkey": appkey, "secretkey": secretkey}
        self._account_mode = account_mode
        self._exchange = exchange
        self._max_pages = max_pages
        self._retries = retries
        self._aio = aio
        self._http_timeout_s = http_timeout_s
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=http_timeout_s)
        #: Paces token calls; the poller's (shared) limiter, also taken from each request.
        self._limiter = limiter
        #: Seconds one request may take in all (None: no bound but the retries').
        self._budget_s = budget_s
        self._token: str | None = None
        #: Kiwoom called the token invalid: the next call issues a new one (the session is not lost for that).
        self._stale = False
        self._renew_at = 0.0
        self._login_task: asyncio.Task[None] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: Tokens issued so far (tests and the status read it).
        self.tokens_issued = 0

    def __repr__(self) -> str:  # never the keys
        return f"RestSource({self.base_url!r}, {self._account_mode})"

    # --- session ---------------------------------------------------------------------------------

    @property
    def account_mode(self) -> str:
        return self._account_mode

    @property
    def exhausted(self) -> bool:
        return False

    def is_connected(self) -> bool:
        """Logged in: a token was issued and no login failed since (a token being renewed still counts)."""
        return self._token is not None

    def login(self) -> None:
        """Issue a token in the background; the result arrives as :attr:`loggedIn`."""
        self._token, self._stale = None, False
        if self._login_task is not None:
            self._login_task.cancel()  # a newer login supersedes one still waiting for its token
        self._login_task = self._aio.create_task(self._login())

    async def _login(self) -> None:
        try:
            await self._issue_token()
        except KiwoomCacheError as error:
            self.loggedIn.emit(error)
            return
        self.loggedIn.emit(None)

    async def _issue_token(self, deadline: float = float("inf")) -> str:
        context = f"{TOKEN_API_ID} {TOKEN_PATH}"
        if self._limiter is not None:
            await _pace(self._limiter, deadline, self._aio, context)
        try:
            response = await self._post(self._limiter, TOKEN_PATH, json=self._credentials,
                                        timeout=self._timeout(deadline),
                                        headers={"api-id": TOKEN_API_ID, "Content-Type": _JSON})
        except httpx.HTTPError as exc:
            raise SourceUnavailableError(f"{context}: {type(exc).__name__}: {exc}") from exc
        data = json_object(response, context)
        code = int_code(data.get("return_code", OK), context)
        if code != OK:
            raise rest_error(code, str(data.get("return_msg", "")), context)
        token, expires = data.get("token"), data.get("expires_dt")
        if not isinstance(token, str) or not token or not isinstance(expires, str):
            raise SourceUnavailableError(f"{context}: malformed token answer (no 'token'/'expires_dt')")
        try:
            expires_at = datetime.strptime(expires, "%Y%m%d%H%M%S").replace(tzinfo=KST).timestamp()
        except ValueError as exc:
            raise SourceUnavailableError(f"{context}: malformed expires_dt {expires!r}") from exc
        now = time.time()
        if expires_at <= now:
            # A clock or zone mismatch: renewing "before expiry" would ask for a token on every call.
            log.warning("%s: expires_dt %s is not in the future here; renewing on token errors only", context, expires)
            self._renew_at = float("inf")
        else:  # renew ahead of expiry: 5 minutes, or a fifth of a short lifetime
            self._renew_at = expires_at - min(300.0, (expires_at - now) / 5)
        self._token, self._stale = token, False
        self.tokens_issued += 1
        log.info("Kiwoom REST token issued (%s domain), valid until %s KST", self._account_mode,
                 datetime.fromtimestamp(expires_at, KST).strftime("%Y-%m-%d %H:%M:%S"))
        return token

    async def _valid_token(self, deadline: float) -> str:
        if self._token is None or self._stale or time.time() >= self._renew_at:
            return await self._issue_token(deadline)
        return self._token

    def _timeout(self, deadline: float) -> float:
        """One HTTP call's timeout: the configured one, cut to what is left of the request's budget."""
        left = deadline - self._aio.time()
        if left <= 0:
            raise _OutOfTime
        return min(self._http_timeout_s, left)

    def close(self) -> None:
        for task in [*self._tasks.values(), *([self._login_task] if self._login_task else [])]:
            task.cancel()
        self._tasks.clear()
        if self._aio.is_running():
            self._aio.create_task(self._http.aclose())
        elif not self._aio.is_closed():
            self._aio.run_until_complete(self._http.aclose())

    # --- requests --------------------------------------------------------------------------------

    def request(self, req: TrRequest, limiter: RateLimiter) -> None:
        self._limiter = limiter
        self._tasks[req.feed] = self._aio.create_task(self._fetch(req, limiter))

    def forget(self, feed: str) -> None:
        task = self._tasks.pop(feed, None)
        if task is not None:
            task.cancel()

    def pending_feeds(self) -> Sequence[str]:
        return list(self._tasks)

    async def _fetch(self, req: TrRequest, limiter: RateLimiter) -> None:
        requested_at = now_ms()
        deadline = self._aio.time() + self._budget_s if self._budget_s is not None else float("inf")
        spec = tr_spec(req.trcode)
        context = f"{spec.rest.api_id} {req.feed}"
        body = {spec.rest.inputs[param]: value for param, value in req.inputs}
        body[EXCHANGE_KEY] = self._exchange
        rows: list[dict[str, str]] = []
        next_key: str | None = None
        more = False
        try:
            for page in range(self._max_pages):
                if page:
                    await _pace(limiter, deadline, self._aio, context)
                data, more, next_key = await self._call(spec.rest.api_id, body, next_key, limiter, context,
                                                            deadline=deadline)
                items = data.get(spec.rest.rows_key)
                if not isinstance(items, list):
                    raise SourceUnavailableError(f"{context}: malformed answer: no '{spec.rest.rows_key}' list")
                rows.extend(row_fields(spec, item) for item in items)
                message = data.get("return_msg")
                if page == 0 and isinstance(message, str) and message:
                    self.messageReceived.emit(req.feed, message)
                if not more:
                    break
            else:
                log.warning("%s: more than %d pages; publishing the first %d rows", context, self._max_pages, len(rows))
        except _OutOfTime:
            error = SourceUnavailableError(f"{context}: no answer within the request budget of {self._budget_s:g}s "
                                           f"({len(rows)} rows of {page} page(s) so far); giving up before the "
                                           "poller's timeout")
            self._tasks.pop(req.feed, None)
            self.requestFailed.emit(req.feed, error)
            return
        except KiwoomCacheError as error:
            self._tasks.pop(req.feed, None)
            self.requestFailed.emit(req.feed, error)
            return
        self._tasks.pop(req.feed, None)
        self.responseReceived.emit(RawResponse(
            feed=req.feed, trcode=req.trcode, screen="", inputs=req.inputs, prev_next="2" if more else "0",
            rows=tuple(rows), requested_at_ms=requested_at, received_at_ms=now_ms(), provider=Provider.rest,
        ))

    async def _call(self, api_id: str, body: dict[str, str], next_key: str | None, limiter: RateLimiter,
                    context: str, *, deadline: float) -> tuple[dict[str, Any], bool, str | None]:
        """One page: (answer, more pages?, next-key). Renews the token once; retries transport trouble, never
        past ``deadline`` (then :class:`_OutOfTime`)."""
        renewed = False
        attempt = 0
        while True:
            issued = self.tokens_issued
            token = await self._valid_token(deadline)
            if self.tokens_issued != issued:  # the token call took a slot: this call waits for the next
                await _pace(limiter, deadline, self._aio, context)
            headers = {"api-id": api_id, "authorization": f"Bearer {token}", "Content-Type": _JSON}
            if next_key is not None:
                headers.update({"cont-yn": "Y", "next-key": next_key})
            failure: str
            try:
                response = await self._post(limiter, RANKING_PATH, json=body, headers=headers,
                                            timeout=self._timeout(deadline))
            except httpx.HTTPError as exc:
                failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.status_code == 401:
                    if not renewed:
                        renewed, self._stale = True, True
                        continue
                    raise TokenInvalidError(401, f"{context}: HTTP 401 with a new token", _HTTP_401)
                if response.status_code < 500:
                    data = json_object(response, context)
                    code = int_code(data.get("return_code", OK), context)
                    if code == OK:
                        more = response.headers.get("cont-yn", "N").upper() == "Y"
                        key = response.headers.get("next-key") or None
                        if more and key is None:
                            raise SourceUnavailableError(f"{context}: cont-yn Y without a next-key")
                        return data, more, key
                    if code in RENEW_TOKEN_CODES and not renewed:
                        renewed, self._stale = True, True
                        continue
                    raise rest_error(code, str(data.get("return_msg", "")), context)
                failure = f"HTTP {response.status_code}"
            if attempt >= self._retries:
                raise SourceUnavailableError(f"{context}: {failure} (after {attempt + 1} attempts)")
            delay = min(4.0, 0.25 * 2 ** attempt) * random.uniform(0.5, 1.0)
            if self._aio.time() + delay >= deadline:
                raise SourceUnavailableError(f"{context}: {failure} (after {attempt + 1} attempts; no time left in "
                                             f"the request budget of {self._budget_s:g}s for another)")
            attempt += 1
            log.warning("%s: %s; retrying in %.2fs", context, failure, delay)
            await asyncio.sleep(delay)
            await _pace(limiter, deadline, self._aio, context)


    async def _post(self, limiter: RateLimiter | None, path: str, **kwargs: Any) -> httpx.Response:
        """One call; its slot counts from when the answer (or the failure) came back: the server counted the call
        when it arrived, some time before that (:meth:`RateLimiter.sent`)."""
        try:
            return await self._http.post(path, **kwargs)
        finally:
            if limiter is not None:
                limiter.sent()


class _OutOfTime(Exception):
    """The request's budget ran out (turned into a SourceUnavailableError that says so)."""


async def _pace(limiter: RateLimiter, deadline: float, aio: asyncio.AbstractEventLoop, context: str) -> None:
    """Wait for a slot of the shared limiter (token calls, continuation pages and retries are requests too)."""
    while (wait := limiter.try_acquire()) > 0:
        if aio.time() + wait >= deadline:
            raise _OutOfTime(context)
        await asyncio.sleep(wait)


def create(context: SourceContext) -> RestSource:
    """The REST source from the settings; the keys come from the environment only."""
    from publisher.aio_loop import AsyncioLoop  # noqa: PLC0415

    if not isinstance(context.loop, AsyncioLoop):
        raise TypeError("the REST source runs on an AsyncioLoop")
    s = context.block(RestSettings)
    return RestSource(
        context.loop.aio, base_url=s.rest_base_url or DOMAINS[s.rest_mode], appkey=os.environ.get(APPKEY_ENV, ""),
        secretkey=os.environ.get(SECRETKEY_ENV, ""), account_mode=s.rest_mode.value, max_pages=s.rest_max_pages,
        http_timeout_s=s.rest_http_timeout_s, retries=s.rest_retries, limiter=context.limiter,
        budget_s=context.settings.request_budget_s(),
    )
