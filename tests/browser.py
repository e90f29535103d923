"""Headless Chromium for the page tests: Debian's /usr/bin/chromium driven by Playwright (never a download).

:func:`open_page` yields a page whose problems are collected rather than lost: uncaught JavaScript errors,
console errors and every Content-Security-Policy violation (the ``securitypolicyviolation`` DOM event,
recorded by an init script that runs in each document before the page's own scripts; Playwright's
``add_init_script`` is not subject to the page's CSP).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.tools import CHROMIUM, Tool, skip_unless

#: Without the background-networking flags Chromium opens update/sync connections that a closed network refuses.
#: Playwright adds --headless and a fresh temporary --user-data-dir itself.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

WEB_FONT = "Noto Sans KR Subset"          # the @font-face family in api/static/style.css
FONT_FILE_FAMILY = "Noto Sans CJK KR"     # the family name inside the subset files
#: Korean text in both weights: 400 (title suffix) and 600 -> the bold face (headers, names, session).
KOREAN_NODES = ["h1 .sub", "#ranking thead th", "#ranking td.name .stock", "#session"]

RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push({directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile,
                               line: e.lineNumber, sample: e.sample});
});
"""

skip_unless(Tool.CHROMIUM)

from playwright.sync_api import ConsoleMessage, Page, sync_playwright  # noqa: E402 - only with Chromium


@dataclass
class Problems:
    """What went wrong on the page: JavaScript errors, console errors, CSP violations."""

    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    @staticmethod
    def csp_violations(page: Page) -> list[dict[str, Any]]:
        """The violations the current document reported (Chromium also logs each as a console error)."""
        seen: list[dict[str, Any]] = page.evaluate("() => window.__cspViolations || []")
        return seen


@contextmanager
def open_page(*, timezone_id: str = "Asia/Seoul", locale: str = "ko-KR") -> Iterator[tuple[Page, Problems]]:
    problems = Problems()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.console.append(message.text)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=locale,
                                          timezone_id=timezone_id)
            context.add_init_script(RECORD_CSP_VIOLATIONS)
            page = context.new_page()
            page.on("pageerror", lambda exc: problems.errors.append(str(exc)))
            page.on("console", on_console)
            yield page, problems
        finally:
            browser.close()


def web_font_faces(page: Page) -> list[list[str]]:
    """``[weight, status]`` of each @font-face of the page's Korean family, once every font load settled."""
    return page.evaluate("""async (family) => {
        await document.fonts.ready;
        return [...document.fonts].filter(f => f.family.replace(/"/g, '') === family)
                                  .map(f => [f.weight, f.status]);
    }""", WEB_FONT)


def fonts_drawing(page: Page, selector: str) -> list[dict[str, Any]]:
    """The fonts Chromium used for the text of every node matching ``selector`` (DevTools protocol).

    A live page replaces its rows on every ranking, faster than a slow machine answers one lookup per row;
    so the page's scripts are paused (the debugger stops them at their next statement) while the fonts are
    read, and the DOM holds still.
    """
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")   # before the pause: enabling waits on the page's style sheets
        cdp.send("Debugger.enable")
        cdp.send("Debugger.pause")
        root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
        nodes = cdp.send("DOM.querySelectorAll", {"nodeId": root, "selector": selector})["nodeIds"]
        assert nodes, f"no node matches {selector}"
        per_node = [cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"] for node in nodes]
        assert all(per_node), f"a {selector} text was not drawn: {per_node}"
        return [font for fonts in per_node for font in fonts]
    finally:
        cdp.send("Debugger.disable")   # also resumes the page
        cdp.detach()


def assert_web_font_draws_korean(page: Page) -> None:
    """Both faces of the page's font loaded, and they alone drew the Korean text: no installed font filled in.

    Chromium reports the fonts that drew each text node (``isCustomFont`` is true for a web font); a glyph
    missing from the web font would show up as a fallback to a system font here, or as boxes without one.
    """
    faces = web_font_faces(page)
    assert sorted(faces) == [["100 500", "loaded"], ["600 900", "loaded"]], faces
    for selector in KOREAN_NODES:
        used = fonts_drawing(page, selector)
        assert used and all(f["isCustomFont"] and f["familyName"] == FONT_FILE_FAMILY for f in used), \
            (selector, used)
