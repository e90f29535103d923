"""What a replica serves to browsers, over real HTTP: security headers, /docs without a CDN, no inline code."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest

from api.app import STATIC_DIR
from api.headers import DASHBOARD_CSP, DOCS_CSP
from tests.api.writer import Writer

FEED = "kospi-surge"
PAGE_PATHS = ["/", "/static/app.js", "/static/style.css", "/static/favicon.svg", "/static/noto-sans-kr-400.woff2",
              "/static/OFL-noto-sans-cjk.txt", "/static/swagger-ui/swagger-ui-bundle.js", "/static/nope.js",
              "/openapi.json", "/v1/feeds", "/healthz", f"/v1/rankings/{FEED}/history?limit=1"]
HOT_PATHS = [f"/v1/rankings/{FEED}", "/v1/rankings/nope", f"/v1/rankings/{FEED}/events?last_event_id=bad"]
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy")


class Tags(HTMLParser):
    """Every tag with its attributes, and the text inside each <script> and <style>."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline: list[str] = []
        self._open: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open = tag if tag in ("script", "style") else None

    def handle_data(self, data: str) -> None:
        if self._open and data.strip():
            self.inline.append(f"<{self._open}>{data.strip()[:60]}")

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def urls(self) -> list[str]:
        return [value for _tag, attrs in self.tags for name, value in attrs.items()
                if name in ("src", "href") and value is not None]


def assert_no_inline_code(html: str) -> None:
    tags = Tags(html)
    assert tags.inline == [], tags.inline
    handlers = [(tag, name) for tag, attrs in tags.tags for name in attrs if name == "style" or name.startswith("on")]
    assert handlers == [], handlers
    assert not [url for url in tags.urls() if url.startswith(("javascript:", "data:"))]


def test_dashboard_files_hold_no_inline_script_or_style() -> None:
    assert_no_inline_code((STATIC_DIR / "index.html").read_text(encoding="utf-8"))
    # Trusted Types (the dashboard's CSP) forbid string HTML sinks; the page builds its DOM node by node.
    script = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function", script)


@pytest.mark.integration
@pytest.mark.parametrize("fast_path", ["true", "false"])
def test_security_headers_on_pages_and_files_not_on_hot_routes(redis_url: str, writer: Writer, replica,
                                                               fast_path: str) -> None:
    writer.write()
    rep = replica(redis_url, fast_path=fast_path)
    with httpx.Client(base_url=rep.url, timeout=5) as client:
        for path in [*PAGE_PATHS, "/docs"]:
            r = client.get(path)
            assert r.headers["x-content-type-options"] == "nosniff", (path, r.headers)
            assert r.headers["x-frame-options"] == "DENY" and r.headers["referrer-policy"] == "no-referrer", path
            assert r.headers.get_list("content-security-policy") == [DOCS_CSP if path == "/docs" else DASHBOARD_CSP]
        assert "frame-ancestors 'none'" in DASHBOARD_CSP and "frame-ancestors 'none'" in DOCS_CSP
        assert "'unsafe-inline'" not in DASHBOARD_CSP + DOCS_CSP and "'unsafe-eval'" not in DASHBOARD_CSP + DOCS_CSP
        # The fast path's JSON and SSE answers are the same whether FastAPI or the fast path serves them.
        for path in HOT_PATHS:
            r = client.get(path)
            assert not [h for h in SECURITY_HEADERS if h in r.headers], (path, r.headers)
        with client.stream("GET", f"/v1/rankings/{FEED}/events") as stream:
            assert stream.status_code == 200
            assert not [h for h in SECURITY_HEADERS if h in stream.headers]


@pytest.mark.integration
def test_static_types(redis_url: str, writer: Writer, replica) -> None:
    rep = replica(redis_url)
    kinds = {"/static/noto-sans-kr-400.woff2": "font/woff2", "/static/noto-sans-kr-700.woff2": "font/woff2",
             "/static/favicon.svg": "image/svg+xml", "/static/docs.js": "text/javascript",
             "/static/swagger-ui/swagger-ui-bundle.js": "text/javascript",
             "/static/swagger-ui/swagger-ui.css": "text/css"}
    with httpx.Client(base_url=rep.url, timeout=5) as client:
        for path, kind in kinds.items():
            r = client.get(path)
            assert r.status_code == 200 and r.headers["content-type"].split(";")[0] == kind, (path, r.headers)


@pytest.mark.integration
def test_docs_name_only_local_assets_and_each_answers(redis_url: str, writer: Writer, replica) -> None:
    rep = replica(redis_url)
    with httpx.Client(base_url=rep.url, timeout=5) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert_no_inline_code(page.text)
        urls = Tags(page.text).urls()
        assert not [u for u in urls if not u.startswith("/") or u.startswith("//")], urls   # no other host
        assert not re.search(r"https?://", page.text), page.text
        assert "/static/swagger-ui/swagger-ui-bundle.js" in urls and "/static/docs.js" in urls, urls
        for url in urls:
            assert client.get(url).status_code == 200, url
        schema_url = re.search(r'data-openapi-url="([^"]+)"', page.text)
        assert schema_url and client.get(schema_url[1]).json()["info"]["title"] == "kiwoom-cache API"
        assert client.get("/redoc").status_code == 404
        assert client.get("/docs/oauth2-redirect").status_code == 404
