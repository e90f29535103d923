"""Quick local figures for one replica: SSE clients held, event latency, RSS, snapshot requests/s.

    python bench/api_fanout.py --clients 2000 --events 20 --rate 2 --rows 50
    python bench/api_fanout.py --clients 200 --auth      # the same with API keys on (Authorization: Bearer)

Starts a private redis-server and one ``python -m api`` replica, opens N raw-socket SSE clients (one
asyncio loader process, so the loader's own latency is included), publishes rankings through the contract's
Lua script, and reports per-event latency (publish -> every client has read the frame). A quick sanity run,
not the benchmark issue's harness.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kiwoom_cache import contract as c  # noqa: E402
from stack.localredis import LocalRedis, free_port  # noqa: E402
from tests.api.writer import make_ranking  # noqa: E402

FEED = "kospi-surge"


async def sse_client(port: int, seen: dict[str, list[float]], ready: asyncio.Event, counter: list[int],
                     total: int, auth: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /v1/rankings/{FEED}/events HTTP/1.1\r\nHost: bench\r\n{auth}\r\n".encode())
    buf = b""
    first = True
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            now = time.time()
            buf += chunk
            while b"\r\n\r\n" in buf:
                frame, buf = buf.split(b"\r\n\r\n", 1)
                if b"event: ranking" in frame:
                    rid = frame.split(b"id: ", 1)[1].split(b"\r\n", 1)[0].decode()
                    seen.setdefault(rid, []).append(now)
                elif first and b"event: snapshot" in frame:
                    first = False
                    counter[0] += 1
                    if counter[0] == total:
                        ready.set()
    finally:
        writer.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def snapshot_rate(port: int, path: str, seconds: float, auth: str, conns: int = 32) -> float:
    """Keep-alive GETs from raw sockets (httpx itself tops out near 300 req/s in one process)."""
    done = 0
    stop = time.monotonic() + seconds
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n{auth}\r\n".encode()

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < stop:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), head[:40]
                length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
                await reader.readexactly(length)
                done += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    return done / seconds


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, LocalRedis(Path(tmp)) as server:
        client = redis.Redis.from_url(server.url)
        script = client.register_script(c.WRITE_RANKING_LUA)
        client.hset(c.FEEDS_KEY, FEED, c.FeedInfo(FEED, "bench", "opt10023", {}, 1 / args.rate).encode())
        script(*c.write_ranking_args(make_ranking(FEED, args.rows)))
        port = free_port()
        env = {**os.environ, "KIWOOM_CACHE_REDIS_URL": server.url, "KIWOOM_API_PORT": str(port),
               "KIWOOM_API_LOG_LEVEL": "warning"}
        auth = ""
        if args.auth:  # one key in a key file, sent by every client as a bearer token
            key = "kc_" + "b" * 43
            keys = Path(tmp) / "keys.toml"
            keys.write_text(f'[[keys]]\nname = "bench"\nsha256 = "{hashlib.sha256(key.encode()).hexdigest()}"\n'
                            'scopes = ["rankings", "metrics"]\n')
            env["KIWOOM_API_AUTH_KEYS_FILE"] = str(keys)
            auth = f"Authorization: Bearer {key}\r\n"
        proc = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(base + "/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
            rss_before = rss_kib(proc.pid)
            seen: dict[str, list[float]] = {}
            ready, counter = asyncio.Event(), [0]
            tasks = []
            for _ in range(args.clients):
                tasks.append(asyncio.create_task(sse_client(port, seen, ready, counter, args.clients, auth)))
                if len(tasks) % 200 == 0:
                    await asyncio.sleep(0.05)
            await asyncio.wait_for(ready.wait(), 60)
            ops = {"Authorization": auth[len("Authorization: "):].strip()} if auth else {}
            metrics = httpx.get(base + "/metrics", headers=ops).text
            held = int(metrics.split('kiwoom_api_sse_clients{feed="kospi-surge"} ')[1].split()[0].split(".")[0])
            rss_after = rss_kib(proc.pid)
            published: dict[str, float] = {}
            cpu0 = sum(os.times()[:2])
            for _ in range(args.events):
                t0 = time.time()
                rid = script(*c.write_ranking_args(make_ranking(FEED, args.rows)))[0].decode()
                published[rid] = t0
                await asyncio.sleep(1 / args.rate)
            await asyncio.sleep(2)
            lat = [(t - published[rid]) * 1000 for rid, ts in seen.items() if rid in published for t in ts]
            delivered = sum(len(seen.get(rid, [])) for rid in published)
            lat.sort()
            size = len(client.get(c.latest_key(FEED)))
            print(f"clients requested {args.clients}, held {held}; doc {size / 1024:.1f} KiB; "
                  f"{args.events} events at {args.rate} Hz")
            print(f"delivered {delivered}/{args.events * args.clients}; latency ms p50 {statistics.median(lat):.1f} "
                  f"p99 {lat[int(len(lat) * 0.99) - 1]:.1f} max {lat[-1]:.1f}")
            print(f"replica RSS {rss_before / 1024:.1f} MiB idle -> {rss_after / 1024:.1f} MiB with clients "
                  f"({(rss_after - rss_before) / max(1, args.clients):.1f} KiB/client); "
                  f"loader CPU {sum(os.times()[:2]) - cpu0:.1f}s")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if args.snapshot_seconds:
                rate = await snapshot_rate(port, f"/v1/rankings/{FEED}", args.snapshot_seconds, auth)
                print(f"snapshot GET (python raw-socket loader, 32 keep-alive conns): {rate:.0f} req/s")
        finally:
            proc.terminate()
            proc.wait(15)
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--rows", type=int, default=60, help="rows per ranking (60 ~ 11.6 KB; docs/design-figures.md)")
    parser.add_argument("--snapshot-seconds", type=float, default=5.0)
    parser.add_argument("--auth", action="store_true", help="API keys on: every request carries a bearer key")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
