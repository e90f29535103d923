"""Every way redis-py accepts a password in a URL is masked (kiwoom_cache/urls.py): the user part of every
scheme, and each query parameter whose name, once percent-decoded as redis-py decodes it, says password."""

from __future__ import annotations

import pytest
from redis.connection import parse_url

from kiwoom_cache.urls import mask_url


@pytest.mark.parametrize(("url", "masked"), [
    ("redis://:secret@h:1/0", "redis://:***@h:1/0"),
    ("redis://kiwoom-api:secret@h:1/0", "redis://kiwoom-api:***@h:1/0"),
    ("rediss://kiwoom-api:secret@h:6380/0?ssl_ca_certs=/ca.pem", "rediss://kiwoom-api:***@h:6380/0?ssl_ca_certs=/ca.pem"),
    ("rediss://h/0?ssl_ca_certs=/ca.pem&ssl_password=secret", "rediss://h/0?ssl_ca_certs=/ca.pem&ssl_password=***"),
    ("redis://h:1/0?password=secret", "redis://h:1/0?password=***"),
    ("redis://h:1/0?db=1&password=secret&socket_timeout=2", "redis://h:1/0?db=1&password=***&socket_timeout=2"),
    ("redis://h/0?pass%77ord=secret", "redis://h/0?pass%77ord=***"),
    ("redis://h/0?%70assword=secret", "redis://h/0?%70assword=***"),
    ("redis://h/0?password=sec%26ret", "redis://h/0?password=***"),
    ("redis://h/0?password=a&password=secret", "redis://h/0?password=***&password=***"),
    ("unix://:secret@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
    ("unix:///run/redis.sock?db=0&password=secret", "unix:///run/redis.sock?db=0&password=***"),
    ("redis+sentinel://u:secret@s1:26379,s2:26379/kiwoom/0?sentinel_password=secret",
     "redis+sentinel://u:***@s1:26379,s2:26379/kiwoom/0?sentinel_password=***"),
    ("redis://u:se/cr?et#x@h/0", "redis://u:***@h/0"),
    ("REDISS://U:secret@h/0", "REDISS://U:***@h/0"),
])
def test_every_way_to_write_a_password_is_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert "secret" not in mask_url(url)


@pytest.mark.parametrize("url", [
    "redis://h/0?pass%77ord=secret", "redis://h/0?password=secret", "unix://:secret@/run/redis.sock",
    "rediss://u:secret@h/0",
])
def test_what_is_masked_is_what_redis_py_reads_as_the_password(url: str) -> None:
    """The cases above are real: redis-py logs in with the value that the mask hides."""
    assert parse_url(url)["password"] == "secret"


def test_a_url_without_secrets_stays_as_it_is() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://h:6380/0?ssl_ca_certs=/etc/ssl/ca.pem&ssl_cert_reqs=required",
                "unix:///run/redis.sock?db=2", "redis+sentinel://s1:26379,s2:26379/kiwoom", "not a url"):
        assert mask_url(url) == url
