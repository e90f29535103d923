"""The dashboard in a real browser (Debian's Chromium driven by Playwright) behind the balancer.

The whole stack runs (redis-server, publisher with the simulated control, two API replicas, nginx or the Python
balancer). The page must show Korean names in its own web font (no fallback to an installed font), stay within
its Content-Security-Policy, name the replica serving its stream, go to "reconnecting…" when
that replica is SIGKILLed, resume on the other one from its Last-Event-ID with no seq gap, and end up showing
the very ranking id that Redis holds in ``latest``. Screenshots land in ``test-artifacts/`` (the README's
``docs/dashboard.png`` is a copy of one, refreshed by hand so a test run never changes tracked files).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from kiwoom_cache import contract
from stack import Stack
from tests.browser import Problems, assert_web_font_draws_korean, open_page

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
FEED = "kospi-surge"
HANGUL_ROW = "() => [...document.querySelectorAll('#ranking td.name .stock')].some(n => /[가-힣]/.test(n.textContent))"

from playwright.sync_api import Page  # noqa: E402 - tests.browser skipped the module when Chromium is missing


@pytest.fixture
def browser_page() -> Iterator[tuple[Page, Problems]]:
    with open_page() as (tab, problems):
        yield tab, problems
    assert not problems.errors, f"JavaScript errors on the page: {problems.errors}"


def dom(page: Page) -> dict[str, str]:
    """What the page exposes for tests (and people): connection state, replica, ranking id and seq, gaps."""
    return page.evaluate("""() => ({
        state: document.getElementById('conn').dataset.state,
        conn: document.getElementById('conn').textContent,
        replica: document.getElementById('replica').dataset.replica || '',
        id: document.getElementById('ranking').dataset.rankingId,
        seq: document.getElementById('ranking').dataset.seq,
        gaps: document.getElementById('gaps').dataset.gaps || '',
        rows: String(document.querySelectorAll('#ranking tbody tr').length),
    })""")


def wait_state(page: Page, state: str, timeout_s: float) -> None:
    page.wait_for_function("s => document.getElementById('conn').dataset.state === s", arg=state,
                           timeout=timeout_s * 1000)


def shoot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_dashboard_survives_losing_its_replica(tmp_path: Path, browser_page: tuple[Page, Problems]) -> None:
    page, problems = browser_page
    with Stack(tmp_path / "stack", replicas=2, pace="fast") as stack:
        try:
            page.goto(f"{stack.url}/#{FEED}")
            page.wait_for_function(HANGUL_ROW, timeout=30_000)
            wait_state(page, "live", 15)
            # A steady state first: the publisher's heartbeat says alive (its first one predates the login).
            page.wait_for_function("() => document.getElementById('publisher').dataset.liveness === 'alive'",
                                   timeout=30_000)
            assert_web_font_draws_korean(page)   # Hangul in the page's own font, not boxes or a system font
            first = dom(page)
            assert first["replica"] in {r.name for r in stack.replicas}, first
            shoot(page, "dashboard-live.png")

            serving = next(r for r in stack.replicas if r.name == first["replica"])
            serving.kill()
            wait_state(page, "reconnecting", 15)
            shoot(page, "dashboard-reconnecting.png")
            # EventSource retries after the server's `retry:` advice (3 s) and sends Last-Event-ID itself.
            wait_state(page, "resumed", 30)
            resumed = dom(page)
            assert resumed["replica"] != serving.name and resumed["replica"], resumed
            assert resumed["conn"].startswith("● resumed from "), resumed
            # Live on the new replica, not just replayed: a few more rankings arrive over the resumed stream.
            page.wait_for_function("n => Number(document.getElementById('ranking').dataset.seq) >= n",
                                   arg=int(resumed["seq"]) + 3, timeout=20_000)

            # The publisher keeps writing: poll until the table shows exactly what Redis holds as latest.
            client = redis.Redis.from_url(stack.redis_url)
            try:
                deadline = time.monotonic() + 20
                while True:
                    raw = client.get(contract.latest_key(FEED))
                    latest = json.loads(raw)["id"] if raw else None
                    shown = dom(page)
                    if shown["id"] == latest:
                        break
                    assert time.monotonic() < deadline, f"table shows {shown['id']}, redis latest is {latest}"
                    time.sleep(0.1)
            finally:
                client.close()
            assert shown["gaps"] == "0", f"seq gap across the resume: {shown}"
            assert int(shown["rows"]) > 0 and shown["state"] == "resumed"
            # Behind the balancer too, the page works within its Content-Security-Policy.
            assert problems.csp_violations(page) == [], problems.csp_violations(page)
            assert not [text for text in problems.console if "Content Security Policy" in text], problems.console
            shoot(page, "dashboard.png")
        except BaseException:
            shoot(page, "dashboard-failure.png")
            raise
