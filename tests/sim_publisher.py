"""The real publisher as a child process (``python -m publisher --source sim --headless``) on one feed at 2 Hz,
for the tests that run it against Redis in another shape (Sentinel, TLS, Cluster)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stack.launch import spawn

ROOT = Path(__file__).resolve().parents[1]


def config(path: Path, feeds: tuple[str, ...] = ("kospi-surge",)) -> Path:
    """A config with ``feeds`` (each the surge ranking of a market) polled every 0.5 s, markets always open."""
    blocks = "".join(f'[[feeds]]\nfeed = "{feed}"\ntitle = "코스피 거래량급증 {n + 1}"\nmarket = "001"\n'
                     'interval_s = 0.5\n' for n, feed in enumerate(feeds))
    path.write_text('tr_limits = [[5, 1.0]]\nsim_limits = [[5, 1.0]]\nrespect_market_hours = false\n'
                    'heartbeat_s = 1.0\nstatus_ttl_s = 5.0\nlease_ttl_s = 5.0\n' + blocks, encoding="utf-8")
    return path


def start(redis_url: str, directory: Path, feeds: tuple[str, ...] = ("kospi-surge",)) -> subprocess.Popen[bytes]:
    """The publisher on ``redis_url``; its log is ``directory/publisher.log``."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONUNBUFFERED": "1", "KIWOOM_CACHE_REDIS_URL": redis_url}
    return spawn([sys.executable, "-m", "publisher", "--source", "sim", "--headless", "--config",
                  str(config(directory / "publisher.toml", feeds))], cwd=ROOT, env=env,
                 log=directory / "publisher.log")
