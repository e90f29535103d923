"""README's two Quick start commands, as a new user runs them, in a fresh clone (CI runs this under
.ci/without-tools, so no system redis-server, nginx or chromium exists).

1. ``bash scripts/demo.sh 2>&1 | tee demo.log`` (the tee is the point: Ctrl-C kills it first): wait for the
   banner, fetch the printed dashboard URL and a ranking through it, press Ctrl-C (SIGINT to the foreground
   process group), and fail if any process that runs from the clone is left.
2. ``bash scripts/test.sh``: its exit code is ours.

Usage: python3 .ci/quickstart.py CLONE_DIR   (standard library only: nothing is installed yet)
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SETUP_S = 900  # a fresh .venv: pip installs every wheel first
SERVE_S = 120


def say(text: str) -> None:
    print(f"quickstart: {text}", flush=True)


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except OSError as exc:
        return getattr(exc, "code", 0) or 0, b""


def ancestors() -> set[int]:
    """This process and its parents (whose command lines name the clone too)."""
    chain, pid = set(), os.getpid()
    while pid > 1:
        chain.add(pid)
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return chain


def processes_in(root: Path) -> list[str]:
    """Live processes whose working directory or command line lies in ``root`` (what the demo started)."""
    found = []
    ours = ancestors()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in ours:
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(root) in cmdline or cwd == str(root) or cwd.startswith(f"{root}/"):
            found.append(f"{entry.name} {cmdline}")
    return found


def demo(root: Path) -> None:
    log = root / "demo.log"
    shell = subprocess.Popen(["bash", "-c", "bash scripts/demo.sh 2>&1 | tee demo.log"], cwd=root,
                             stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + SETUP_S
        dashboard = None
        while dashboard is None:
            if shell.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("quickstart: the demo did not start:\n" + (log.read_text() if log.exists() else ""))
            found = re.search(r"Dashboard\s+(http://\S+?)/?\s", log.read_text() if log.exists() else "")
            dashboard = found.group(1) if found else None
            time.sleep(0.5)
        banner = log.read_text()
        server = re.search(r"^\s+(\S+ (?:redis|valkey)-server [0-9.]+): ", banner, re.M)
        say(f"demo up at {dashboard}/ on {server.group(1) if server else 'an unnamed server'}")
        deadline = time.monotonic() + SERVE_S
        while fetch(f"{dashboard}/v1/rankings/kospi-surge")[0] != 200:
            if time.monotonic() > deadline:
                raise SystemExit("quickstart: no ranking on the printed URL:\n" + log.read_text())
            time.sleep(0.5)
        status, page = fetch(f"{dashboard}/")
        if status != 200 or b"kiwoom-cache" not in page:
            raise SystemExit(f"quickstart: the dashboard answered {status}")
        say("a ranking is served on the printed dashboard URL; pressing Ctrl-C")
        os.killpg(shell.pid, signal.SIGINT)
        shell.wait(timeout=120)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while (left := processes_in(root)) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        for line in left:
            pid = int(line.split()[0])
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)  # clean up for the next stage, then fail
        raise SystemExit("quickstart: Ctrl-C through tee left processes running:\n  " + "\n  ".join(left))
    say("Ctrl-C through tee: nothing left running")


def main() -> int:
    root = Path(sys.argv[1]).resolve()
    demo(root)
    say("bash scripts/test.sh")
    return subprocess.run(["bash", "scripts/test.sh"], cwd=root, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
