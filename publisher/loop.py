"""Where the publisher's timers and callbacks run, without naming the event loop.

The poller and the publisher only need one-shot and repeating timers, a way to hand a call over from
another thread (the Redis writer), and plain callbacks. OCX sources need a Qt event loop (the control
lives on the GUI thread): :mod:`publisher.qt_loop`. Sources that speak HTTP run on asyncio:
:mod:`publisher.aio_loop`, which imports no Qt at all, so such a publisher runs where PyQt5 is not
installed. :class:`Signal` is a pure-Python stand-in for Qt signals: slots run synchronously on the
emitting thread, which is always the loop's thread (cross-thread calls go through
:meth:`Loop.call_soon_threadsafe`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Signal:
    """A list of callbacks; ``emit`` calls each, in connection order."""

    __slots__ = ("_slots",)

    def __init__(self) -> None:
        self._slots: list[Callable[..., Any]] = []

    def connect(self, slot: Callable[..., Any]) -> None:
        self._slots.append(slot)

    def disconnect(self, slot: Callable[..., Any]) -> None:
        self._slots.remove(slot)

    def emit(self, *args: Any) -> None:
        for slot in list(self._slots):
            slot(*args)


class Timer(Protocol):
    def start(self, seconds: float | None = None) -> None:
        """(Re)start; ``seconds`` replaces the interval. A running timer restarts from now."""

    def stop(self) -> None: ...

    def is_active(self) -> bool: ...


class Loop(Protocol):
    """The event loop the publisher runs on."""

    def timer(self, callback: Callable[[], None], *, interval_s: float = 0.0, repeat: bool = False) -> Timer:
        """A stopped timer calling ``callback`` on the loop's thread."""

    def call_soon_threadsafe(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop's thread; callable from any thread."""

    def run(self) -> None:
        """Run until :meth:`quit`, SIGINT or SIGTERM."""

    def quit(self) -> None:
        """Make :meth:`run` return; callable from any thread."""
