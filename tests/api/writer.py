"""Write rankings exactly as the publisher does (the contract's Lua script), for the API tests."""

from __future__ import annotations

import threading
import time

import redis

from kiwoom_cache import contract as c

DEFAULT_FEED = "kospi-surge"


def own_fields(schema: c.RowSchema, i: int) -> dict[str, c.RowValue]:
    """Plausible values for a TR's own row fields (the opt10023 ones are the docs' example row)."""
    example: dict[str, c.RowValue] = {"prev_volume": 22532511, "surge_volume": 8571012, "surge_rate": 38.04,
                                      "volume_ratio": 138.04, "turnover_rate": 0.53, "trade_value": 4728 + i,
                                      "stock_class": "", "ask_volume": 1200, "bid_volume": 3400, "strength": 131.5,
                                      "count": 2, "now_rank": i + 1, "prev_rank": i + 3, "ask": 152100, "bid": 152000}
    return {f.name: example[f.name] for f in schema.own}


def make_ranking(feed: str = DEFAULT_FEED, n: int = 5, *, published_at_ms: int | None = None,
                 name_pad: int = 0, tr: str = "opt10023") -> c.Ranking:
    now = published_at_ms or int(time.time() * 1000)
    schema = c.row_schema_for_tr(tr)
    rows = tuple(
        c.Row(rank=i + 1, code=f"{5930 + i:06d}", name="삼성전자" + "x" * name_pad, price=152000 + i, sign=2,
              change=100, change_rate=0.07, volume=31103523 + i, own=own_fields(schema, i))
        for i in range(n)
    )
    return c.Ranking(feed=feed, tr=tr, row_schema=schema.name, params={"market": "001"}, source="sim",
                     requested_at_ms=now - 60, received_at_ms=now - 10, published_at_ms=now, rows=rows,
                     session="regular")


class Writer:
    """A publisher stand-in: registers feeds, heartbeats and writes rankings through WRITE_RANKING_LUA."""

    def __init__(self, url: str, maxlen: int = c.DEFAULT_HISTORY_MAXLEN) -> None:
        self.client = redis.Redis.from_url(url)
        self.script = self.client.register_script(c.WRITE_RANKING_LUA)
        self.maxlen = maxlen
        self.ids: list[str] = []

    # A long poll period: a ranking must not turn stale (age > 3 periods) while a loaded machine starts a replica.
    def register(self, feed: str = DEFAULT_FEED, interval_s: float = 120.0, tr: str = "opt10023") -> None:
        info = c.FeedInfo(feed=feed, title=f"{feed} title", tr=tr, params={"market": "001"},
                          interval_s=interval_s)
        self.client.hset(c.FEEDS_KEY, feed, info.encode())

    # A long period: one heartbeat must not turn late (stale) while a loaded machine starts a replica.
    def heartbeat(self, state: str = "running", ttl_s: float = 300.0, *, at_ms: int | None = None,
                  heartbeat_s: float = 120.0, feeds: dict[str, dict[str, object]] | None = None) -> None:
        now = int(time.time() * 1000)
        status = c.PublisherStatus(state=state, source="sim", account_mode=None, version="test", host="localhost",
                                   pid=1, started_at_ms=now - 1000, heartbeat_at_ms=at_ms or now,
                                   last_success_ms=now, heartbeat_s=heartbeat_s, session="regular",
                                   feeds=feeds or {})
        self.client.set(c.STATUS_KEY, status.encode(), px=int(ttl_s * 1000))

    def write(self, feed: str = DEFAULT_FEED, n: int = 5, **kw: object) -> str:
        keys, args = c.write_ranking_args(make_ranking(feed, n, **kw), self.maxlen)  # type: ignore[arg-type]
        rid = self.script(keys=keys, args=args)[0]
        rid = rid.decode()
        self.ids.append(rid)
        return rid

    def close(self) -> None:
        self.client.close()


class BackgroundWriter(threading.Thread):
    """Writes a ranking every ``period`` seconds until stopped; survives Redis outages (counts failures)."""

    def __init__(self, url: str, feed: str = DEFAULT_FEED, period: float = 0.05, n: int = 5,
                 name_pad: int = 0) -> None:
        super().__init__(daemon=True)
        self.writer = Writer(url)
        self.feed, self.period, self.n, self.name_pad = feed, period, n, name_pad
        self.stop_event = threading.Event()
        self.failures = 0
        self.lock = threading.Lock()

    @property
    def ids(self) -> list[str]:
        with self.lock:
            return list(self.writer.ids)

    def run(self) -> None:
        while not self.stop_event.wait(self.period):
            try:
                with self.lock:
                    self.writer.write(self.feed, self.n, name_pad=self.name_pad)
            except (redis.RedisError, OSError):
                self.failures += 1

    def stop(self) -> list[str]:
        self.stop_event.set()
        self.join(10)
        self.writer.close()
        return self.ids
