"""The plain snapshot read (``GET /v1/rankings/{feed}``, no query), answered in one place.

It is what pollers and dashboards send many times a second, and under uvicorn most of its cost is per-request
Python: every layer a request passes (connection cap, gate, fast path, the route's own checks, the latency
histogram) is a coroutine call and a few lookups. So :class:`api.app.ApiApp` asks :meth:`PlainReads.answer`
first, which does what those layers would, in one pass and without awaiting:

- the answer is the one :meth:`api.fastpath.FastPath.snapshot` prepared (:class:`api.snapshot.Current`), used
  only while everything it was computed from is unchanged: the same snapshot object, the same publisher status
  and feed registry objects (the hub replaces them when it reads new ones), Redis live, the replica not
  draining, and the clock inside the window in which staleness, liveness and ``max-age`` stay the same
  (:func:`api.snapshot.answer_until`);
- the gate's limits (:mod:`api.gate`): request target and header sizes, checked in the pass that finds
  ``If-None-Match``;
- the connection cap and the latency histogram: counted by the caller around the two sends.

Anything else (a query, ``HEAD``, a request over a limit, a cap reached, no current answer, auth or CORS on)
returns None and takes the layered path, which answers as before and prepares the next current answer.
"""

from __future__ import annotations

from starlette.types import Message, Scope

from api.fastpath import EMPTY_BODY, FastPath
from api.gate import MAX_HEADER_LINE, MAX_HEADERS, MAX_TARGET
from api.snapshot import etag_matches
from api.state import AppState
from kiwoom_cache.clock import now_ms


class PlainReads:
    def __init__(self, fast: FastPath, state: AppState) -> None:
        self.current = fast.current
        self.state = state
        #: The snapshot route's histogram, the same one the layered path counts in.
        self.latency = state.latency.route("snapshot")

    def answer(self, scope: Scope) -> tuple[Message, Message] | None:
        """The response-start and body messages for this request, or None: the layered path answers it."""
        if scope["method"] != "GET" or scope["query_string"]:
            return None
        path = scope["path"]
        current = self.current.get(path)
        if current is None:
            return None
        hub = self.state.hub
        st = current.st
        if hub is None or not hub.live or hub.draining or st.snapshot is not current.snap or not st.synced \
                or hub.status is not current.status or hub.registry is not current.registry:
            return None
        now = now_ms()
        if not current.since <= now < current.until:
            return None
        if len(scope.get("raw_path") or path) > MAX_TARGET:
            return None
        inm = None
        total = 0
        for name, value in scope["headers"]:
            size = len(name) + len(value)
            if size > MAX_HEADER_LINE:
                return None
            total += size
            if name == b"if-none-match" and inm is None:
                inm = value
        if total > MAX_HEADERS:
            return None
        prepared = current.prepared
        if inm is not None and (inm == prepared.etag or etag_matches(inm, current.snap.id)):
            return prepared.start_304, EMPTY_BODY
        return prepared.start_200, prepared.body_message
