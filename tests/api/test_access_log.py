"""KIWOOM_API_ACCESS_LOG: successful snapshot reads are counted in /metrics, not logged, unless asked."""

from __future__ import annotations

import logging

import httpx
import pytest

from api.accesslog import ACCESS_LOGGER, SparseAccessLogger, configure, is_snapshot_read
from api.settings import AccessLog, ApiSettings
from tests.api.writer import Writer
from tests.waiting import wait_until

SNAPSHOT = "/v1/rankings/kospi-surge"


def access_args(method: str, path: str, status: int) -> tuple[object, ...]:
    """Arguments shaped like uvicorn's access record: (client, method, full path, http version, status)."""
    return ("127.0.0.1:5000", method, path, "1.1", status)


@pytest.mark.parametrize(("method", "path", "status", "kept"), [
    ("GET", SNAPSHOT, 200, False),
    ("GET", SNAPSHOT + "?limit=5", 304, False),
    ("GET", SNAPSHOT + "?fields=rank,code/x", 200, False),
    ("HEAD", SNAPSHOT, 200, False),
    ("GET", SNAPSHOT, 404, True),
    ("GET", SNAPSHOT, 503, True),
    ("GET", SNAPSHOT + "/events", 200, True),
    ("GET", SNAPSHOT + "/history", 200, True),
    ("POST", SNAPSHOT, 405, True),
    ("GET", "/healthz", 200, True),
])
def test_sparse_logger_drops_only_successful_snapshot_reads(method, path, status, kept) -> None:
    assert is_snapshot_read(access_args(method, path, status)) is not kept
    logger = SparseAccessLogger("sparse-test")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.info('%s - "%s %s HTTP/%s" %d', *access_args(method, path, status))
    assert len(seen) == int(kept)


def test_sparse_logger_keeps_records_it_does_not_recognise() -> None:
    assert not is_snapshot_read(())
    assert not is_snapshot_read(("free", "text"))


def test_setting_default_and_bad_value() -> None:
    assert ApiSettings().access_log is AccessLog.SPARSE
    with pytest.raises(ValueError, match="access_log"):
        ApiSettings(access_log="sampled")  # type: ignore[arg-type]


def test_configure_switches_the_logger_class_and_says_whether_to_log() -> None:
    logger = logging.getLogger(ACCESS_LOGGER)
    try:
        assert configure(AccessLog.SPARSE) is True
        assert configure(AccessLog.SPARSE) is True
        assert type(logger) is SparseAccessLogger and logging.getLogger(ACCESS_LOGGER) is logger
        assert configure(AccessLog.ALL) is True
        assert type(logger) is logging.Logger
        assert configure(AccessLog.OFF) is False
    finally:
        configure(AccessLog.ALL)


def requests(url: str) -> None:
    etag = httpx.get(url + SNAPSHOT).headers["etag"]
    assert httpx.get(url + SNAPSHOT, headers={"If-None-Match": etag}).status_code == 304
    assert httpx.get(url + "/v1/rankings/no-such-feed").status_code == 404
    assert httpx.get(url + "/healthz").status_code == 200


@pytest.mark.integration
def test_sparse_by_default(redis_url: str, writer: Writer, replica) -> None:
    writer.write()
    rep = replica(redis_url)
    requests(rep.url)
    log = wait_until(lambda: rep.log() if '"GET /healthz HTTP/1.1" 200' in rep.log() else None, 10,
                     "the /healthz access line")
    assert '"GET /v1/rankings/no-such-feed HTTP/1.1" 404' in log
    assert f'"GET {SNAPSHOT} HTTP/1.1" 200' not in log and f'"GET {SNAPSHOT} HTTP/1.1" 304' not in log
    assert rep.metric('kiwoom_api_request_seconds_count{route="snapshot"}') >= 3


@pytest.mark.integration
def test_all_logs_every_snapshot_read(redis_url: str, writer: Writer, replica) -> None:
    writer.write()
    rep = replica(redis_url, access_log="all")
    requests(rep.url)
    log = wait_until(lambda: rep.log() if '"GET /healthz HTTP/1.1" 200' in rep.log() else None, 10,
                     "the /healthz access line")
    assert f'"GET {SNAPSHOT} HTTP/1.1" 200' in log and f'"GET {SNAPSHOT} HTTP/1.1" 304' in log


@pytest.mark.integration
def test_off_logs_no_request(redis_url: str, writer: Writer, replica) -> None:
    writer.write()
    rep = replica(redis_url, access_log="off")
    requests(rep.url)
    rep.terminate()  # the log is complete once the process is gone
    log = rep.log()
    assert "Application startup complete" in log  # the server did log, just not requests
    assert '"GET ' not in log
