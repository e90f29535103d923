"""The whole comparison in one run: SSE fan-out against nginx + nchan and the naive pattern, snapshots under wrk.

    python bench/run.py                 # full run, 3 interleaved batches (~17 min on 2 cores), results in
                                        # bench/results/ and bench/README.md's results section rewritten
    python bench/run.py --smoke         # a few clients and events, seconds (tests/test_bench_smoke.py)
    python bench/run.py --quick         # reduced run (N = 200, a few minutes) into /tmp: not results
    python bench/run.py --transports    # only single-feed SSE vs multiplexed SSE vs WebSocket (bench/transports.py)

Loopback only. The server under test is pinned to core 0 (``taskset``); the C loader (bench/loader.c, built
here with gcc), Redis, the publisher (this process) and wrk share core 1. Every server is fed the same bytes:
rankings written through the contract's Lua script (``kiwoom_cache.contract``), which PUBLISHes them for the
replica and the naive app; nchan gets the same document by HTTP POST into its Redis-backed channel (nchan keeps
its own keys and pub/sub channel in Redis and cannot subscribe to ours: see bench/README.md). Setup (apt
packages, the ``bench`` extra) is ``bash bench/setup.sh``; ``bash bench/run.sh`` does both.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kiwoom_cache import contract as c  # noqa: E402
from stack.launch import terminate  # noqa: E402
from stack.localredis import LocalRedis, free_port  # noqa: E402
from tests.api.writer import make_ranking  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import figures  # noqa: E402  (bench/figures.py: the published figures from a results file)

FEED = "kospi-surge"
EVENTS_PATH = f"/v1/rankings/{FEED}/events"
SNAPSHOT_PATH = f"/v1/rankings/{FEED}"
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
SERVER_CORE, LOADER_CORE = 0, 1
#: Descriptors kept back from the hard limit for the server's own files, Redis connections and listeners.
FD_RESERVE = 100
RECORD = struct.Struct("<IId")
#: The API key the ``replica-auth`` runs accept (``KIWOOM_API_AUTH_KEYS`` holds only its digest).
BENCH_KEY = "bench-" + "0" * 40
BENCH_KEY_SPEC = json.dumps([{"name": "bench", "sha256": hashlib.sha256(BENCH_KEY.encode()).hexdigest()}])
#: Where the published reports go: each full run adds ``runs/<finished>.json`` and ``.md`` (bench/figures.py takes
#: the figures over every file there) and replaces ``sse.png``.
RESULTS = ROOT / "bench" / "results"
#: Stem of the reports written to --out (``.json``, ``.md``), next to ``sse.png``.
REPORT = "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


# --- processes ---------------------------------------------------------------------------------------------

def pinned(core: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *argv] if os.cpu_count() and os.cpu_count() > 1 else argv  # type: ignore[operator]


def _stat(pid: int) -> tuple[int, int, int]:
    """(ppid, utime+stime ticks, rss pages) of one process."""
    text = Path(f"/proc/{pid}/stat").read_text()
    rest = text[text.rindex(")") + 2:].split()
    return int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[21])


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (nginx's workers, uvicorn's)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parents[int(entry.name)] = _stat(int(entry.name))[0]
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [p for p, pp in parents.items() if pp in frontier]
        found += frontier
    return found


def usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS KiB) summed over the process tree."""
    cpu = rss = 0
    for p in tree(pid):
        with contextlib.suppress(OSError):
            _, ticks, pages = _stat(p)
            cpu += ticks
            rss += pages
    return cpu / CLK_TCK, rss * PAGE_KIB


def wait_http(port: int, path: str, deadline_s: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {path}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"no 200 from 127.0.0.1:{port}{path} within {deadline_s}s")


@dataclass
class Server:
    """A server under test: how to start it and where to ask whether it is ready."""

    name: str
    argv: list[str]
    port: int
    ready_path: str
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    #: False for multi-worker runs, which are meant to use every core.
    pin: bool = True
    #: Where the server's code is imported from (another checkout: bench/snapshot_ratio.py --baseline).
    cwd: Path = ROOT

    def start(self, log_path: Path) -> Server:
        log = log_path.open("wb")
        argv = pinned(SERVER_CORE, self.argv) if self.pin else self.argv
        self.proc = subprocess.Popen(argv, cwd=self.cwd, env={**os.environ, **self.env},
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_http(self.port, self.ready_path, proc=self.proc)
        return self

    def stop(self) -> None:
        terminate(self.proc, 15)


def python_server(name: str, argv: list[str], port: int, ready: str, env: dict[str, str]) -> Server:
    return Server(name, [sys.executable, *argv], port, ready, env)


def replica(redis_url: str, *, name: str = "replica", **settings: str) -> Server:
    """``kiwoom-api`` as shipped: only the Redis URL and the port are set, plus any ``KIWOOM_API_*`` asked for."""
    port = free_port()
    env = {"KIWOOM_CACHE_REDIS_URL": redis_url, "KIWOOM_API_PORT": str(port),
           **{f"KIWOOM_API_{k.upper()}": v for k, v in settings.items()}}
    return python_server(name, ["-m", "api"], port, "/readyz", env)


def baseline(redis_url: str, checkout: Path | None, name: str = "baseline") -> Server:
    """The replica as another checkout has it (``--baseline DIR``: a before/after comparison in one run)."""
    if checkout is None:
        raise SystemExit("--servers baseline needs --baseline DIR (a checkout of the code to compare against)")
    server = replica(redis_url, name=name)
    server.cwd = checkout.resolve()  # `python -m api` imports api/ and kiwoom_cache/ from there
    return server


def replica_workers(redis_url: str, workers: int) -> Server:
    """``kiwoom-api`` with ``KIWOOM_API_WORKERS``: each worker process has its own hub and subscription."""
    server = replica(redis_url, name=f"replica-{workers}w", workers=str(workers))
    server.pin = False
    return server


def replica_granian(redis_url: str) -> Server:
    port = free_port()
    env = {"KIWOOM_CACHE_REDIS_URL": redis_url, "KIWOOM_API_LOG_LEVEL": "warning"}
    return python_server("replica-granian", ["-m", "granian", "--interface", "asgi", "--factory", "--host",
                                             "127.0.0.1", "--port", str(port), "--no-ws", "api.app:create_app"],
                         port, "/readyz", env)


def naive(redis_url: str) -> Server:
    port = free_port()
    return python_server("naive", ["-m", "uvicorn", "bench.naive_app:app", "--host", "127.0.0.1", "--port",
                                   str(port)], port, "/docs", {"KIWOOM_CACHE_REDIS_URL": redis_url})


def bare_asgi(doc_path: Path) -> Server:
    port = free_port()
    return python_server("bare-asgi", ["-m", "uvicorn", "bench.bare_asgi:app", "--host", "127.0.0.1", "--port",
                                       str(port), "--no-access-log", "--loop", "uvloop", "--http", "httptools"],
                         port, "/", {"BENCH_DOC": str(doc_path)})


def nginx(tmp: Path, *, redis_port: int | None, nofile: int, static_doc: Path | None = None) -> Server:
    """nginx with one worker: nchan subscribed to Redis (``redis_port``) and/or a static copy of the snapshot."""
    port = free_port()
    prefix = tmp / f"nginx-{port}"
    (prefix / "static").mkdir(parents=True)
    if static_doc is not None:
        shutil.copy(static_doc, prefix / "static" / "snapshot.json")
    nchan = ""
    if redis_port is not None:
        channel = ("nchan_channel_id $1; nchan_redis_pass kiwoom_redis; nchan_message_buffer_length 256; "
                   "nchan_message_timeout 1h;")
        nchan = f"""
    upstream kiwoom_redis {{ nchan_redis_server redis://127.0.0.1:{redis_port}; }}
    server {{
      listen 127.0.0.1:{port} backlog=4096;
      location ~ ^/v1/rankings/([a-z0-9-]+)/events$ {{
        nchan_subscriber eventsource; nchan_subscriber_first_message newest; {channel}
      }}
      location ~ ^/pub/([a-z0-9-]+)$ {{ nchan_publisher; {channel} }}
      location = /ready {{ return 200; }}
    }}"""
    static = "" if static_doc is None else f"""
    server {{
      listen 127.0.0.1:{port} backlog=4096;
      location = /ready {{ return 200; }}
      location = {SNAPSHOT_PATH} {{ default_type application/json; alias {prefix}/static/snapshot.json; }}
    }}"""
    temp = " ".join(f"{kind}_temp_path {prefix}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                       "scgi"))
    conf = f"""
{"load_module " + str(NCHAN_MODULE) + ";" if redis_port is not None else ""}
{"user root;" if os.geteuid() == 0 else ""}
daemon off;
worker_processes 1;
worker_rlimit_nofile {nofile};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections {2 * nofile}; multi_accept on; }}
http {{
    access_log off;
    {temp}
    client_body_buffer_size 256k;
    keepalive_requests 1000000;
    {nchan}{static}
}}
"""
    (prefix / "nginx.conf").write_text(conf)
    name = "nchan" if redis_port is not None else "nginx-static"
    return Server(name, ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf")], port, "/ready")


# --- the loader --------------------------------------------------------------------------------------------

def build_loader(out_dir: Path) -> Path:
    exe = out_dir / "sseload"
    src = ROOT / "bench" / "loader.c"
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(src)], check=True)
    return exe


class Loader:
    """The C loader as a child on the loader core; its status lines are read by a thread."""

    def __init__(self, exe: Path, port: int, n: int, records: Path, header: str | None = None) -> None:
        self.records = records
        argv = [str(exe), "127.0.0.1", str(port), EVENTS_PATH, str(n), str(records), "256"]
        self.proc = subprocess.Popen(pinned(LOADER_CORE, argv + ([header] if header else [])),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.status: dict[str, int] = {"connected": 0, "failed": 0, "closed": 0, "pending": n, "events": 0}
        self.summary: dict[str, Any] = {}
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("status "):
                self.status = {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
            elif line.startswith("{"):
                self.summary = json.loads(line)

    def wait_connected(self, n: int, stall_s: float, limit_s: float) -> None:
        """Until every client connected or failed, or nothing changed for ``stall_s``."""
        start = last_change = time.monotonic()
        last = None
        while time.monotonic() - start < limit_s:
            s = self.status
            if s["connected"] + s["failed"] + s["closed"] >= n and s["pending"] == 0:
                return
            key = (s["connected"], s["failed"], s["pending"])
            if key != last:
                last, last_change = key, time.monotonic()
            elif time.monotonic() - last_change > stall_s:
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"loader exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
            time.sleep(0.1)

    def wait_events(self, target: int, deadline_s: float) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end and self.status["events"] < target:
            time.sleep(0.05)

    def finish(self) -> list[tuple[int, int, float]]:
        """Stop the loader (it writes its records and summary on SIGTERM) and read what it recorded."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.reader.join(5)
        self.close()
        return list(RECORD.iter_unpack(self.records.read_bytes()))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


# --- publishing --------------------------------------------------------------------------------------------

class NchanUnavailable(RuntimeError):
    pass


class Publisher:
    """Writes rankings through the contract's Lua script; for nchan also POSTs the resulting document."""

    def __init__(self, client: redis.Redis, rows: int, nchan_port: int | None = None) -> None:
        self.client = client
        self.script = client.register_script(c.WRITE_RANKING_LUA)
        self.rows = rows
        self.nchan = http.client.HTTPConnection("127.0.0.1", nchan_port) if nchan_port else None

    def seed(self) -> bytes:
        info = c.FeedInfo(FEED, "bench", "opt10023", {"market": "001"}, 0.5)
        self.client.hset(c.FEEDS_KEY, FEED, info.encode())
        deadline = time.monotonic() + 15
        while True:  # nchan answers 503 until its Redis connection is up
            try:
                _, doc = self.publish()
                return doc
            except NchanUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def publish(self) -> tuple[float, bytes]:
        """(unix time the server's input began, document); t0 is taken after the ranking is built."""
        ranking = make_ranking(FEED, self.rows)
        keys, args = c.write_ranking_args(ranking)
        t0 = time.time()
        rid, seq, epoch = self.script(keys=keys, args=args)
        doc = c.splice_document(args[2], rid, seq, epoch)
        if self.nchan is not None:  # nchan's input is the POST; the Lua write only produced the document
            t0 = time.time()
            try:
                response = self._post(doc)
            except (OSError, http.client.HTTPException):
                # nginx closes idle keep-alive connections when it runs short of worker connections (at the
                # fd-limit N): reconnect once, the retry's time counts.
                self.nchan.close()
                response = self._post(doc)
            if response.status == 503:
                raise NchanUnavailable("nchan publish answered 503")
            if response.status not in (201, 202):
                raise RuntimeError(f"nchan publish answered {response.status}")
        return t0, doc

    def _post(self, doc: bytes) -> http.client.HTTPResponse:
        assert self.nchan is not None
        self.nchan.request("POST", f"/pub/{FEED}", body=doc, headers={"Content-Type": "application/json"})
        response = self.nchan.getresponse()
        response.read()
        return response

    def close(self) -> None:
        if self.nchan is not None:
            self.nchan.close()


def heartbeat(client: redis.Redis, started_at_ms: int | None = None) -> None:
    """The publisher's status as a running one writes it (every 5 s; late after 10 s without)."""
    now = int(time.time() * 1000)
    status = c.PublisherStatus(state="running", source="sim", account_mode=None, version="bench", host="localhost",
                               pid=1, started_at_ms=started_at_ms or now, heartbeat_at_ms=now, last_success_ms=now,
                               heartbeat_s=5.0, session="regular")
    client.set(c.STATUS_KEY, status.encode(), px=3_600_000)


@contextlib.contextmanager
def heartbeating(redis_url: str, enabled: bool = True) -> Iterator[None]:
    """A live publisher's heartbeat for the whole run, so the replicas' answers stay fresh (not "publisher stale").

    ``enabled=False`` writes the status once, as the full run did before issue 26 (the stale set-up)."""
    client = redis.Redis.from_url(redis_url)
    started = int(time.time() * 1000)
    heartbeat(client, started)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(2.0):
            heartbeat(client, started)

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    if enabled:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if enabled:
            thread.join(5)
        client.close()


def set_poll_period(client: redis.Redis, interval_s: float) -> None:
    """The feed's poll period: the replica calls a snapshot stale after 3 periods without a write."""
    client.hset(c.FEEDS_KEY, FEED, c.FeedInfo(FEED, "bench", "opt10023", {"market": "001"}, interval_s).encode())


def seq_of(doc: bytes) -> int:
    return int(re.search(rb'"seq":(\d+)', doc).group(1))  # type: ignore[union-attr]


# --- one SSE phase -----------------------------------------------------------------------------------------

def percentile(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


#: Servers whose every client must get every event (ours); a peer's shortfall is reported as its result.
OURS = ("replica", "replica-auth", "replica-granian", "replica-1w", "replica-2w", "baseline")
#: A loader busier than this share of its core in the window may have delayed what it measured.
LOADER_BUSY_MAX = 0.9


def sse_checks(kind: str, r: dict[str, Any]) -> list[str]:
    """Why a run's figures cannot stand (empty: they can)."""
    problems = []
    if r["loader_busy"] >= LOADER_BUSY_MAX:
        problems.append(f"loader saturated: {r['loader_cpu_window_s']} s CPU in a {r['window_s']} s window")
    if r["connected"] < r["n"]:
        problems.append(f"{r['n'] - r['connected']} of {r['n']} clients not connected")
    if kind in OURS and r["short_clients"]:
        problems.append(f"{r['short_clients']} clients missed events")
    return problems


def sse_phase(kind: str, n: int, args: argparse.Namespace, tmp: Path, loader_exe: Path,
              batch: int = 0) -> dict[str, Any]:
    phase_start = time.monotonic()
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix=f"{kind}-{n}-", dir=tmp))
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with LocalRedis(work / "redis") as rds:
        client = redis.Redis.from_url(rds.url)
        makers = {"replica": lambda: replica(rds.url), "naive": lambda: naive(rds.url),
                  "nchan": lambda: nginx(work, redis_port=rds.port, nofile=nofile),
                  "replica-1w": lambda: replica_workers(rds.url, 1), "replica-2w": lambda: replica_workers(rds.url, 2),
                  "replica-granian": lambda: replica_granian(rds.url),
                  "replica-auth": lambda: replica(rds.url, name="replica-auth", auth_keys=BENCH_KEY_SPEC),
                  "baseline": lambda: baseline(rds.url, args.baseline)}
        server = makers[kind]()
        server.start(work / "server.log")
        publisher = Publisher(client, args.rows, server.port if kind == "nchan" else None)
        loader = None
        try:
            seed = publisher.seed()
            # Warm: fill the replica's resume ring (256 frames) and nchan's message buffer (256) before the
            # idle baseline, so RSS per client counts the clients only, not the history every server keeps.
            for _ in range(args.warm - 1):
                publisher.publish()
            time.sleep(0.3)
            assert server.proc is not None
            _, rss_idle = usage(server.proc.pid)
            loader = Loader(loader_exe, server.port, n, work / "records.bin",
                            f"Authorization: Bearer {BENCH_KEY}" if kind == "replica-auth" else None)
            t_connect = time.monotonic()
            loader.wait_connected(n, stall_s=args.stall,
                                  limit_s=args.naive_connect_limit if kind == "naive" else args.connect_limit)
            connect_s = time.monotonic() - t_connect
            time.sleep(args.settle)
            connected = loader.status["connected"]
            before_events = loader.status["events"]
            cpu0, _ = usage(server.proc.pid)
            lcpu0, _ = usage(loader.proc.pid)
            published: dict[int, float] = {}
            events = max(1, round(args.window * args.rate))
            start = time.time()
            redis_clients = 0
            for i in range(events):
                delay = start + i / args.rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                t0, doc = publisher.publish()
                published[seq_of(doc)] = t0
                if i == events // 2:
                    redis_clients = int(client.info("clients")["connected_clients"]) - 1  # minus this one
            last_publish = time.time()
            loader.wait_events(before_events + connected * events, deadline_s=args.drain)
            drained = loader.status["events"] >= before_events + connected * events
            elapsed = time.time() - start
            drain_s = time.time() - last_publish
            cpu1, rss = usage(server.proc.pid)
            lcpu1, _ = usage(loader.proc.pid)
            still = loader.status["connected"]
            records = loader.finish()
            summary = loader.summary
        finally:
            if loader is not None:
                loader.close()
            publisher.close()
            server.stop()
            client.close()
    lat = sorted((t - published[s]) * 1000 for _, s, t in records if s in published)
    per_client = Counter(cl for cl, s, _ in records if s in published)
    delivered = len(lat)
    expected = connected * events
    result = {
        "batch": batch, "server": kind, "n": n, "connected": connected, "connected_at_end": still,
        "connect_s": round(connect_s, 1),
        "failed": summary.get("failed", 0), "events": events, "expected": expected, "delivered": delivered,
        "short_clients": connected - sum(1 for v in per_client.values() if v >= events),
        "gaps": summary.get("gaps", 0), "duplicates": summary.get("duplicates", 0),
        "p50_ms": round(percentile(lat, 0.50), 2), "p99_ms": round(percentile(lat, 0.99), 2),
        "max_ms": round(lat[-1], 2) if lat else float("nan"),
        "window_s": round(elapsed, 2), "drain_s": round(drain_s, 2) if drained else None,
        "server_cpu_s": round(cpu1 - cpu0, 3),
        "cpu_us_per_event": round((cpu1 - cpu0) / max(1, delivered) * 1e6, 2),
        "rss_idle_mib": round(rss_idle / 1024, 1), "rss_mib": round(rss / 1024, 1),
        "rss_per_client_kib": round((rss - rss_idle) / max(1, connected), 2),
        "redis_clients": redis_clients, "loader_cpu_window_s": round(lcpu1 - lcpu0, 3),
        "loader_busy": round((lcpu1 - lcpu0) / max(elapsed, 1e-9), 3),
        "loader_cpu_total_s": round(summary.get("cpu_user_s", 0) + summary.get("cpu_sys_s", 0), 3),
        "doc_bytes": len(seed), "phase_s": round(time.monotonic() - phase_start, 1),
        "loadavg_1m": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }
    result["problems"] = sse_checks(kind, result)
    shutil.rmtree(work, ignore_errors=True)
    return result


# --- snapshots under wrk -----------------------------------------------------------------------------------

WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", re.M)
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def probe(port: int, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", SNAPSHOT_PATH, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def wrk(port: int, seconds: float, conns: int, headers: dict[str, str] | None = None) -> dict[str, float]:
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run(pinned(LOADER_CORE, [*argv, f"http://127.0.0.1:{port}{SNAPSHOT_PATH}"]), check=True,
                         capture_output=True, text=True).stdout
    if "Non-2xx or 3xx responses" in out:
        raise RuntimeError(f"wrk saw error responses:\n{out}")
    p99 = WRK_P99.search(out)
    return {"rps": float(WRK_RATE.search(out).group(1)),  # type: ignore[union-attr]
            "p99_ms": round(float(p99.group(1)) * UNITS[p99.group(2)], 3) if p99 else float("nan")}


class StaleAnswers(RuntimeError):
    """A snapshot run served something other than the fresh document: its req/s measure another path."""


class FreshnessSampler:
    """Asks the target for the snapshot every ``period_s`` while wrk runs; every answer must be the fresh one.

    Fresh: status 200, the body of the fresh document's size (a stale answer carries its reason, so it is
    longer) and, from the replica, ``X-Kiwoom-Stale: false``."""

    def __init__(self, port: int, fresh_bytes: int, period_s: float = 0.25) -> None:
        self.port, self.fresh_bytes, self.period_s = port, fresh_bytes, period_s
        self.samples = 0
        self.bad: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="freshness", daemon=True)

    def check(self) -> None:
        try:
            status, headers, body = probe(self.port)
        except (OSError, http.client.HTTPException) as exc:
            self.bad.append(f"no answer: {exc}")
            return
        self.samples += 1
        stale = headers.get("x-kiwoom-stale", "false")
        if status != 200 or len(body) != self.fresh_bytes or stale != "false":
            reason = headers.get("x-kiwoom-stale-reason", "")
            self.bad.append(f"status {status}, {len(body)} bytes (fresh: {self.fresh_bytes}), "
                            f"X-Kiwoom-Stale {stale} {reason}".strip())

    def _run(self) -> None:
        while True:
            self.check()
            if self.stop.wait(self.period_s):
                return

    def __enter__(self) -> FreshnessSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.check()  # and once more after the run


def snapshot_targets(args: argparse.Namespace, rds: LocalRedis, tmp: Path,
                     doc_path: Path) -> list[tuple[str, str, Any]]:
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    targets: list[tuple[str, str, Any]] = [
        ("replica, defaults (log level info, access log sparse)", "info", lambda: replica(rds.url)),
        ("nginx static file", "-", lambda: nginx(tmp, redis_port=None, nofile=nofile, static_doc=doc_path)),
        ("bare ASGI, cached bytes (uvicorn httptools+uvloop, no access log)", "-", lambda: bare_asgi(doc_path)),
    ]
    if not args.skip_log_variants:
        targets += [("replica, access log on every request (KIWOOM_API_ACCESS_LOG=all)", "info",
                     lambda: replica(rds.url, name="replica-log-all", access_log="all")),
                    ("replica, log level warning (no access log)", "warning",
                     lambda: replica(rds.url, name="replica-warning", log_level="warning"))]
    if not args.skip_granian:
        targets.append(("replica under granian (log level warning)", "warning", lambda: replica_granian(rds.url)))
    if args.workers:
        targets += [("replica, KIWOOM_API_WORKERS=1, unpinned (defaults otherwise)", "info",
                     lambda: replica_workers(rds.url, 1)),
                    ("replica, KIWOOM_API_WORKERS=2, unpinned (defaults otherwise)", "info",
                     lambda: replica_workers(rds.url, 2))]
    return targets


def snapshot_phase(args: argparse.Namespace, tmp: Path, batch: int = 0) -> list[dict[str, Any]]:
    """Every target once under wrk (200, then 304), each run sampled for freshness: StaleAnswers otherwise.

    The feed's poll period is ``--snapshot-poll`` (60 s: fresh all run, as a live feed is between polls) and
    a heartbeat thread keeps the publisher's status live; the order of the targets alternates by batch."""
    results: list[dict[str, Any]] = []
    work = tmp / f"snap-{batch}"
    work.mkdir()
    with LocalRedis(work / "redis") as rds:
        client = redis.Redis.from_url(rds.url)
        publisher = Publisher(client, args.rows)
        publisher.seed()
        set_poll_period(client, args.snapshot_poll)
        publisher.publish()  # the write after the poll period was set: fresh from here on
        doc_path = work / "snapshot.json"
        targets = snapshot_targets(args, rds, work, doc_path)
        # the replica first (its 200 body is what the others serve), then the rest in alternating order
        targets = targets[:1] + (targets[1:] if batch % 2 == 0 else targets[:0:-1])
        with heartbeating(rds.url, enabled=args.heartbeat):
            for label, log_level, make in targets:
                server = make()
                server.start(work / f"snap-{server.port}.log")
                try:
                    status_code, headers, body = probe(server.port)
                    if status_code != 200:
                        raise RuntimeError(f"{label}: GET answered {status_code}")
                    if not doc_path.exists():  # the replica's own 200 body is what the others serve
                        doc_path.write_bytes(body)
                    fresh_bytes = len(doc_path.read_bytes())
                    etag = headers["etag"]
                    not_modified = probe(server.port, {"If-None-Match": etag})[0]
                    if not_modified != 304:
                        raise RuntimeError(f"{label}: If-None-Match answered {not_modified}")
                    with FreshnessSampler(server.port, fresh_bytes) as fresh:
                        ok = wrk(server.port, args.wrk_seconds, args.wrk_conns)
                        nm = wrk(server.port, args.wrk_seconds, args.wrk_conns, {"If-None-Match": etag})
                finally:
                    server.stop()
                if fresh.bad:
                    raise StaleAnswers(f"{label}: {len(fresh.bad)} of {fresh.samples} sampled answers were not the "
                                       f"fresh document, first: {fresh.bad[0]}")
                results.append({"batch": batch, "target": label, "server": server.name, "log_level": log_level,
                                "bytes": len(body), "fresh_samples": fresh.samples, "problems": [],
                                "rps_200": ok["rps"], "p99_200_ms": ok["p99_ms"], "rps_304": nm["rps"],
                                "p99_304_ms": nm["p99_ms"]})
                print(f"  snapshot {label}: 200 {ok['rps']:.0f} req/s, 304 {nm['rps']:.0f} req/s, "
                      f"{fresh.samples} answers sampled, all fresh", flush=True)
        publisher.close()
        client.close()
    return results


def publish_path_phase(n: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "bench"))
    import publish_path  # the publisher hot path benchmark, reused as is

    return publish_path.measure(n)


# --- reports -----------------------------------------------------------------------------------------------

def versions() -> dict[str, str]:
    def run(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=10)
        except OSError:
            return "absent"
        return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else "?"

    def dpkg(name: str) -> str:
        return run(["dpkg-query", "-W", "-f=${Version}", name])

    from importlib.metadata import PackageNotFoundError, version

    def pkg(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "absent"

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    commit = run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    return {
        "commit": commit if commit not in ("absent", "?") and "fatal" not in commit else "unknown",
        "machine": f"{os.cpu_count()} vCPU, {cpu}", "kernel": platform.release(),
        "os": run(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "nofile_hard": str(resource.getrlimit(resource.RLIMIT_NOFILE)[1]),
        "python": platform.python_version(), "nginx": dpkg("nginx"), "libnginx-mod-nchan": dpkg("libnginx-mod-nchan"),
        "redis-server": dpkg("redis-server"), "wrk": dpkg("wrk"), "gcc": run(["gcc", "-dumpfullversion"]),
        **{name: pkg(name) for name in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "sse-starlette",
                                        "redis", "granian")},
    }


SSE_HEAD = ("| batch | server | N | connected | delivered / expected | clients short | gaps | p50 ms | p99 ms | max ms "
            "| window s | drain s | server CPU s | CPU µs / event | RSS / client KiB | Redis conns | loader CPU s "
            "| loader busy | problems |")


def sse_rows(rows: list[dict[str, Any]]) -> list[str]:
    return [SSE_HEAD, "|" + "---|" * (SSE_HEAD.count("|") - 1)] + [
        f"| {r['batch'] + 1} | {r['server']} | {r['n']:,} | {r['connected']:,} | {r['delivered']:,} / "
        f"{r['expected']:,} | {r['short_clients']} | {r['gaps']} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} "
        f"| {r['window_s']} | {'deadline' if r['drain_s'] is None else r['drain_s']} | {r['server_cpu_s']} "
        f"| {r['cpu_us_per_event']} | {r['rss_per_client_kib']} | {r['redis_clients']} | {r['loader_cpu_window_s']} "
        f"| {r['loader_busy']:.0%} | {'; '.join(r['problems']) or 'none'} |" for r in rows]


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    batches = f"{s['batches']} interleaved batch{'' if s['batches'] == 1 else 'es'}"
    lines = [f"# Benchmark results ({report['finished']})", "",
             f"`python bench/run.py {s['argv']}` ({report['duration_s']:.0f} s, {batches}). Machine: "
             f"{report['versions']['machine']}; server pinned to core {SERVER_CORE}, C loader, "
             f"Redis, publisher and wrk on core {LOADER_CORE}. 1-minute load average {report['loadavg_1m'][0]} at "
             f"the start, {report['loadavg_1m'][1]} at the end.", "",
             "## Figures: median (min–max over the valid runs, each a ratio within one batch)", "",
             *figures.summary_lines(report), "",
             f"## SSE fan-out, every run: {s['doc_bytes']:,}-byte ranking at {s['rate']} Hz, {s['window']} s window",
             "",
             "Latency = publish (the server's input: the Lua write, or nchan's POST) → the event's last byte read by "
             "the loader. Server CPU and loader CPU are for the window; loader busy = its CPU ÷ the window; drain = "
             "last publish → last event read. RSS per client: (RSS of the server's process tree with every client "
             f"connected, at the end of the window − the same tree idle after {s['warm']} documents were published, "
             "before the first client) ÷ connected. Replica: `kiwoom-api` defaults (log level info, access log "
             "sparse). nchan: one nginx worker, Redis storage. Naive: FastAPI + sse-starlette, one Redis "
             "subscription per client, uvicorn defaults.", "", *sse_rows(report["sse"])]
    if report.get("workers"):
        lines += ["", "### One replica process vs two (`KIWOOM_API_WORKERS`, unpinned)", "",
                  report.get("workers_note", "Server on every core; the loader, Redis and the publisher share them."),
                  "", *sse_rows(report["workers"])]
    if report.get("snapshot"):
        lines += ["", f"## Snapshot `GET {SNAPSHOT_PATH}`, every run (wrk -t1 -c{s['wrk_conns']} "
                  f"-d{s['wrk_seconds']}s, server pinned, wrk on the other core; feed poll period "
                  f"{s['snapshot_poll_s']} s, heartbeat {'every 2 s' if s['heartbeat'] else 'once'}; every answer "
                  "sampled during the run was the fresh document)", "",
                  "| batch | target | bytes | fresh samples | 200 req/s | p99 ms | 304 req/s | p99 ms |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in report["snapshot"]:
            lines.append(f"| {r['batch'] + 1} | {r['target']} | {r['bytes']:,} | {r['fresh_samples']} | "
                         f"{r['rps_200']:,.0f} | {r['p99_200_ms']} | {r['rps_304']:,.0f} | {r['p99_304_ms']} |")
    if report.get("publish_path"):
        pp = report["publish_path"]
        lines += ["", f"## Publisher path ({pp['rows']}-row ranking, {pp['bytes']:,}-byte document, n = {pp['n']})",
                  "", "| step | median µs | p99 µs | ÷ Lua write |", "|---|---|---|---|"]
        for step in pp["steps"]:
            lines.append(f"| {step['step']} | {step['median_us']} | {step['p99_us']} | {step['ratio']} |")
    lines += ["", "## Versions", ""] + [f"- {k}: {v}" for k, v in report["versions"].items()]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (bash bench/setup.sh): no plot", file=sys.stderr)
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, style in (("nchan", "o-"), ("replica", "s-"), ("replica-auth", "d:"), ("naive", "^--")):
        runs = [r for r in report["sse"] if r["server"] == name]
        ns = sorted({r["n"] for r in runs})
        if not ns:
            continue
        # the median over the batches at each N
        at = {n: [r for r in runs if r["n"] == n] for n in ns}
        ax1.plot(ns, [statistics.median(r["p99_ms"] for r in at[n]) for n in ns], style, label=name)
        ax2.plot(ns, [statistics.median(r["server_cpu_s"] / r["window_s"] * 100 for r in at[n]) for n in ns], style,
                 label=name)
    s = report["settings"]
    ax1.set(xlabel="SSE clients", ylabel="p99 publish → receive (ms)", yscale="log",
            title="p99 latency")
    ax2.set(xlabel="SSE clients", ylabel="server CPU (% of one core)", title="server CPU in the window")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(f"{s['doc_bytes']:,}-byte ranking at {s['rate']} Hz, server pinned to one core, C epoll loader")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --- main --------------------------------------------------------------------------------------------------

def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def parse_ns(text: str, hard: int) -> list[int]:
    return [hard - FD_RESERVE if part == "max" else int(part) for part in text.split(",")]


@contextlib.contextmanager
def loader_core() -> Iterator[None]:
    """This process (the publisher) and Redis, started from it, run on the loader's core."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {LOADER_CORE})
        try:
            yield
        finally:
            os.sched_setaffinity(0, before)
    else:
        yield


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ns", default="1000,4000,8000,max", help="SSE client counts; max = fd hard limit - 100")
    parser.add_argument("--servers", default="nchan,replica,replica-auth,naive",
                        help="SSE peers: nchan, replica, replica-auth, naive (also replica-granian, replica-1w, "
                             "replica-2w, and baseline with --baseline)")
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                        help="another checkout (e.g. `git worktree add DIR OLD_COMMIT`) run as the server 'baseline': "
                             "the replica before and after a change, interleaved in one run")
    parser.add_argument("--naive-max", type=int, default=8000,
                        help="largest N for the naive app (it needs two descriptors and a Redis client per client)")
    parser.add_argument("--auth-max", type=int, default=8000,
                        help="largest N for the replica with access control on (same fan-out, checked per connection)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds of publishing per phase")
    parser.add_argument("--rate", type=float, default=2.0, help="rankings per second")
    parser.add_argument("--rows", type=int, default=60, help="rows per ranking (60 ≈ 11.6 KB)")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds between connecting and publishing")
    parser.add_argument("--stall", type=float, default=5.0, help="give up connecting after this long without progress")
    parser.add_argument("--connect-limit", type=float, default=60.0, help="seconds allowed for connecting N clients")
    parser.add_argument("--naive-connect-limit", type=float, default=15.0,
                        help="the naive app accepts slowly and saturates early: it gets less time")
    parser.add_argument("--drain", type=float, default=5.0,
                        help="seconds after the last publish for late events (counted as delivered)")
    parser.add_argument("--wrk-seconds", type=int, default=4)
    parser.add_argument("--wrk-conns", type=int, default=64)
    parser.add_argument("--publish-n", type=int, default=500)
    parser.add_argument("--skip-snapshot", action="store_true")
    parser.add_argument("--skip-granian", action="store_true", help="no granian run of the replica (snapshot)")
    parser.add_argument("--skip-log-variants", action="store_true",
                        help="snapshot: only the replica's defaults, nginx and the bare ASGI app (no log variants)")
    parser.add_argument("--workers", action="store_true",
                        help="also 1 vs 2 workers (KIWOOM_API_WORKERS), unpinned: on fewer than 4 cores the loader "
                             "shares the workers' cores, so these runs are recorded but never published")
    parser.add_argument("--workers-n", type=int, default=4000, help="SSE clients for the 1- vs 2-worker comparison")
    parser.add_argument("--batches", type=int, default=None,
                        help="interleaved batches (default 3; --smoke 1): every server at every N (and every "
                             "snapshot target) once per batch, the order reversed every other batch; a figure is "
                             "the range over batches")
    parser.add_argument("--warm", type=int, default=256,
                        help="documents published before the idle RSS baseline (fills the 256-frame resume ring "
                             "and nchan's 256-message buffer)")
    parser.add_argument("--snapshot-poll", type=float, default=60.0,
                        help="the snapshot feed's poll period, s (60: fresh all run; 0.5: stale after 1.5 s)")
    parser.add_argument("--no-heartbeat", dest="heartbeat", action="store_false",
                        help="write the publisher's status once instead of every 2 s (the pre-issue-26 set-up, "
                             "whose snapshot answers go stale: the freshness check then fails the run)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where the reports go (default bench/results/, whose run also rewrites "
                             "bench/README.md's results section, --transports only its own; --smoke and --quick "
                             "default to a temporary directory, so a reduced run never replaces the published "
                             "results)")
    parser.add_argument("--transports", action="store_true",
                        help="only the bounded comparison of single-feed SSE, multiplexed SSE and WebSocket "
                             "(bench/transports.py), its reports written to --out")
    parser.add_argument("--transport-clients", type=int, default=200, help="--transports: clients per transport")
    parser.add_argument("--transport-feeds", type=int, default=8, help="--transports: feeds each client wants")
    parser.add_argument("--transport-events", type=int, default=20, help="--transports: rankings per feed")
    parser.add_argument("--smoke", action="store_true",
                        help="a few clients, a few events, 1-s wrk runs, one batch: checks the harness, not the "
                             "servers (seconds)")
    parser.add_argument("--quick", action="store_true",
                        help="reduced run for developing the harness: N = 200, 3-s windows, 2-s wrk runs, 3 "
                             "batches (a few minutes); its figures are not results")
    args = parser.parse_args(argv)
    # the reduced modes change the defaults; an option given on the command line still wins
    reduced: dict[str, Any] = {}
    if args.smoke:
        reduced = {"ns": "5", "window": 1.0, "rate": 4.0, "settle": 0.2, "stall": 3.0, "wrk_seconds": 1,
                   "wrk_conns": 4, "publish_n": 20, "warm": 4, "batches": 1, "skip_granian": True,
                   "skip_log_variants": True}
    elif args.quick:
        reduced = {"ns": "200", "window": 3.0, "settle": 0.5, "wrk_seconds": 2, "publish_n": 100, "warm": 32,
                   "skip_granian": True}
    for name, value in reduced.items():
        if getattr(args, name) == parser.get_default(name):
            setattr(args, name, value)
    args.batches = args.batches or 3
    published = args.out is None and not (args.smoke or args.quick or args.transports)
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="kiwoom-bench-out-")) if reduced else RESULTS
    hard = raise_nofile()
    if args.transports:
        sys.path.insert(0, str(ROOT / "bench"))
        import transports  # bench/transports.py

        if args.smoke:
            args.transport_clients, args.transport_feeds, args.transport_events = 3, 2, 3
        targs = argparse.Namespace(n=args.transport_clients, feeds=args.transport_feeds, events=args.transport_events,
                                   rate=args.rate, rows=args.rows, settle=args.settle, drain=args.drain,
                                   connect_limit=args.connect_limit, out=args.out)
        with loader_core():
            return {"transports": transports.run(sys.modules[__name__], targs)}
    servers = [s for s in args.servers.split(",") if s]
    if "nchan" in servers and not NCHAN_MODULE.exists():
        print(f"{NCHAN_MODULE} missing (apt-get install libnginx-mod-nchan, or bash bench/setup.sh): nchan skipped",
              file=sys.stderr)
        servers.remove("nchan")
    ns = parse_ns(args.ns, hard)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    report: dict[str, Any] = {"sse": [], "workers": [], "snapshot": [], "publish_path": None}
    if args.workers and (os.cpu_count() or 1) < 4:
        report["workers_note"] = (f"not a result: {os.cpu_count()} cores, so the workers share theirs with the "
                                  "loader, Redis and the publisher")
    snapshot = not args.skip_snapshot and shutil.which("wrk") is not None
    if not args.skip_snapshot and not snapshot:
        print("wrk missing (apt-get install wrk, or bash bench/setup.sh): snapshot skipped", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="kiwoom-bench-") as tmp_name, loader_core():
        tmp = Path(tmp_name)
        exe = build_loader(tmp)
        for batch in range(args.batches):
            # ours and the peer's runs alternate, in reversed order every other batch, so a drift of the
            # machine's load between runs falls on both sides
            order = servers if batch % 2 == 0 else servers[::-1]
            for n in ns:
                for kind in order:
                    if (kind == "naive" and n > args.naive_max) or (kind == "replica-auth" and n > args.auth_max):
                        continue
                    print(f"batch {batch + 1}/{args.batches}: SSE {kind} N={n:,} ...", flush=True)
                    r = sse_phase(kind, n, args, tmp, exe, batch)
                    report["sse"].append(r)
                    print(f"  connected {r['connected']:,} delivered {r['delivered']:,}/{r['expected']:,} gaps "
                          f"{r['gaps']} p50 {r['p50_ms']} p99 {r['p99_ms']} ms, server CPU {r['server_cpu_s']} s, "
                          f"{r['rss_per_client_kib']} KiB/client, loader {r['loader_busy']:.0%} busy, drain "
                          f"{r['drain_s']} s{'; ' + '; '.join(r['problems']) if r['problems'] else ''}", flush=True)
            if args.workers:
                for kind in ("replica-1w", "replica-2w") if batch % 2 == 0 else ("replica-2w", "replica-1w"):
                    print(f"batch {batch + 1}: SSE {kind} N={args.workers_n:,} (unpinned) ...", flush=True)
                    r = sse_phase(kind, args.workers_n, args, tmp, exe, batch)
                    report["workers"].append(r)
            if snapshot:
                report["snapshot"] += snapshot_phase(args, tmp, batch)
        report["publish_path"] = publish_path_phase(args.publish_n)
    doc_bytes = report["sse"][0]["doc_bytes"] if report["sse"] else 0
    report["settings"] = {"argv": " ".join(argv if argv is not None else sys.argv[1:]), "ns": ns,
                          "batches": args.batches, "warm": args.warm, "snapshot_poll_s": args.snapshot_poll,
                          "heartbeat": args.heartbeat,
                          "servers": servers, "window": args.window, "rate": args.rate, "rows": args.rows,
                          "doc_bytes": doc_bytes, "wrk_seconds": args.wrk_seconds, "wrk_conns": args.wrk_conns,
                          "server_core": SERVER_CORE, "loader_core": LOADER_CORE, "nofile_hard": hard}
    report["versions"] = versions()
    report["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report["duration_s"] = round(time.monotonic() - started, 1)
    report["loadavg_1m"] = [round(load_start, 1), round(os.getloadavg()[0], 1)]
    earlier = figures.published() if published else []
    stem = args.out / REPORT
    if published:  # a new file beside the earlier runs: the figures widen over them, none is replaced
        stem = figures.RUNS / time.strftime("%Y-%m-%d-%H%M", time.gmtime())
        stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    if report["sse"]:
        plot(report, args.out / "sse.png")
    flagged = [f"batch {r['batch'] + 1} {r['server']} N={r['n']:,}: {'; '.join(r['problems'])}"
               for r in report["sse"] if r["problems"]]
    if flagged:
        print(f"{len(flagged)} SSE runs failed their checks (left out of the figures):", *flagged, sep="\n  ")
    if published:
        figures.main(["--write"])
        if earlier:  # the reproducibility check: this run's ratios against the claims the earlier runs published
            lines = figures.compare(figures.load(earlier), report)
            inside = sum(not line.startswith("OUTSIDE") for line in lines)
            print(*lines, f"{inside} of {len(lines)} ratios keep the claims the earlier runs published", sep="\n")
    print(f"done in {report['duration_s']} s: {stem}.md, .json, {args.out}/sse.png")
    return report


if __name__ == "__main__":
    main()
