"""Which requests get an access-log line (``KIWOOM_API_ACCESS_LOG``).

The snapshot route is what dashboards and pollers hit many times a second; one formatted line per request
cost 1.7-1.9x its throughput (bench/README.md). By default (``sparse``) a successful snapshot read (200 or
304) is therefore not logged but counted in ``/metrics`` (``kiwoom_api_request_seconds{route="snapshot"}``
gives the rate and latency); every other request, every snapshot answered with an error status, and every
SSE connection still gets uvicorn's usual line. ``all`` logs every request, ``off`` none.
"""

from __future__ import annotations

import logging
from typing import Final

from api.fastpath import hot_route
from api.settings import AccessLog

#: uvicorn's access logger; its records carry (client, method, path with query, http version, status).
ACCESS_LOGGER: Final = "uvicorn.access"


class SkipSnapshotReads(logging.Filter):
    """Drops uvicorn access records of successful snapshot GET/HEADs; keeps everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not (isinstance(args, tuple) and len(args) == 5):
            return True
        _client, method, full_path, _version, status = args
        if not (isinstance(status, int) and status < 400 and isinstance(full_path, str)):
            return True
        hot = hot_route({"type": "http", "method": method, "path": full_path.partition("?")[0]})
        return hot is None or hot[1]  # hot[1]: the events route, whose connections stay logged


def configure(mode: AccessLog) -> bool:
    """Install the filter for ``sparse``; returns whether uvicorn should emit access records at all."""
    logger = logging.getLogger(ACCESS_LOGGER)
    for existing in [f for f in logger.filters if isinstance(f, SkipSnapshotReads)]:
        logger.removeFilter(existing)
    if mode is AccessLog.SPARSE:
        logger.addFilter(SkipSnapshotReads())
    return mode is not AccessLog.OFF
