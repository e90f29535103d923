"""A real WebSocket client for /v1/ws (websockets' sync client), in the foreground or as a resuming thread."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.api.client_thread import ClientThread


def ws_url(http_url: str) -> str:
    return "ws" + http_url.removeprefix("http") + "/v1/ws"


class Ws:
    """One connection: send ops, receive decoded messages (skipping heartbeats)."""

    def __init__(self, http_url: str, headers: dict[str, str] | None = None) -> None:
        self._stack = contextlib.ExitStack()
        self.conn: ClientConnection = self._stack.enter_context(
            connect(ws_url(http_url), additional_headers=headers or {}, open_timeout=10))

    def send(self, **message: Any) -> None:
        self.conn.send(json.dumps(message))

    def send_raw(self, text: str) -> None:
        self.conn.send(text)

    def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        while True:
            message = json.loads(self.conn.recv(timeout=timeout))
            if message.get("event") != "ping":
                return message

    def until(self, predicate: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Messages up to and including the first that matches."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(max(0.1, deadline - time.monotonic()))
            got.append(message)
            if predicate(message):
                return got

    def close_code(self, timeout: float = 10.0) -> tuple[int | None, str | None]:
        """Read until the server closes; its close code and reason."""
        try:
            while True:
                self.conn.recv(timeout=timeout)
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            return (rcvd.code, rcvd.reason) if rcvd is not None else (None, None)

    def close(self) -> None:
        self._stack.close()


class ResumingWs(ClientThread):
    """Subscribes to feeds and, whenever the connection ends, reconnects and resubscribes with each feed's last id,
    as the client in docs/api.md does; records every feed event it receives and every hello."""

    def __init__(self, http_url: str, feeds: list[str]) -> None:
        super().__init__()
        self.url, self.feeds = http_url, feeds
        self.events: list[dict[str, Any]] = []
        self.hellos: list[str] = []
        self.last_ids: dict[str, str | None] = dict.fromkeys(feeds)

    def connection(self) -> bool:
        try:
            self._session()
        except (ConnectionClosed, OSError, TimeoutError):
            time.sleep(0.1)
        return False

    def _session(self) -> None:
        ws = Ws(self.url)
        try:
            while not self.stopping:
                message = ws.recv(timeout=30)
                event = message.get("event")
                if event == "hello":
                    with self.lock:
                        self.hellos.append(message["replica"])
                    for feed in self.feeds:
                        ws.send(op="subscribe", feed=feed, last_id=self.last_ids[feed])
                elif event in ("snapshot", "ranking", "reset"):
                    with self.lock:
                        self.events.append(message)
                        self.last_ids[message["feed"]] = message["id"]
                elif event == "error":
                    raise AssertionError(f"server error message: {message}")
        finally:
            ws.close()

    def ids(self, feed: str, kinds: tuple[str, ...] = ("ranking",)) -> list[str]:
        with self.lock:
            return [m["data"]["id"] for m in self.events if m["feed"] == feed and m["event"] in kinds]
