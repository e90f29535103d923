"""Publisher configuration: precedence, validation with clear messages, secrets masked."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from publisher.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_fit_kiwoom_limits() -> None:
    s = load_settings()
    assert [f.feed for f in s.feeds] == ["kospi-surge", "kosdaq-surge"]
    assert s.demanded_rate() <= s.sustainable_rate()
    assert s.feeds[0].inputs()[0] == ("시장구분", "001")


def test_example_config_loads_and_fits() -> None:
    s = load_settings(ROOT / "feeds.example.toml")
    assert len(s.feeds) == 3 and s.demanded_rate() <= s.sustainable_rate()


def test_precedence_file_env_args(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('history_maxlen = 5\nheartbeat_s = 2.0\n[[feeds]]\nfeed = "a"\n', encoding="utf-8")
    monkeypatch.setenv("KIWOOM_PUBLISHER_HISTORY_MAXLEN", "50")
    s = load_settings(cfg, heartbeat_s=3.0)
    assert (s.history_maxlen, s.heartbeat_s, [f.feed for f in s.feeds]) == (50, 3.0, ["a"])


def test_password_masked_in_repr() -> None:
    s = load_settings(redis_url="redis://user:s3cret@redis:6379/0")
    assert "s3cret" not in repr(s) and s.masked_url() == "redis://user:***@redis:6379/0"


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"feeds": [{"feed": "x", "market": "002"}]}, "market='002' is not one of 000"),
        ({"feeds": [{"feed": "x", "minutes": "0"}]}, "minutes must be 1..390"),
        ({"feeds": [{"feed": "x"}, {"feed": "x"}]}, "must be unique"),
        ({"feeds": []}, "at least one feed"),
        ({"heartbeat_s": 10.0, "status_ttl_s": 5.0}, "must exceed"),
        ({"feeds": [{"feed": "x", "interval_s": 0.01}]}, "greater than or equal to 0.1"),
    ],
)
def test_bad_settings_say_what_is_wrong(over: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load_settings(**over)


def test_missing_config_file() -> None:
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_settings("/nonexistent/feeds.toml")


def test_overload_warns(caplog: pytest.LogCaptureFixture) -> None:
    load_settings(feeds=[{"feed": f"f{i}", "interval_s": 1.0} for i in range(3)])
    assert "the shared limiter will stretch" in caplog.text
