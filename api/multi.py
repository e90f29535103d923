"""One connection, many feeds: the loop shared by the multiplexed SSE stream and the WebSocket.

A connection holds one :class:`api.cursor.FeedCursor` per feed and one task. It waits on a private future
that each subscribed feed's shared wake-up (``FeedState.waiter``) resolves through a done-callback, as does
the hub's heartbeat (``Hub.beat``): so a connection of eight feeds costs one task and one wake-up per event,
not eight, and the shared futures are never awaited (hence never cancelled) by a connection. The task is the
only writer of its connection, so events of different feeds never interleave inside a frame and the
resume id written with each event covers everything written before it.
"""

from __future__ import annotations

import asyncio

from api.cursor import FeedCursor, Output
from api.hub import Hub
from api.ring import Client
from api.wake import Wake


class MultiOutput(Output):
    """An output that also carries the connection's heartbeat and its end."""

    __slots__ = ()

    async def ping(self) -> None:
        raise NotImplementedError

    async def end(self) -> None:
        """The replica is shutting down: close so the client reconnects (to another replica)."""
        raise NotImplementedError

    def hold(self) -> None:
        """Writes until :meth:`release` may be gathered into one (a byte stream can; messages cannot)."""

    async def release(self) -> None:
        """Write what :meth:`hold` gathered."""


class Session:
    """The feeds of one connection and the loop that writes them; subclasses add commands (api.ws)."""

    def __init__(self, hub: Hub, client: Client, out: MultiOutput) -> None:
        self.hub, self.client, self.out = hub, client, out
        self.cursors: dict[str, FeedCursor] = {}
        self.ping_due = False
        self._armed: dict[str, asyncio.Future[Wake]] = {}
        self._beat_armed: asyncio.Future[Wake] | None = None
        self._wake: asyncio.Future[None] | None = None

    # --- feeds ---------------------------------------------------------------------------------

    def add(self, cur: FeedCursor) -> None:
        self.remove(cur.feed)
        self.cursors[cur.feed] = cur
        cur.st.clients.add(self.client)

    def remove(self, feed: str) -> bool:
        cur = self.cursors.pop(feed, None)
        if cur is None:
            return False
        cur.st.clients.discard(self.client)
        fut = self._armed.pop(feed, None)
        if fut is not None:
            fut.remove_done_callback(self._fire)
        return True

    def close(self) -> None:
        for feed in list(self.cursors):
            self.remove(feed)
        if self._beat_armed is not None:
            self._beat_armed.remove_done_callback(self._on_beat)
            self._beat_armed = None

    def leave(self) -> None:
        """The peer left (the client is marked gone): drop the feeds and let the loop end."""
        self.close()
        self.poke()

    # --- wake-ups ------------------------------------------------------------------------------

    def poke(self) -> None:
        """Wake the connection's task (an event, a heartbeat, a command or a disconnect)."""
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _fire(self, _fut: asyncio.Future[Wake]) -> None:
        self.poke()

    def _on_beat(self, fut: asyncio.Future[Wake]) -> None:
        if not fut.cancelled() and fut.result() is Wake.ping:
            self.ping_due = True
        self.poke()

    async def wait(self) -> None:
        """Sleep until a feed has news, the heartbeat or shutdown comes, or :meth:`poke`."""
        self._wake = wake = self.hub.loop.create_future()
        armed = self._armed
        for feed, cur in self.cursors.items():
            fut = cur.st.waiter
            if armed.get(feed) is not fut:
                fut.add_done_callback(self._fire)
                armed[feed] = fut
        beat = self.hub.beat
        if self._beat_armed is not beat:
            beat.add_done_callback(self._on_beat)
            self._beat_armed = beat
        try:
            await wake
        finally:
            self._wake = None

    # --- the loop ------------------------------------------------------------------------------

    async def step(self) -> bool:
        """Subclass hook run before events are pumped: True if it wrote something (loop again)."""
        return False

    def finished(self) -> bool:
        return self.client.gone or self.client.dropped

    async def pump(self) -> bool:
        """One batch per feed with something due; False when no feed had anything."""
        max_batch, out = self.hub.settings.max_batch, self.out
        wrote = False
        out.hold()  # one write per wake-up, not one per feed: rankings of several feeds often come together
        try:
            for feed, cur in list(self.cursors.items()):
                if self.cursors.get(feed) is cur and await cur.pump(out, max_batch):
                    wrote = True
        finally:
            await out.release()
        return wrote

    async def run(self) -> None:
        hub, out = self.hub, self.out
        while not self.finished():
            if hub.draining:
                await out.end()
                return
            if self.ping_due:
                self.ping_due = False
                await out.ping()
                continue
            if await self.step() or await self.pump():
                continue
            await self.wait()

