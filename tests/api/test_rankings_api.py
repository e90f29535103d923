"""Every ranking TR through a real replica: /v1/feeds names each feed's TR, row schema and fields; snapshot (with
``?fields=`` checked against the feed's TR), history and SSE carry each TR's rows; the OpenAPI schema
describes each TR's row fields."""

from __future__ import annotations

import json

import httpx
import pytest

from api.models import FeedsModel, HistoryPageModel, SnapshotModel
from kiwoom_cache import contract as c
from tests.api.sse_client import Collector, read_events
from tests.api.writer import Writer
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

#: feed -> TR, one feed per TR.
FEEDS = {"surge": "opt10023", "volume": "opt10030", "gainers": "opt10027", "value": "opt10032"}


@pytest.fixture
def rep(redis_url: str, writer: Writer, replica):
    writer.heartbeat()
    for feed, tr in FEEDS.items():
        writer.register(feed, tr=tr)
        writer.write(feed, tr=tr)
    return replica(redis_url)


def test_feeds_name_each_tr_its_row_schema_and_fields(rep) -> None:
    body = httpx.get(rep.url + "/v1/feeds").json()
    FeedsModel.model_validate(body)
    got = {f["feed"]: (f["tr"], f["row_schema"], f["fields"]) for f in body["feeds"] if f["feed"] in FEEDS}
    assert got == {feed: (tr, c.row_schema_for_tr(tr).name.value, list(c.row_schema_for_tr(tr).field_names))
                   for feed, tr in FEEDS.items()}


@pytest.mark.parametrize(("feed", "tr"), FEEDS.items())
def test_snapshot_and_history_of_each_tr(rep, writer: Writer, feed: str, tr: str) -> None:
    schema = c.row_schema_for_tr(tr)
    doc = httpx.get(f"{rep.url}/v1/rankings/{feed}").json()
    SnapshotModel.model_validate(doc)
    assert (doc["tr"], doc["row_schema"], doc["schema"]) == (tr, schema.name.value, c.SCHEMA_VERSION)
    assert all(list(row) == list(schema.field_names) for row in doc["rows"])
    own = schema.own[-1].name
    picked = httpx.get(f"{rep.url}/v1/rankings/{feed}", params={"fields": f"code,{own}", "limit": 2}).json()
    assert [list(r) for r in picked["rows"]] == [["rank", "code", own]] * 2
    second = writer.write(feed, tr=tr)
    wait_until(lambda: httpx.get(f"{rep.url}/v1/rankings/{feed}").json()["id"] == second, what="the new ranking")
    page = httpx.get(f"{rep.url}/v1/rankings/{feed}/history").json()
    HistoryPageModel.model_validate(page)
    assert [item["row_schema"] for item in page["items"]] == [schema.name.value] * 2
    assert all(list(row) == list(schema.field_names) for item in page["items"] for row in item["rows"])


def test_fields_of_another_tr_are_a_clear_422(rep) -> None:
    r = httpx.get(f"{rep.url}/v1/rankings/surge", params={"fields": "code,trade_value"})
    assert r.status_code == 422
    msg = r.json()["detail"][0]["msg"]
    assert msg == ("this feed's rows have no trade_value; its fields are rank, code, name, price, sign, change, "
                   "change_rate, volume, prev_volume, surge_volume, surge_rate")
    r = httpx.get(f"{rep.url}/v1/rankings/value", params={"fields": "bogus"})
    assert r.status_code == 422 and "trade_value" in r.json()["detail"][0]["msg"]
    assert httpx.get(f"{rep.url}/v1/rankings/value", params={"fields": "trade_value"}).status_code == 200


@pytest.mark.parametrize(("feed", "tr"), FEEDS.items())
def test_events_of_each_tr(rep, writer: Writer, feed: str, tr: str) -> None:
    schema = c.row_schema_for_tr(tr)
    collector = Collector(f"{rep.url}/v1/rankings/{feed}/events")
    collector.start()
    wait_until(lambda: collector.events, what="the snapshot event")
    later = writer.write(feed, tr=tr)
    wait_until(lambda: collector.has(later), what="the live ranking")
    collector.stop()
    kinds = [e.event for e in collector.events]
    assert kinds[:2] == ["snapshot", "ranking"]
    for event in collector.events[:2]:
        doc = json.loads(event.data)
        assert (doc["tr"], doc["row_schema"]) == (tr, schema.name.value)
        assert c.decode_ranking(event.data).rows[0].own.keys() == {f.name for f in schema.own}
    resumed = read_events(f"{rep.url}/v1/rankings/{feed}/events", 1,
                          headers={"Last-Event-ID": collector.events[0].id})
    assert resumed[0].id == collector.events[1].id, "resume works the same for every TR"


def test_openapi_describes_each_trs_row_fields(rep) -> None:
    schemas = httpx.get(rep.url + "/openapi.json").json()["components"]["schemas"]
    for name, schema in c.ROW_SCHEMAS.items():
        model = schemas["".join(p.title() for p in name.value.split("_")) + "Row"]
        assert list(model["properties"]) == list(schema.field_names)
        assert schema.tr in model["description"]
        for f in schema.fields:
            assert model["properties"][f.name]["description"] == f.doc
    assert "row_schema" in schemas["SnapshotModel"]["properties"]
