"""Several replica processes on one port (``KIWOOM_API_WORKERS``): one per core, each a whole replica.

Each worker is ``python -m api`` in miniature: its own settings, event loop, hub and single Redis subscription,
and its own listening socket on the shared port with ``SO_REUSEPORT``, so the kernel spreads new connections
over the workers by a hash of the connection's addresses (socket(7)) instead of waking them all for each one.
The parent binds the port first without listening: a port already taken by another program fails here, at
start, and the port stays reserved for the workers while they (re)start. It forwards SIGINT/SIGTERM to every
worker (each closes its streams and shuts down as a single replica would), restarts a worker that died on its
own, and exits when all have stopped.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, Final

from api.settings import ApiSettings

log = logging.getLogger(__name__)

#: Restarts allowed before the parent gives up on a worker that keeps dying (e.g. a broken configuration).
MAX_RESTARTS: Final = 5


def listening_address(host: str, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    family, _type, _proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                               flags=socket.AI_PASSIVE)[0]
    return family, address


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A socket bound with SO_REUSEPORT (not yet listening: uvicorn listens on it)."""
    family, address = listening_address(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _worker(overrides: dict[str, Any], port: int, index: int, serve: Callable[[ApiSettings, socket.socket], None],
            ) -> None:
    """A worker process: a whole replica on its own SO_REUSEPORT socket."""
    settings = ApiSettings(**{**overrides, "port": port, "workers": 1})
    serve(settings, reuseport_socket(settings.host, port))


class Workers:
    """The parent: starts ``settings.workers`` workers, relays stop signals, restarts a worker that died."""

    def __init__(self, settings: ApiSettings, overrides: dict[str, Any],
                 serve: Callable[[ApiSettings, socket.socket], None]) -> None:
        self.settings = settings
        self.overrides = overrides
        self.serve = serve
        self.context = multiprocessing.get_context("spawn")  # a fresh interpreter: no loop or client inherited
        self.processes: list[BaseProcess] = []
        self.restarts = 0
        self.stopping = threading.Event()

    def start(self, index: int, port: int) -> BaseProcess:
        process = self.context.Process(target=_worker, args=(self.overrides, port, index, self.serve),
                                       name=f"kiwoom-api-worker-{index}")
        process.start()
        return process

    def run(self) -> int:
        """Serve until SIGINT/SIGTERM; returns the exit status (0, or 1 when a worker kept failing)."""
        try:
            reserve = reuseport_socket(self.settings.host, self.settings.port)
        except OSError as exc:
            log.error("cannot bind %s:%d: %s", self.settings.host, self.settings.port, exc.strerror or exc)
            return 1
        port = reserve.getsockname()[1]
        log.info("starting %d workers on %s:%d (SO_REUSEPORT)", self.settings.workers, self.settings.host, port)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        status = 0
        try:
            self.processes = [self.start(i, port) for i in range(self.settings.workers)]
            while not self.stopping.wait(0.5):
                for i, process in enumerate(self.processes):
                    if process.is_alive() or self.stopping.is_set():
                        continue
                    if self.restarts >= MAX_RESTARTS:
                        log.error("worker %d exited with %s; %d restarts so far: stopping", i, process.exitcode,
                                  self.restarts)
                        status = 1
                        self.stopping.set()
                        break
                    self.restarts += 1
                    log.warning("worker %d exited with %s: starting a new one", i, process.exitcode)
                    self.processes[i] = self.start(i, port)
        finally:
            self.stop()
            reserve.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return status

    def _on_signal(self, sig: int, _frame: FrameType | None) -> None:
        self.stopping.set()

    def stop(self) -> None:
        for process in self.processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        # Each worker gets its own graceful period (open streams), then a margin for the interpreter to exit.
        deadline = self.settings.graceful_shutdown_s + 10
        for process in self.processes:
            process.join(deadline)
            if process.is_alive():
                log.warning("worker %s did not stop within %.0f s: killing it", process.name, deadline)
                process.kill()
                process.join()
