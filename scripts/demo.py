"""The local demo: Redis + publisher (simulated Kiwoom) + two API replicas + a balancer, in one command.

Run through ``scripts/demo.sh``. Ctrl-C (or SIGTERM) stops every child; Redis keeps its data in
``.demo/redis`` (append-only file), so the next run continues the same history and ``seq``.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import time
from pathlib import Path

from kiwoom_cache.localredis import free_port
from kiwoom_cache.urls import mask_url
from stack import Stack
from stack.redisacl import Role

ROOT = Path(__file__).resolve().parent.parent


def pick(port: int) -> int:
    """``port`` if it is free, else any free port (a Redis or web server may already run here)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--port", type=int, default=8080, help="the balancer's port (default 8080)")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--pace", choices=("demo", "kiwoom"), default="demo",
                        help="demo: each feed every 2 s; kiwoom: Kiwoom's real limits (every 10 s)")
    parser.add_argument("--source", choices=("sim", "rest"), default="sim",
                        help="sim: the simulated OCX control; rest: the REST source against a fake Kiwoom REST server "
                             "(both simulated data)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".demo", help="logs and Redis data (default .demo)")
    parser.add_argument("--duration", type=float, help="stop after S seconds (used by the tests)")
    args = parser.parse_args()

    data = args.data_dir.resolve()
    stack = Stack(data, replicas=args.replicas, pace=args.pace, redis_port=pick(args.redis_port),
                  lb_port=pick(args.port), source=args.source)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print("starting Redis, the publisher, the API replicas and the balancer ...", flush=True)
    with stack:
        cli = "redis-cli" + ("" if stack.redis.port == 6379 else f" -p {stack.redis.port}")
        if stack.users is not None:  # Redis has users (deploy/redis-users.acl): the operator is kiwoom-admin
            cli += f" --user kiwoom-admin --pass {stack.users.passwords[Role.ADMIN]} --no-auth-warning"
        source_line = ("simulated Kiwoom data" if stack.source == "sim" else
                       "REST source against a FAKE Kiwoom REST server: simulated data")
        fake_line = (f"\n  Fake REST  {stack.fake_rest_url}   (log {data / 'fake-kiwoom-rest.log'})"
                     if stack.fake_rest_url else "")
        replicas = "\n".join(f"  {r.name:10} {r.url}   (log {data / (r.name + '.log')})" for r in stack.replicas)
        print(f"""
kiwoom-cache demo running — {source_line}, not real market data. Ctrl-C stops everything.

  Dashboard  {stack.url}/
  API docs   {stack.url}/docs
  Balancer   {stack.url}   ({stack.balancer})
{replicas}
  Redis      {mask_url(stack.redis_url)}   (data in {data / 'redis'}; users and passwords in {data / 'redis-users'})
  Publisher  log {data / 'publisher.log'}{fake_line}

Try:
  curl -s {stack.url}/v1/feeds
  curl -s {stack.url}/v1/rankings/kospi-surge
  curl -N {stack.url}/v1/rankings/kospi-surge/events
  {cli} --raw GET 'kiwoom:{{kospi-surge}}:latest'
  {cli} XREVRANGE 'kiwoom:{{kospi-surge}}:history' + - COUNT 1
  {cli} SUBSCRIBE 'kiwoom:{{kospi-surge}}:updates'
""", flush=True)
        deadline = time.monotonic() + args.duration if args.duration else None
        while not stopping and (deadline is None or time.monotonic() < deadline):
            dead = stack.dead()
            if dead:
                print(f"{', '.join(dead)} exited; see the logs in {data}", file=sys.stderr)
                break
            time.sleep(0.3)
        print("stopping ...", flush=True)
    print(f"demo stopped; Redis data kept in {data / 'redis'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
