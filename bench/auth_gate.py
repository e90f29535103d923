"""What the front door (api/gate.py) adds to each request, in-process: size limits, then the API-key check.

    python bench/auth_gate.py

Calls the Gate in front of an app that answers nothing, with a snapshot request's real headers (a browser's
dozen headers plus ``Authorization: Bearer``), and reports the best of several timed runs in microseconds per
request: the added cost with auth off (limits only) and on (limits + header scan + SHA-256 + dict lookup +
scope check). Put it next to what a whole snapshot request costs a replica (bench/api_fanout.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import tempfile
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from starlette.types import ASGIApp, Receive, Scope, Send  # noqa: E402

from api.auth import KeyStore  # noqa: E402
from api.gate import Gate  # noqa: E402

KEY = "kc_" + "b" * 43
HEADERS = [(b"host", b"api.example"), (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36"),
           (b"accept", b"application/json"), (b"accept-language", b"ko-KR,ko;q=0.9,en;q=0.8"),
           (b"accept-encoding", b"gzip, deflate, br"), (b"referer", b"https://api.example/"),
           (b"sec-fetch-mode", b"cors"), (b"sec-fetch-site", b"same-origin"), (b"sec-fetch-dest", b"empty"),
           (b"connection", b"keep-alive"), (b"if-none-match", b'W/"1795576110613-0"')]


async def nothing(scope: Scope, receive: Receive, send: Send) -> None:
    return None


async def unused_receive() -> dict[str, object]:
    return {"type": "http.request"}


async def unused_send(message: object) -> None:
    return None


def per_request_us(gate: ASGIApp, headers: list[tuple[bytes, bytes]], n: int, repeat: int) -> float:
    path = "/v1/rankings/kospi-surge"
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": headers}
    loop = asyncio.new_event_loop()

    async def run() -> None:
        for _ in range(n):
            await gate(scope, unused_receive, unused_send)

    try:
        best = min(timeit.repeat(lambda: loop.run_until_complete(run()), number=1, repeat=repeat))
    finally:
        loop.close()
    return best / n * 1e6


def main() -> None:
    n, rounds = 20_000, 25
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys.toml"
        keys.write_text(f'[[keys]]\nname = "bench"\nsha256 = "{hashlib.sha256(KEY.encode()).hexdigest()}"\n'
                        'feeds = ["kospi-surge", "kosdaq-surge"]\n')
        with_key = [*HEADERS, (b"authorization", f"Bearer {KEY}".encode())]
        variants: dict[str, tuple[ASGIApp, list[tuple[bytes, bytes]]]] = {
            "no gate (the harness alone)": (nothing, with_key),
            "gate, auth off (size limits)": (Gate(nothing, None, (b"x", b"y")), with_key),
            "gate, auth on (limits + key)": (Gate(nothing, KeyStore(path=keys), (b"x", b"y")), with_key),
        }
        best = dict.fromkeys(variants, float("inf"))
        for _ in range(rounds):  # interleaved, best of each: a loaded machine slows every variant alike
            for name, (app, headers) in variants.items():
                best[name] = min(best[name], per_request_us(app, headers, n, 1))
    base = best["no gate (the harness alone)"]
    for name, us in best.items():
        print(f"{name:32} {us:6.2f} us/request  (+{us - base:.2f})")


if __name__ == "__main__":
    main()
