"""``kiwoom-publisher doctor`` against a real redis-server with the shipped ACL users, the simulated control and
the fake Kiwoom REST server: all ✔ when everything is right, ✘ with the fix and a non-zero exit otherwise."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from kiwoom_cache import contract as c
from publisher import doctor, doctor_checks
from publisher.doctor_checks import Outcome
from stack.localredis import LocalRedis
from stack.redisacl import TEMPLATE, RedisUsers, Role, prepare
from tests.rest_fake_server import APPKEY, SECRETKEY, serve
from tests.waiting import wait_until


def run_doctor(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KIWOOM_")}
    return subprocess.run([sys.executable, "-m", "publisher", "doctor", *argv], capture_output=True, text=True,
                          timeout=120, check=False,
                          env={**base, "QT_QPA_PLATFORM": "offscreen", "PYTHONIOENCODING": "utf-8", **(env or {})})


def lines(out: str) -> dict[str, str]:
    """check name -> its line."""
    return {line[2:].split(":", 1)[0]: line for line in out.splitlines() if line[:1] in "✔✘–"}


def assert_publisher_user_passes(redis_url: str) -> None:
    """The doctor on the simulated source, as the publisher user: Redis, clock, permissions and one TR pass."""
    proc = run_doctor("--source", "sim", "--redis-url", redis_url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = lines(proc.stdout)
    for name in ("Redis", "clock", "Redis permissions", "TR request"):
        assert checks[name].startswith("✔"), checks[name]
    assert "as user kiwoom-publisher" in checks["Redis"]


def acl_redis(tmp_path: Path, template_text: str | None = None) -> tuple[LocalRedis, RedisUsers]:
    template = TEMPLATE
    if template_text is not None:
        template = tmp_path / "acl-template"
        template.write_text(template_text, encoding="utf-8")
    users = prepare(tmp_path / "users", template)
    return LocalRedis(tmp_path / "redis", aclfile=users.acl_file).start(), users


@pytest.fixture
def users_redis(tmp_path: Path) -> Iterator[tuple[LocalRedis, RedisUsers]]:
    server, users = acl_redis(tmp_path)
    yield server, users
    server.stop()


def test_sim_with_the_publishers_redis_user_passes(users_redis: tuple[LocalRedis, RedisUsers]) -> None:
    server, users = users_redis
    proc = run_doctor("--source", "sim", "--redis-url", users.url(server.url, Role.PUBLISHER))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = lines(proc.stdout)
    for name in ("Python", "PyQt5", "configuration", "Redis", "clock", "Redis permissions", "login", "TR request"):
        assert checks[name].startswith("✔"), checks[name]
    for name in ("OpenAPI+ control", "Korean locale"):
        assert checks[name].startswith("–") and "only on Windows" in checks[name]
    assert "as user kiwoom-publisher" in checks["Redis"]
    assert "opt10023 for kospi-surge" in checks["TR request"] and " 0 dropped" in checks["TR request"]
    assert proc.stdout.rstrip().endswith("all checks passed")


def test_wrong_password_fails_with_the_fix(users_redis: tuple[LocalRedis, RedisUsers]) -> None:
    server, _ = users_redis
    url = server.url.replace("redis://", "redis://kiwoom-publisher:not-the-password@")
    proc = run_doctor("--source", "sim", "--redis-url", url)
    assert proc.returncode == 1
    checks = lines(proc.stdout)
    assert checks["Redis"].startswith("✘") and "fix:" in checks["Redis"] and "redis-users.acl" in checks["Redis"]
    assert "not-the-password" not in proc.stdout, "the password is masked"
    assert checks["clock"].startswith("–") and checks["TR request"].startswith("✔")


def test_a_missing_permission_is_named(tmp_path: Path) -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    assert " +xadd)" in text
    server, users = acl_redis(tmp_path, text.replace(" +xadd)", ")"))
    try:
        proc = run_doctor("--source", "sim", "--redis-url", users.url(server.url, Role.PUBLISHER))
    finally:
        server.stop()
    assert proc.returncode == 1
    line = lines(proc.stdout)["Redis permissions"]
    assert line.startswith("✘") and "XADD" in line and "HSET" not in line and "fix:" in line


def test_the_api_user_lacks_the_publishers_permissions(users_redis: tuple[LocalRedis, RedisUsers]) -> None:
    server, users = users_redis
    proc = run_doctor("--source", "sim", "--redis-url", users.url(server.url, Role.API))
    assert proc.returncode == 1
    line = lines(proc.stdout)["Redis permissions"]
    assert line.startswith("✘") and all(cmd in line for cmd in ("SCRIPT LOAD", "SET", "XADD", "PUBLISH"))
    assert lines(proc.stdout)["clock"].startswith("✘"), "the API's user may neither run TIME nor XADD"


def test_bad_feed_config_fails_with_the_fix(tmp_path: Path, redis_url: str) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text('[[feeds]]\nfeed = "kospi-surge"\nmarket = "999"\n', encoding="utf-8")
    proc = run_doctor("--source", "sim", "--config", str(config), "--redis-url", redis_url)
    assert proc.returncode == 1
    checks = lines(proc.stdout)
    assert checks["configuration"].startswith("✘") and "999" in checks["configuration"]
    assert "feeds.example.toml" in checks["configuration"] and checks["Redis"].startswith("–")


def test_rest_token_and_one_call_against_the_fake_server(redis_url: str) -> None:
    with serve() as (_, base_url):
        env = {"KIWOOM_PUBLISHER_REST_BASE_URL": base_url, "KIWOOM_PUBLISHER_REST_APPKEY": APPKEY,
               "KIWOOM_PUBLISHER_REST_SECRETKEY": SECRETKEY}
        good = run_doctor("--source", "rest", "--redis-url", redis_url, env=env)
        bad = run_doctor("--source", "rest", "--redis-url", redis_url,
                         env={**env, "KIWOOM_PUBLISHER_REST_SECRETKEY": "wrong"})
    assert good.returncode == 0, good.stdout + good.stderr
    checks = lines(good.stdout)
    assert checks["REST token"].startswith("✔") and checks["REST call"].startswith("✔")
    assert checks["PyQt5"].startswith("–") and "rows" in checks["REST call"]
    assert bad.returncode == 1
    checks = lines(bad.stdout)
    assert checks["REST token"].startswith("✘") and "KIWOOM_PUBLISHER_REST_APPKEY" in checks["REST token"]
    assert checks["REST call"].startswith("–")


def test_kiwoom_source_on_linux_says_what_only_runs_on_windows(redis_url: str) -> None:
    proc = run_doctor("--source", "kiwoom", "--redis-url", redis_url)
    assert proc.returncode == 1
    checks = lines(proc.stdout)
    assert "only on Windows" in checks["OpenAPI+ control"] and "only on Windows" in checks["login"]
    assert checks["Redis"].startswith("✔")


def test_permission_probes_change_nothing(redis_client: redis.Redis) -> None:
    redis_client.set(c.STATUS_KEY, b"untouched")
    before = sorted(redis_client.keys("*"))
    pubsub = redis_client.pubsub()
    pubsub.psubscribe(c.UPDATES_PATTERN)
    wait_until(lambda: pubsub.get_message(timeout=0.2), 5, "psubscribe confirmed")
    assert doctor_checks.check_permissions(redis_client).outcome is Outcome.ok
    message = wait_until(lambda: pubsub.get_message(timeout=0.2), 5, "the probe's message")
    assert c.feed_of_channel(message["channel"]) is None, "replicas ignore the probe's channel"
    pubsub.close()
    assert sorted(redis_client.keys("*")) == before and redis_client.get(c.STATUS_KEY) == b"untouched"


class FakeTime:
    def __init__(self, offset_s: float) -> None:
        self.offset_s = offset_s

    def time(self) -> tuple[int, int]:
        server = time.time() - self.offset_s
        return int(server), int((server % 1) * 1e6)


def test_the_publisher_user_reads_the_servers_clock(users_redis: tuple[LocalRedis, RedisUsers]) -> None:
    """deploy/redis-users.acl gives the publisher TIME (read-only, no key) for this check."""
    server, users = users_redis
    with redis.Redis.from_url(users.url(server.url, Role.PUBLISHER)) as publisher:
        assert abs(doctor_checks.server_time(publisher) - time.time()) < 5  # same machine: the clocks agree
        assert doctor_checks.check_clock(publisher).outcome is Outcome.ok


def test_clock_offset_beyond_a_second_fails() -> None:
    assert doctor_checks.check_clock(FakeTime(0.0)).outcome is Outcome.ok  # type: ignore[arg-type]
    late = doctor_checks.check_clock(FakeTime(-5.0))  # type: ignore[arg-type]
    assert late.outcome is Outcome.failed and "behind" in late.detail and "w32tm /resync" in late.fix


def test_marks_fall_back_where_the_console_cannot_show_them() -> None:
    assert doctor._marks_for(io.TextIOWrapper(io.BytesIO(), encoding="cp949"))[Outcome.failed] == "FAIL"
    assert doctor._marks_for(io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))[Outcome.failed] == "✘"
