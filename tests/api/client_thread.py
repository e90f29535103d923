"""The skeleton every test client that runs in a thread shares: a stop flag, a lock over what it records, and
the error that ended it (a test reads ``.error``; a dropped connection is the subclass's to handle)."""

from __future__ import annotations

import threading


class ClientThread(threading.Thread):
    """Runs :meth:`connection` until it returns True or :meth:`stop` is called; keeps any other exception."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self._stop_flag = threading.Event()

    def run(self) -> None:
        try:
            while not self._stop_flag.is_set():
                if self.connection():
                    return
        except BaseException as exc:  # anything but a dropped connection fails the test that reads .error
            self.error = exc

    def connection(self) -> bool:
        """One connection; True when the client is done, False to connect again."""
        raise NotImplementedError

    @property
    def stopping(self) -> bool:
        return self._stop_flag.is_set()

    def stop(self) -> None:
        self._stop_flag.set()
