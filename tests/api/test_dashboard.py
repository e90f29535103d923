"""The dashboard's server side: static files at ``/``, ``X-Kiwoom-Replica`` everywhere, the SSE ``hello`` event."""

from __future__ import annotations

import json
import os
import re
import socket
from importlib.resources import files

import httpx
import pytest
from pydantic import ValidationError

from api.app import STATIC_DIR
from api.frames import hello_frame
from api.settings import ApiSettings
from tests.api.sse_client import read_events
from tests.api.writer import Writer

EVENTS = "/v1/rankings/kospi-surge/events"


def test_replica_id_defaults_to_a_random_name_and_must_be_header_safe() -> None:
    default = ApiSettings().replica_id
    assert socket.gethostname() not in default and str(os.getpid()) not in default
    assert default != ApiSettings().replica_id and len(default) <= 16
    assert ApiSettings(replica_id="api-1").replica_id == "api-1"
    for bad in ("레플리카", "a\nb", ""):
        with pytest.raises(ValidationError):
            ApiSettings(replica_id=bad)


def test_hello_frame_has_no_id_line() -> None:
    """No ``id:``: EventSource keeps its last event id, so the next reconnect still resumes correctly."""
    assert hello_frame("api-1", None) == b'event: hello\r\ndata: {"replica":"api-1","resumed_from":null}\r\n\r\n'
    assert b"id:" not in hello_frame("api-2", "5-0") and b'"resumed_from":"5-0"' in hello_frame("api-2", "5-0")


def test_static_files_ship_with_the_package() -> None:
    """pyproject's package-data ``static/*`` puts them next to the code; the app serves from there."""
    shipped = files("api") / "static"
    for name in ("index.html", "app.js", "style.css", "favicon.svg", "noto-sans-kr-400.woff2", "noto-sans-kr-700.woff2",
                 "OFL-noto-sans-cjk.txt", "docs.js", "swagger-ui/swagger-ui-bundle.js", "swagger-ui/swagger-ui.css",
                 "swagger-ui/LICENSE"):
        assert (shipped / name).is_file() and (STATIC_DIR / name).is_file(), name


@pytest.mark.integration
@pytest.mark.parametrize("fast_path", ["true", "false"])
def test_replica_header_on_every_response(redis_url: str, writer: Writer, replica, fast_path: str) -> None:
    writer.write()
    rep = replica(redis_url, replica_id="api-7", fast_path=fast_path)
    paths = ["/", "/static/app.js", "/static/nope.js", "/healthz", "/readyz", "/metrics", "/v1/feeds",
             "/v1/rankings/kospi-surge", "/v1/rankings/nope", "/v1/rankings/kospi-surge/history?limit=1",
             "/v1/rankings/nope/events", "/v1/rankings/kospi-surge/events?last_event_id=bad", "/docs"]
    with httpx.Client(base_url=rep.url, timeout=5) as client:
        for path in paths:
            r = client.get(path)
            assert r.headers.get_list("x-kiwoom-replica") == ["api-7"], (path, r.status_code, r.headers)
        with client.stream("GET", EVENTS) as stream:
            assert stream.status_code == 200
            assert stream.headers.get_list("x-kiwoom-replica") == ["api-7"]


@pytest.mark.integration
def test_stream_opens_with_hello_naming_replica_and_resume_point(redis_url: str, writer: Writer, replica) -> None:
    ids = [writer.write() for _ in range(3)]
    rep = replica(redis_url, replica_id="api-3")
    fresh = read_events(rep.url + EVENTS, 2, hello=True)
    assert [e.event for e in fresh] == ["hello", "snapshot"]
    assert json.loads(fresh[0].data) == {"replica": "api-3", "resumed_from": None} and fresh[0].id == ""
    assert fresh[1].id == ids[-1]

    for headers, url in (({"Last-Event-ID": ids[0]}, rep.url + EVENTS),
                         ({}, f"{rep.url}{EVENTS}?last_event_id={ids[0]}")):
        resumed = read_events(url, 3, headers=headers, hello=True)
        assert json.loads(resumed[0].data) == {"replica": "api-3", "resumed_from": ids[0]}
        assert [(e.event, e.id) for e in resumed[1:]] == [("ranking", i) for i in ids[1:]]


@pytest.mark.integration
def test_dashboard_page_and_its_assets(redis_url: str, writer: Writer, replica) -> None:
    writer.write()
    rep = replica(redis_url)
    with httpx.Client(base_url=rep.url, timeout=5) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
        assert "거래량급증" in page.text and 'lang="ko"' in page.text
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
        assert sorted(assets) == ["/static/app.js", "/static/columns.js", "/static/favicon.svg", "/static/style.css"]
        kinds = {"/static/app.js": "javascript", "/static/columns.js": "javascript", "/static/style.css": "text/css",
                 "/static/favicon.svg": "image/svg+xml"}
        for asset in assets:
            r = client.get(asset)
            assert r.status_code == 200 and kinds[asset] in r.headers["content-type"], (asset, r.headers)
        # The page relies on these ids; a rename in index.html without app.js would break it silently.
        script = client.get("/static/app.js").text
        for element_id in set(re.findall(r'\$\("([a-z-]+)"\)', script)):
            assert f'id="{element_id}"' in page.text, element_id
