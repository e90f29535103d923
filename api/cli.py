"""``kiwoom-api`` / ``python -m api``: one replica under uvicorn (or several workers), configured by KIWOOM_API_*."""

from __future__ import annotations

import argparse
import logging
import math
import socket
from types import FrameType

import uvicorn

from api import accesslog
from api.app import ApiApp, create_app
from api.connections import CONNECTIONS
from api.deadline import CountedWebSocketProtocol, protocol_with_deadline
from api.edge import MAX_HEAD
from api.settings import AccessLog, ApiSettings
from api.workers import Workers


class _Server(uvicorn.Server):
    """uvicorn's server, telling the replica when it is asked to exit.

    Open event streams never finish by themselves; without this hook uvicorn would wait for them until
    ``timeout_graceful_shutdown``. Owned here rather than borrowed from ``sse_starlette.sse``'s import-time
    patch of uvicorn, which ``uvicorn api.app:create_app --factory`` would not even load.
    """

    def __init__(self, config: uvicorn.Config, app: ApiApp) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._app.state.request_exit()
        super().handle_exit(sig, frame)


def serve(settings: ApiSettings, sock: socket.socket | None = None) -> None:
    """One replica under uvicorn, on ``settings.host``/``port`` or on ``sock`` (a worker's SO_REUSEPORT socket)."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    access_log = accesslog.configure(settings.access_log)
    app = create_app(settings)
    # The protocol counts connections against the app's cap and keeps the probes' reserve above it.
    CONNECTIONS.cap = app.cap.cap
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level,
        access_log=access_log,
        # uvicorn takes whole seconds: a fractional grace period is rounded up, never cut short.
        timeout_graceful_shutdown=math.ceil(settings.graceful_shutdown_s) or None, lifespan="on",
        # The hub streams to thousands of idle sockets; uvicorn's default keep-alive is for short requests.
        timeout_keep_alive=settings.keep_alive_s,  # type: ignore[arg-type]  # uvicorn passes it to call_later
        # uvicorn has no deadline for a request head that never completes (a slow-header client holds its fd);
        # this protocol adds it, a body deadline and the connection count (api/deadline.py, api/connections.py).
        http=protocol_with_deadline(settings.header_timeout_s, settings.body_timeout_s, settings.replica_id),
        ws=CountedWebSocketProtocol,
        # The h11 parser's cap on one request head; with httptools (the default) api.gate enforces the limits.
        h11_max_incomplete_event_size=MAX_HEAD,
        # /v1/ws: a client message is a small JSON op (api.ws answers larger ones up to ws_max_message with an
        # error); a frame past this is refused by the protocol (1009) before it is buffered.
        ws_max_size=max(settings.ws_max_message * 4, 16 * 1024),
    )
    _Server(config, app).run(sockets=None if sock is None else [sock])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kiwoom-api", description=__doc__)
    parser.add_argument("--host", help="bind address (KIWOOM_API_HOST)")
    parser.add_argument("--port", type=int, help="port (KIWOOM_API_PORT)")
    parser.add_argument("--redis-url", help="Redis URL (KIWOOM_CACHE_REDIS_URL)")
    parser.add_argument("--log-level", help="debug, info, warning ... (KIWOOM_API_LOG_LEVEL)")
    parser.add_argument("--access-log", choices=[m.value for m in AccessLog],
                        help="sparse (default: no line per successful snapshot read), all, off (KIWOOM_API_ACCESS_LOG)")
    parser.add_argument("--workers", help="worker processes sharing the port, or auto: one per CPU "
                                          "(KIWOOM_API_WORKERS, default 1)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = ApiSettings(**overrides)
    if settings.workers == 1:
        serve(settings)
        return
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise SystemExit(Workers(settings, overrides, serve).run())
