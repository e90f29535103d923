"""Redis sizing figures for docs/scaling.md, from a private redis-server on loopback (bounded: a few seconds).

    python bench/redis_sizing.py [--rows 60] [--history 10000] [--writes 3000] [--threads 1 4]

- memory per feed: ``--history`` rankings of ``--rows`` rows written through the contract's Lua script into one
  feed, then ``MEMORY USAGE`` of each of its keys (``SAMPLES 0``: every stream node counted) and the server's
  ``used_memory`` before and after;
- rankings/s per Redis node: ``--writes`` script calls in total over ``--threads`` writers (one connection and one
  feed each, each call waiting for its reply, as the publisher's writer does), for each thread count given.

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kiwoom_cache import contract as c
from stack.localredis import LocalRedis, describe
from tests.api.writer import make_ranking


def write(client: redis.Redis, ranking: c.Ranking, maxlen: int) -> None:
    """One ranking as the publisher's writer sends it: EVALSHA of the contract's script (redis-py's Script)."""
    keys, args = c.write_ranking_args(ranking, maxlen)
    client.register_script(c.WRITE_RANKING_LUA)(keys, args)


def memory_per_feed(client: redis.Redis, rows: int, history: int) -> dict[str, Any]:
    feed = "sizing-memory"
    before = int(client.info("memory")["used_memory"])
    ranking = make_ranking(feed, rows)
    for _ in range(history):
        write(client, ranking, history)
    keys = [c.history_key(feed), c.latest_key(feed), c.seq_key(feed), c.epoch_key(feed)]
    usage = {key: int(client.memory_usage(key, samples=0) or 0) for key in keys}
    return {"rows": rows, "document_bytes": len(client.get(c.latest_key(feed)) or b""), "history": history,
            "stream_entries": client.xlen(c.history_key(feed)), "memory_usage_bytes": usage,
            "feed_total_bytes": sum(usage.values()),
            "used_memory_delta_bytes": int(client.info("memory")["used_memory"]) - before}


def rankings_per_second(port: int, rows: int, writes: int, threads: int, maxlen: int) -> dict[str, Any]:
    each = writes // threads
    done: list[float] = []

    def writer(n: int) -> None:
        client = redis.Redis(port=port)
        ranking = make_ranking(f"sizing-rate-{n}", rows)
        for _ in range(each):
            write(client, ranking, maxlen)
        done.append(time.monotonic())
        client.close()

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    start = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = max(done) - start
    return {"threads": threads, "writes": each * threads, "seconds": round(elapsed, 3),
            "rankings_per_s": round(each * threads / elapsed, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=60, help="rows per ranking (60 ≈ 11.6 KB, as bench/run.py)")
    parser.add_argument("--history", type=int, default=c.DEFAULT_HISTORY_MAXLEN, help="stream entries kept")
    parser.add_argument("--writes", type=int, default=3000, help="script calls per throughput run")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4], help="writers per throughput run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalRedis(tmp) as server:
        client = redis.Redis(port=server.port)
        report = {"server": describe(server.executable), "machine": platform.platform(),
                  "memory": memory_per_feed(client, args.rows, args.history),
                  "throughput": [rankings_per_second(server.port, args.rows, args.writes, n, args.history)
                                 for n in args.threads]}
        client.close()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
