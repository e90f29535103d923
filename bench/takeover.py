"""How long a standby publisher takes to take over, with the simulated source (docs/high-availability.md).

Starts Redis (least-privilege users), a leading publisher and a standby (the demo stack's own launcher,
``stack.Stack``), then repeatedly stops the leader — ``SIGKILL`` (a crash: the standby waits out the lease) or
``SIGTERM`` (graceful: the leases are released) — and measures from the signal to the standby's first ranking
in Redis. The standby that took over leads the next round against a new standby. ``--login`` picks a hot
(logged in, idle) or cold (logs in on takeover) standby.

Run: ``python bench/takeover.py [--rounds 3] [--ttl 15 --check 1 --heartbeat 5]`` (defaults are the
publisher's defaults). Prints one line per round and a summary per (signal, login).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # stack/ (dev tooling) comes from the checkout

import redis

from kiwoom_cache import contract as c
from kiwoom_cache.clock import now_ms
from kiwoom_cache.contract import PublisherRole, PublisherStatus
from stack import Stack

FEEDS = ("kospi-surge", "kosdaq-surge", "all-surge-rate")


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise TimeoutError(f"no {what} within {timeout}s")


def entry_of_pid(admin: redis.Redis, pid: int) -> PublisherStatus | None:
    for raw in admin.hgetall(c.PUBLISHERS_KEY).values():
        status = PublisherStatus.decode(raw)
        if status.pid == pid:
            return status
    return None


def entry_of(admin: redis.Redis, proc: subprocess.Popen[bytes]) -> PublisherStatus | None:
    return entry_of_pid(admin, proc.pid)


def leads(admin: redis.Redis, proc: subprocess.Popen[bytes]) -> bool:
    status = entry_of(admin, proc)
    holders = {v.decode() if isinstance(v, bytes) else v for v in admin.mget([c.lease_key(f) for f in FEEDS])}
    return status is not None and status.role is PublisherRole.leader and holders == {status.id}


def stands_by(admin: redis.Redis, proc: subprocess.Popen[bytes]) -> bool:
    status = entry_of(admin, proc)
    return status is not None and status.role is PublisherRole.standby and status.state == "standby"


def first_write_after(admin: redis.Redis, signal_ms: int, last_seq: dict[str, int]) -> int | None:
    """Redis's time (the entry id) of the first ranking the new leader wrote, once there is one."""
    firsts = []
    for feed in FEEDS:
        entries: list[Any] = admin.xrange(c.history_key(feed), f"{signal_ms}-0", "+") or []
        for entry_id, fields in entries:
            if int(fields[b"seq"]) > last_seq.get(feed, 0):
                firsts.append(c.parse_stream_id(entry_id)[0])
                break
    return min(firsts) if firsts else None


def one_round(admin: redis.Redis, stack: Stack, leader: subprocess.Popen[bytes], name: str, kind: str,
              env: dict[str, str], bound: float) -> tuple[subprocess.Popen[bytes], float]:
    """Stop ``leader`` once a new standby stands by; the seconds until that standby's first ranking."""
    standby = stack.start_publisher(name, env=env)
    wait(lambda: stands_by(admin, standby), 60, "standby ready")
    before = sum(admin.xlen(c.history_key(f)) for f in FEEDS)
    wait(lambda: sum(admin.xlen(c.history_key(f)) for f in FEEDS) >= before + 3, 60, "the leader writing")
    signal_ms = now_ms()
    leader.send_signal(signal.SIGKILL if kind == "sigkill" else signal.SIGTERM)
    leader.wait(60)
    last_seq: dict[str, int] = {}
    if kind == "sigterm":  # the leader flushed after the signal: its final status says how far it wrote
        final = entry_of_pid(admin, leader.pid)
        assert final is not None and final.state == "stopped", "the leader's final status"
        last_seq = {f: int(v.get("last_seq") or 0) for f, v in final.feeds.items()}
    first = wait(lambda: first_write_after(admin, signal_ms, last_seq), bound + 60, "the standby's first ranking")
    wait(lambda: leads(admin, standby), 60, "new leader")
    return standby, (first - signal_ms) / 1000


def measure(kind: str, login: str, rounds: int, env: dict[str, str], bound: float) -> list[float]:
    times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, \
            Stack(tmp, replicas=1, pace="fast", persist=False, publisher_env=env) as stack:
        admin = redis.Redis.from_url(stack.redis_url)
        first = stack.publisher
        assert first is not None
        wait(lambda: leads(admin, first), 60, "first leader")
        leader = first
        for n in range(rounds):
            leader, took = one_round(admin, stack, leader, f"standby-{n}", kind,
                                     {**env, "KIWOOM_PUBLISHER_STANDBY_LOGIN": login}, bound)
            times.append(took)
            print(f"{kind} {login} round {n + 1}: {took:.2f} s", flush=True)
        admin.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ttl", type=float, default=15.0, help="lease_ttl_s")
    parser.add_argument("--check", type=float, default=1.0, help="lease_check_s")
    parser.add_argument("--heartbeat", type=float, default=5.0, help="heartbeat_s (the leader renews with it)")
    parser.add_argument("--kinds", default="sigkill,sigterm")
    parser.add_argument("--logins", default="hot,cold")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    env = {"KIWOOM_PUBLISHER_LEASE_TTL_S": str(args.ttl), "KIWOOM_PUBLISHER_LEASE_CHECK_S": str(args.check),
           "KIWOOM_PUBLISHER_HEARTBEAT_S": str(args.heartbeat),
           "KIWOOM_PUBLISHER_STATUS_TTL_S": str(max(3 * args.heartbeat, args.heartbeat + 1))}
    results = []
    for kind in args.kinds.split(","):
        for login in args.logins.split(","):
            times = measure(kind, login, args.rounds, env, args.ttl + args.check)
            results.append({"signal": kind, "login": login, "seconds": [round(t, 2) for t in times],
                            "median": round(statistics.median(times), 2)})
    print(f"\nlease_ttl_s={args.ttl:g} lease_check_s={args.check:g} heartbeat_s={args.heartbeat:g}")
    print("| signal | standby | median s | each round s |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['signal']} | {r['login']} | {r['median']} | {', '.join(map(str, r['seconds']))} |")
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)}, "results": results},
                                        indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
