"""bench/run.py at tiny N: the C loader builds with gcc and the harness runs end to end (no figures checked).

The benchmark itself is not part of the test run (``bash bench/run.sh``); this only keeps it from rotting:
a few clients, a few events, real redis-server, the replica (also with an API key) and the naive app.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.tools import Tool, needs

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.integration,
    needs(Tool.GCC),  # builds bench/loader.c
    pytest.mark.skipif(shutil.which("taskset") is None or not hasattr(os, "sched_setaffinity"),
                       reason="the harness pins processes with taskset"),
]


def load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    return module


def test_loader_builds_with_gcc(tmp_path):
    exe = load_harness().build_loader(tmp_path)
    assert exe.stat().st_mode & stat.S_IXUSR


def test_harness_runs_at_tiny_n(tmp_path):
    run = load_harness()
    report = run.main(["--smoke", "--servers", "replica,replica-auth,naive", "--skip-snapshot", "--out",
                       str(tmp_path)])
    phases = {r["server"]: r for r in report["sse"]}
    assert set(phases) == {"replica", "replica-auth", "naive"}
    for r in phases.values():
        assert r["connected"] == r["n"] == 5
        assert 0 < r["delivered"] <= r["expected"] == 5 * r["events"]
        assert r["gaps"] == 0 and r["duplicates"] == 0
    assert [s["step"] for s in report["publish_path"]["steps"]][2] == "write: lua 1rt (ours)"
    saved = json.loads((tmp_path / f"{run.REPORT}.json").read_text())
    assert saved["sse"] == report["sse"]
    assert "| replica | 5 | 5 |" in (tmp_path / f"{run.REPORT}.md").read_text()


def test_transport_comparison_runs_at_tiny_n(tmp_path):
    run = load_harness()
    report = run.main(["--transports", "--smoke", "--out", str(tmp_path)])
    rows = {r["mode"]: r for r in report["transports"]}
    assert set(rows) == {"sse", "mux", "ws"}
    assert rows["sse"]["connections"] == 6 and rows["mux"]["connections"] == rows["ws"]["connections"] == 3
    for r in rows.values():
        assert r["delivered"] == r["expected"] == 3 * 2 * 3, r
    assert "| WebSocket | 3 x 2 |" in (tmp_path / f"{sys.modules['transports'].REPORT}.md").read_text()
