"""The dashboard in real headless Chromium with one feed per ranking TR: the picker lists every feed with its TR,
and the table's columns follow the feed's row schema (api/static/columns.js), header and cells alike."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.writer import Writer
from tests.browser import open_page

pytestmark = pytest.mark.integration

CORE = ["순위", "변동", "종목", "현재가", "전일대비", "등락률"]
#: feed -> (TR, the TR's own column headers after the core ones, the sparkline header, a cell shown).
FEEDS = {
    "surge": ("opt10023", ["급증량", "급증률"], "급증량 추이", "+38.04%"),
    "volume": ("opt10030", ["거래량", "전일비", "회전율", "거래금액(백만)"], "거래량 추이", "138.04%"),
    "gainers": ("opt10027", ["거래량", "매도잔량", "매수잔량", "체결강도"], "등락률 추이", "131.50%"),
    "value": ("opt10032", ["거래대금(백만)", "거래량", "전일거래량", "전일순위"], "거래대금 추이", "4,728"),
}


def table(page: Any) -> dict[str, Any]:
    return page.evaluate("""() => {
        const t = document.getElementById('ranking');
        const first = t.tBodies[0].rows[0];
        return {
            feed: t.dataset.feed, schema: t.dataset.rowSchema || '', id: t.dataset.rankingId,
            head: [...t.tHead.rows[0].cells].map(th => th.textContent),
            cells: first ? [...first.cells].map(td => td.textContent) : [],
            caption: document.getElementById('caption').textContent,
            options: [...document.getElementById('feed').options].map(o => [o.value, o.textContent]),
        };
    }""")


def test_columns_follow_each_feeds_tr(redis_url: str, writer: Writer, replica) -> None:
    writer.heartbeat()
    for feed, (tr, *_rest) in FEEDS.items():
        writer.register(feed, tr=tr)
        writer.write(feed, tr=tr)
    rep = replica(redis_url)
    with open_page() as (page, problems):
        page.goto(f"{rep.url}/#surge")
        page.wait_for_function("() => document.getElementById('feed').options.length >= 4", timeout=15_000)
        options = dict(table(page)["options"])
        for feed, (tr, *_rest) in FEEDS.items():
            assert options[feed] == f"{feed} title ({feed} · {tr})", options
        for feed, (tr, own, spark, cell) in FEEDS.items():
            page.select_option("#feed", feed)
            page.wait_for_function("f => { const t = document.getElementById('ranking'); return t.dataset.feed === f"
                                   " && t.dataset.rankingId !== '' && t.tBodies[0].rows.length > 0; }", arg=feed,
                                   timeout=15_000)
            shown = table(page)
            assert shown["head"] == [*CORE, *own, spark], (feed, shown["head"])
            assert len(shown["cells"]) == len(shown["head"]), (feed, shown["cells"])
            assert cell in shown["cells"], (feed, shown["cells"])
            assert shown["cells"][2] == "삼성전자005930" and shown["cells"][3] == "152,000"
            assert tr in shown["caption"] and shown["schema"], shown["caption"]
        assert not problems.errors and not problems.console, problems
