"""Snapshot throughput against the bare-ASGI ceiling, interleaved: the ratio that issue 14 sets a target for.

    python bench/snapshot_ratio.py                       # replica defaults vs bare ASGI, 3 rounds of 3-s wrk runs
    python bench/snapshot_ratio.py --rounds 2 --seconds 2 --workers 1,2

Every target is started once and kept up; each round runs wrk (``-t1 -c64``, pinned to core 1) against every
target in turn (200, then 304 with ``If-None-Match``), so a change of load on the shared machine hits all
targets alike. Single-process servers are pinned to core 0. ``--workers 1,2`` adds the replica with
``KIWOOM_API_WORKERS`` = 1 and 2, unpinned (wrk then shares the cores with it). Prints, per target, the median req/s and
server CPU µs per request (``/proc``, the whole process tree), each with its ratio to the bare-ASGI app in the
same rounds (for CPU: bare ÷ target, so > 1 is cheaper), then the paired ratios (each round's target ÷ that
round's bare app, median and min–max over rounds), and writes them all as JSON. ``--baseline DIR`` adds the replica as
another checkout has it (e.g. ``git archive main | tar -x -C /tmp/base``), so a change is measured against
the code before it in the same rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (
    FEED,
    ROOT,
    Publisher,
    Server,
    bare_asgi,
    baseline,
    heartbeat,
    heartbeating,
    probe,
    replica,
    usage,
    wrk,
)

from kiwoom_cache import contract as c
from stack.localredis import LocalRedis

#: The per-round figures, each paired with the bare app's of the same round.
KEYS = ("200", "304", "cpu_us_200", "cpu_us_304")


def seed(client: redis.Redis, rows: int, interval_s: float) -> None:
    Publisher(client, rows).seed()
    # The feed's poll period: with a long one the snapshot stays fresh for the whole run, as a live feed's is
    # between polls; a short one (the SSE runs' 0.5 s) makes it stale after 3 periods, the stale path.
    client.hset(c.FEEDS_KEY, FEED, c.FeedInfo(FEED, "bench", "opt10023", {"market": "001"}, interval_s).encode())
    heartbeat(client)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3, help="wrk duration per run")
    parser.add_argument("--conns", type=int, default=64)
    parser.add_argument("--rows", type=int, default=60)
    parser.add_argument("--interval", type=float, default=60.0,
                        help="the feed's poll period, s (60: fresh all run; 0.5: stale after 1.5 s)")
    parser.add_argument("--workers", default="", help="also run KIWOOM_API_WORKERS=<n> for each n (unpinned)")
    parser.add_argument("--extra", action="append", default=[],
                        help="another replica variant, NAME=VALUE of KIWOOM_API_* settings (e.g. access_log=all)")
    parser.add_argument("--baseline", type=Path, action="append", default=[],
                        help="also run the replica (defaults) from another checkout of this repository, e.g. "
                             "`git archive main | tar -x -C /tmp/base`: before and after in the same rounds")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "snapshot-ratio.json")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"argv": " ".join(argv if argv is not None else sys.argv[1:]), "targets": {}}
    with tempfile.TemporaryDirectory(prefix="kiwoom-snap-") as tmp_name, LocalRedis(Path(tmp_name) / "r") as rds, \
            contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        client = redis.Redis.from_url(rds.url)
        seed(client, args.rows, args.interval)
        stack.enter_context(heartbeating(rds.url))
        servers: dict[str, Server] = {}
        first = replica(rds.url)
        first.start(tmp / "replica.log")
        servers["replica, defaults"] = first
        _, headers, body = probe(first.port)
        doc = tmp / "doc.json"
        doc.write_bytes(body)
        servers["bare ASGI"] = bare_asgi(doc).start(tmp / "bare.log")
        # The same bare app sending the replica's header set: what uvicorn's per-header work alone costs.
        same = bare_asgi(doc)
        same.env["BENCH_HEADERS"] = json.dumps({k: v for k, v in headers.items()
                                                if k not in ("date", "server", "content-type", "content-length")})
        servers["bare ASGI, the replica's headers"] = same.start(tmp / "bare-headers.log")
        for checkout in args.baseline:
            base = baseline(rds.url, checkout, name=f"baseline-{checkout.name}")
            servers[f"replica, defaults, {checkout.name}"] = base.start(tmp / f"baseline-{checkout.name}.log")
        for extra in args.extra:
            name, _, value = extra.partition("=")
            variant = replica(rds.url, name=name, **{name: value})
            servers[f"replica, {name}={value}"] = variant.start(tmp / f"{name}.log")
        for n in filter(None, args.workers.split(",")):
            server = replica(rds.url, name=f"workers-{n}", workers=n)
            server.pin = False
            servers[f"replica, KIWOOM_API_WORKERS={n}, unpinned"] = server.start(tmp / f"w{n}.log")
        runs: dict[str, dict[str, list[float]]] = {name: {"200": [], "304": [], "cpu_us_200": [], "cpu_us_304": []}
                                                   for name in servers}
        try:
            for _ in range(args.rounds):
                for name, server in servers.items():
                    assert server.proc is not None
                    etag = probe(server.port)[1]["etag"]
                    for code, headers in (("200", {}), ("304", {"If-None-Match": etag})):
                        cpu0 = usage(server.proc.pid)[0]
                        rps = wrk(server.port, args.seconds, args.conns, headers)["rps"]
                        cpu = usage(server.proc.pid)[0] - cpu0
                        runs[name][code].append(rps)
                        # server CPU per request: steadier than req/s when other jobs take the cores
                        runs[name][f"cpu_us_{code}"].append(round(cpu / (rps * args.seconds) * 1e6, 1))
            # what the replica answered at the end: fresh, as a live feed's snapshot between polls
            report["replica_stale_at_end"] = probe(first.port)[1]["x-kiwoom-stale"]
        finally:
            for server in servers.values():
                server.stop()
            client.close()
    bare = {key: statistics.median(v) for key, v in runs["bare ASGI"].items()}
    print(f"{'target':48s} {'200 req/s':>16s} {'304 req/s':>16s} {'CPU µs/req 200':>20s} {'304':>14s}")
    for name, by_code in runs.items():
        med = {key: statistics.median(v) for key, v in by_code.items()}
        rounds = {key: [b / r if key.startswith("cpu") else r / b
                        for r, b in zip(by_code[key], runs["bare ASGI"][key], strict=True)] for key in KEYS}
        report["targets"][name] = {"runs": by_code, "median": med,
                                   **{f"ratio_{code}": round(med[code] / bare[code], 3) for code in ("200", "304")},
                                   # bare CPU / our CPU per request: the req/s ratio one saturated core would give
                                   **{f"cpu_ratio_{code}": round(bare[f"cpu_us_{code}"] / med[f"cpu_us_{code}"], 3)
                                      for code in ("200", "304")},
                                   # the same ratios round by round (each against the bare app's run of that
                                   # round), then their median: a burst of load from other jobs cancels out
                                   **{f"paired_{key}": round(statistics.median(rounds[key]), 3) for key in KEYS},
                                   # and their range: what bench/README.md prints (issue 26)
                                   **{f"paired_range_{key}": [round(min(rounds[key]), 3), round(max(rounds[key]), 3)]
                                      for key in KEYS}}
        print(f"{name:48s} {med['200']:8.0f} ({med['200'] / bare['200']:.2f}x) {med['304']:8.0f} "
              f"({med['304'] / bare['304']:.2f}x) {med['cpu_us_200']:8.1f} "
              f"({bare['cpu_us_200'] / med['cpu_us_200']:.2f}x)"
              f" {med['cpu_us_304']:6.1f} ({bare['cpu_us_304'] / med['cpu_us_304']:.2f}x)", flush=True)
    print("paired (median (min–max) of per-round ratios to the bare app): 200 req/s, 304 req/s, CPU 200, CPU 304")
    for name, target in report["targets"].items():
        print(f"{name:48s} " + "  ".join(f"{target[f'paired_{key}']:.2f}x ({target[f'paired_range_{key}'][0]:.2f}–"
                                         f"{target[f'paired_range_{key}'][1]:.2f})" for key in KEYS))
    report["loadavg_1m"] = round(os.getloadavg()[0], 1)
    report["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
