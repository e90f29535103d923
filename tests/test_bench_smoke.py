"""bench/run.py at tiny N: the harness runs end to end and checks what it measures (no figures checked).

The benchmark itself is not part of the test run (``bash bench/run.sh``); this only keeps it from rotting:
a few clients, a few events, real redis-server, the replica (also with an API key) and the naive app, in two
interleaved batches; the snapshot phase's freshness check, which fails the set-up the full run had before
issue 26; the run checks and the figures' arithmetic on made-up runs; and bench/README.md's generated results
section against the committed runs (bench/figures.py), and how a rerun is merged and compared.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest

from tests.tools import Tool, needs

ROOT = Path(__file__).resolve().parents[1]

F = TypeVar("F", bound=Callable[..., None])


def harness(test: F) -> F:
    """A test that runs bench/run.py's processes: gcc for bench/loader.c, taskset for the pinning."""
    for mark in (pytest.mark.integration, needs(Tool.GCC),
                 pytest.mark.skipif(shutil.which("taskset") is None or not hasattr(os, "sched_setaffinity"),
                                    reason="the harness pins processes with taskset")):
        test = mark(test)
    return test


needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None,
                               reason="wrk missing (apt-get install wrk, or bash bench/setup.sh)")


def load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    return module


def load_figures() -> ModuleType:
    return load_harness().figures  # run.py imports bench/figures.py


@harness
def test_loader_builds_with_gcc(tmp_path: Path) -> None:
    exe = load_harness().build_loader(tmp_path)
    assert exe.stat().st_mode & stat.S_IXUSR


@harness
def test_harness_runs_interleaved_batches_at_tiny_n(tmp_path: Path) -> None:
    run = load_harness()
    report = run.main(["--smoke", "--batches", "2", "--servers", "replica,replica-auth,naive", "--skip-snapshot",
                       "--out", str(tmp_path)])
    order = [(r["batch"], r["server"]) for r in report["sse"]]
    assert order == [(0, "replica"), (0, "replica-auth"), (0, "naive"),
                     (1, "naive"), (1, "replica-auth"), (1, "replica")]
    for r in report["sse"]:
        assert r["connected"] == r["n"] == 5
        assert 0 < r["delivered"] <= r["expected"] == 5 * r["events"]
        assert r["gaps"] == 0 and r["duplicates"] == 0
        assert "loader_busy" in r and "short_clients" in r and isinstance(r["problems"], list)
        if r["server"].startswith("replica"):  # ours: every client got every event, else the run is flagged
            assert (r["short_clients"] == 0) == (r["problems"] == []), r
    assert [s["step"] for s in report["publish_path"]["steps"]][2] == "write: lua 1rt (ours)"
    saved = json.loads((tmp_path / f"{run.REPORT}.json").read_text())
    assert saved["sse"] == report["sse"] and saved["settings"]["batches"] == 2
    md = (tmp_path / f"{run.REPORT}.md").read_text()
    assert "| 1 | replica | 5 | 5 |" in md and "| 2 | replica | 5 | 5 |" in md


@harness
def test_baseline_runs_another_checkout_beside_the_replica(tmp_path: Path) -> None:
    """--baseline DIR: the replica before and after a change in one interleaved run (here the same checkout)."""
    run = load_harness()
    report = run.main(["--smoke", "--batches", "2", "--servers", "replica,baseline", "--baseline", str(ROOT),
                       "--skip-snapshot", "--out", str(tmp_path)])
    assert [(r["batch"], r["server"]) for r in report["sse"]] == [(0, "replica"), (0, "baseline"),
                                                                   (1, "baseline"), (1, "replica")]
    assert all(r["problems"] == [] for r in report["sse"]), report["sse"]
    figs = {f.label: f for f in run.figures.sse_figures(report)[5]}
    assert len(figs["replica p99 / baseline"].values) == 2, figs  # one ratio per batch
    with pytest.raises(SystemExit, match="--baseline DIR"):
        run.main(["--smoke", "--servers", "baseline", "--skip-snapshot", "--out", str(tmp_path)])


@harness
@needs(Tool.NGINX)
@needs_wrk
def test_snapshot_answers_are_checked_fresh(tmp_path: Path) -> None:
    run = load_harness()
    report = run.main(["--smoke", "--servers", "", "--out", str(tmp_path)])
    rows = {r["server"]: r for r in report["snapshot"]}
    assert set(rows) == {"replica", "nginx-static", "bare-asgi"}
    for r in rows.values():
        assert r["fresh_samples"] >= 2 and r["problems"] == [] and r["rps_200"] > 0


@harness
@needs_wrk
def test_snapshot_fails_on_stale_answers_with_the_old_setup(tmp_path: Path) -> None:
    """Issue 26 item 3: a 0.5 s poll period and one heartbeat made the replica's answers stale mid-run."""
    run = load_harness()
    with pytest.raises(run.StaleAnswers, match=r"X-Kiwoom-Stale true"):
        run.main(["--smoke", "--servers", "", "--snapshot-poll", "0.5", "--no-heartbeat", "--out", str(tmp_path)])
    assert not (tmp_path / f"{run.REPORT}.json").exists()  # no results file from a run that failed


def sse_row(batch: int, server: str, p99: float, **over: Any) -> dict[str, Any]:
    row = {"batch": batch, "server": server, "n": 1000, "connected": 1000, "delivered": 20_000, "expected": 20_000,
           "short_clients": 0, "p99_ms": p99, "cpu_us_per_event": 20.0, "rss_per_client_kib": 13.0,
           "loader_busy": 0.3, "loader_cpu_window_s": 3.0, "window_s": 10.0, "drain_s": 0.2}
    row.update(over)
    run = sys.modules.get("bench_run") or load_harness()
    row["problems"] = run.sse_checks(server, row)
    return row


def test_run_checks_flag_a_saturated_loader_and_missed_events() -> None:
    load_harness()
    assert sse_row(0, "replica", 10)["problems"] == []
    assert sse_row(0, "nchan", 10, loader_busy=0.95)["problems"] == ["loader saturated: 3.0 s CPU in a 10.0 s window"]
    assert sse_row(0, "replica", 10, short_clients=3)["problems"] == ["3 clients missed events"]
    assert sse_row(0, "nchan", 10, short_clients=3)["problems"] == []  # the peer's shortfall is its result
    assert sse_row(0, "replica", 10, connected=990)["problems"] == ["10 of 1000 clients not connected"]


def test_figures_are_ranges_of_per_batch_ratios_from_valid_runs() -> None:
    figures = load_figures()
    rows = [sse_row(0, "nchan", 40), sse_row(0, "replica", 38), sse_row(1, "replica", 50), sse_row(1, "nchan", 50),
            sse_row(2, "nchan", 40), sse_row(2, "replica", 40)]
    p99 = next(f for f in figures.sse_figures({"sse": rows})[1000] if f.label == "replica p99 / nchan")
    assert p99.values == (0.95, 1.0, 1.0) and p99.range_text() == "≤ 1.0× (0.95–1.00×)"
    assert p99.full_text() == "1.00× (min–max 0.95–1.00, 3 runs; claimed ≤ 1.0×)"
    # a run that failed its checks is left out, and two runs are too few to publish
    rows[3] = sse_row(1, "nchan", 50, loader_busy=0.99)
    p99 = next(f for f in figures.sse_figures({"sse": rows})[1000] if f.label == "replica p99 / nchan")
    assert p99.range_text() == "to be regenerated (2 valid runs)"
    # a results file from before the checks (no "problems") has no valid run
    legacy = [{k: v for k, v in r.items() if k != "problems"} for r in rows]
    assert all(not f.values for f in figures.sse_figures({"sse": legacy})[1000])


def test_runs_merge_batch_by_batch_and_a_rerun_is_held_against_the_ranges(tmp_path: Path) -> None:
    """Issue 26: a second run widens the published ranges instead of replacing them, and --compare says which of a
    rerun's ratios fall outside them."""
    figures = load_figures()
    settings = {"batches": 3, "ns": [1000], "window": 10.0}
    first = {"settings": settings, "sse": [sse_row(b, s, p) for b in range(3) for s, p in
                                           (("nchan", 40), ("replica", 30 + b))]}
    second = {"settings": settings, "sse": [sse_row(b, s, p) for b in range(3) for s, p in
                                            (("nchan", 40), ("replica", 36 + b))]}
    merged = figures.merge([first, second], ["a.json", "b.json"])
    assert sorted({r["batch"] for r in merged["sse"]}) == [0, 1, 2, 3, 4, 5]
    p99 = next(f for f in figures.sse_figures(merged)[1000] if f.label == "replica p99 / nchan")
    assert p99.values == (0.75, 0.775, 0.8, 0.9, 0.925, 0.95) and p99.range_text() == "≤ 1.0× (0.75–0.95×)"
    lines = figures.compare(figures.merge([first]), second)
    assert any(line.startswith("OUTSIDE (0.90, 0.93, 0.95): N = 1,000: replica p99 / nchan") for line in lines), lines
    assert not any(line.startswith("OUTSIDE") for line in figures.compare(merged, second))
    # runs with other settings measure something else: refused, naming the setting
    with pytest.raises(ValueError, match=r"b.json was run with other settings than a.json \(window\)"):
        figures.merge([first, {**second, "settings": {**settings, "window": 5.0}}], ["a.json", "b.json"])
    # the command: exit 1 when a rerun ratio falls outside, 0 when every one is inside
    (tmp_path / "a.json").write_text(json.dumps(first))
    (tmp_path / "b.json").write_text(json.dumps(second))
    assert figures.main(["--results", str(tmp_path / "a.json"), "--compare", str(tmp_path / "b.json")]) == 1
    assert figures.main(["--results", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                         "--compare", str(tmp_path / "b.json")]) == 0


def test_a_ratio_is_claimed_on_its_side_rounded_outward() -> None:
    """Runs differ by more than the batches of one: a ratio is published as the bound every batch met, rounded away
    from the claim, and a rerun is held to that side only."""
    figures = load_figures()
    most, least = figures.Claim.AT_MOST, figures.Claim.AT_LEAST
    assert [figures.outward(v, most) for v in (0.91, 0.8, 0.801, 1.11, 4.2, 55.3)] == [1.0, 0.8, 0.9, 1.2, 5.0, 60.0]
    assert [figures.outward(v, least) for v in (0.74, 0.7, 4.5, 18.0, 55.3)] == [0.7, 0.7, 4.0, 10.0, 50.0]
    replica = figures.Figure("replica p99 / nchan", (0.51, 0.62, 0.83), claim=most)
    assert replica.range_text() == "≤ 0.9× (0.51–0.83×)"
    assert replica.holds(0.3) and replica.holds(0.9) and not replica.holds(0.91)
    naive = figures.Figure("naive p99 / nchan", (55.27, 70.0, 96.11), claim=least)
    assert naive.range_text() == "≥ 50× (55.27–96.11×)"
    assert naive.holds(500.0) and naive.holds(50.0) and not naive.holds(49.9)
    # a figure that claims nothing (RSS, loader, drain) is a range, held at its printed precision
    rss = figures.Figure("replica RSS per client", (13.3, 13.6), " KiB", 1)
    assert rss.holds(13.64) and not rss.holds(13.66)


def test_holdout_holds_each_run_against_the_claims_of_the_others(tmp_path: Path) -> None:
    figures = load_figures()
    settings = {"batches": 3, "ns": [1000], "window": 10.0}
    paths = []
    for name, p99 in (("a", 30), ("b", 31), ("c", 38)):  # c's replica is slower than a and b ever were
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps({"settings": settings, "sse": [
            sse_row(b, s, p) for b in range(3) for s, p in (("nchan", 40), ("replica", p99 + b))]}))
    lines = figures.holdout(paths)
    assert lines[0] == "a.json: 2 of 2 ratios keep the other runs' claims", lines
    assert "c.json: 1 of 2 ratios keep the other runs' claims" in lines
    assert any(line.startswith("  OUTSIDE (0.95, 0.97, 1.00): N = 1,000: replica p99 / nchan: rerun 0.95–1.00× "
                               "against published ≤ 0.9× (0.75–0.82×)") for line in lines), lines
    assert lines[-1] == "5 of 6 in all"


def test_readme_results_section_is_generated_from_the_committed_runs() -> None:
    figures = load_figures()
    runs = figures.published()
    assert len(runs) >= 2, "the published figures rest on at least two runs of bench/run.sh"
    readme = (ROOT / "bench" / "README.md").read_text()
    assert figures.readme_section(readme) == figures.section(figures.load(runs))
    assert figures.main(["--check"]) == 0
