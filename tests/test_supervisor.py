"""``kiwoom-publisher supervise``: restarts on "restart me" and crashes, not on a clean stop or a bad config,
with the project's backoff, every restart counted in the child's status; signals stop the child cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
import redis

from kiwoom_cache import contract as c
from publisher.exit_codes import ExitCode, should_restart
from publisher.supervisor import RESTARTS_ENV, Supervisor, SupervisorConfig, describe_status
from tests.waiting import wait_until


class FakeChild:
    def __init__(self, pid: int, status: int) -> None:
        self.pid, self.status = pid, status

    def wait(self, timeout: float | None = None) -> int:
        return self.status

    def poll(self) -> int | None:
        return self.status

    def send_signal(self, sig: int) -> None:
        raise AssertionError("a child that exited by itself is never signalled")

    def kill(self) -> None:
        raise AssertionError("never killed")


class Script:
    """Children that exit with the given statuses, each after ``runs`` seconds of a fake clock."""

    def __init__(self, statuses: Sequence[int], runs: Sequence[float] | None = None) -> None:
        self.statuses = list(statuses)
        self.runs = list(runs or [0.0] * len(statuses))
        self.envs: list[Mapping[str, str]] = []
        self.now = 0.0

    def launch(self, args: Sequence[str], env: Mapping[str, str]) -> FakeChild:
        self.envs.append(env)
        self.now += self.runs[len(self.envs) - 1]
        return FakeChild(1000 + len(self.envs), self.statuses[len(self.envs) - 1])

    def clock(self) -> float:
        return self.now


def supervise(script: Script, **config: object) -> tuple[Supervisor, int, list[int]]:
    sup = Supervisor(["--source", "sim"], SupervisorConfig(**{"backoff_min_s": 0.001, "backoff_max_s": 0.004,
                                                               **config}),  # type: ignore[arg-type]
                     launch=script.launch, env={}, clock=script.clock)
    failures: list[int] = []
    compute = sup.backoff.compute
    sup.backoff.compute = lambda n: (failures.append(n), compute(n))[1]  # type: ignore[method-assign]
    return sup, sup.run(), failures


def test_exit_statuses_that_restart() -> None:
    assert [should_restart(s) for s in (0, 2, 75, 1, -9, 3)] == [False, False, True, True, True, True]
    assert [ExitCode(s).restartable for s in (0, 1, 2, 75)] == [False, True, False, True]
    assert describe_status(75) == "75 (RESTART)" and describe_status(-9) == "-9 (killed by SIGKILL)"
    assert "unexpected" in describe_status(3)


def test_restarts_until_a_clean_stop_counting_each_in_the_childs_environment() -> None:
    script = Script([75, -9, 1, 0])
    sup, status, failures = supervise(script)
    assert status == 0 and sup.restarts == 3
    assert [env[RESTARTS_ENV] for env in script.envs] == ["0", "1", "2", "3"]
    assert failures == [1, 2, 3]  # quick exits in a row: the backoff grows


def test_a_bad_config_is_not_restarted() -> None:
    sup, status, _ = supervise(Script([75, 2]))
    assert status == ExitCode.CONFIG and sup.restarts == 1


def test_max_restarts_gives_up_with_the_childs_status() -> None:
    sup, status, _ = supervise(Script([75, 75, 0]), max_restarts=1)
    assert status == ExitCode.RESTART and sup.restarts == 1


def test_a_stable_run_starts_the_backoff_over() -> None:
    _, status, failures = supervise(Script([75, 75, 75, 75, 0], runs=[1, 1, 700, 1, 1]), stable_s=600)
    assert status == 0 and failures == [1, 2, 1, 2]


# --- the real thing: supervise the simulated publisher against a real Redis ---------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text('heartbeat_s = 0.2\nstatus_ttl_s = 5.0\nlease_ttl_s = 1.0\nlease_check_s = 0.1\n'
                    'login_retry_s = 0.2\n[[feeds]]\nfeed = "kospi-surge"\nmarket = "001"\ninterval_s = 0.5\n',
                    encoding="utf-8")
    return path


@pytest.fixture
def start(tmp_path: Path, redis_url: str) -> Iterator[object]:
    procs: list[subprocess.Popen[bytes]] = []

    def run(*argv: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        with (tmp_path / "supervise.log").open("ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "publisher", "supervise", *argv], stdout=log,
                                    stderr=subprocess.STDOUT,
                                    env={**_base_env(), "KIWOOM_CACHE_REDIS_URL": redis_url, **(env or {})})
        procs.append(proc)
        return proc

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KIWOOM_")} | {"QT_QPA_PLATFORM": "offscreen"}


def status_of(client: redis.Redis) -> c.PublisherStatus | None:
    raw = client.get(c.STATUS_KEY)
    return c.PublisherStatus.decode(raw) if raw else None


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT])
def test_version_update_restarts_the_publisher_and_a_signal_stops_both(
        start, config: Path, tmp_path: Path, redis_client: redis.Redis, stop_with: signal.Signals) -> None:
    marker = tmp_path / "version-update-pending"
    marker.touch()
    sup = start("--backoff-min", "0.05", "--backoff-max", "0.2", "--",
                "--source", "sim", "--headless", "--config", str(config),
                env={"KIWOOM_PUBLISHER_SIM_VERSION_UPDATE_FILE": str(marker)})
    status = wait_until(lambda: (s := status_of(redis_client)) and s.state == "running" and s,
                        timeout=60, what="the restarted publisher running")
    assert status.restarts == 1 and not marker.exists()
    log = (tmp_path / "supervise.log").read_text(encoding="utf-8")
    assert "OP_ERR_VERSION" in log and "exited with 75 (RESTART)" in log and "restart 1 in" in log
    sup.send_signal(stop_with)
    assert sup.wait(timeout=60) == 0
    assert not Path(f"/proc/{status.pid}").exists(), "the child outlived its supervisor"
    final = c.PublisherStatus.decode(redis_client.hget(c.PUBLISHERS_KEY, status.id))
    assert final.state == "stopped" and final.restarts == 1


def test_a_config_error_ends_the_supervisor_without_a_restart(start, tmp_path: Path) -> None:
    sup = start("--backoff-min", "0.05", "--", "--source", "sim", "--headless", "--config",
                str(tmp_path / "missing.toml"))
    assert sup.wait(timeout=60) == ExitCode.CONFIG
    log = (tmp_path / "supervise.log").read_text(encoding="utf-8")
    assert "config file not found" in log and "not restarting" in log and "restart 1" not in log


@pytest.mark.parametrize(("argv", "reason"), [
    (["--", "--speed", "0"], "--speed must be positive"),
    (["--backoff-min", "5", "--backoff-max", "1"], "--backoff-min <= --backoff-max"),
    (["--", "doctor"], "cannot start with 'doctor'"),
])
def test_bad_arguments_are_refused_before_anything_starts(argv: list[str], reason: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "publisher", "supervise", *argv], capture_output=True, text=True,
                          timeout=60, check=False, env=_base_env())
    assert proc.returncode == 2 and reason in proc.stderr
