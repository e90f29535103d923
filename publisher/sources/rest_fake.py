"""A fake Kiwoom REST server for tests and the demo: simulated data, never real market data.

A small ASGI app (no framework) answering the calls the REST source makes, in the documented shapes
(docs/kiwoom-rest.md, docs/kiwoom-rankings.md): ``POST /oauth2/token`` (``au10001``) and
``POST /api/dostk/rkinfo`` for every ranking TR's REST twin (``ka10023``, ``ka10030``, ``ka10027``, ``ka10032``),
with the ``api-id``/``authorization``/``Content-Type`` request headers, ``cont-yn``/``next-key``
continuation, tokens that expire at ``expires_dt``, ``return_code`` 1700 when more than ``limits`` requests
arrive or calls come less than ``min_spacing_s`` apart (``--min-spacing``, 0.2 s when run as a server), and faults
on demand (:class:`RestFaults`: refusals, malformed bodies, 5xx, 401, slow answers, slow token issue).
Rankings come from the same seeded market model as the simulated OCX control.

Run it (needs uvicorn, from the ``api`` extra)::

    python -m publisher.sources.rest_fake --port 8090     # keys from $KIWOOM_PUBLISHER_REST_APPKEY/SECRETKEY
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from kiwoom_cache.clock import KST
from publisher.controls.sim_market import Quote, SimMarket
from publisher.controls.sim_ranking import ranked, raw_rows
from publisher.sources.rest import APPKEY_ENV, RANKING_PATH, SECRETKEY_ENV, TOKEN_API_ID, TOKEN_PATH
from publisher.trs import TRS, TrSpec, spec_by_api_id

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

NOTE: Final = "simulated data from kiwoom-cache's fake Kiwoom REST server, not real market data"
OK_MSG: Final = "정상적으로 처리되었습니다"


@dataclass(slots=True)
class RestFaults:
    """Knobs a test turns; counters decrement as the faults fire (ranking calls only)."""

    #: Answer this many requests with return_code 1700.
    refuse: int = 0
    #: Next answers' bodies: "not-json", "array", "no-list", "bad-code", "bad-row", "cont-without-key".
    malformed: deque[str] = field(default_factory=deque)
    #: Answer this many requests with HTTP 500.
    server_errors: int = 0
    #: Answer this many requests with HTTP 401 whatever the token.
    unauthorized: int = 0
    #: Hold each answer this long (a slow server).
    delay_s: float = 0.0
    #: Hold each token answer this long (a slow token issue: Kiwoom's au10001 under load).
    token_delay_s: float = 0.0
    #: Shift the reported expires_dt by this much (a server whose clock or zone disagrees); the token is unaffected.
    expires_dt_skew_s: float = 0.0


@dataclass(frozen=True, slots=True)
class SeenRequest:
    path: str
    headers: Mapping[str, str]
    body: Any


class FakeKiwoomRest:
    def __init__(self, appkey: str, secretkey: str, *, seed: int | None = 0, page_size: int = 20,
                 token_ttl_s: float = 86400.0, limits: tuple[tuple[int, float], ...] = ((5, 1.0),),
                 step_s: float = 1.0, quotes: Callable[[Mapping[str, str]], list[Quote]] | None = None,
                 min_spacing_s: float = 0.0) -> None:
        self._keys = (appkey, secretkey)
        self.market = SimMarket(seed)
        self.faults = RestFaults()
        self.page_size = page_size
        self.token_ttl_s = token_ttl_s
        self.limits = limits
        #: Refuse (1700) any call, token calls included, that arrives sooner than this after the previous one:
        #: Kiwoom's examples space their calls 0.2 s apart, and a server may count it that way.
        self.min_spacing_s = min_spacing_s
        self._last_call = -float("inf")
        #: Calls refused for arriving too soon after the previous one.
        self.too_soon = 0
        self._step_s = step_s
        self._last_step = time.monotonic()
        #: Replaces the market model: quotes for a query (tests feeding exact numbers), any TR.
        self._quotes = quotes
        self._tokens: dict[str, float] = {}
        self._pages: dict[str, list[dict[str, str]]] = {}
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()
        #: Every request, in order (tests read headers and bodies).
        self.seen: list[SeenRequest] = []
        self.tokens_issued = 0
        self.refused = 0
        self.served = 0
        #: Requests refused for an expired token (8005).
        self.expired = 0

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on (return_code 8005)."""
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)

    # --- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        raw = b""
        more = True
        while more:
            message = await receive()
            raw += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.faults.delay_s:
            await asyncio.sleep(self.faults.delay_s)
        if self.faults.token_delay_s and scope["path"] == TOKEN_PATH:
            await asyncio.sleep(self.faults.token_delay_s)
        with self._lock:
            status, payload, extra = self._handle(scope["method"], scope["path"], headers, raw)
        body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        out_headers = [(b"content-type", b"application/json;charset=UTF-8"), *extra]
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k, v.encode()) if isinstance(v, str) else (k, v) for k, v in out_headers]})
        await send({"type": "http.response.body", "body": body})

    # --- the two calls ---------------------------------------------------------------------------

    def _handle(self, method: str, path: str, headers: Mapping[str, str],
                raw: bytes) -> tuple[int, Any, list[tuple[bytes, str]]]:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.seen.append(SeenRequest(path, dict(headers), body))
        if method != "POST":
            return 405, {"return_code": 1501, "return_msg": "POST only"}, []
        now = time.monotonic()
        too_soon, self._last_call = now - self._last_call < self.min_spacing_s, now
        if too_soon:
            self.too_soon += 1
            self.refused += 1
            return 200, _error(1700, "[fake] 허용된 요청 개수를 초과하였습니다 (calls less than "
                                     f"{self.min_spacing_s:g}s apart)"), []
        if not headers.get("content-type", "").startswith("application/json") or not isinstance(body, dict):
            return 200, _error(1501, "[fake] 요청 본문은 JSON 객체여야 합니다 (Content-Type: application/json)"), []
        if path == TOKEN_PATH:
            return self._token(headers, body)
        if path == RANKING_PATH:
            return self._ranking(headers, body)
        return 404, _error(1501, f"[fake] unknown path {path}"), []

    def _token(self, headers: Mapping[str, str], body: Mapping[str, Any]) -> tuple[int, Any, list[Any]]:
        if headers.get("api-id") != TOKEN_API_ID:
            return 200, _error(1504, f"[fake] api-id must be {TOKEN_API_ID}"), []
        if body.get("grant_type") != "client_credentials":
            return 200, _error(1501, "[fake] grant_type must be client_credentials"), []
        if (body.get("appkey"), body.get("secretkey")) != self._keys:
            return 200, _error(8001, "[fake] 앱키 또는 시크릿키가 올바르지 않습니다"), []
        token = secrets.token_urlsafe(24)
        expires = time.time() + self.token_ttl_s
        self._tokens[token] = expires
        self.tokens_issued += 1
        reported = expires + self.faults.expires_dt_skew_s
        return 200, {"expires_dt": datetime.fromtimestamp(reported, KST).strftime("%Y%m%d%H%M%S"),
                     "token_type": "bearer", "token": token, "return_code": 0, "return_msg": OK_MSG}, []

    def _ranking(self, headers: Mapping[str, str], body: Mapping[str, Any]) -> tuple[int, Any, list[Any]]:
        spec = spec_by_api_id(headers.get("api-id", ""))
        if spec is None:
            ids = ", ".join(s.rest.api_id for s in TRS.values())
            return 200, _error(1504, f"[fake] api-id must be one of {ids} for {RANKING_PATH}"), []
        faults = self.faults
        if faults.unauthorized:
            faults.unauthorized -= 1
            return 401, _error(8003, "[fake] unauthorized"), []
        scheme, _, token = headers.get("authorization", "").partition(" ")
        expires = self._tokens.get(token)
        if scheme.lower() != "bearer" or expires is None:
            return 401, _error(8003, "[fake] 유효하지 않은 토큰입니다"), []
        if time.time() >= expires:
            self.expired += 1
            return 200, _error(8005, "[fake] Token이 유효하지 않습니다 (만료)"), []
        if faults.server_errors:
            faults.server_errors -= 1
            return 500, b"<html>internal error</html>", []
        now = time.monotonic()
        if faults.refuse or any(sum(1 for t in self._stamps if t > now - s) >= n for n, s in self.limits):
            faults.refuse = max(0, faults.refuse - 1)
            self.refused += 1
            return 200, _error(1700, "허용된 요청 개수를 초과하였습니다"), []
        self._stamps.append(now)
        while self._stamps and self._stamps[0] <= now - max(s for _, s in self.limits):
            self._stamps.popleft()
        if faults.malformed:
            return self._malformed(spec, faults.malformed.popleft())
        if headers.get("cont-yn") == "Y":
            rows = self._pages.pop(headers.get("next-key", ""), None)
            if rows is None:
                return 200, _error(1501, "[fake] unknown next-key"), []
        else:
            params = {}
            for item in spec.inputs:
                key = spec.rest.inputs[item.param]
                value = body.get(key)
                if not isinstance(value, str) or item.check(value) is not None:
                    return 200, _error(1501, f"[fake] 입력값 오류: {key}={value!r}"), []
                params[item.param] = value
            rows = [rest_row(spec, values) for values in raw_rows(spec.code, self.market, self._ranked(spec, params))]
        page, rest = rows[: self.page_size], rows[self.page_size :]
        extra: list[tuple[bytes, str]] = [(b"api-id", spec.rest.api_id), (b"cont-yn", "Y" if rest else "N")]
        if rest:
            key = secrets.token_hex(8)
            self._pages[key] = rest
            extra.append((b"next-key", key))
        self.served += 1
        return 200, {spec.rest.rows_key: page, "return_code": 0, "return_msg": OK_MSG}, extra

    def _ranked(self, spec: TrSpec, params: Mapping[str, str]) -> list[Quote]:
        if self._quotes is not None:
            return self._quotes(params)
        steps = int((time.monotonic() - self._last_step) / self._step_s)
        if steps > 0:
            self.market.advance(min(steps, 60))
            self._last_step += steps * self._step_s
        return ranked(spec.code, self.market, params)

    def _malformed(self, spec: TrSpec, kind: str) -> tuple[int, Any, list[Any]]:
        ok = {"return_code": 0, "return_msg": OK_MSG}
        rows_key = spec.rest.rows_key
        if kind == "not-json":
            return 200, b'{"' + rows_key.encode() + b'": [', []
        if kind == "array":
            return 200, [], []
        if kind == "no-list":
            return 200, {**ok, rows_key: "none"}, []
        if kind == "bad-code":
            return 200, {rows_key: [], "return_code": "zero"}, []
        if kind == "bad-row":
            good = rest_row(spec, raw_rows(spec.code, self.market, ranked(spec.code, self.market, spec.defaults()))[0])
            return 200, {**ok, rows_key: [{**good, "cur_prc": "12a4"}, good, "not a row", {**good, "stk_nm": None}]}, []
        if kind == "cont-without-key":
            return 200, {**ok, rows_key: []}, [(b"cont-yn", "Y")]
        raise ValueError(f"unknown malformed kind {kind!r}")


def _error(code: int, message: str) -> dict[str, Any]:
    return {"return_code": code, "return_msg": message}


def rest_row(spec: TrSpec, values: Mapping[str, str]) -> dict[str, str]:
    """One row of ``spec``'s REST answer from :func:`~publisher.controls.sim_ranking.raw_rows`: Kiwoom's strings,
    unpadded, ``+``/``-`` = direction versus the previous close, under the REST keys."""
    return {spec.rest.outputs[output.field]: values[output.field] for output in spec.outputs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fake Kiwoom REST server (" + NOTE + ")")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--page-size", type=int, default=20)
    parser.add_argument("--min-spacing", type=float, default=0.2, metavar="S",
                        help="refuse (1700) calls less than S seconds apart, as Kiwoom's examples space them "
                             "(default 0.2; 0 turns it off)")
    args = parser.parse_args(argv)
    appkey, secretkey = os.environ.get(APPKEY_ENV), os.environ.get(SECRETKEY_ENV)
    if not appkey or not secretkey:
        parser.error(f"set {APPKEY_ENV} and {SECRETKEY_ENV}: the keys the fake server accepts")
    import uvicorn  # noqa: PLC0415 - only when run as a server

    print(f"fake Kiwoom REST server on http://{args.host}:{args.port} — {NOTE}", flush=True)
    fake = FakeKiwoomRest(appkey, secretkey, seed=args.seed, page_size=args.page_size, min_spacing_s=args.min_spacing)
    uvicorn.run(fake, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
