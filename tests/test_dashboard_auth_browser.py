"""The dashboard with API keys on, in Debian's Chromium behind the balancer: sign in once, then live and resumable.

The page has no key of its own: ``/`` redirects to the login form, the key typed there becomes an HttpOnly
cookie, and the page's ``fetch`` and ``EventSource`` calls (and EventSource's reconnects with ``Last-Event-ID``)
carry it. Page scripts never see the key, and the console must report no Content-Security-Policy violation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack import Stack
from tests.browser import Problems, open_page
from tests.test_dashboard_browser import HANGUL_ROW, shoot, wait_state

pytestmark = pytest.mark.integration

FEED = "kospi-surge"
KEY = "kc_browser-" + "k" * 40

from playwright.sync_api import Page  # noqa: E402 - tests.browser skipped the module when Chromium is missing


@pytest.fixture
def page() -> Iterator[Page]:
    with open_page() as (tab, problems):
        yield tab
        violations = Problems.csp_violations(tab)
    assert not problems.errors, f"JavaScript errors on the page: {problems.errors}"
    assert not violations, f"CSP violations: {violations}"
    assert not [m for m in problems.console if "Content Security Policy" in m], problems.console


def test_dashboard_with_auth_signs_in_streams_and_resumes(tmp_path: Path, page: Page) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[[keys]]\nname = "browser"\nsha256 = "{hashlib.sha256(KEY.encode()).hexdigest()}"\n'
                    f'feeds = ["{FEED}"]\n')
    with Stack(tmp_path / "stack", replicas=2, pace="fast", api_env={"KIWOOM_API_AUTH_KEYS_FILE": str(keys)}) as stack:
        try:
            page.goto(f"{stack.url}/")
            assert page.url == f"{stack.url}/login"  # no cookie yet: the form, not a broken page
            page.fill("#key", "kc_wrong")
            page.click("button[type=submit]")
            page.wait_for_selector("text=That key is not valid.")
            page.fill("#key", KEY)
            page.click("button[type=submit]")
            page.wait_for_url(f"{stack.url}/**")
            page.wait_for_function(HANGUL_ROW, timeout=30_000)
            wait_state(page, "live", 15)
            assert page.evaluate("() => document.cookie") == "", "the key cookie is HttpOnly"
            assert page.evaluate("() => document.getElementById('ranking').dataset.feed") == FEED
            shoot(page, "dashboard-auth-live.png")

            serving = page.evaluate("() => document.getElementById('replica').dataset.replica")
            next(r for r in stack.replicas if r.name == serving).kill()
            wait_state(page, "resumed", 30)  # EventSource reconnected with the cookie and its Last-Event-ID
            resumed = page.evaluate("""() => ({replica: document.getElementById('replica').dataset.replica,
                                              gaps: document.getElementById('gaps').dataset.gaps})""")
            assert resumed["replica"] != serving and resumed["gaps"] == "0", resumed
            shoot(page, "dashboard-auth-resumed.png")
        except BaseException:
            shoot(page, "dashboard-auth-failure.png")
            raise
