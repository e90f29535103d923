"""History paging from the stream against a real replica."""

from __future__ import annotations

import json

import httpx
import pytest

from api.models import HistoryPageModel
from kiwoom_cache import contract as c
from tests.api.sse_client import read_events
from tests.api.writer import Writer

pytestmark = pytest.mark.integration


def _walk(url: str, params: dict[str, object]) -> list[str]:
    ids: list[str] = []
    next_url: str | None = url
    first = True
    while next_url:
        r = httpx.get(next_url, params=params if first else None)
        assert r.status_code == 200, r.text
        page = HistoryPageModel.model_validate(r.json())
        assert page.count == len(page.items) <= page.limit
        ids += [item.id for item in page.items]
        next_url, first = page.next, False
    return ids


def test_history_pages_both_orders(redis_url: str, writer: Writer, replica) -> None:
    ids = [writer.write() for _ in range(12)]
    rep = replica(redis_url)
    url = rep.url + "/v1/rankings/kospi-surge/history"
    assert _walk(url, {"limit": 5}) == ids[::-1]
    assert _walk(url, {"limit": 5, "order": "asc"}) == ids
    assert _walk(url, {"limit": 4, "order": "asc", "after": ids[5]}) == ids[6:]
    assert _walk(url, {"limit": 4, "before": ids[5]}) == ids[:5][::-1]
    default = httpx.get(url).json()
    assert default["order"] == "desc" and default["limit"] == 50 and default["next"] is None


def test_history_since_until(redis_url: str, writer: Writer, replica) -> None:
    old = [writer.write() for _ in range(3)]
    cut_ms = int(old[-1].split("-")[0]) + 1000
    new = [writer.write(published_at_ms=cut_ms + i) for i in range(2)]
    writer.client.close()
    rep = replica(redis_url)
    url = rep.url + "/v1/rankings/kospi-surge/history"
    # ids are assigned by Redis time, so query around what it actually assigned
    since = int(new[0].split("-")[0])
    got = [d["id"] for d in httpx.get(url, params={"since": since, "order": "asc"}).json()["items"]]
    assert got == [i for i in old + new if int(i.split("-")[0]) >= since]
    iso = httpx.get(url, params={"since": "2000-01-01T00:00:00+09:00", "until": old[0].split("-")[0]}).json()
    assert [d["id"] for d in iso["items"]] == [old[0]] or old[0] in [d["id"] for d in iso["items"]]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"limit": "x"}, {"after": "nope"},
                                    {"since": "yesterday"}, {"order": "sideways"}])
def test_history_bad_params_422(redis_url: str, writer: Writer, replica, params: dict[str, object]) -> None:
    writer.write()
    rep = replica(redis_url)
    r = httpx.get(rep.url + "/v1/rankings/kospi-surge/history", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][0] == "query"


def test_history_key_that_is_not_a_stream_is_a_contract_fault(redis_url: str, writer: Writer, replica) -> None:
    """Issue 22 item 5: a history key of another type answered 503 "redis unavailable" though Redis was up,
    and a resuming client got headers, then a close. Now: 502 naming the key, a reset for the resume, the
    snapshot still served and the fault shown in /v1/feeds."""
    rid = writer.write()
    rep = replica(redis_url)
    base = f"{rep.url}/v1/rankings/kospi-surge"
    assert httpx.get(base).json()["id"] == rid
    key = c.history_key("kospi-surge")
    writer.client.delete(key)
    writer.client.set(key, "not a stream")
    r = httpx.get(base + "/history")
    assert r.status_code == 502 and r.json()["reason"] == f"{key} is not a stream", r.text
    resumed = read_events(base + "/events", 1, headers={"Last-Event-ID": "1-0"})  # older than the ring: a replay
    assert resumed[0].event == "reset" and json.loads(resumed[0].data)["reset_reason"] == "epoch"
    assert httpx.get(base).json()["id"] == rid
    feed = httpx.get(rep.url + "/v1/feeds").json()["feeds"][0]
    assert feed["error"] == f"{key} is not a stream"
