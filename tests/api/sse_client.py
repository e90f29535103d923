"""A real SSE client (httpx + httpx-sse) that collects events: once in the foreground, in a thread, or resuming
across reconnects as EventSource does."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator

import httpx
from httpx_sse import ServerSentEvent, connect_sse

from tests.api.client_thread import ClientThread


class Event(ServerSentEvent):
    """An event whose ``id`` is the ranking id; ``event_id`` keeps the SSE id as sent (``<id>@<epoch>``)."""

    def __init__(self, raw: ServerSentEvent) -> None:
        rid, _, epoch = raw.id.partition("@")
        super().__init__(raw.event, raw.data, rid, raw.retry)
        self.event_id = raw.id
        self.epoch = epoch or None


def events_of(source: Iterable[ServerSentEvent]) -> Iterator[Event]:
    return (Event(e) for e in source if dispatched(e))


def dispatched(event: ServerSentEvent) -> bool:
    """Browsers dispatch no event for a block without data (our opening ``retry:`` block); httpx-sse does."""
    return bool(event.data) or event.event != "message"


def is_hello(event: ServerSentEvent) -> bool:
    """The opening ``hello`` (replica, resume point); collected apart so ranking tests see rankings only."""
    return event.event == "hello"


#: A silent stream fails the test on this read timeout instead of hanging it.
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def read_events(url: str, count: int, headers: dict[str, str] | None = None,
                until: Callable[[Event], bool] | None = None,
                hello: bool = False) -> list[Event]:
    """Connect, collect ``count`` events (or until ``until(event)``), disconnect; ``hello=True`` keeps it."""
    events: list[Event] = []
    with httpx.Client(timeout=TIMEOUT) as client, connect_sse(client, "GET", url, headers=headers or {}) as source:
        source.response.raise_for_status()
        for event in events_of(source.iter_sse()):
            if is_hello(event) and not hello:
                continue
            events.append(event)
            if (until is not None and until(event)) or (until is None and len(events) >= count):
                break
    return events


class Collector(ClientThread):
    """Collects every event of one connection until ``stop()`` (and one more event) or the stream ends."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.url, self.headers = url, headers or {}
        self.events: list[Event] = []
        self.hellos: list[Event] = []
        self.ended = False

    def connection(self) -> bool:
        with httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0)) as client, \
                connect_sse(client, "GET", self.url, headers=self.headers) as source:
            for event in events_of(source.iter_sse()):
                with self.lock:
                    (self.hellos if is_hello(event) else self.events).append(event)
                if self.stopping:
                    return True
            self.ended = True
        return True

    def ids(self) -> list[str]:
        with self.lock:
            return [e.id for e in self.events]

    def has(self, rid: str) -> bool:
        return rid in self.ids()


class ResumingSse(ClientThread):
    """What a browser's EventSource does, in a thread: on any end of the stream (or a refused connection) it
    reconnects with the last id as Last-Event-ID. Records every snapshot, ranking and reset (parsed), and which
    replica said ``hello`` on each connection; works for one feed's stream and the multiplexed one alike."""

    #: The events that carry a ranking document (or a reset's); the rest (hello, status, retry) are not kept.
    KINDS = ("snapshot", "ranking", "reset")

    def __init__(self, url: str, read_timeout: float = 30.0) -> None:
        super().__init__()
        self.url = url
        self.timeout = httpx.Timeout(read_timeout, connect=5.0)
        self.events: list[tuple[str, dict]] = []
        self.hellos: list[str] = []
        self.last_id: str | None = None

    def connection(self) -> bool:
        """One connection; True when stopped, False to reconnect (after a short pause, as EventSource does)."""
        headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
        try:
            with httpx.Client(timeout=self.timeout) as client, \
                    connect_sse(client, "GET", self.url, headers=headers) as source:
                if source.response.status_code == 200:
                    for event in source.iter_sse():
                        self._record(event)
                        if self.stopping:
                            return True
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
        return False

    def _record(self, event: ServerSentEvent) -> None:
        with self.lock:
            if event.event == "hello":
                self.hellos.append(json.loads(event.data)["replica"])
            elif event.event in self.KINDS and event.data:
                self.events.append((event.event, json.loads(event.data)))
                if event.id:
                    self.last_id = event.id

    def documents(self, feed: str | None = None, kinds: tuple[str, ...] = ("ranking",)) -> list[dict]:
        """The recorded documents of ``kinds`` (rankings by default), of ``feed`` or of every feed."""
        with self.lock:
            return [doc for kind, doc in self.events if kind in kinds and feed in (None, doc.get("feed"))]

    def rankings(self) -> list[dict]:
        return self.documents()

    def ids(self, feed: str | None = None, kinds: tuple[str, ...] = ("ranking",)) -> list[str]:
        return [doc["id"] for doc in self.documents(feed, kinds)]

    def on(self) -> str | None:
        """The replica of the current (or last) connection."""
        with self.lock:
            return self.hellos[-1] if self.hellos else None
