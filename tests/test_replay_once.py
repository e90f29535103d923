"""``--once`` replays end cleanly: a feed whose recorded answers are used up is asked no more (an ended
recording is not Kiwoom's -202 input error), and a replay without Redis says so instead of writing nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from kiwoom_cache import contract as c
from stack.localredis import free_port

pytestmark = pytest.mark.integration
SHIPPED = Path(__file__).resolve().parent.parent / "publisher" / "recordings" / "sim-sample.jsonl"


def replay(recording: Path, redis_url: str, speed: str = "50") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "publisher", "--source", "replay", str(recording), "--speed", speed,
                           "--once", "--headless", "--redis-url", redis_url],
                          capture_output=True, text=True, timeout=120, check=False)


def uneven_recording(tmp_path: Path, keep: dict[str, int]) -> Path:
    """The shipped recording cut to ``keep[feed]`` answers per feed, so one feed runs out long before the other."""
    header, *lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    seen: dict[str, int] = {}
    out = [header]
    for line in lines:
        feed = json.loads(line)["feed"]
        seen[feed] = seen.get(feed, 0) + 1
        if seen[feed] <= keep[feed]:
            out.append(line)
    path = tmp_path / "uneven.jsonl"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("keep", [None, {"kospi-surge": 2, "kosdaq-surge": 13}], ids=["shipped", "uneven"])
def test_once_replay_ends_without_request_errors(tmp_path: Path, redis_url: str, redis_client: redis.Redis,
                                                 keep: dict[str, int] | None) -> None:
    recording = SHIPPED if keep is None else uneven_recording(tmp_path, keep)
    proc = replay(recording, redis_url)
    assert proc.returncode == 0, proc.stderr
    assert "-202" not in proc.stderr and "OP_ERR" not in proc.stderr, proc.stderr
    assert " WARNING " not in proc.stderr, proc.stderr
    # Every recorded answer became a ranking: written, or superseded by the feed's next one before the writer
    # got to it (the conflating queue; likely at 50x), never lost.
    done = re.search(r"publisher stopped: (\d+) written, (\d+) superseded, 0 unsent", proc.stderr)
    assert done, proc.stderr
    recorded = sum((keep or {"kospi-surge": 13, "kosdaq-surge": 13}).values())
    assert int(done.group(1)) + int(done.group(2)) == recorded
    assert sum(redis_client.xlen(c.history_key(f)) for f in ("kospi-surge", "kosdaq-surge")) == int(done.group(1))


def test_replay_without_redis_says_so_and_fails(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    proc = replay(SHIPPED, url)
    assert proc.returncode == 1, proc.stderr
    first_warning = next(line for line in proc.stderr.splitlines() if " WARNING " in line)
    assert "Redis unreachable" in first_warning, proc.stderr
    # It cannot take the feeds' leases (docs/high-availability.md), so it sends no TR and ends, saying why.
    assert "a one-shot replay cannot take the feeds' leases; nothing was replayed" in proc.stderr
