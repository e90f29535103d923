"""Where a replica's memory per event stream goes: tracemalloc in the replica, before and after N streams connect.

    python bench/stream_memory.py            # 2,000 streams (C loader), report on stdout
    python bench/stream_memory.py --n 4000

The replica runs as shipped (``python -m api``) inside a small wrapper that starts ``tracemalloc`` and takes a
snapshot when the harness asks (a control file, polled by a thread: uvloop runs no Python signal handler while it
waits). The difference between the snapshot before the streams connect and the one after is split by owner: the
replica's code (any frame in ``api/``), uvicorn, asyncio, the rest; then the biggest allocation sites. tracemalloc
itself makes the process bigger, so the figures are Python heap per stream, not RSS (bench/README.md).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import run as bench  # noqa: E402  (bench/run.py: the loader, Redis, the replica and the publisher)

WRAPPER = r"""
import os, sys, threading, time, tracemalloc
tracemalloc.start(3)
ctl = sys.argv[1]
shots = []

def owner(trace):
    files = [f.filename for f in trace]
    if any("/api/" in f and "site-packages" not in f for f in files):
        return "replica (api/)"
    inner = files[-1]
    if "site-packages/" in inner:
        return inner.split("site-packages/")[1].split("/")[0]
    return "asyncio" if "/asyncio/" in inner else "other: " + inner.rsplit("/", 1)[-1]

def watch():
    while True:
        time.sleep(0.2)
        if os.path.exists(ctl + ".take"):
            os.unlink(ctl + ".take")
            shots.append(tracemalloc.take_snapshot())
            if len(shots) == 2:
                stats = shots[1].compare_to(shots[0], "traceback")
                by = {}
                for st in stats:
                    by[owner(st.traceback)] = by.get(owner(st.traceback), 0) + st.size_diff
                lines = [f"{v} {k}" for k, v in sorted(by.items(), key=lambda kv: -kv[1])]
                lines.append("--")
                for st in shots[1].compare_to(shots[0], "lineno")[:15]:
                    lines.append(f"{st.size_diff} {st.traceback[-1].filename.rsplit('/', 2)[-2:]} "
                                 f"{st.traceback[-1].lineno}")
                open(ctl + ".out", "w").write("\n".join(lines))
            open(ctl + ".done", "w").close()

threading.Thread(target=watch, daemon=True).start()
sys.argv = ["kiwoom-api"]
from api.cli import main
main()
"""


def snapshot(ctl: Path, deadline_s: float = 120.0) -> None:
    (ctl.parent / (ctl.name + ".take")).touch()
    done = ctl.parent / (ctl.name + ".done")
    end = time.monotonic() + deadline_s
    while not done.exists():
        if time.monotonic() > end:
            raise TimeoutError("the replica took no snapshot")
        time.sleep(0.2)
    done.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="event streams to open")
    args = parser.parse_args()
    bench.raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="kiwoom-memory-"))
    exe = bench.build_loader(tmp)
    ctl = tmp / "ctl"
    with bench.LocalRedis(tmp / "redis") as rds:
        client = redis.Redis.from_url(rds.url)
        server = bench.replica(rds.url)
        server.argv = [sys.executable, "-c", WRAPPER, str(ctl)]
        server.start(tmp / "server.log")
        publisher = bench.Publisher(client, 60)
        loader = None
        try:
            publisher.seed()
            time.sleep(0.5)
            snapshot(ctl)
            loader = bench.Loader(exe, server.port, args.n, tmp / "records.bin")
            loader.wait_connected(args.n, stall_s=5, limit_s=120)
            connected = loader.status["connected"]
            for _ in range(5):  # a few events, so every stream is in its steady (parked) state
                publisher.publish()
                time.sleep(0.5)
            time.sleep(1)
            snapshot(ctl)
        finally:
            if loader is not None:
                loader.finish()
            publisher.close()
            server.stop()
            client.close()
    lines = (tmp / "ctl.out").read_text().splitlines()
    split = lines.index("--")
    total = sum(int(line.split(" ", 1)[0]) for line in lines[:split])
    print(f"{connected:,} streams: {total / 1024 / connected:.2f} KiB of Python heap per stream")
    for line in lines[:split]:
        size, name = line.split(" ", 1)
        if int(size) > 0.01 * total:
            print(f"  {int(size) / 1024 / connected:6.2f} KiB  {name}")
    print("largest allocation sites (KiB per stream):")
    for line in lines[split + 1:]:
        size, where = line.split(" ", 1)
        print(f"  {int(size) / 1024 / connected:6.2f}  {where}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
