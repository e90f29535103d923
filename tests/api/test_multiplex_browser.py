"""Eight feeds on one dashboard page over one WebSocket, in real headless Chromium: switching feeds shows each
feed's newest ranking and its live updates without opening another connection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kiwoom_cache import contract
from tests.api.writer import DEFAULT_FEED, Writer
from tests.browser import open_page

pytestmark = pytest.mark.integration

FEEDS = [DEFAULT_FEED, *(f"feed-{i}" for i in range(1, 8))]  # the writer fixture registers DEFAULT_FEED


def shown(page: Any) -> dict[str, str]:
    return page.evaluate("""() => ({feed: document.getElementById('ranking').dataset.feed,
                                   id: document.getElementById('ranking').dataset.rankingId,
                                   state: document.getElementById('conn').dataset.state})""")


def test_eight_feeds_on_one_page_over_one_connection(redis_url: str, writer: Writer, replica) -> None:
    for feed in FEEDS:
        writer.register(feed)
        writer.write(feed)
    rep = replica(redis_url)
    sockets: list[str] = []
    streams: list[str] = []
    with open_page() as (page, problems):
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.on("request", lambda r: streams.append(r.url) if "/events" in r.url else None)
        page.goto(f"{rep.url}/#{FEEDS[0]}")
        page.wait_for_function("() => document.getElementById('conn').dataset.feeds === '8'", timeout=20_000)
        for feed in [*FEEDS[1:], FEEDS[0]]:
            page.select_option("#feed", feed)
            latest = json.loads(writer.client.get(contract.latest_key(feed)))["id"]
            page.wait_for_function("([f, id]) => document.getElementById('ranking').dataset.feed === f && "
                                   "document.getElementById('ranking').dataset.rankingId === id",
                                   arg=[feed, latest], timeout=15_000)
            fresh = writer.write(feed)  # live, over the same socket
            page.wait_for_function("id => document.getElementById('ranking').dataset.rankingId === id",
                                   arg=fresh, timeout=15_000)
            assert shown(page)["state"] == "live", shown(page)
        assert sockets == [rep.url.replace("http", "ws", 1) + "/v1/ws"], sockets
        assert streams == [], "no EventSource besides the one socket"
        assert problems.csp_violations(page) == [], problems.csp_violations(page)
        assert not problems.errors and not problems.console, problems
