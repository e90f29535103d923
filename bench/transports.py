"""One connection per feed (single-feed SSE) against one connection for all feeds (multiplexed SSE, WebSocket).

    python bench/run.py --transports                 # N=200 clients x 8 feeds each way, about a minute
    python bench/run.py --transports --smoke         # a few clients, seconds (tests/test_bench_smoke.py)

Each way, a fresh replica (pinned to core 0, as in bench/run.py) serves ``n`` clients that each want every one
of ``feeds`` feeds: ``sse`` opens n x feeds single-feed streams, ``mux`` n ``/v1/events?feeds=...`` streams,
``ws`` n WebSockets subscribed to every feed. The clients run in one asyncio process on the loader's core and
only count ``ranking`` events. Reported: the replica's CPU per delivered event (its CPU while the rankings are
published, over the events delivered) and its RSS growth per connection and per (client, feed) subscription.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kiwoom_cache import contract as c  # noqa: E402
from stack.localredis import LocalRedis  # noqa: E402
from tests.api.writer import make_ranking  # noqa: E402

MODES = ("sse", "mux", "ws")
#: Stem of the reports written to --out (``.json``, ``.md``).
REPORT = "transports"
RANKING_SSE = b"event: ranking"
RANKING_WS = '"event":"ranking"'


# --- the client process ------------------------------------------------------------------------------------

class Counter:
    def __init__(self) -> None:
        self.connected = 0
        self.events = 0


async def _sse(port: int, path: str, counter: Counter) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    counter.connected += 1
    tail = b""
    while chunk := await reader.read(65536):
        data = tail + chunk
        counter.events += data.count(RANKING_SSE)
        tail = data[-(len(RANKING_SSE) - 1):]


async def _ws(port: int, feeds: list[str], counter: Counter) -> None:
    import websockets

    async with websockets.connect(f"ws://127.0.0.1:{port}/v1/ws", max_size=None, compression=None) as ws:
        for feed in feeds:
            await ws.send(json.dumps({"op": "subscribe", "feed": feed}))
        counter.connected += 1
        async for message in ws:
            if RANKING_WS in message:
                counter.events += 1


async def _clients(mode: str, port: int, n: int, feeds: list[str]) -> None:
    counter = Counter()
    tasks: list[asyncio.Task[None]] = []
    for _ in range(n):
        if mode == "sse":
            tasks += [asyncio.create_task(_sse(port, f"/v1/rankings/{f}/events", counter)) for f in feeds]
        elif mode == "mux":
            tasks.append(asyncio.create_task(_sse(port, f"/v1/events?feeds={','.join(feeds)}", counter)))
        else:
            tasks.append(asyncio.create_task(_ws(port, feeds, counter)))
        await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    # The parent asks ("?\n") and reads one status line each time; EOF ends the run.
    while await stdin.readline():
        print(json.dumps({"connected": counter.connected, "events": counter.events,
                          "failed": sum(t.done() for t in tasks)}), flush=True)
    for task in tasks:
        task.cancel()


# --- the harness -------------------------------------------------------------------------------------------

class Clients:
    def __init__(self, mode: str, port: int, n: int, feeds: list[str], pin: list[str]) -> None:
        self.proc = subprocess.Popen([*pin, sys.executable, __file__, "client", mode, str(port), str(n), *feeds],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def status(self) -> dict[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("?\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def wait(self, key: str, target: int, limit_s: float) -> dict[str, int]:
        deadline = time.monotonic() + limit_s
        while True:
            status = self.status()
            if status[key] >= target or time.monotonic() > deadline:
                return status
            time.sleep(0.1)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def publish(client: redis.Redis, feeds: list[str], rows: int) -> None:
    script = client.register_script(c.WRITE_RANKING_LUA)
    for feed in feeds:
        keys, args = c.write_ranking_args(make_ranking(feed, rows))
        script(keys=keys, args=args)


def phase(mode: str, args: argparse.Namespace, harness: Any, work: Path) -> dict[str, Any]:
    feeds = [f"bench-{i}" for i in range(args.feeds)]
    with LocalRedis(work / f"redis-{mode}") as rds:
        client = redis.Redis.from_url(rds.url)
        for feed in feeds:
            info = c.FeedInfo(feed, "bench", "opt10023", {"market": "001"}, 0.5)
            client.hset(c.FEEDS_KEY, feed, info.encode())
        publish(client, feeds, args.rows)
        server = harness.replica(rds.url, log_level="warning", max_connections="0")
        server.start(work / f"replica-{mode}.log")
        assert server.proc is not None
        clients = None
        try:
            time.sleep(0.3)
            _, rss0 = harness.usage(server.proc.pid)
            clients = Clients(mode, server.port, args.n, feeds, harness.pinned(harness.LOADER_CORE, []))
            connections = args.n * (len(feeds) if mode == "sse" else 1)
            status = clients.wait("connected", connections, args.connect_limit)
            time.sleep(args.settle)
            cpu1, rss1 = harness.usage(server.proc.pid)
            base = clients.status()["events"]
            start = time.time()
            for i in range(args.events):
                delay = start + i / args.rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                publish(client, feeds, args.rows)
            expected = args.events * len(feeds) * args.n
            status = clients.wait("events", base + expected, args.drain + 5)
            cpu2, rss2 = harness.usage(server.proc.pid)
            delivered = status["events"] - base
            subscriptions = args.n * len(feeds)
            return {
                "mode": mode, "clients": args.n, "feeds": len(feeds), "connections": status["connected"],
                "expected": expected, "delivered": delivered,
                "server_cpu_s": round(cpu2 - cpu1, 3),
                "cpu_us_per_event": round((cpu2 - cpu1) / max(1, delivered) * 1e6, 2),
                "rss_kib_per_connection": round((rss1 - rss0) / max(1, status["connected"]), 1),
                "rss_kib_per_subscription": round((rss1 - rss0) / max(1, subscriptions), 1),
                "rss_end_mib": round(rss2 / 1024, 1),
            }
        finally:
            if clients is not None:
                clients.close()
            server.stop()
            client.close()


def markdown(rows: list[dict[str, Any]], load: list[float]) -> str:
    lines = [f"Load average (1 min) before/after: {load[0]} / {load[1]}.", "",
             "| transport | clients x feeds | connections | delivered / expected | replica CPU per delivered event "
             "| RSS per connection | RSS per (client, feed) |",
             "|---|---|---|---|---|---|---|"]
    names = {"sse": "single-feed SSE", "mux": "multiplexed SSE", "ws": "WebSocket"}
    for r in rows:
        lines.append(f"| {names[r['mode']]} | {r['clients']} x {r['feeds']} | {r['connections']:,} | "
                     f"{r['delivered']:,} / {r['expected']:,} | {r['cpu_us_per_event']} µs | "
                     f"{r['rss_kib_per_connection']} KiB | {r['rss_kib_per_subscription']} KiB |")
    return "\n".join(lines) + "\n"


def run(harness: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    load_start = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="kiwoom-bench-transports-") as tmp:
        for mode in MODES:
            print(f"transport {mode}: {args.n} clients x {args.feeds} feeds ...", flush=True)
            r = phase(mode, args, harness, Path(tmp))
            rows.append(r)
            print(f"  {r['connections']:,} connections, delivered {r['delivered']:,}/{r['expected']:,}, "
                  f"{r['cpu_us_per_event']} µs CPU/event, {r['rss_kib_per_connection']} KiB/connection", flush=True)
    load = [round(load_start, 1), round(os.getloadavg()[0], 1)]
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"transports": rows, "loadavg_1m": load, "settings": {
        "n": args.n, "feeds": args.feeds, "events": args.events, "rate": args.rate, "rows": args.rows},
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    (args.out / f"{REPORT}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{REPORT}.md").write_text(markdown(rows, load))
    print(f"{args.out}/{REPORT}.md, .json")
    return rows


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "client":
    mode_, port_, n_, *feeds_ = sys.argv[2:]
    asyncio.run(_clients(mode_, int(port_), int(n_), feeds_))
