"""A real SSE client (httpx + httpx-sse) that collects events, in the foreground or in a thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

import httpx
from httpx_sse import ServerSentEvent, connect_sse


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


class Collector(threading.Thread):
    """Collects every event of one connection until ``stop()`` (and one more event) or the stream ends."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = url, headers or {}
        self.events: list[Event] = []
        self.hellos: list[Event] = []
        self.error: BaseException | None = None
        self.ended = False
        self._stop_flag = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0)) as client, \
                    connect_sse(client, "GET", self.url, headers=self.headers) as source:
                for event in events_of(source.iter_sse()):
                    with self.lock:
                        (self.hellos if is_hello(event) else self.events).append(event)
                    if self._stop_flag.is_set():
                        return
                self.ended = True
        except BaseException as exc:
            self.error = exc

    def ids(self) -> list[str]:
        with self.lock:
            return [e.id for e in self.events]

    def has(self, rid: str) -> bool:
        return rid in self.ids()

    def stop(self) -> None:
        self._stop_flag.set()
