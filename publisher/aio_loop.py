"""The asyncio event loop behind :class:`publisher.loop.Loop`, for sources that need no Qt (REST).

No Qt import here or in anything it imports: ``pip install 'kiwoom-cache[rest]'`` runs without PyQt5.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import Any


class AsyncioTimer:
    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None], interval_s: float,
                 repeat: bool) -> None:
        self._loop = loop
        self._callback = callback
        self._interval = interval_s
        self._repeat = repeat
        self._handle: asyncio.TimerHandle | None = None
        self._deadline = 0.0

    def start(self, seconds: float | None = None) -> None:
        if seconds is not None:
            self._interval = seconds
        self.stop()
        self._deadline = self._loop.time() + max(0.0, self._interval)
        self._handle = self._loop.call_at(self._deadline, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if self._repeat:  # fixed rate, like a repeating QTimer: the next deadline does not drift with callbacks
            self._deadline = max(self._deadline + max(self._interval, 0.001), self._loop.time())
            self._handle = self._loop.call_at(self._deadline, self._fire)
        self._callback()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def is_active(self) -> bool:
        return self._handle is not None


class AsyncioLoop:
    """Wraps an asyncio loop: the running one (tests, embedding) or a new one that :meth:`run` drives."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.aio = loop or asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None

    def timer(self, callback: Callable[[], None], *, interval_s: float = 0.0, repeat: bool = False) -> AsyncioTimer:
        return AsyncioTimer(self.aio, callback, interval_s, repeat)

    def call_soon_threadsafe(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left to tell
            self.aio.call_soon_threadsafe(callback, *args)

    def run(self) -> None:
        asyncio.set_event_loop(self.aio)
        self._stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.aio.add_signal_handler(sig, self._stop.set)
            except (NotImplementedError, RuntimeError):  # Windows: fall back to a plain handler
                signal.signal(sig, lambda *_: self.quit())
        self.aio.run_until_complete(self._stop.wait())

    def quit(self) -> None:
        self.call_soon_threadsafe(self._request_stop)

    def _request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def close(self) -> None:
        """Cancel what is left (REST requests in flight) and close the loop."""
        if self.aio.is_running():
            return
        pending = [t for t in asyncio.all_tasks(self.aio) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            self.aio.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.aio.close()
