"""The pages one replica serves, in real headless Chromium: Hangul in the page's own web font, every time in
KST whatever the browser's time zone, a Content-Security-Policy the dashboard and /docs pass, /docs offline.

The machine may have a Korean system font (CI installs fonts-nanum), so "Hangul shows" is not enough: the
tests ask Chromium (DevTools ``CSS.getPlatformFontsForNode``) which font drew each Korean text node and
require the page's web font, with no fallback to any installed font.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from api.headers import DASHBOARD_CSP, DOCS_CSP
from kiwoom_cache.clock import KST
from tests.api.writer import Writer
from tests.browser import WEB_FONT, assert_web_font_draws_korean, open_page, web_font_faces

pytestmark = pytest.mark.integration

FEED = "kospi-surge"
HANGUL_ROW = "() => [...document.querySelectorAll('#ranking td.name .stock')].some(n => /[가-힣]/.test(n.textContent))"
#: 2026-03-02 01:02:03.456 UTC = 10:02:03 KST; 17:02:03 the day before in Los Angeles.
FIXED_MS = 1772413323456


def wait_live(page: Any) -> None:
    page.wait_for_function(HANGUL_ROW, timeout=15_000)
    page.wait_for_function("() => document.getElementById('conn').dataset.state === 'live'", timeout=15_000)
    page.wait_for_function("() => document.getElementById('session').dataset.session === 'regular'",
                           timeout=15_000)


def test_dashboard_draws_hangul_with_its_own_web_font(redis_url: str, writer: Writer, replica) -> None:
    writer.write()
    rep = replica(redis_url)
    with open_page() as (page, problems):
        page.goto(f"{rep.url}/#{FEED}")
        wait_live(page)
        assert_web_font_draws_korean(page)
        assert page.evaluate("(f) => document.fonts.check(`16px \"${f}\"`, '거래량급증 정규장')", WEB_FONT)
        assert not problems.errors and not problems.console, problems


def test_every_time_on_the_page_is_kst_in_any_browser_time_zone(redis_url: str, writer: Writer, replica) -> None:
    published_ms = FIXED_MS - 1500
    writer.write(published_at_ms=published_ms)
    rep = replica(redis_url)
    with open_page(timezone_id="America/Los_Angeles", locale="en-US") as (page, problems):
        page.clock.set_fixed_time(FIXED_MS / 1000)   # Date.now() only; timers, fetch and EventSource run as usual
        page.goto(f"{rep.url}/#{FEED}")
        wait_live(page)
        assert page.evaluate("() => new Date().getHours()") == 17   # the browser's own clock is not KST
        shown = page.evaluate("""() => ({
            log: [...document.querySelectorAll('#log li')].map(li => li.textContent),
            caption: document.getElementById('caption').textContent,
            age: document.getElementById('age').title,
        })""")
        assert shown["log"] and all(line.startswith("10:02:03 KST  ") for line in shown["log"]), shown
        published = datetime.fromtimestamp(published_ms / 1000, KST)
        assert shown["caption"].endswith(f"published {published:%H:%M:%S}.{published_ms % 1000:03d} KST"), shown
        assert shown["age"] == f"published {published:%Y-%m-%d %H:%M:%S} KST", shown
        assert not problems.errors and not problems.console, problems


def test_dashboard_works_under_its_content_security_policy(redis_url: str, writer: Writer, replica) -> None:
    writer.write()
    rep = replica(redis_url)
    with open_page() as (page, problems):
        response = page.goto(f"{rep.url}/#{FEED}")
        assert response is not None and response.headers["content-security-policy"] == DASHBOARD_CSP
        wait_live(page)
        writer.write()   # a live update too, not only the first render
        page.wait_for_function("n => Number(document.getElementById('ranking').dataset.seq) >= n", arg=2,
                               timeout=15_000)
        web_font_faces(page)
        assert problems.csp_violations(page) == [] and not problems.errors and not problems.console, problems

        # The policy is enforced, and the recorder sees violations: an inline style and an HTML string sink.
        page.evaluate("() => { const s = document.createElement('style'); s.textContent = 'body{}';"
                      " document.head.append(s); }")
        with pytest.raises(Exception, match="TrustedHTML"):
            page.evaluate("() => { document.body.innerHTML = '<b>x</b>'; }")
        page.wait_for_function("() => window.__cspViolations.length >= 2", timeout=5_000)
        directives = sorted(v["directive"] for v in problems.csp_violations(page))
        assert directives == ["require-trusted-types-for", "style-src-elem"], directives
        assert any("Content Security Policy" in text for text in problems.console), problems.console


def test_docs_serve_swagger_ui_from_the_replica_under_csp(redis_url: str, writer: Writer, replica) -> None:
    rep = replica(redis_url)
    requested: list[str] = []
    with open_page(locale="en-US") as (page, problems):
        page.on("request", lambda request: requested.append(request.url))
        response = page.goto(f"{rep.url}/docs")
        assert response is not None and response.headers["content-security-policy"] == DOCS_CSP
        page.wait_for_function("() => document.querySelectorAll('.opblock').length >= 5", timeout=20_000)
        assert "kiwoom-cache API" in page.inner_text(".info .title")
        assert page.locator(".opblock-summary-path", has_text="/v1/rankings/{feed}/events").count() == 1
        assert problems.csp_violations(page) == [] and not problems.errors and not problems.console, problems
    origin = urlsplit(rep.url).netloc
    elsewhere = [url for url in requested if not url.startswith("data:") and urlsplit(url).netloc != origin]
    assert elsewhere == [], elsewhere
    with httpx.Client(base_url=rep.url, timeout=5) as client:
        assert client.get("/redoc").status_code == 404
