"""Slow-client eviction: a client whose send blocks, or whose socket stops draining, is dropped at once.

Memory stays bounded whatever clients do: at most ``max_batch`` frames buffered in a client's transport, and
a client that takes no bytes for ``send_timeout_s`` while some wait (server buffer + kernel send queue,
:mod:`api.slow`) or has more than ``slow_client_bytes`` queued is aborted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from api.ring import Client, FeedState, StreamCounters
from api.settings import ApiSettings
from api.slow import queued_bytes

log = logging.getLogger(__name__)


class Evictor:
    def __init__(self, settings: ApiSettings, counters: StreamCounters) -> None:
        self.settings = settings
        self.counters = counters

    def sweep(self, feeds: Iterable[FeedState], now: float, check_queues: bool) -> None:
        """One pass of the tick: sends blocked too long, and (about once a second) the queues."""
        limit = self.settings.send_timeout_s
        for st in feeds:
            for client in list(st.clients):
                if client.dropped:
                    continue
                if client.send_since and now - client.send_since > limit:
                    self.drop(client, f"a send blocked for {now - client.send_since:.1f}s")
                elif check_queues and client.transport is not None and now >= client.check_at:
                    self._check_queue(client, now)

    def _check_queue(self, client: Client, now: float) -> None:
        """Bytes queued for the peer (server buffer + kernel send queue): too many, or none taken for
        send_timeout_s while some wait, and the client is dropped."""
        assert client.transport is not None
        queued = queued_bytes(client.transport)
        # The kernel's queue costs a syscall per client (at 4,000 clients a tenth of the replica's CPU when
        # read every second): a client that had nothing queued is looked at again after half the timeout,
        # one with bytes queued every second. A stall is still dropped within about 1.5 x send_timeout_s + 1 s.
        client.check_at = now + (1.0 if queued else max(1.0, self.settings.send_timeout_s / 2))
        if queued > self.settings.slow_client_bytes:
            self.drop(client, f"{queued} bytes queued")
            return
        delivered = client.written - queued
        if queued == 0 or delivered > client.delivered:
            client.delivered, client.progress_at = delivered, now
        elif now - client.progress_at > self.settings.send_timeout_s:
            self.drop(client, f"{queued} bytes queued and none taken for {now - client.progress_at:.1f}s")

    def drop(self, client: Client, why: str) -> None:
        """Release a slow client at once: abort its connection (fd and buffers freed now, no close that waits
        for a peer that never reads); its stream loop ends at the next wake-up."""
        client.dropped = True
        self.counters.dropped += 1
        log.info("dropped a slow event-stream client: %s", why)
        if client.transport is not None:
            client.transport.abort()
        elif client.task is not None:
            client.task.cancel()  # no transport to abort: the task is inside send(), so cancel it there
