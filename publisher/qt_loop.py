"""The Qt event loop behind :class:`publisher.loop.Loop`, for OCX sources (the control lives on the GUI thread)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import QCoreApplication, QObject, QTimer, pyqtSignal

#: CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT (wincon.h): Windows ends the process soon after.
CONSOLE_STOP_EVENTS = frozenset({2, 5, 6})


class QtTimer:
    def __init__(self, callback: Callable[[], None], interval_s: float, repeat: bool, parent: QObject) -> None:
        self._owner = parent  # the loop owns the QTimer: keep it alive as long as its timers
        self._timer = QTimer(parent)
        self._timer.setSingleShot(not repeat)
        self._timer.setInterval(_ms(interval_s))
        self._timer.timeout.connect(callback)

    def start(self, seconds: float | None = None) -> None:
        if seconds is not None:
            self._timer.setInterval(_ms(seconds))
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def is_active(self) -> bool:
        return bool(self._timer.isActive())


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


class QtLoop(QObject):
    """Timers are QTimers; calls from other threads are queued through a signal (Qt's AutoConnection)."""

    _call = pyqtSignal(object, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._call.connect(self._run_call)
        #: Set by :meth:`close` once the caller's clean stop (lease release) is done after :meth:`run` returned.
        self._closed = threading.Event()
        self._console_handler: Any = None

    def timer(self, callback: Callable[[], None], *, interval_s: float = 0.0, repeat: bool = False) -> QtTimer:
        return QtTimer(callback, interval_s, repeat, self)

    def call_soon_threadsafe(self, callback: Callable[..., None], *args: Any) -> None:
        self._call.emit(callback, args)

    @staticmethod
    def _run_call(callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        callback(*args)

    def run(self) -> None:
        app = QCoreApplication.instance()
        if app is None:
            raise RuntimeError("QtLoop.run() needs a QCoreApplication or QApplication")
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.quit())
        # Log-off/shutdown through Qt's session manager (GUI applications only): the same clean stop.
        commit = getattr(app, "commitDataRequest", None)
        if commit is not None:
            commit.connect(self._session_ending)
        if sys.platform == "win32":
            self._install_console_handler()
        # Python runs signal handlers only between bytecodes; an idle Qt loop never yields to it without this.
        pulse = self.timer(lambda: None, interval_s=0.2, repeat=True)
        pulse.start()
        try:
            app.exec_()
        finally:
            pulse.stop()
            if commit is not None:
                # The application outlives this loop (tests run many): a connection left behind would reach a
                # deleted loop.
                commit.disconnect(self._session_ending)

    def _session_ending(self, *_: Any) -> None:
        self.quit()

    def close(self) -> None:
        """The caller finished its clean stop: a waiting console handler may now let Windows end the process."""
        self._closed.set()

    def on_console_event(self, ctrl_type: int, wait_s: float = 4.5) -> bool:
        """Windows console close, log-off or shutdown: quit the loop (as SIGTERM does) and hold Windows off until
        :meth:`close` (the leases are released), within its ~5 s grace. Runs on a thread Windows creates."""
        if ctrl_type not in CONSOLE_STOP_EVENTS:
            return False
        self.quit()
        self._closed.wait(wait_s)
        return True

    def _install_console_handler(self) -> None:
        import ctypes  # noqa: PLC0415 - Windows only
        from ctypes import wintypes  # noqa: PLC0415

        handler_type = ctypes.WINFUNCTYPE(wintypes.BOOL, wintypes.DWORD)  # type: ignore[attr-defined]
        self._console_handler = handler_type(lambda ctrl: bool(self.on_console_event(int(ctrl))))
        ctypes.windll.kernel32.SetConsoleCtrlHandler(self._console_handler, True)  # type: ignore[attr-defined]

    def quit(self) -> None:
        app = QCoreApplication.instance()
        if app is not None:
            self.call_soon_threadsafe(app.quit)
