"""Each process reads its own variables; the Redis URL is the one name both share."""

from __future__ import annotations

import pytest

from api.settings import ApiSettings
from kiwoom_cache.env import API_ENV_PREFIX, PUBLISHER_ENV_PREFIX, REDIS_URL_ENV, env_names
from publisher.settings import PublisherSettings


def test_no_variable_means_two_things() -> None:
    assert env_names(ApiSettings) & env_names(PublisherSettings) == {REDIS_URL_ENV}
    assert all(n.startswith(API_ENV_PREFIX) for n in env_names(ApiSettings) - {REDIS_URL_ENV})
    assert all(n.startswith(PUBLISHER_ENV_PREFIX) for n in env_names(PublisherSettings) - {REDIS_URL_ENV})


def test_one_environment_configures_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REDIS_URL_ENV, "redis://shared:6379/0")
    monkeypatch.setenv("KIWOOM_API_PING_S", "7")
    monkeypatch.setenv("KIWOOM_API_LOG_LEVEL", "warning")
    monkeypatch.setenv("KIWOOM_PUBLISHER_HEARTBEAT_S", "2")
    monkeypatch.setenv("KIWOOM_PUBLISHER_LOG_LEVEL", "DEBUG")
    api, pub = ApiSettings(), PublisherSettings()
    assert api.redis_url == pub.redis_url == "redis://shared:6379/0"
    assert (api.ping_s, api.log_level) == (7.0, "warning")
    assert (pub.heartbeat_s, pub.log_level) == (2.0, "DEBUG")


def test_prefixed_redis_url_is_not_a_second_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only KIWOOM_CACHE_REDIS_URL sets the URL, so there is never a question of which one wins."""
    monkeypatch.delenv(REDIS_URL_ENV, raising=False)
    monkeypatch.setenv("KIWOOM_API_REDIS_URL", "redis://wrong:1/0")
    monkeypatch.setenv("KIWOOM_PUBLISHER_REDIS_URL", "redis://wrong:1/0")
    assert ApiSettings().redis_url == "redis://127.0.0.1:6379/0"
    assert PublisherSettings().redis_url == "redis://127.0.0.1:6379/0"


def test_init_overrides_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REDIS_URL_ENV, "redis://env:6379/0")
    assert ApiSettings(redis_url="redis://cli:1/0").redis_url == "redis://cli:1/0"
    assert PublisherSettings(redis_url="redis://cli:1/0").redis_url == "redis://cli:1/0"
