"""The one way the demo, the tests and the benchmarks start a child process, and stop it.

Every child runs in its own process group, so a terminal's Ctrl-C reaches only the demo, which then stops the
children in dependency order. Whatever ends the demo instead — SIGKILL, a crash, a signal that Python could not
turn into a clean stop — the kernel sends each child SIGTERM when the demo dies (Linux's parent-death signal),
so nothing it started outlives it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: SIGTERM this child when ``parent`` dies (and at once if it already has)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only makes the two syscalls
    sigterm = int(signal.SIGTERM)

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, sigterm, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl: nobody would signal us
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def spawn(argv: Sequence[str], *, log: Path | None = None, env: Mapping[str, str] | None = None,
          cwd: Path | None = None, stdout: int | IO[bytes] | None = None,
          stderr: int | IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group, tied to this process's life.

    ``log``: append stdout and stderr there; otherwise ``stdout``/``stderr`` as for :class:`subprocess.Popen`.
    The parent-death signal is armed only from the main thread: Linux sends it when the *thread* that forked
    exits, so a child started from a short-lived thread would die with that thread.
    """
    tie = sys.platform == "linux" and threading.current_thread() is threading.main_thread()
    # preexec_fn and threads: the hook makes two system calls (prctl, getppid) and allocates nothing, so a lock
    # another thread held at fork time cannot block it.
    preexec = _die_with(os.getpid()) if tie else None
    environ = None if env is None else dict(env)
    if log is None:
        return subprocess.Popen(list(argv), cwd=cwd, env=environ, stdout=stdout, stderr=stderr, process_group=0,
                                preexec_fn=preexec)  # noqa: PLW1509 - see above
    with log.open("ab") as out:
        return subprocess.Popen(list(argv), cwd=cwd, env=environ, stdout=out, stderr=subprocess.STDOUT,
                                process_group=0, preexec_fn=preexec)  # noqa: PLW1509 - see above


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
