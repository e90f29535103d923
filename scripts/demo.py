"""The local demo: Redis + publisher (simulated Kiwoom) + API, all children of this process.

Run through ``scripts/demo.sh``. Ctrl-C (or SIGTERM) stops every child; Redis keeps its data in
``.demo/redis`` (append-only file), so the next run resumes the same history and ``seq``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from kiwoom_cache.localredis import LocalRedis, free_port

ROOT = Path(__file__).resolve().parent.parent


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick(port: int) -> int:
    return port if port_free(port) else free_port()


def wait_http(url: str, timeout: float = 20.0) -> bool:
    import urllib.request  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--api-port", type=int, default=8000)
    parser.add_argument("--duration", type=float, help="stop after S seconds (used by the tests)")
    args = parser.parse_args()

    data = ROOT / ".demo"
    redis_server = LocalRedis(data / "redis", pick(args.redis_port), persist=True).start()
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    env = {**os.environ, "KIWOOM_CACHE_REDIS_URL": redis_server.url, "QT_QPA_PLATFORM": "offscreen"}

    def spawn(name: str, *argv: str, extra: dict[str, str] | None = None) -> None:
        log = open(data / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
        proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env={**env, **(extra or {})}, stdout=log,
                                stderr=subprocess.STDOUT)
        children.append((name, proc))

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        spawn("publisher", "-m", "publisher", "--source", "sim")
        api_url = None
        if (ROOT / "api" / "cli.py").exists():
            port = pick(args.api_port)
            spawn("api", "-m", "api", "--port", str(port))
            api_url = f"http://127.0.0.1:{port}"
            if not wait_http(f"{api_url}/healthz"):
                print(f"API did not come up; see {data / 'api.log'}", file=sys.stderr)
        cli = "redis-cli" + ("" if redis_server.port == 6379 else f" -p {redis_server.port}")
        print(f"""
kiwoom-cache demo running (simulated Kiwoom data, not real market data). Ctrl-C stops everything.

  Redis      {redis_server.url}   (data in {data / 'redis'})
  Publisher  logs in {data / 'publisher.log'}""")
        if api_url:
            print(f"""  API        {api_url}/docs
             curl -s {api_url}/v1/rankings/kospi-surge
             curl -N {api_url}/v1/rankings/kospi-surge/events""")
        print(f"""
Inspect Redis by hand:
  {cli} --raw GET 'kiwoom:{{kospi-surge}}:latest'
  {cli} XREVRANGE 'kiwoom:{{kospi-surge}}:history' + - COUNT 1
  {cli} SUBSCRIBE 'kiwoom:{{kospi-surge}}:updates'
  {cli} --raw GET kiwoom:publisher:status
""", flush=True)
        deadline = time.monotonic() + args.duration if args.duration else None
        while not stopping and (deadline is None or time.monotonic() < deadline):
            for name, proc in children:
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; see {data / (name + '.log')}", file=sys.stderr)
                    stopping = True
            time.sleep(0.2)
    finally:
        for _name, proc in reversed(children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _name, proc in reversed(children):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        redis_server.stop()
        print("demo stopped; Redis data kept in", data / "redis")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
