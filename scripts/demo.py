"""The local demo: Redis + publisher (simulated Kiwoom) + two API replicas + a balancer, in one command.

Run through ``scripts/demo.sh``. Ctrl-C (or SIGTERM, or SIGHUP when the terminal closes) stops every child in
dependency order (balancer, replicas, publisher, Redis) and says so, also when what read our output is gone
(``demo.sh | tee log`` and Ctrl-C: ``tee`` dies first); every line also goes to ``demo.log`` in the data dir.
Were the demo killed outright, the kernel stops its children (:mod:`stack.launch`). Redis keeps its data in
``.demo/redis`` (append-only file), so the next run continues the same history and ``seq``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # stack/ is development tooling, imported from the checkout (not installed)

from kiwoom_cache.urls import mask_url  # noqa: E402
from stack import Stack  # noqa: E402
from stack.localredis import describe, find_redis_cli, free_port  # noqa: E402
from stack.redisacl import Role  # noqa: E402


def pick(port: int) -> int:
    """``port`` if it is free, else any free port (a Redis or web server may already run here)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


class Say:
    """Print a line to the terminal and to ``demo.log``; once the terminal's reader is gone (a broken pipe),
    only to the log, so a stop in progress is never cut short by a failed print."""

    def __init__(self, log: Path) -> None:
        self._log = log
        self._terminal = True

    def __call__(self, text: str, *, err: bool = False) -> None:
        with self._log.open("a", encoding="utf-8") as out:
            out.write(text + "\n")
        if not self._terminal:
            return
        try:
            print(text, file=sys.stderr if err else sys.stdout, flush=True)
        except OSError:  # BrokenPipeError and the like: nobody reads the terminal any more
            self._terminal = False
            # Python would report the failed flush of the dead pipe at exit; point stdout at nothing instead.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.dup2(devnull, sys.stderr.fileno())
            os.close(devnull)


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
    data.mkdir(parents=True, exist_ok=True)
    say = Say(data / "demo.log")
    stack = Stack(data, replicas=args.replicas, pace=args.pace, redis_port=pick(args.redis_port),
                  lb_port=pick(args.port), source=args.source)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    say("starting Redis, the publisher, the API replicas and the balancer ...")
    started = None
    try:
        stack.start()
        say(banner(stack, data))
        deadline = time.monotonic() + args.duration if args.duration else None
        while not stopping and (deadline is None or time.monotonic() < deadline):
            dead = stack.dead()
            if dead:
                say(f"{', '.join(dead)} exited; see the logs in {data}", err=True)
                break
            time.sleep(0.3)
        started = time.monotonic()
        say("stopping (balancer, replicas, publisher, then Redis) ...")
    finally:
        stack.stop(say=lambda line: say(f"  {line}"))
    if started is not None:
        say(f"demo stopped in {time.monotonic() - started:.1f} s")
    return 0


def banner(stack: Stack, data: Path) -> str:
    server = stack.redis.executable
    cli = find_redis_cli(server) or "redis-cli"
    cli_args = ("" if stack.redis.port == 6379 else f" -p {stack.redis.port}") + \
        (" --user kiwoom-admin" if stack.users else "")
    activate = Path(sys.prefix) / "bin" / "activate"
    activate_line = (f"  . {activate}   # puts redis-cli, kiwoom-publisher, kiwoom-api on PATH\n"
                     if sys.prefix != sys.base_prefix else "")
    if stack.users is not None:  # Redis has users (deploy/redis-users.acl): the operator is kiwoom-admin
        activate_line += (f"  export REDISCLI_AUTH='{stack.users.passwords[Role.ADMIN]}'   # kiwoom-admin's password "
                          f"(in {data / 'redis-users'})\n")
    replicas = "\n".join(f"  {r.name:10} {r.url}   (log {data / (r.name + '.log')})" for r in stack.replicas)
    source_line = ("simulated Kiwoom data" if stack.source == "sim" else
                   "REST source against a FAKE Kiwoom REST server: simulated data")
    fake_line = (f"\n  Fake REST  {stack.fake_rest_url}   (log {data / 'fake-kiwoom-rest.log'})"
                 if stack.fake_rest_url else "")
    return f"""
kiwoom-cache demo running — {source_line}, not real market data. Ctrl-C stops everything.

  Dashboard  {stack.url}/
  API docs   {stack.url}/docs
  Balancer   {stack.url}   ({stack.balancer})
{replicas}
  Redis      {mask_url(stack.redis_url)}   (data in {data / 'redis'}; users and passwords in {data / 'redis-users'})
             {describe(server)}: {server}
  redis-cli  {cli}
  Publisher  log {data / 'publisher.log'}{fake_line}

Try, in another terminal:
{activate_line}  curl -s {stack.url}/v1/feeds
  curl -s {stack.url}/v1/rankings/kospi-surge
  curl -N {stack.url}/v1/rankings/kospi-surge/events
  redis-cli{cli_args} --raw GET 'kiwoom:{{kospi-surge}}:latest'
  redis-cli{cli_args} XREVRANGE 'kiwoom:{{kospi-surge}}:history' + - COUNT 1
  redis-cli{cli_args} SUBSCRIBE 'kiwoom:{{kospi-surge}}:updates'
"""


if __name__ == "__main__":
    raise SystemExit(main())
