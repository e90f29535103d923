"""FastAPI routes: feeds, history, health, metrics, and the OpenAPI face of the fast-path routes."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection

from api.auth import ApiKey
from api.edge import EVENT_ID_PATTERN, RANKING_ID_PATTERN, dumps
from api.fastpath import FastPath, MuxResponse, RawResponse
from api.gate import KEY_SCOPE
from api.history import HistoryQueryError, bounds, read_page
from api.hub import FeedState, Hub
from api.models import (
    ErrorModel,
    FeedLinks,
    FeedModel,
    FeedsModel,
    HealthModel,
    HistoryPageModel,
    PublisherModel,
    ReadyModel,
    SnapshotModel,
)
from api.public import REDIS_SLOW, REDIS_UNAVAILABLE, clip
from api.snapshot import MAX_LIMIT, freshness
from api.state import AppState, ServiceUnavailable
from kiwoom_cache import contract
from kiwoom_cache.clock import iso_kst, now_ms

log = logging.getLogger(__name__)

FeedPath = Annotated[str, Path(description="Feed slug, e.g. kospi-surge (see /v1/feeds)")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorModel, "description": "Unknown feed, or no ranking yet"},
    502: {"model": ErrorModel, "description": "The document in Redis breaks the contract"},
    503: {"model": ErrorModel, "description": "Redis unreachable or the replica is starting/stopping"},
}


def _binder(state: AppState, fast: FastPath) -> Callable[[HTTPConnection], Awaitable[None]]:
    """The router's one dependency: puts this app's state and fast path where the handlers' dependencies find
    them, so the handlers are plain module-level functions (one app per process, several in the tests).

    Functions, not a callable object: FastAPI 0.110 (the floor) resolves a dependency's string annotations (this
    module's ``from __future__ import annotations``) through the callable's ``__globals__``, which an instance
    lacks, and would read ``conn`` as a query parameter. ``async``: a plain ``def`` costs a thread hop."""

    async def bind(conn: HTTPConnection) -> None:
        conn.state.kiwoom_state, conn.state.kiwoom_fast = state, fast

    return bind


async def _app_state(conn: HTTPConnection) -> AppState:
    state: AppState = conn.state.kiwoom_state
    return state


async def _fast_path(conn: HTTPConnection) -> FastPath:
    fast: FastPath = conn.state.kiwoom_fast
    return fast


StateDep = Annotated[AppState, Depends(_app_state)]
FastDep = Annotated[FastPath, Depends(_fast_path)]


def build_router(state: AppState, fast: FastPath) -> APIRouter:
    """Every FastAPI route of a replica, bound to its state (the handlers are below, one function each)."""
    router = APIRouter(dependencies=[Depends(_binder(state, fast))])
    router.add_api_route("/v1/feeds", feeds, response_model=FeedsModel, tags=["rankings"],
                         responses={503: _ERRORS[503]})
    router.add_api_route(
        "/v1/rankings/{feed}", snapshot, response_model=SnapshotModel, tags=["rankings"],
        responses={304: {"description": "Not modified (If-None-Match matched the ranking id)"}, **_ERRORS})
    router.add_api_route(
        "/v1/rankings/{feed}/events", events, tags=["rankings"], response_class=Response,
        responses={200: {"content": {"text/event-stream": {}},
                         "description": "Events: snapshot (on connect), ranking (each update), reset "
                                        "(resume impossible: carries the current snapshot); `: ping` comments"},
                   400: {"model": ErrorModel, "description": "Malformed Last-Event-ID"}, **_ERRORS})
    router.add_api_route(
        "/v1/events", events_multiplexed, tags=["rankings"], response_class=Response,
        responses={200: {"content": {"text/event-stream": {}},
                         "description": "The single-feed events of every feed named (each event's data has "
                                        "`feed`), with a multiplexed id: `<crc32 of the sorted feeds>:<event "
                                        "id>,<event id>,...` (one position per feed, sorted, empty if none yet)"},
                   400: {"model": ErrorModel, "description": "Malformed multiplexed Last-Event-ID"},
                   422: {"model": ErrorModel, "description": "No feeds, a bad feed name, or too many feeds"},
                   **_ERRORS})
    router.add_api_websocket_route("/v1/ws", websocket)
    router.add_api_route("/v1/rankings/{feed}/history", _page_limit(history, state.settings.history_max_limit),
                         response_model=HistoryPageModel, tags=["rankings"],
                         responses={**_ERRORS, 422: {"description": "Bad parameter"}})
    router.add_api_route("/healthz", healthz, response_model=HealthModel, tags=["ops"])
    router.add_api_route("/readyz", readyz, response_model=ReadyModel, tags=["ops"],
                         responses={503: {"model": ReadyModel}})
    router.add_api_route("/metrics", metrics, tags=["ops"], response_class=Response,
                         responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    return router


async def feeds(request: Request, response: Response, state: StateDep) -> FeedsModel:
    """Configured feeds (those the API key may read, when auth is on), their parameters, last ranking id and
    age, and the publisher's status.

    While Redis is unreachable the answer comes from this replica's memory, flagged ``stale`` with
    ``stale_reason`` (and ``X-Kiwoom-Stale-Reason``, ``Cache-Control: no-store``)."""
    hub = state.require_hub()
    outage: str | None = None
    key: ApiKey | None = request.scope.get(KEY_SCOPE)
    states: dict[str, FeedState | None] = {}
    try:
        async with hub.deadline():  # one bound for every Redis call of this answer
            await hub.refresh_registry()  # fresh, not the last poll: this route is not on a hot path
            await hub.publishing.refresh_leaders()
            for name in sorted(hub.registry):
                if key is None or key.may_read(name):
                    states[name] = await hub.lookup(name)
    except (RedisError, OSError, TimeoutError) as exc:
        # Frozen or slow (TimeoutError) or refusing: memory answers, flagged, while the window allows.
        outage = hub.outage() or (REDIS_SLOW if isinstance(exc, TimeoutError) else None)
        if outage is None:
            raise
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Kiwoom-Stale-Reason"] = outage
        states = {name: hub.feeds.get(name) for name in sorted(hub.registry) if key is None or key.may_read(name)}
    now = now_ms()
    items = [_feed_model(hub, name, info, st, now=now, outage=outage) for name, st in states.items()
             if (info := hub.registry.get(name)) is not None]  # None: dropped by the registry poll meanwhile
    status = hub.status
    publisher = publisher_model(status, now) if status else PublisherModel(liveness=hub.liveness(now))
    publisher.error = hub.status_error
    return FeedsModel(publisher=publisher, publishers=[publisher_model(p, now) for p in hub.publishers],
                      feeds=items, stale=outage is not None, stale_reason=outage)


def _feed_model(hub: Hub, name: str, info: contract.FeedInfo, st: FeedState | None, *, now: int,
                outage: str | None) -> FeedModel:
    """One feed of /v1/feeds: its registration, what this replica holds of it, and its leader."""
    snap = st.snapshot if st else None
    stale = freshness(hub, name, snap, now)[0] if snap else "no ranking yet"
    base = f"/v1/rankings/{name}"
    schema_name = contract.ROW_SCHEMA_OF_TR.get(info.tr.lower())
    schema = contract.ROW_SCHEMAS[schema_name] if schema_name else None
    return FeedModel(
        feed=name, title=info.title, tr=info.tr, row_schema=schema.name.value if schema else None,
        fields=list(schema.field_names) if schema else [], params=dict(info.params), interval_s=info.interval_s,
        last_id=snap.id if snap else None, epoch=snap.epoch if snap else None,
        last_published_at=iso_kst(snap.published_at_ms) if snap else None,
        age_s=round((now - snap.published_at_ms) / 1000, 3) if snap else None,
        stale=outage is not None or stale is not None, stale_reason=outage or stale,
        stalled=hub.stalled(st) if st else False, leader=hub.publishing.leaders.get(name),
        clients=len(st.clients) if st else 0,
        error=st.error if st else None, bad_entries=st.bad_entries if st else 0,
        links=FeedLinks(snapshot=base, history=f"{base}/history", events=f"{base}/events"),
    )


async def snapshot(
    feed: FeedPath,
    fast: FastDep,
    limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT, description="Only the top N rows")] = None,
    fields: Annotated[str | None, Query(min_length=1, description="Comma-separated row fields of the "
                                                                  "feed's TR, e.g. code,name,surge_rate")] = None,
    if_none_match: Annotated[str | None, Header(description="A previous ETag: 304 if unchanged")] = None,
) -> Response:
    """The current ranking. ETag ``W/"<ranking id>"``, Last-Modified, Cache-Control following the poll
    period; ``stale`` (body) and ``X-Kiwoom-Stale`` (header) say when the publisher is not keeping it fresh.

    Served by the raw-ASGI fast path (see ``api.fastpath``); this declaration documents it.
    """
    return RawResponse(fast, feed, events=False)


async def events(
    feed: FeedPath,
    fast: FastDep,
    last_event_id: Annotated[str | None, Query(pattern=EVENT_ID_PATTERN,
                                               description="For clients that cannot set Last-Event-ID")] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID",
                                                       description="Resume after this ranking id")] = None,
) -> Response:
    """Server-Sent Events. Without Last-Event-ID the current snapshot comes first; with it every later
    entry is replayed from the stream, then the stream continues live with no gap and no duplicate."""
    return RawResponse(fast, feed, events=True)


async def events_multiplexed(
    feeds: Annotated[str, Query(description="Comma-separated feed names (at most KIWOOM_API_MUX_MAX_FEEDS)")],
    fast: FastDep,
    last_event_id: Annotated[str | None, Query(description="For clients that cannot set Last-Event-ID")] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID",
                                                       description="Resume every feed after its position")]
    = None,
) -> Response:
    """Server-Sent Events of several feeds over one connection, resumable with one Last-Event-ID."""
    return MuxResponse(fast)


async def websocket(ws: WebSocket, fast: FastDep) -> None:
    # Reached only with the fast path off (it answers /v1/ws itself); same handler.
    await fast.websocket(ws.scope, ws._receive, ws._send)


async def history(
    *,
    request: Request,
    state: StateDep,
    feed: FeedPath,
    after: Annotated[str | None, Query(pattern=RANKING_ID_PATTERN,
                                       description="Only entries after this ranking id (exclusive)")] = None,
    before: Annotated[str | None, Query(pattern=RANKING_ID_PATTERN,
                                        description="Only entries before this ranking id (exclusive)")] = None,
    since: Annotated[str | None, Query(max_length=64, description="From this time (epoch ms, at most "
                                       "2**64-1, or ISO 8601 from 1970; naive = KST)")] = None,
    until: Annotated[str | None, Query(max_length=64, description="Up to this time (epoch ms or ISO 8601)")]
    = None,
    order: Annotated[Literal["desc", "asc"], Query(description="desc = newest first")] = "desc",
    limit: int | None = None,  # bounded per replica by _page_limit
) -> Response:
    """Rankings from the stream, newest-first or oldest-first; follow ``next`` for the next page."""
    if limit is None:
        limit = state.settings.history_default_limit
    hub = state.require_hub()
    try:
        low, high = bounds(after=after, before=before, since=since, until=until)
    except HistoryQueryError as exc:
        return _query_error(exc.name, str(exc), exc.value)
    try:
        async with hub.deadline():
            if await hub.lookup(feed) is None:
                raise HTTPException(404, f"unknown feed {clip(feed)!r}")
            docs, cursor, skipped = await read_page(hub, feed, low=low, high=high, limit=limit,
                                                    newest_first=order == "desc")
    except TimeoutError as exc:
        raise ServiceUnavailable(REDIS_UNAVAILABLE) from exc
    next_url = None
    if cursor is not None:
        next_url = str(request.url.remove_query_params(["after", "before"]).include_query_params(
            **{"before" if order == "desc" else "after": cursor}))
    head = dumps({"feed": feed, "order": order, "limit": limit, "count": len(docs), "skipped": skipped,
                   "next_cursor": cursor, "next": next_url})
    return Response(head[:-1] + b',"items":[' + b",".join(docs) + b"]}", media_type="application/json")


def _page_limit(handler: Callable[..., Awaitable[Response]], max_limit: int) -> Callable[..., Awaitable[Response]]:
    """``handler`` with its ``limit`` query bounded by this replica's ``KIWOOM_API_HISTORY_MAX_LIMIT``: the
    bound is a setting, so it joins the signature (and the OpenAPI schema states it) when the router is built."""
    sig = inspect.signature(handler)
    bounded = sig.parameters["limit"].replace(default=Query(
        None, ge=1, le=max_limit, description="Page size (default KIWOOM_API_HISTORY_DEFAULT_LIMIT)"))

    @functools.wraps(handler)
    async def bound(**kwargs: Any) -> Response:
        return await handler(**kwargs)

    bound.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[bounded if p.name == "limit" else p for p in sig.parameters.values()])
    return bound


async def healthz() -> HealthModel:
    """The process is alive (does not touch Redis)."""
    return HealthModel(status="ok")


async def readyz(state: StateDep) -> JSONResponse:
    """Ready when Redis answers PING and the subscription is live (rings caught up)."""
    hub = state.hub
    if hub is None or hub.draining:
        body = ReadyModel(ready=False, subscription_live=False, redis="unknown", reason="not serving")
        return JSONResponse(body.model_dump(), status_code=503)
    try:
        async with hub.deadline():
            await hub.redis.ping()
        redis_state, reason = "ok", None
    except (RedisError, OSError, TimeoutError) as exc:  # the detail goes to the log, not to the prober
        log.warning("readyz: redis unavailable: %s: %s", type(exc).__name__, exc)
        redis_state, reason = "down", REDIS_UNAVAILABLE
    if reason is None and not hub.live:
        reason = "redis subscription not live"
    if reason is None:
        behind = sorted(name for name, st in hub.feeds.items() if hub.stalled(st) or hub.sync_failed(st))
        if behind:  # the names go to the log, not to the prober
            log.warning("readyz: feeds not caught up with their streams, re-syncing: %s", ", ".join(behind))
            reason = "feeds not caught up with their streams (re-syncing)"
    body = ReadyModel(ready=reason is None, subscription_live=hub.live, redis=redis_state, reason=reason)
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


async def metrics(state: StateDep) -> Response:
    """Prometheus text format: SSE clients, events sent, dropped slow clients, Redis reconnects, latency."""
    return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)


def _query_error(name: str, msg: str, value: object) -> JSONResponse:
    """Same shape as FastAPI's own 422 body (the query value as sent, clipped)."""
    return JSONResponse({"detail": [{"type": "value_error", "loc": ["query", name], "msg": clip(msg, 200),
                                     "input": clip(str(value))}]},
                        status_code=422)


def publisher_model(status: contract.PublisherStatus, now: int) -> PublisherModel:
    """One publisher's heartbeat document as /v1/feeds shows it."""
    return PublisherModel(
        liveness=contract.publisher_liveness(status, now),
        id=status.id, role=status.role,
        state=status.state, session=status.session, source=status.source, version=status.version,
        heartbeat_at=iso_kst(status.heartbeat_at_ms),
        heartbeat_age_s=round((now - status.heartbeat_at_ms) / 1000, 3),
        last_success_at=iso_kst(status.last_success_ms) if status.last_success_ms else None,
        message=status.message, preferred=status.preferred, fenced=status.fenced,
        restarts=status.restarts,
    )
