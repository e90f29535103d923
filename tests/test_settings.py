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
    assert s.feeds[0].inputs()[0] == ("market", "001")


def test_example_config_loads_and_fits() -> None:
    s = load_settings(ROOT / "feeds.example.toml")
    assert len(s.feeds) == 6 and s.demanded_rate() <= s.sustainable_rate()
    assert {f.tr for f in s.feeds} == {"opt10023", "opt10030", "opt10027", "opt10032"}


def test_feed_without_tr_is_opt10023_with_defaults_filled_in(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[feeds]]\nfeed = "a"\nmarket = "101"\nminutes = 3\n'
                   '[[feeds]]\nfeed = "b"\ntr = "OPT10032"\nparams = { market = "001" }\n', encoding="utf-8")
    a, b = load_settings(cfg).feeds
    assert a.tr == "opt10023" and a.params == {"market": "101", "sort": "1", "time_unit": "1", "min_volume": "5",
                                                 "minutes": "3", "stock_filter": "0", "price_filter": "0"}
    assert b.tr == "opt10032" and b.inputs() == (("market", "001"), ("include_managed", "0"))
    assert b.info().tr == "opt10032" and b.info().params == {"market": "001", "include_managed": "0"}


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
        ({"feeds": [{"feed": "x", "minutes": "0"}]}, "minutes='0' must be a whole number 1..390"),
        ({"feeds": [{"feed": "x", "tr": "opt10030", "minutes": "5"}]},
         "opt10030 has no input 'minutes'; its inputs are market, sort, stock_filter, credit, min_volume, "
         "price_filter, min_value, trading_session"),
        ({"feeds": [{"feed": "x", "tr": "opt10027", "params": {"sort": "9"}}]},
         r"sort='9' is not one of 1 \(상승률\), 2 \(상승폭\), 3 \(하락률\), 4 \(하락폭\), 5 \(보합\)"),
        ({"feeds": [{"feed": "x", "tr": "opt10032", "include_managed": "2"}]},
         r"include_managed='2' is not one of 0 \(관리종목 미포함\), 1 \(관리종목 포함\)"),
        ({"feeds": [{"feed": "x", "tr": "opt99999"}]}, "unknown TR 'opt99999'; this publisher polls opt10023, "
                                                        "opt10030, opt10027, opt10032"),
        ({"feeds": [{"feed": "x", "market": "001", "params": {"market": "101"}}]},
         "market given both flat and under params"),
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


@pytest.mark.parametrize(("over", "follows"), [
    ({"source": "kiwoom"}, True),
    ({"source": "rest"}, True),  # Kiwoom's real domain
    ({"source": "rest", "rest_mode": "mock"}, True),
    ({"source": "rest", "rest_base_url": "https://api.kiwoom.com"}, True),
    ({"source": "rest", "rest_base_url": "http://127.0.0.1:8090"}, False),  # the fake server: no maintenance
    ({"source": "rest", "rest_base_url": "https://kiwoom.com.example.org"}, False),
    ({"source": "sim"}, False),
    ({"source": "rest", "rest_base_url": "http://127.0.0.1:8090", "respect_maintenance": True}, True),
])
def test_hours_and_maintenance_follow_kiwoom_servers_by_default(over: dict[str, object], follows: bool) -> None:
    """Kiwoom's session and maintenance windows are its servers'; a fake REST server on a Sunday 04:10 KST must not
    pause (CI runs at any hour)."""
    settings = load_settings(**over)
    assert settings.follows_maintenance() is follows
    assert settings.follows_market_hours() is (follows if "respect_maintenance" not in over else False)
