"""The snapshot response: body bytes encoded once per ranking id (and variant), headers per request.

Only what changes with the clock is computed per request: staleness, ``Cache-Control`` and the 304
decision. The body carries ``stale`` (and ``stale_reason``) in front of the contract document, so the
representation changes when staleness flips: the ETag is therefore weak, ``W/"<ranking id>"``.
"""

from __future__ import annotations

import json
import math
from email.utils import formatdate
from functools import lru_cache
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.types import Message

from api.hub import Hub
from api.public import clip
from api.ring import FeedState, Snapshot
from kiwoom_cache import contract
from kiwoom_cache.contract import Liveness, PublisherState

MAX_VARIANTS: Final = 64
#: "No clock-driven change ahead" for :func:`answer_until` (year 2286, in epoch ms).
_NEVER: Final = 10**13
#: Upper bound of ``limit`` (rankings have at most a few hundred rows); stated in the OpenAPI schema.
MAX_LIMIT: Final = 1000
#: Every TR's row fields: a name outside all of them is refused before the document is even read.
ROW_FIELDS: Final = frozenset(contract.ALL_ROW_FIELDS)


class QueryError(Exception):
    """A bad query parameter: rendered as FastAPI's 422 body (``detail`` is a list of errors)."""

    def __init__(self, name: str, msg: str, value: object) -> None:
        super().__init__(msg)
        # The input as sent, clipped: a 5,000-character parameter is not echoed back whole.
        self.detail = [{"type": "value_error", "loc": ["query", name], "msg": msg, "input": clip(str(value))}]


def parse_snapshot_query(query_string: bytes) -> tuple[int | None, tuple[str, ...] | None]:
    """``limit`` (top N rows, >= 1) and ``fields`` (comma-separated row fields) from a raw query string."""
    limit: int | None = None
    fields: tuple[str, ...] | None = None
    if not query_string:
        return limit, fields
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name == "limit":
            if not (value.isascii() and value.isdigit()) or len(value) > 18 or not 1 <= int(value) <= MAX_LIMIT:
                raise QueryError("limit", f"limit must be an integer >= 1 and <= {MAX_LIMIT}", value)
            limit = int(value)
        elif name == "fields":
            wanted = tuple(dict.fromkeys(f.strip() for f in value.split(",") if f.strip()))
            unknown = [f for f in wanted if f not in ROW_FIELDS]
            if unknown or not wanted:
                allowed = ", ".join(contract.ALL_ROW_FIELDS)
                raise QueryError("fields", f"fields must be a comma-separated subset of {allowed} (each TR has "
                                           "its own: see /v1/feeds)", value)
            fields = ("rank", *(f for f in wanted if f != "rank"))
    return limit, fields


def freshness(hub: Hub, feed: str, snap: Snapshot, now_ms: int) -> tuple[str | None, Liveness]:
    """``(stale reason or None, publisher liveness)``; a quiet market (publisher paused) is not stale."""
    liveness = hub.liveness(now_ms)
    if liveness != Liveness.alive:
        return f"publisher {liveness}", liveness
    info = hub.registry.get(feed)
    status = hub.status
    if info is not None and status is not None and status.state == PublisherState.running \
            and now_ms - snap.published_at_ms > _stale_after_ms(hub, info):
        # Whole seconds: the reason (header and body) then changes once a second, so the prepared answer
        # (api.fastpath) is reused between; Last-Modified gives the exact time.
        return _no_ranking_for((now_ms - snap.published_at_ms) // 1000, info.interval_s), liveness
    return None, liveness


@lru_cache(maxsize=256)
def _no_ranking_for(age_s: int, interval_s: float) -> str:
    """The same string object while the age stays in one second: the prepared answer's key compares by identity."""
    return f"no ranking for {age_s} s (poll period {interval_s:g} s)"


def render_body(snap: Snapshot, limit: int | None, fields: tuple[str, ...] | None, stale: str | None) -> bytes:
    """The snapshot body; a ``fields`` name this feed's TR does not have is a QueryError listing the ones it has."""
    if fields is not None and not set(fields) <= set(snap.row_fields):
        missing = ", ".join(f for f in fields if f not in snap.row_fields)
        raise QueryError("fields", f"this feed's rows have no {missing}; its fields are {', '.join(snap.row_fields)}",
                         ",".join(fields))
    key = ("body", limit, fields, stale)
    body = snap.variants.get(key)
    if body is not None:
        return body
    doc = snap.doc
    if limit is not None or fields is not None:
        parsed: dict[str, Any] = json.loads(doc)
        rows = parsed["rows"][:limit] if limit is not None else parsed["rows"]
        if fields is not None:
            rows = [{name: row[name] for name in fields} for row in rows]
        parsed["rows"] = rows
        doc = json.dumps(parsed, ensure_ascii=False, separators=(",", ":")).encode()
    head = b'{"stale":true,"stale_reason":' + json.dumps(stale, ensure_ascii=False).encode() + b"," if stale \
        else b'{"stale":false,'
    body = head + doc[1:]
    if len(snap.variants) >= MAX_VARIANTS:  # bounded whatever query strings clients invent
        snap.variants.clear()
    snap.variants[key] = body
    return body


def etag_matches(if_none_match: bytes, rid: str) -> bool:
    """RFC 9110 weak comparison: ``"<id>"``, ``W/"<id>"``, a bare id or ``*`` all match."""
    for raw in if_none_match.decode("latin-1").split(","):
        tag = raw.strip().removeprefix("W/").strip('"')
        if tag in (rid, "*"):
            return True
    return False


def cache_control(hub: Hub, st: FeedState, snap: Snapshot, *, stale: str | None, now_ms: int,
                  shared_cache: bool = True) -> bytes:
    """``shared_cache=False`` (stale-if-error: served from memory while Redis is down): no cache may store it."""
    if not shared_cache:
        return b"no-store"
    if stale:
        return b"no-cache"
    return b"public, max-age=%d" % _max_age_s(snap.published_at_ms, _poll_ms(hub.registry.get(st.feed)), now_ms)


def _stale_after_ms(hub: Hub, info: contract.FeedInfo) -> float:
    """How long after its publication a ranking of a running publisher is stale (:func:`freshness`)."""
    return hub.settings.stale_factor * info.interval_s * 1000


def _poll_ms(info: contract.FeedInfo | None) -> float:
    return (info.interval_s if info else 1.0) * 1000


def _max_age_s(published_ms: int, poll_ms: float, now_ms: int) -> int:
    """Fresh until the next poll is due: a poller re-asks about when a new ranking can exist."""
    remaining = max(0.0, published_ms + poll_ms - now_ms)
    return min(math.ceil(remaining / 1000), math.ceil(poll_ms / 1000))


def snapshot_headers(hub: Hub, st: FeedState, snap: Snapshot, *, stale: str | None,
                     liveness: Liveness, cache: bytes) -> list[tuple[bytes, bytes]]:
    """The validators and flags of a snapshot answer (200 and 304 alike); ``cache`` from :func:`cache_control`."""
    headers = [
        (b"etag", b'W/"' + snap.id.encode() + b'"'),
        (b"last-modified", formatdate(snap.published_at_ms / 1000, usegmt=True).encode()),
        (b"cache-control", cache),
        (b"x-kiwoom-ranking-id", snap.id.encode()),
        (b"x-kiwoom-stale", b"true" if stale else b"false"),
        (b"x-kiwoom-publisher", liveness.encode()),
    ]
    if stale:
        headers.append((b"x-kiwoom-stale-reason", stale.encode("ascii", "replace")))
    return headers


def answer_until(hub: Hub, feed: str, snap: Snapshot, *, stale: str | None, now_ms: int) -> int:
    """The first epoch ms after ``now_ms`` at which :func:`freshness` or :func:`cache_control` may say something
    else for this snapshot, with the hub's publisher status and feed registry unchanged (each is a new object
    when it changes). Until then the answer prepared at ``now_ms`` is the answer (``api.fastpath`` reuses it).

    Everything in those two that moves with the clock moves at a point computed here: the publisher's heartbeat
    turning late, the ranking turning stale (then its reason counting whole seconds), ``max-age`` counting down.
    Not for stale-if-error answers (they depend on Redis coming back, not on the clock).
    """
    until = _NEVER
    published = snap.published_at_ms
    status = hub.status
    if status is not None and status.state != PublisherState.stopped:
        late_after = status.heartbeat_at_ms + 2 * status.heartbeat_s * 1000  # contract.publisher_liveness
        if now_ms <= late_after:
            until = math.floor(late_after) + 1
    if stale:
        # "no ranking for N s" counts whole seconds of age (a "publisher ..." reason only ends with a new status)
        return min(until, published + ((now_ms - published) // 1000 + 1) * 1000)
    info = hub.registry.get(feed)
    if info is not None and status is not None and status.state == PublisherState.running:
        until = min(until, math.floor(published + _stale_after_ms(hub, info)) + 1)
    poll_ms = _poll_ms(info)
    max_age = _max_age_s(published, poll_ms, now_ms)  # cache_control(): max-age counts down to 0
    if max_age > 0:
        until = min(until, math.ceil(published + poll_ms - (max_age - 1) * 1000))
    return max(until, now_ms + 1)


#: What a 304 leaves out of the 200's headers. RFC 9110 §15.4.5: a 304 carries what a 200 would for ETag,
#: Cache-Control, Date (and Vary, Expires, Content-Location) and SHOULD NOT carry other representation metadata
#: unless it guides a cache update; Last-Modified is named as useful only without an ETag. X-Kiwoom-Ranking-Id
#: repeats the id the matched ETag holds. A cache keeps its stored values for the fields a 304 leaves out
#: (RFC 9111 §4.3.4), so both stay correct there; the flags that change with the clock (X-Kiwoom-Stale and its
#: reason, X-Kiwoom-Publisher, Cache-Control) are sent, and update the stored response.
NOT_ON_304: Final = frozenset({b"last-modified", b"x-kiwoom-ranking-id"})


class Prepared:
    """One complete snapshot answer: the 200 and 304 response-start messages and the body message, built once.

    uvicorn checks every response header in Python, so the 304 sends only what it must (:data:`NOT_ON_304`).
    """

    __slots__ = ("body_message", "etag", "headers_200", "headers_304", "start_200", "start_304")

    def __init__(self, headers: list[tuple[bytes, bytes]], body: bytes, rid: str) -> None:
        # Tuples: shared by every answer, so a layer that edits headers must copy them (Starlette's do).
        self.headers_304 = tuple(h for h in headers if h[0] not in NOT_ON_304)
        self.headers_200 = (*headers, (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)))
        # Sent as they are, request after request: nothing between the replica and uvicorn changes a message.
        self.start_200: Message = {"type": "http.response.start", "status": 200, "headers": self.headers_200}
        self.start_304: Message = {"type": "http.response.start", "status": 304, "headers": self.headers_304}
        self.body_message: Message = {"type": "http.response.body", "body": body}
        #: The ETag as sent: what a client echoes in If-None-Match (compared as bytes before parsing).
        self.etag = b'W/"' + rid.encode() + b'"'


class Current:
    """A feed's answer to a plain read (``GET`` without a query), with what it was computed from and the window
    of epoch ms (:func:`answer_until`) in which it stays the answer. ``api.plain`` serves from it."""

    __slots__ = ("prepared", "registry", "since", "snap", "st", "status", "until")

    def __init__(self, hub: Hub, st: FeedState, snap: Snapshot, prepared: Prepared, *, since: int, until: int) -> None:
        self.st, self.snap, self.prepared = st, snap, prepared
        #: The hub replaces each with a new object when it reads a new one from Redis.
        self.status, self.registry = hub.status, hub.registry
        self.since, self.until = since, until


class PreparedCache:
    """Prepared answers per feed, for its current snapshot only, at most :data:`MAX_VARIANTS` per feed.

    A new snapshot (a new ranking, or the same id re-validated into a new object) drops the feed's entries;
    what varies per request on one snapshot (query, staleness, publisher liveness, Cache-Control's max-age)
    is part of the key, so a stale transition or the next second's max-age is a new entry, never a wrong one.
    """

    def __init__(self, max_entries: int = MAX_VARIANTS) -> None:
        self.max_entries = max_entries
        self.feeds: dict[str, tuple[Snapshot, dict[tuple[Any, ...], Prepared]]] = {}

    def get(self, st: FeedState, snap: Snapshot, key: tuple[Any, ...]) -> Prepared | None:
        held = self.feeds.get(st.feed)
        if held is None or held[0] is not snap:
            return None
        return held[1].get(key)

    def put(self, st: FeedState, snap: Snapshot, key: tuple[Any, ...], prepared: Prepared) -> Prepared:
        held = self.feeds.get(st.feed)
        if held is None or held[0] is not snap:
            held = self.feeds[st.feed] = (snap, {})
        entries = held[1]
        if len(entries) >= self.max_entries:  # bounded whatever query strings and clocks produce
            entries.clear()
        entries[key] = prepared
        return prepared
