"""History pages from their own Redis (``KIWOOM_API_HISTORY_REDIS_URL``): a replica of the primary."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis

from kiwoom_cache import contract as c
from stack.localredis import LocalRedis
from tests.api.writer import DEFAULT_FEED, Writer
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def _history(url: str) -> list[str]:
    r = httpx.get(url + f"/v1/rankings/{DEFAULT_FEED}/history", timeout=10.0)
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]]


def test_history_is_served_from_the_history_redis(tmp_path: Path, own_redis, replica) -> None:
    primary = own_redis(persist=False)
    # A writable Redis replica of the primary, so the test can give it an entry the primary never had: a
    # history page holding that entry can only have been read from the replica.
    copy = LocalRedis(tmp_path / "history", args=("--replicaof", "127.0.0.1", str(primary.port),
                                                  "--replica-read-only", "no")).start()
    writer, copy_writer = Writer(primary.url), Writer(copy.url)
    primary_client, copy_client = redis.Redis.from_url(primary.url), redis.Redis.from_url(copy.url)
    try:
        writer.register()
        writer.heartbeat()
        ids = [writer.write() for _ in range(3)]
        key = c.history_key(DEFAULT_FEED)
        wait_until(lambda: copy_client.xlen(key) == 3, 30, "the replica copied the stream")
        only_on_copy = copy_writer.write()
        assert primary_client.xlen(key) == 3 and copy_client.xlen(key) == 4

        rep = replica(primary.url, history_redis_url=copy.url)
        assert _history(rep.url) == [only_on_copy, *ids[::-1]]
        # Everything else still reads the primary: the snapshot is the primary's newest ranking.
        snapshot = httpx.get(rep.url + f"/v1/rankings/{DEFAULT_FEED}", timeout=10.0).json()
        assert snapshot["id"] == ids[-1]

        # The control: a replica without the setting reads history from the primary, without that entry.
        plain = replica(primary.url)
        assert _history(plain.url) == ids[::-1]
    finally:
        for client in (writer, copy_writer):
            client.close()
        primary_client.close()
        copy_client.close()
        copy.stop()


def test_history_redis_url_is_optional_and_masked() -> None:
    from api.settings import ApiSettings

    assert ApiSettings().history_redis_url is None
    assert ApiSettings(history_redis_url="").history_redis_url is None
    settings = ApiSettings(history_redis_url="redis://user:secret@replica:6379/0")
    assert "secret" not in repr(settings)
