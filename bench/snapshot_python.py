"""The Python CPU of one snapshot request, through uvicorn's own httptools protocol but no socket.

    python bench/snapshot_python.py                                # bare app (3 and the replica's headers), replica
    python bench/snapshot_python.py --checkout /tmp/snapshot-before  # the replica as another checkout has it

``bench/snapshot_ratio.py`` measures whole servers under wrk, on a machine other jobs share, so its figures
move from round to round. This one feeds a request to uvicorn's ``HttpToolsProtocol`` (the class a replica
runs under, with uvloop) over an in-memory transport, lets the event loop run the ASGI task, and takes the
process CPU time per request (the best of several runs of 20,000): everything Python does per request,
uvicorn's parsing, its header checks and its access-log call included; the kernel's socket work excluded.
Targets: the bare-ASGI app of ``bench/bare_asgi.py`` with its 3 headers and with the replica's, and the
replica (``api.app.create_app``, its defaults: access log ``sparse``) and the replica with the access log off,
each against a real ``redis-server`` seeded as ``snapshot_ratio.py`` seeds it.
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
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import ROOT, SNAPSHOT_PATH, probe, replica
from snapshot_ratio import heartbeating, seed

from stack.localredis import LocalRedis

TARGETS = ("bare ASGI", "bare ASGI, the replica's headers", "replica, defaults", "replica, access_log=off")


class MemoryTransport:
    """What uvicorn's protocol asks of a transport; writes are counted, not sent."""

    def __init__(self) -> None:
        self.written = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:  # pragma: no cover - keep-alive requests never close
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def cpu_per_request(app: Any, *, access_log: bool, if_none_match: bytes | None, n: int, runs: int) -> float:
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    config = Config(app, http="httptools", access_log=access_log, lifespan="off", log_level="info")
    config.load()
    protocol = HttpToolsProtocol(config=config, server_state=ServerState(), app_state={},
                                 _loop=asyncio.get_running_loop())
    protocol.connection_made(MemoryTransport())  # type: ignore[arg-type]
    request = (b"GET " + SNAPSHOT_PATH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench\r\n"
               + (b"If-None-Match: " + if_none_match + b"\r\n" if if_none_match else b"") + b"\r\n")
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        for _ in range(n):
            protocol.data_received(request)
            cycle = protocol.cycle
            while not cycle.response_complete:
                await asyncio.sleep(0)
        best = min(best, (time.process_time() - start) / n * 1e6)
    return round(best, 2)


async def measure(target: str, redis_url: str, doc: Path, headers: dict[str, str], n: int, runs: int,
                  ) -> dict[str, float]:
    """(200, 304) µs for one target, in this process."""
    if target.startswith("bare"):
        os.environ["BENCH_DOC"] = str(doc)
        os.environ.pop("BENCH_HEADERS", None)
        if target != "bare ASGI":
            os.environ["BENCH_HEADERS"] = json.dumps(headers)
        sys.modules.pop("bare_asgi", None)
        import bare_asgi
        app, access_log, etag = bare_asgi.app, False, bare_asgi.ETAG
        closing = None
    else:
        from api import accesslog
        from api.app import create_app

        print(f"replica from {Path(accesslog.__file__).parents[1]}", file=sys.stderr)
        from api.settings import AccessLog, ApiSettings

        mode = AccessLog.OFF if target.endswith("access_log=off") else AccessLog.SPARSE
        access_log = accesslog.configure(mode)
        app = create_app(ApiSettings(redis_url=redis_url, access_log=mode))
        await app.state.open()
        hub = app.state.hub
        assert hub is not None
        deadline = time.monotonic() + 30
        while not hub.live and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        etag = headers["etag"].encode()
        closing = app.state
    try:
        return {"200": await cpu_per_request(app, access_log=access_log, if_none_match=None, n=n, runs=runs),
                "304": await cpu_per_request(app, access_log=access_log, if_none_match=etag, n=n, runs=runs)}
    finally:
        if closing is not None:
            await closing.aclose()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000, help="requests per run")
    parser.add_argument("--runs", type=int, default=7, help="runs per target and status (the best one counts)")
    parser.add_argument("--checkout", type=Path, action="append", default=[],
                        help="also measure the replica as another checkout of this repository has it")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # one target, in a child process (--checkout)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--doc", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--headers", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "snapshot-python.json")
    args = parser.parse_args(argv)
    uvloop.install()
    if args.only:  # child: this process imports api/ from its working directory (the other checkout)
        sys.path.insert(0, os.getcwd())
        for module in [m for m in sys.modules if m.split(".")[0] in ("api", "kiwoom_cache")]:
            del sys.modules[module]
        result = asyncio.run(measure(args.only, args.redis_url, args.doc, json.loads(args.headers), args.requests,
                                     args.runs))
        print(json.dumps(result))
        return result
    report: dict[str, Any] = {"argv": " ".join(argv if argv is not None else sys.argv[1:]), "us_per_request": {}}
    with tempfile.TemporaryDirectory(prefix="kiwoom-py-") as tmp_name, LocalRedis(Path(tmp_name) / "r") as rds, \
            heartbeating(rds.url):
        tmp = Path(tmp_name)
        seed(redis.Redis.from_url(rds.url), 60, 60.0)
        server = replica(rds.url).start(tmp / "replica.log")
        try:
            _, got, body = probe(server.port)
        finally:
            server.stop()
        doc = tmp / "doc.json"
        doc.write_bytes(body)
        headers = {k: v for k, v in got.items() if k not in ("date", "server", "content-type", "content-length")}
        jobs: list[tuple[str, Path]] = [(target, ROOT) for target in TARGETS]
        jobs += [("replica, defaults", checkout.resolve()) for checkout in args.checkout]
        for target, where in jobs:
            name = target if where == ROOT else f"{target}, {where.name}"
            # one process per target: each imports only what it runs, from the checkout it belongs to
            out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--only", target, "--redis-url",
                                  rds.url, "--doc", str(doc), "--headers", json.dumps(headers), "--requests",
                                  str(args.requests), "--runs", str(args.runs)], cwd=where, check=True,
                                 capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": str(where)}).stdout
            result = json.loads(out.strip().splitlines()[-1])
            report["us_per_request"][name] = result
            print(f"{name:56s} 200: {result['200']:6.2f} µs   304: {result['304']:6.2f} µs", flush=True)
    report["loadavg_1m"] = round(os.getloadavg()[0], 1)
    report["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
