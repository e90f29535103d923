"""Replica configuration, read from ``KIWOOM_API_*`` variables and the shared ``KIWOOM_CACHE_REDIS_URL``."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from api.auth import KeySpec
from api.public import random_replica_id
from kiwoom_cache.env import API_ENV_PREFIX, env_sources
from kiwoom_cache.urls import mask_url


class AccessLog(StrEnum):
    """``KIWOOM_API_ACCESS_LOG``: which requests get an access-log line (see api/accesslog.py)."""

    ALL = "all"
    SPARSE = "sparse"
    OFF = "off"


class ApiSettings(BaseSettings):
    """Everything a replica needs; pass it to :func:`api.app.create_app` (nothing is read at import)."""

    model_config = SettingsConfigDict(env_prefix=API_ENV_PREFIX, extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Where history pages are read (XRANGE/XREVRANGE), e.g. a Redis replica of ``redis_url``; None: ``redis_url``.
    #: Only the history route reads it: sync and replay need a stream at least as new as the subscription.
    history_redis_url: str | None = None
    #: Connections the command pool may open; further requests wait for one instead of flooding Redis.
    redis_max_connections: int = Field(64, ge=2)
    redis_timeout_s: float = Field(5.0, gt=0)
    #: The bound on every read path's Redis calls (feeds, snapshot, history, readyz, an event stream's start):
    #: past it the answer comes from memory (stale) or is a 503 with Retry-After, never a hang on a frozen Redis.
    read_deadline_s: float = Field(1.0, gt=0, le=30)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    #: Worker processes sharing the port (SO_REUSEPORT), each with its own hub and Redis subscription:
    #: a number, or ``auto`` for one per CPU this process may run on (api/workers.py).
    workers: int = Field(1, ge=1, le=256)
    log_level: str = "info"
    #: ``sparse``: access-log every request except successful snapshot reads (counted in /metrics); ``all``; ``off``.
    access_log: AccessLog = AccessLog.SPARSE
    #: Comma-separated origins allowed by CORS (``*`` for any); empty disables CORS headers.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Seconds between ``: ping`` comments on event streams, so idle proxies keep the connection.
    ping_s: float = Field(15.0, gt=0)
    #: ``retry:`` advice sent to EventSource clients, milliseconds.
    retry_ms: int = Field(3000, ge=0)
    #: Encoded frames kept per feed; a client further behind than this gets a ``reset``.
    ring_size: int = Field(256, ge=1)
    #: ...and at most this many bytes of encoded frames per feed (the newest frame is always kept).
    ring_bytes: int = Field(16 * 1024 * 1024, ge=0)
    #: A client whose socket accepts nothing for this long is dropped (slow consumer).
    send_timeout_s: float = Field(10.0, gt=0)
    #: A client with more than this many bytes queued for it (server buffer + kernel send queue) is dropped.
    slow_client_bytes: int = Field(1024 * 1024, ge=1)
    #: SO_SNDBUF of each event stream's socket, so a peer that stops reading shows up as queued bytes soon
    #: instead of hiding in a kernel buffer of megabytes (0 keeps the system's autotuning).
    send_buffer_bytes: int = Field(256 * 1024, ge=0)
    #: Open connections this replica accepts before answering 503 (``Retry-After``); /healthz and /readyz
    #: always answer. 0 = derived from the process's file-descriptor limit, with headroom.
    max_connections: int = Field(0, ge=0)
    #: A connection whose request head (line and headers) is not complete this many seconds after it opened, or
    #: after its request began, is answered 408 and closed (api/deadline.py).
    header_timeout_s: float = Field(10.0, gt=0)
    #: A request body not complete this many seconds after its first bytes (before them the head's deadline
    #: runs): 408 if no answer has started, and the connection is closed (api/deadline.py).
    body_timeout_s: float = Field(10.0, gt=0)
    #: An idle keep-alive connection (answered, no new request) is closed after this many seconds.
    keep_alive_s: float = Field(30.0, gt=0)
    #: While Redis is unreachable, snapshots and /v1/feeds are answered from memory, flagged stale, for up
    #: to this long after the last successful contact (RFC 5861 stale-if-error); 0 turns it off.
    stale_if_error_s: float = Field(3600.0, ge=0)
    #: Feeds one connection may carry (``/v1/events?feeds=``, ``/v1/ws`` subscriptions); bounds the
    #: multiplexed resume id too (api/mux.py).
    mux_max_feeds: int = Field(16, ge=1, le=64)
    #: A WebSocket without a cookie or header key must send ``{"op":"auth"}`` within this many seconds.
    ws_auth_timeout_s: float = Field(10.0, gt=0)
    #: Largest client message a WebSocket accepts (larger ones get an error message).
    ws_max_message: int = Field(4096, ge=256, le=65536)
    #: Frames sent in one write when a client catches up from the ring.
    max_batch: int = Field(16, ge=1)
    #: Entries per XRANGE page when replaying after Last-Event-ID.
    replay_page: int = Field(200, ge=1)
    history_default_limit: int = Field(50, ge=1)
    history_max_limit: int = Field(500, ge=1)
    #: How often the replica re-reads the feed registry and the publisher heartbeat.
    poll_s: float = Field(1.0, gt=0)
    #: A running publisher's snapshot older than ``stale_factor`` poll periods is flagged stale.
    stale_factor: float = Field(3.0, gt=0)
    reconnect_min_s: float = Field(0.1, gt=0)
    reconnect_max_s: float = Field(5.0, gt=0)
    #: Freeze the GC's view of long-lived objects after each fan-out burst (docs/design-figures.md §4).
    gc_freeze: bool = True
    #: Serve the snapshot and events routes from the raw-ASGI fast path (FastAPI still documents them).
    fast_path: bool = True
    #: Seconds uvicorn waits for open streams on shutdown before closing them.
    graceful_shutdown_s: float = Field(5.0, ge=0)
    #: Names this replica in the ``X-Kiwoom-Replica`` header and the SSE ``hello`` event, so a client (and an
    #: operator behind a balancer) can tell which replica answered. The default is random per process (logged at
    #: start), so clients never learn the host name or pid.
    replica_id: str = Field(default_factory=random_replica_id, min_length=1, max_length=64)
    #: API keys (``api.auth``): a TOML file of ``[[keys]]`` re-read when it changes, and/or a JSON list of the
    #: same tables. Auth is on when either is set; every route but the probes and the login form then needs a key.
    auth_keys_file: Path | None = None
    auth_keys: list[KeySpec] = Field(default_factory=list)
    #: How often (seconds) a request may trigger a check of the key file for changes.
    auth_reload_s: float = Field(1.0, gt=0)
    #: Lifetime of the login cookie the dashboard uses.
    auth_cookie_max_age_s: int = Field(12 * 3600, ge=60)
    #: Mark the login cookie ``Secure`` even when the replica sees plain HTTP (TLS ends at the proxy).
    auth_cookie_secure: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, *env_sources(settings_cls)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("workers", mode="before")
    @classmethod
    def _auto_workers(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return len(os.sched_getaffinity(0))
        return value

    @property
    def auth_enabled(self) -> bool:
        return self.auth_keys_file is not None or bool(self.auth_keys)

    @model_validator(mode="after")
    def _credentials_need_origins(self) -> ApiSettings:
        if self.auth_enabled and "*" in self.cors_origins:
            raise ValueError("with auth on, CORS needs an explicit list of origins (credentials are allowed, "
                             "and browsers refuse credentials with a wildcard origin)")
        return self

    @field_validator("auth_keys_file", "history_redis_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("replica_id")
    @classmethod
    def _header_safe(cls, value: str) -> str:
        if not (value.isascii() and value.isprintable()):
            raise ValueError("replica_id must be printable ASCII (it is sent as an HTTP header)")
        return value

    def __repr__(self) -> str:
        history = f", history_redis_url={mask_url(self.history_redis_url)!r}" if self.history_redis_url else ""
        return (f"ApiSettings(redis_url={mask_url(self.redis_url)!r}{history}, host={self.host!r}, port={self.port}, "
                f"replica_id={self.replica_id!r}, auth={'on' if self.auth_enabled else 'off'})")
