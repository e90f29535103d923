"""The hub's one timer (every 0.25 s): slow-client eviction, the heartbeat, the server's exit signal, and
``gc.freeze()`` shortly after each burst, which moves the thousands of long-lived connection objects out of the
collector's view so full collections do not scan them in the middle of the next fan-out."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Protocol

from api.eviction import Evictor
from api.ring import FeedState
from api.settings import ApiSettings
from api.wake import Wake

log = logging.getLogger(__name__)


class TickHost(Protocol):
    feeds: dict[str, FeedState]
    draining: bool
    exit_requested: bool

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def client_count(self) -> int: ...


class Ticker:
    def __init__(self, settings: ApiSettings, host: TickHost, evictor: Evictor) -> None:
        self.settings = settings
        self.host = host
        self.evictor = evictor
        self._freeze_at = 0.0
        self._full_gc_at = 0.0
        #: Resolved with Wake.ping by the heartbeat and Wake.close on shutdown: what connections carrying several feeds
        #: (api.multi) wait on beside their feeds' wake-ups. Created when first asked for.
        self._beat: asyncio.Future[Wake] | None = None

    @property
    def beat(self) -> asyncio.Future[Wake]:
        if self._beat is None or self._beat.cancelled():
            self._beat = self.host.loop.create_future()
        return self._beat

    def wake(self, signal: Wake) -> None:
        """Every feed's wake-up and the beat, with Wake.ping or Wake.close."""
        for st in self.host.feeds.values():
            st.wake(signal)
        fut, self._beat = self._beat, None
        if fut is not None and not fut.done():
            fut.set_result(signal)

    def burst(self) -> None:
        """Frames were fanned out: freeze the collector's view shortly after the burst."""
        if self.settings.gc_freeze and not self._freeze_at:
            self._freeze_at = self.host.loop.time() + 0.2

    async def run(self) -> None:
        host, loop = self.host, self.host.loop
        self._full_gc_at = loop.time()
        next_ping = loop.time() + self.settings.ping_s
        next_queue_check = loop.time() + 1.0
        while not host.draining:
            await asyncio.sleep(0.25)
            now = loop.time()
            check_queues = now >= next_queue_check
            if check_queues:
                next_queue_check = now + 1.0
            self.evictor.sweep(host.feeds.values(), now, check_queues)
            if now >= next_ping:
                next_ping = now + self.settings.ping_s
                self.wake(Wake.ping)
            if host.exit_requested and not host.draining:
                log.info("server is shutting down: ending %d event streams", host.client_count)
                host.draining = True
                self.wake(Wake.close)
            if self._freeze_at and now >= self._freeze_at:
                self._freeze_at = 0.0
                if now - self._full_gc_at > 300.0:  # now and then, collect what got frozen
                    self._full_gc_at = now
                    gc.unfreeze()
                    gc.collect()
                gc.freeze()
