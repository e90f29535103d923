"""The publisher's hot path: parse a 100-row opt10023 answer, encode it, write it to a real Redis.

Compares, in one run against one redis-server, our atomic Lua write (one round trip) with the two
obvious alternatives that keep the same contract:

* ``multi-2rt``: XADD first (to learn the id), then MULTI{SET, PUBLISH} — two round trips, and a
  reader can see the stream entry before ``latest``;
* ``plain-4rt``: INCR, XADD, SET, PUBLISH as four separate commands — four round trips, not atomic.

Run: ``python bench/publish_path.py [--n 2000]``. Prints medians, p99s and ratios (the machine is
noisy; ratios are what to compare).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # stack/ (dev tooling) comes from the checkout

import redis

from kiwoom_cache import contract as c
from publisher.controls.simulated import SimulatedControl
from publisher.parser import ranking_from_response
from publisher.trs import OPT10023, Provider, RawResponse
from stack.localredis import LocalRedis

INPUTS = tuple(zip(OPT10023.params, ["000", "1", "1", "5", "5", "0", "0"], strict=True))


def raw_answer(rows: int = 100) -> RawResponse:
    control = SimulatedControl(seed=1)
    control.faults.quirk_rate = 0.05
    ocx_inputs = {OPT10023.ocx.inputs[param]: value for param, value in INPUTS}
    # The simulated server's formatted rows, Kiwoom-shaped strings, read by field as the OCX source reads them.
    ranked = [OPT10023.ocx.fields_of(row) for row in control._rank(OPT10023, ocx_inputs)]
    raw_rows = tuple((ranked * (rows // len(ranked) + 1))[:rows])
    return RawResponse("bench-surge", "opt10023", "2000", INPUTS, "0", raw_rows, 1, 2, Provider.ocx)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def measure(n: int = 2000) -> dict[str, Any]:
    """Interleaved timings of each step; ``steps`` holds median/p99 in µs and the ratio to our Lua write."""
    raw = raw_answer()
    with tempfile.TemporaryDirectory() as tmp, LocalRedis(tmp) as server:
        client = redis.Redis.from_url(server.url)
        script = client.register_script(c.WRITE_RANKING_LUA)
        feed = "bench-surge"

        def lua(r: c.Ranking) -> None:
            keys, argv = c.write_ranking_args(r, 10_000)
            script(keys=keys, args=argv)

        def multi_2rt(r: c.Ranking) -> None:
            body = c.encode_body(r)
            seq = client.incr(c.seq_key(feed) + ":m")
            rid = client.xadd(c.history_key(feed) + "m", {"seq": seq, "doc": body}, maxlen=10_000)
            doc = c.splice_document(body, rid, seq)
            pipe = client.pipeline(transaction=True)
            pipe.set(c.latest_key(feed) + "m", doc)
            pipe.publish(c.updates_channel(feed), doc)
            pipe.execute()

        def plain_4rt(r: c.Ranking) -> None:
            body = c.encode_body(r)
            seq = client.incr(c.seq_key(feed) + ":p")
            rid = client.xadd(c.history_key(feed) + "p", {"seq": seq, "doc": body}, maxlen=10_000)
            doc = c.splice_document(body, rid, seq)
            client.set(c.latest_key(feed) + "p", doc)
            client.publish(c.updates_channel(feed), doc)

        def parse_only(_: c.Ranking) -> None:
            ranking_from_response(raw, source="sim")

        def encode_only(r: c.Ranking) -> None:
            c.encode_body(r)

        variants: dict[str, Callable[[c.Ranking], None]] = {
            "parse (100 rows)": parse_only, "encode (100 rows)": encode_only,
            "write: lua 1rt (ours)": lua, "write: multi 2rt": multi_2rt, "write: plain 4rt": plain_4rt,
        }
        timings: dict[str, list[float]] = {name: [] for name in variants}
        base = ranking_from_response(raw, source="sim")
        for _ in range(min(200, n)):  # warm-up
            for fn in variants.values():
                fn(base)
        for i in range(n):  # interleaved, so noise hits every variant alike
            r = replace(base, published_at_ms=i)
            for name, fn in variants.items():
                t0 = time.perf_counter()
                fn(r)
                timings[name].append((time.perf_counter() - t0) * 1e6)
        size = len(c.encode_body(base))
        full: list[float] = []
        for _ in range(n):
            t0 = time.perf_counter()
            lua(ranking_from_response(raw, source="sim"))
            full.append((time.perf_counter() - t0) * 1e6)
        client.close()
    timings["parse+encode+write (ours)"] = full
    ours = statistics.median(timings["write: lua 1rt (ours)"])
    steps = [{"step": name, "median_us": round(statistics.median(values), 1),
              "p99_us": round(percentile(values, 0.99), 1), "ratio": round(statistics.median(values) / ours, 2)}
             for name, values in timings.items()]
    return {"rows": len(base.rows), "bytes": size, "n": n, "redis": server.executable, "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    result = measure(args.n)
    print(f"{result['rows']}-row opt10023 ranking, JSON document {result['bytes']:,} bytes, n={result['n']}, "
          f"redis {result['redis']}")
    print(f"{'step':28} {'median µs':>10} {'p99 µs':>10} {'÷ lua write':>12}")
    for step in result["steps"]:
        print(f"{step['step']:28} {step['median_us']:10.1f} {step['p99_us']:10.1f} {step['ratio']:12.2f}")


if __name__ == "__main__":
    main()
