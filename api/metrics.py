"""Prometheus metrics read from plain counters at scrape time.

The hot paths only bump ints and one list slot (no prometheus_client lock per event or request); a
custom collector turns them into metric families when ``/metrics`` is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from api.connections import CONNECTIONS
from api.deadline import COUNTERS as DEADLINES
from api.hub import Hub

BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class RouteLatency:
    """One route's buckets and sum; a hot path holds this object, so an observation is no dict lookup."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds


class LatencyHistogram:
    """Request latency per route, bucketed without locks (one event loop thread updates it)."""

    def __init__(self) -> None:
        self.routes: dict[str, RouteLatency] = {}

    def route(self, name: str) -> RouteLatency:
        latency = self.routes.get(name)
        if latency is None:
            latency = self.routes[name] = RouteLatency()
        return latency

    def observe(self, route: str, seconds: float) -> None:
        self.route(route).observe(seconds)


class ApiCollector(Collector):
    def __init__(self, get_hub: Callable[[], Hub | None], latency: LatencyHistogram,
                 get_rejected: Callable[[], int]) -> None:
        self._get_hub = get_hub
        self._latency = latency
        self._get_rejected = get_rejected

    def collect(self) -> Iterator[Metric]:
        hub = self._get_hub()
        clients = GaugeMetricFamily("kiwoom_api_sse_clients",
                                    "Connected event-stream clients per feed (SSE, multiplexed SSE, WebSocket)",
                                    labels=["feed"])
        multi = GaugeMetricFamily("kiwoom_api_multiplexed_connections",
                                  "Open connections carrying several feeds (/v1/events, /v1/ws)", labels=["transport"])
        sent = CounterMetricFamily("kiwoom_api_sse_events_sent", "Events written to SSE clients (replay included)")
        dropped = CounterMetricFamily("kiwoom_api_sse_dropped_slow_clients",
                                      "SSE clients dropped because their socket stopped draining")
        resets = CounterMetricFamily("kiwoom_api_sse_resets", "reset events sent (id expired/unknown, client behind)")
        reconnects = CounterMetricFamily("kiwoom_api_redis_reconnects", "Redis subscription re-establishments")
        bad = CounterMetricFamily("kiwoom_api_contract_errors", "Documents in Redis that broke the contract")
        ready = GaugeMetricFamily("kiwoom_api_redis_subscription_live", "1 while the Redis subscription is live")
        restarts = CounterMetricFamily("kiwoom_api_stream_restarts",
                                       "Times a feed's history was found lost or replaced (new epoch, ids backwards)")
        stalled = GaugeMetricFamily("kiwoom_api_feed_stalled",
                                    "1 while the publisher reports a newer ranking than this replica holds",
                                    labels=["feed"])
        rejected = CounterMetricFamily("kiwoom_api_connections_rejected",
                                       "Requests answered 503 because the replica was at its connection cap")
        if hub is not None:
            for feed, st in sorted(hub.feeds.items()):
                clients.add_metric([feed], len(st.clients))
                stalled.add_metric([feed], 1.0 if hub.stalled(st) else 0.0)
            counters = hub.counters
            multi.add_metric(["sse"], counters.mux_connections)
            multi.add_metric(["ws"], counters.ws_connections)
            sent.add_metric([], counters.events_sent)
            dropped.add_metric([], counters.dropped)
            resets.add_metric([], counters.resets)
            reconnects.add_metric([], hub.reconnects)
            bad.add_metric([], hub.contract_errors)
            restarts.add_metric([], hub.restarts)
            ready.add_metric([], 1.0 if hub.live else 0.0)
        rejected.add_metric([], self._get_rejected())
        yield from (clients, multi, sent, dropped, resets, reconnects, bad, ready, restarts, stalled, rejected)
        yield from _connection_metrics()
        latency = HistogramMetricFamily("kiwoom_api_request_seconds", "Request latency (SSE: until headers sent)",
                                        labels=["route"])
        for route, observed in sorted(self._latency.routes.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*map(str, BUCKETS), "+Inf"), observed.counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([route], buckets, observed.total)
        yield latency


#: Connection accounting below ASGI (api.deadline, api.connections): (kind, name, help, value).
_CONNECTION_METRICS: Final[tuple[tuple[type[CounterMetricFamily | GaugeMetricFamily], str, str,
                                       Callable[[], float]], ...]] = (
    (CounterMetricFamily, "kiwoom_api_request_head_timeouts",
     "Connections closed with 408: request head not complete in time", lambda: DEADLINES.expired),
    (CounterMetricFamily, "kiwoom_api_request_body_timeouts",
     "Connections closed: request body not complete in time", lambda: DEADLINES.body.count),
    (GaugeMetricFamily, "kiwoom_api_open_connections",
     "Open client connections (HTTP, keep-alive and WebSocket)", lambda: CONNECTIONS.open),
    (CounterMetricFamily, "kiwoom_api_connections_shed",
     "Connections still sending their request closed (408) to keep the probes' reserve",
     lambda: CONNECTIONS.shed.count),
    (CounterMetricFamily, "kiwoom_api_connections_refused",
     "Connections answered 503 at once: at the descriptor reserve, none to shed", lambda: CONNECTIONS.refused.count),
    (CounterMetricFamily, "kiwoom_api_accept_errors",
     "accept() failures reported by the event loop (EMFILE, ENFILE, ...)", lambda: CONNECTIONS.accept_errors.count),
)


def _connection_metrics() -> Iterator[Metric]:
    for kind, name, text, value in _CONNECTION_METRICS:
        family = kind(name, text)
        family.add_metric([], value())
        yield family


def build_registry(get_hub: Callable[[], Hub | None], latency: LatencyHistogram,
                   get_rejected: Callable[[], int] = lambda: 0) -> CollectorRegistry:
    """A registry per app (tests run several apps in one process): our collector plus process metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ApiCollector(get_hub, latency, get_rejected))
    ProcessCollector(registry=registry)
    return registry
