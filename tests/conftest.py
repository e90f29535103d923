"""Shared fixtures: a real redis-server per session (flushed per test), Qt offscreen."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Qt must pick its platform before the first QApplication; the publisher also runs headless in CI.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import redis

from stack.localredis import LocalRedis

# Property tests: no per-example deadline (the machine is shared; correctness, not speed, is tested there)
# and no example database written into the worktree.
settings.register_profile("kiwoom", deadline=None, database=None)
settings.load_profile("kiwoom")


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
