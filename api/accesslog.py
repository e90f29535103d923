"""Which requests get an access-log line (``KIWOOM_API_ACCESS_LOG``).

The snapshot route is what dashboards and pollers hit many times a second; one formatted line per request
cost 1.7-1.9x its throughput (bench/README.md). By default (``sparse``) a successful snapshot read (200 or
304) is therefore not logged but counted in ``/metrics`` (``kiwoom_api_request_seconds{route="snapshot"}``
gives the rate and latency); every other request, every snapshot answered with an error status, and every
SSE connection still gets uvicorn's usual line. ``all`` logs every request, ``off`` none.

The decision is taken before a record exists: a ``logging.Filter`` runs only after ``Logger.info`` has looked
up the caller's frame and built the ``LogRecord``, which a py-spy profile of the snapshot route under wrk put
at 20 % of the replica's samples. So in ``sparse`` mode uvicorn's access logger is a
:class:`SparseAccessLogger`, whose ``info`` returns at once for a successful snapshot read; every other record
goes through ``logging`` unchanged (same handlers, same uvicorn format).
"""

from __future__ import annotations

import logging
from typing import Any, Final

from api.fastpath import PREFIX
from api.settings import AccessLog

#: uvicorn's access logger; its records carry (client, method, path with query, http version, status).
ACCESS_LOGGER: Final = "uvicorn.access"


def is_snapshot_read(args: tuple[Any, ...]) -> bool:
    """Whether uvicorn's access-record arguments are a successful snapshot GET/HEAD (not an event stream)."""
    if len(args) != 5:
        return False
    _client, method, full_path, _version, status = args
    if not (isinstance(status, int) and status < 400 and isinstance(full_path, str)
            and method in ("GET", "HEAD") and full_path.startswith(PREFIX)):
        return False
    feed = full_path[len(PREFIX):].partition("?")[0]
    return "/" not in feed


class SparseAccessLogger(logging.Logger):
    """uvicorn's access logger in ``sparse`` mode: successful snapshot reads are dropped before any record work."""

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        if is_snapshot_read(args):
            return
        super().info(msg, *args, **kwargs)


def configure(mode: AccessLog) -> bool:
    """Make uvicorn's access logger sparse (or plain again); returns whether uvicorn should emit access records."""
    logger = logging.getLogger(ACCESS_LOGGER)
    # Same object (uvicorn and its logging config hold it by name); only its class changes.
    logger.__class__ = SparseAccessLogger if mode is AccessLog.SPARSE else logging.Logger
    return mode is not AccessLog.OFF
