"""``kiwoom-publisher supervise -- <publisher args>``: run the publisher and start it again when it has to.

The publisher exits with :attr:`~publisher.exit_codes.ExitCode.RESTART` after Kiwoom's version update or logins
refused in a row, and a crash ends it with some other status; both are restarted. A clean stop (0) and a bad
configuration (2) are not: the supervisor ends with the child's status.

- Backoff: redis-py's ``EqualJitterBackoff``, the one the writer and the API's hub use. It grows with the
  restarts in a row and starts over once a child has run for ``stable_s``.
- Every restart is logged (the status, what it means, how long the child ran, the delay) and counted: the
  child gets ``KIWOOM_PUBLISHER_SUPERVISOR_RESTARTS`` and reports it as ``restarts`` in its status document.
- SIGTERM or SIGINT stop the child the way a terminal's Ctrl-C would (SIGTERM; CTRL_BREAK_EVENT on Windows),
  wait for its final status, and end the supervisor with 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

from redis.backoff import EqualJitterBackoff

from publisher.arguments import check_arguments
from publisher.exit_codes import ExitCode, should_restart

log = logging.getLogger("publisher.supervisor")

#: The child's environment variable carrying the restart count (PublisherSettings.supervisor_restarts).
RESTARTS_ENV = "KIWOOM_PUBLISHER_SUPERVISOR_RESTARTS"


class Child(Protocol):
    """What the supervisor needs of a started publisher (a ``subprocess.Popen``)."""

    pid: int

    def wait(self, timeout: float | None = None) -> int: ...

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


Launcher = Callable[[Sequence[str], Mapping[str, str]], Child]


def launch_publisher(args: Sequence[str], env: Mapping[str, str]) -> Child:
    """``python -m publisher ARGS`` with the supervisor's interpreter, output and console."""
    argv = [sys.executable, "-m", "publisher", *args]
    if sys.platform == "win32":  # a process group of its own, so the supervisor's CTRL_BREAK_EVENT reaches it
        return subprocess.Popen(argv, env=dict(env), creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)
    return subprocess.Popen(argv, env=dict(env))


def describe_status(status: int) -> str:
    """``75 (RESTART)``, ``-9 (killed by SIGKILL)``, ``3 (unexpected)``."""
    if status < 0:
        try:
            return f"{status} (killed by {signal.Signals(-status).name})"
        except ValueError:
            return f"{status} (killed by signal {-status})"
    try:
        return f"{status} ({ExitCode(status).name})"
    except ValueError:
        return f"{status} (unexpected: a crash?)"


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    #: First delay before a restart and the cap of the growing delays, in seconds.
    backoff_min_s: float = 5.0
    backoff_max_s: float = 300.0
    #: A child that ran this long was healthy: the next restart starts the backoff over.
    stable_s: float = 600.0
    #: Give up after this many restarts (None: never).
    max_restarts: int | None = None
    #: How long a stopping child may take to write its final status before it is killed.
    stop_timeout_s: float = 30.0


class Supervisor:
    def __init__(self, args: Sequence[str], config: SupervisorConfig = SupervisorConfig(), *,
                 launch: Launcher = launch_publisher, env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.args = list(args)
        self.config = config
        self.backoff = EqualJitterBackoff(cap=config.backoff_max_s, base=config.backoff_min_s)
        self.restarts = 0
        self._launch = launch
        self._env = dict(os.environ if env is None else env)
        self._clock = clock
        self._stop = threading.Event()
        self._child: Child | None = None

    def run(self) -> int:
        """Start the publisher, restart it as needed; the status to exit with."""
        failures = 0  # restarts in a row without a stable run in between
        while True:
            started = self._clock()
            self._child = self._launch(self.args, {**self._env, RESTARTS_ENV: str(self.restarts)})
            log.info("publisher started (pid %d, restart %d)", self._child.pid, self.restarts)
            if self._stop.is_set():  # a stop request raced the start
                self._terminate(self._child)
            status = self._child.wait()
            ran = self._clock() - started
            self._child = None
            if self._stop.is_set():
                log.info("publisher stopped with status %s; supervisor done", describe_status(status))
                return int(ExitCode.OK)
            if not should_restart(status):
                log.info("publisher exited with %s after %.1fs: not restarting", describe_status(status), ran)
                return status
            if self.config.max_restarts is not None and self.restarts >= self.config.max_restarts:
                log.error("publisher exited with %s after %.1fs; %d restarts so far: giving up",
                          describe_status(status), ran, self.restarts)
                return status
            failures = 1 if ran >= self.config.stable_s else failures + 1
            delay = self.backoff.compute(failures)
            self.restarts += 1
            log.warning("publisher exited with %s after %.1fs; restart %d in %.1fs", describe_status(status), ran,
                        self.restarts, delay)
            if self._stop.wait(delay):
                log.info("stop requested before the restart; supervisor done")
                return int(ExitCode.OK)

    def stop(self) -> None:
        """Stop the child cleanly and end :meth:`run` (safe from a signal handler)."""
        self._stop.set()
        child = self._child
        if child is not None:
            self._terminate(child)

    def _terminate(self, child: Child) -> None:
        if child.poll() is not None:
            return
        # The publisher's clean stop: SIGTERM, or on Windows the console's Ctrl-Break (its process group's).
        if sys.platform == "win32":
            child.send_signal(signal.CTRL_BREAK_EVENT)
        else:
            child.send_signal(signal.SIGTERM)
        threading.Thread(target=self._kill_late, args=(child,), daemon=True).start()

    def _kill_late(self, child: Child) -> None:
        try:
            child.wait(self.config.stop_timeout_s)
        except subprocess.TimeoutExpired:
            log.error("publisher did not stop within %gs: killing it", self.config.stop_timeout_s)
            child.kill()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kiwoom-publisher supervise",
        description="Run the publisher and restart it when it exits asking to be (status 75) or crashes.",
        epilog="Everything after -- goes to the publisher, e.g.\n"
               "  kiwoom-publisher supervise -- --source kiwoom --config feeds.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    d = SupervisorConfig()
    p.add_argument("--backoff-min", type=float, default=d.backoff_min_s, metavar="S",
                   help=f"first delay before a restart (default {d.backoff_min_s:g}s)")
    p.add_argument("--backoff-max", type=float, default=d.backoff_max_s, metavar="S",
                   help=f"longest delay between restarts (default {d.backoff_max_s:g}s)")
    p.add_argument("--stable", type=float, default=d.stable_s, metavar="S",
                   help=f"a run this long resets the backoff (default {d.stable_s:g}s)")
    p.add_argument("--max-restarts", type=int, metavar="N", help="give up after N restarts (default: never)")
    p.add_argument("--stop-timeout", type=float, default=d.stop_timeout_s, metavar="S",
                   help=f"kill a stopping publisher after S seconds (default {d.stop_timeout_s:g}s)")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ...")
    return p


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    own, child = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = build_parser()
    args = parser.parse_args(own)
    if not 0 < args.backoff_min <= args.backoff_max:
        parser.error("need 0 < --backoff-min <= --backoff-max")
    if args.max_restarts is not None and args.max_restarts < 0:
        parser.error("--max-restarts must be 0 or more")
    if args.stop_timeout <= 0 or args.stable <= 0:
        parser.error("--stop-timeout and --stable must be positive")
    if child[:1] in (["supervise"], ["doctor"]):
        parser.error(f"the publisher's arguments cannot start with {child[0]!r}")
    try:
        check_arguments(child)  # the publisher's own parser checks its arguments once, here
    except SystemExit as exc:  # argparse printed what is wrong
        return int(exc.code or ExitCode.CONFIG)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    supervisor = Supervisor(child, SupervisorConfig(args.backoff_min, args.backoff_max, args.stable,
                                                    args.max_restarts, args.stop_timeout))

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping the publisher", signal.Signals(signum).name)
        supervisor.stop()

    signals = [signal.SIGINT, signal.SIGTERM]
    if sys.platform == "win32":
        signals.append(signal.SIGBREAK)  # Ctrl-Break in its console
    for sig in signals:
        signal.signal(sig, on_signal)
    return supervisor.run()
