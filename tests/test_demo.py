"""The one-command demo: everything comes up behind one URL, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from kiwoom_cache.localredis import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent


def parents() -> dict[int, int]:
    """pid -> parent pid for every live (non-zombie) process."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                out[int(entry.name)] = int(fields[1])
    return out


def descendants(pid: int) -> set[int]:
    tree = parents()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in tree.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to look for orphans")
def test_demo_serves_the_dashboard_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--data-dir", str(tmp_path), "--port", str(port),
         "--redis-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        while not any("Dashboard" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "demo exited early:\n" + "".join(lines)
            lines.append(line)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=5) as client:
            assert "kiwoom-cache" in client.get(f"{base}/").text
            deadline = time.monotonic() + 30
            while client.get(f"{base}/v1/rankings/kospi-surge").status_code != 200:
                assert time.monotonic() < deadline, "no ranking through the balancer"
                time.sleep(0.2)
        children = descendants(proc.pid)
        assert len(children) >= 5, "redis, publisher, two replicas and the balancer"
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "demo stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 10
    while (left := children & set(parents())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"orphans left running: {left}"
    assert (tmp_path / "redis" / "appendonlydir").is_dir(), "Redis data kept in the data dir"
