"""The contract's exact strings and codecs: operators and both sides rely on these."""

from __future__ import annotations

import dataclasses
import json
import re

import fakeredis
import pytest

import kiwoom_cache
from kiwoom_cache import contract as c
from kiwoom_cache import document, events, keys, leases, registry, rows, scripts, status
from kiwoom_cache.errors import ContractError
from kiwoom_cache.urls import mask_url


def make_ranking(feed: str = "kospi-surge", n: int = 3, **kw: object) -> c.Ranking:
    rows = tuple(
        c.Row(rank=i + 1, code=f"{5930 + i:06d}", name="삼성전자", price=152000, sign=5, change=-100,
              change_rate=-0.07, volume=31103523,
              own={"prev_volume": 22532511, "surge_volume": 8571012, "surge_rate": 38.04})
        for i in range(n)
    )
    fields: dict[str, object] = dict(
        feed=feed, tr="opt10023", params={"market": "001"}, source="sim", requested_at_ms=1764028800000,
        received_at_ms=1764028800050, published_at_ms=1764028800060, rows=rows,
    )
    fields.update(kw)
    return c.Ranking(**fields)  # type: ignore[arg-type]


#: What api/ and publisher/ may import from ``kiwoom_cache.contract`` (docs/contract.md, "Importing the contract").
#: A rename, a removal or an addition shows up here first: change this list on purpose, never by accident.
PUBLIC = {
    "keys": ["FEEDS_KEY", "MAX_ID_PART", "PREFIX", "PUBLISHERS_KEY", "STATUS_KEY", "STREAM_DOC_FIELD",
             "STREAM_EPOCH_FIELD", "STREAM_SEQ_FIELD", "UPDATES_PATTERN", "check_epoch", "check_feed", "epoch_key",
             "event_id", "feed_of_channel", "history_key", "latest_key", "lease_key", "new_epoch", "parse_event_id",
             "parse_stream_id", "seq_key", "updates_channel"],
    "rows": ["ALL_ROW_FIELDS", "CORE_FIELDS", "CORE_FIELD_NAMES", "LEGACY_ROW_SCHEMA", "ROW_SCHEMAS",
             "ROW_SCHEMA_OF_TR", "DroppedRow", "Row", "RowField", "RowSchema", "RowSchemaName", "RowValue",
             "row_schema", "row_schema_for_tr"],
    "document": ["READABLE_SCHEMAS", "SCHEMA_VERSION", "SOURCES", "Ranking", "Source", "decode_ranking",
                 "document_from_entry", "encode_body", "splice_document"],
    "scripts": ["DEFAULT_HISTORY_MAXLEN", "FENCED", "RELEASE_LEASE_LUA", "RENEW_LEASE_LUA", "WRITE_RANKING_LUA",
                "fenced_holder", "write_ranking_args"],
    "leases": ["PublisherRole", "check_publisher_id", "new_publisher_id"],
    "registry": ["FeedInfo"],
    "status": ["DEFAULT_HEARTBEAT_S", "DEFAULT_STATUS_TTL_S", "PUBLISHER_STATES", "AccountMode", "Liveness",
               "PublisherState", "PublisherStatus", "publisher_liveness"],
    "events": ["EventName", "WsOp"],
}
MODULES = {"keys": keys, "rows": rows, "document": document, "scripts": scripts, "leases": leases,
           "registry": registry, "status": status, "events": events}


def test_public_surface_is_pinned() -> None:
    """Each module exports exactly its names, and the contract re-exports every one (the same objects)."""
    for name, module in MODULES.items():
        assert sorted(module.__all__) == sorted(PUBLIC[name]), f"kiwoom_cache.{name}.__all__ changed"
    everything = [n for names in PUBLIC.values() for n in names]
    assert len(everything) == len(set(everything)), "a name is defined in two modules"
    assert sorted(c.__all__) == sorted([*everything, "ContractError"])
    for name, module in MODULES.items():
        for attr in PUBLIC[name]:
            assert getattr(c, attr) is getattr(module, attr), f"contract.{attr} is not kiwoom_cache.{name}.{attr}"
    assert c.ContractError is ContractError
    assert kiwoom_cache.__all__ == ("__version__",)


def test_exact_key_names() -> None:
    assert c.latest_key("kospi-surge") == "kiwoom:{kospi-surge}:latest"
    assert c.history_key("kospi-surge") == "kiwoom:{kospi-surge}:history"
    assert c.updates_channel("kospi-surge") == "kiwoom:{kospi-surge}:updates"
    assert c.seq_key("kospi-surge") == "kiwoom:{kospi-surge}:seq"
    assert c.epoch_key("kospi-surge") == "kiwoom:{kospi-surge}:epoch"
    assert c.lease_key("kospi-surge") == "kiwoom:{kospi-surge}:lease"
    assert c.STATUS_KEY == "kiwoom:publisher:status"
    assert c.PUBLISHERS_KEY == "kiwoom:publishers"
    assert c.FEEDS_KEY == "kiwoom:feeds"
    assert c.UPDATES_PATTERN == "kiwoom:{*}:updates"


@pytest.mark.parametrize("bad", ["", "KOSPI", "a_b", "-x", "x-", "a" * 65, "a:b", "{a}"])
def test_bad_feed_slugs_rejected(bad: str) -> None:
    with pytest.raises(ContractError, match="invalid feed slug"):
        c.latest_key(bad)


def test_feed_of_channel() -> None:
    assert c.feed_of_channel(b"kiwoom:{kosdaq-surge}:updates") == "kosdaq-surge"
    assert c.feed_of_channel("kiwoom:{x}:latest") is None
    assert c.feed_of_channel("other:{x}:updates") is None


def test_body_roundtrip_and_splice() -> None:
    ranking = make_ranking()
    body = c.encode_body(ranking)
    assert b'"id"' not in body and "삼성전자".encode() in body
    doc = c.splice_document(body, "1764028800061-0", 7, "6925c3a00f424")
    decoded = c.decode_ranking(doc)
    assert decoded.id == "1764028800061-0" and decoded.seq == 7 and decoded.epoch == "6925c3a00f424"
    assert decoded.rows == ranking.rows and decoded.feed == ranking.feed and decoded.schema == 3 == c.SCHEMA_VERSION
    parsed = json.loads(doc)
    assert list(parsed)[:5] == ["id", "seq", "epoch", "schema", "feed"]
    assert parsed["requested_at"] == "2025-11-25T09:00:00.000+09:00"
    assert parsed["published_at_ms"] == 1764028800060


def test_non_finite_values_are_a_contract_error() -> None:
    row = make_ranking().rows[0]
    bad = make_ranking(rows=(dataclasses.replace(row, own={**row.own, "surge_rate": float("inf")}),))
    with pytest.raises(ContractError, match="not JSON-safe"):
        c.encode_body(bad)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1,2]", "expected a JSON object"),
        (b'{"schema":99}', "unsupported schema 99"),
        (b'{"schema":1,"feed":"x"}', "missing field"),
    ],
)
def test_decode_garbage_says_why(data: bytes, reason: str) -> None:
    with pytest.raises(ContractError, match=reason) as info:
        c.decode_ranking(data, key="kiwoom:{x}:latest")
    assert info.value.key == "kiwoom:{x}:latest"


def test_schema_2_needs_an_epoch_schema_1_is_still_read() -> None:
    body = c.encode_body(make_ranking())
    with pytest.raises(ContractError, match="'epoch' is required"):
        c.decode_ranking(c.splice_document(body, "1-0", 1))
    old = json.loads(c.splice_document(body, "1-0", 1))
    old["schema"] = 1  # what a schema-1 publisher wrote: no epoch
    decoded = c.decode_ranking(json.dumps(old))
    assert (decoded.schema, decoded.epoch, decoded.id) == (1, None, "1-0")
    with pytest.raises(ContractError, match="invalid epoch"):
        c.splice_document(body, "1-0", 1, "Not-An-Epoch")


def test_event_ids_carry_the_epoch() -> None:
    assert c.event_id("5-1", "abc") == "5-1@abc" and c.event_id("5-1", None) == "5-1"
    assert c.parse_event_id("5-1@abc") == ((5, 1), "5-1", "abc")
    assert c.parse_event_id("5-1") == ((5, 1), "5-1", None)
    for bad in ("5-1@", "5-1@ABC", "@abc", "5-1@a@b", f"{2**64}-0"):
        with pytest.raises(ContractError):
            c.parse_event_id(bad)


def test_decode_rejects_wrong_types_in_rows() -> None:
    doc = json.loads(c.splice_document(c.encode_body(make_ranking()), "1-0", 1, "e1"))
    doc["rows"][0]["price"] = "152000"
    with pytest.raises(ContractError, match="'price' must be int"):
        c.decode_ranking(json.dumps(doc))


@pytest.mark.parametrize("bad", ["", "abc", "1-", "-1", "1-2-3", "1.5-0"])
def test_bad_stream_ids(bad: str) -> None:
    with pytest.raises(ContractError, match="invalid ranking id"):
        c.parse_stream_id(bad)


def test_lua_write_matches_python_splice_on_fakeredis() -> None:
    """fakeredis runs Lua too: the unit-level twin of tests/test_writer.py's real-server check."""
    r = fakeredis.FakeRedis()
    script = r.register_script(c.WRITE_RANKING_LUA)
    ranking = make_ranking()
    keys, args = c.write_ranking_args(ranking, maxlen=5)
    rid, seq, epoch = script(keys=keys, args=args)
    latest = r.get(c.latest_key("kospi-surge"))
    [(entry_id, fields)] = r.xrange(c.history_key("kospi-surge"))
    assert entry_id == rid and seq == 1 and r.get(c.epoch_key("kospi-surge")) == epoch
    assert latest == c.document_from_entry(entry_id, fields) == c.splice_document(args[2], rid, seq, epoch)


def test_feed_info_and_status_roundtrip() -> None:
    info = c.FeedInfo("kospi-surge", "코스피 거래량급증", "opt10023", {"market": "001"}, 10.0)
    assert c.FeedInfo.decode(info.encode()) == info
    status = c.PublisherStatus(
        state="running", source="sim", account_mode="sim", version="0.1.0", host="h", pid=1,
        started_at_ms=1, heartbeat_at_ms=1000, last_success_ms=None, heartbeat_s=5.0, feeds={"a": {"rows": 3}})
    back = c.PublisherStatus.decode(status.encode())
    assert back == status
    assert c.publisher_liveness(back, 2000) == "alive"
    assert c.publisher_liveness(back, 1000 + 10_001) == "stale"
    assert c.publisher_liveness(None, 0) == "dead"
    with pytest.raises(ContractError, match="bad publisher status"):
        c.PublisherStatus.decode(b'{"state":1}')


def test_schema_2_documents_still_read_as_opt10023_rows() -> None:
    """A document an older publisher wrote (schema 2, no row_schema, opt10023 rows) decodes unchanged."""
    doc = json.loads(c.encode_body(make_ranking()))
    del doc["row_schema"]
    doc["schema"] = 2
    ranking = c.decode_ranking(json.dumps(doc))
    assert ranking.row_schema == c.RowSchemaName.volume_surge and ranking.schema == 2
    assert ranking.rows == make_ranking().rows


@pytest.mark.parametrize(("change", "message"), [
    ({"row_schema": None}, "missing field 'row_schema'"),
    ({"row_schema": "top_secret"}, "unknown row schema 'top_secret'; this build knows volume_surge, volume_top, "
                                   "change_rate_top, trade_value_top"),
    ({"row_schema": "trade_value_top"}, "missing field 'now_rank'"),
    ({"schema": 4}, r"unsupported schema 4; this build reads schemas \(1, 2, 3\)"),
])
def test_row_schema_violations_are_contract_errors(change: dict[str, object], message: str) -> None:
    doc = json.loads(c.encode_body(make_ranking()))
    doc.update(change)
    if change.get("row_schema", "") is None:
        del doc["row_schema"]
    with pytest.raises(ContractError, match=message):
        c.decode_ranking(json.dumps(doc))


def test_rows_must_match_the_row_schema_of_their_tr() -> None:
    row = make_ranking().rows[0]
    with pytest.raises(ContractError, match="row schema volume_top belongs to opt10030, not opt10023"):
        c.encode_body(make_ranking(row_schema=c.RowSchemaName.volume_top))
    short = dataclasses.replace(row, own={"prev_volume": 1})
    with pytest.raises(ContractError, match=r"row 1 of kospi-surge has fields \('prev_volume',\); volume_surge rows"):
        c.encode_body(make_ranking(rows=(short,)))
    assert c.ALL_ROW_FIELDS[:8] == c.CORE_FIELD_NAMES and "trade_value" in c.ALL_ROW_FIELDS


def test_status_carries_the_role_and_old_statuses_still_decode() -> None:
    pid = c.new_publisher_id()
    assert re.fullmatch(r"[0-9a-f]{16}", pid) and c.check_publisher_id(pid) == pid and pid != c.new_publisher_id()
    status = c.PublisherStatus(
        state="standby", source="rest", account_mode=None, version="0.1.0", host="h", pid=1, started_at_ms=1,
        heartbeat_at_ms=1000, last_success_ms=None, heartbeat_s=5.0, id=pid, role=c.PublisherRole.standby,
        preferred=True, fenced=2, restarts=3)
    assert c.PublisherStatus.decode(status.encode()) == status
    old = json.loads(status.encode())
    for name in ("id", "role", "preferred", "fenced", "restarts"):
        del old[name]
    back = c.PublisherStatus.decode(json.dumps(old))
    assert (back.id, back.role, back.preferred, back.fenced, back.restarts) == (None, None, False, 0, 0)
    for bad, reason in (({"role": "boss"}, "boss"), ({"id": "Not An Id"}, "invalid publisher id"),
                        ({"fenced": "2"}, "'fenced' must be an integer"),
                        ({"restarts": True}, "'restarts' must be an integer")):
        with pytest.raises(ContractError, match=reason):
            c.PublisherStatus.decode(json.dumps({**json.loads(status.encode()), **bad}))


def test_vocabularies_keep_their_wire_values() -> None:
    """The enums are StrEnums: Redis documents and HTTP answers carry exactly the strings they always did."""
    assert c.PUBLISHER_STATES == ("starting", "connecting", "standby", "running", "paused", "degraded", "stopping",
                                  "stopped")
    assert [s.value for s in c.PublisherState] == list(c.PUBLISHER_STATES)
    assert [v.value for v in c.Liveness] == ["alive", "stale", "dead"]
    assert [r.value for r in c.PublisherRole] == ["leader", "standby"]
    assert [m.value for m in c.AccountMode] == ["real", "mock", "sim", "replay"]
    assert [s.value for s in c.Source] == ["kiwoom", "sim", "replay", "rest"]
    assert [e.value for e in c.EventName] == ["snapshot", "ranking", "reset", "hello", "ping", "pong", "error",
                                          "subscribed", "unsubscribed", "authenticated"]
    assert [o.value for o in c.WsOp] == ["subscribe", "unsubscribe", "ping", "auth"]
    status = c.PublisherStatus(
        state=c.PublisherState.paused, source=c.Source.sim, account_mode=c.AccountMode.mock, version="0.1.0",
        host="h", pid=1, started_at_ms=1, heartbeat_at_ms=1000, last_success_ms=None, heartbeat_s=5.0)
    doc = json.loads(status.encode())
    assert (doc["state"], doc["source"], doc["account_mode"]) == ("paused", "sim", "mock")
    back = c.PublisherStatus.decode(status.encode())
    assert back.state is c.PublisherState.paused and back.account_mode is c.AccountMode.mock
    assert back.source is c.Source.sim
    assert c.publisher_liveness(back, 2000) is c.Liveness.alive
    ranking = c.decode_ranking(c.splice_document(c.encode_body(make_ranking()), "1-0", 1, "e1"))
    assert ranking.source is c.Source.sim


@pytest.mark.parametrize(("bad", "reason"), [
    ({"state": "sleeping"}, "sleeping"), ({"account_mode": "demo"}, "demo"), ({"source": "excel"}, "excel")])
def test_unknown_status_words_are_contract_errors(bad: dict[str, str], reason: str) -> None:
    status = c.PublisherStatus(
        state=c.PublisherState.running, source=c.Source.sim, account_mode=None, version="0.1.0", host="h", pid=1,
        started_at_ms=1, heartbeat_at_ms=1000, last_success_ms=None, heartbeat_s=5.0)
    with pytest.raises(ContractError, match=reason):
        c.PublisherStatus.decode(json.dumps({**json.loads(status.encode()), **bad}))


def test_a_document_of_an_unknown_source_is_a_contract_error() -> None:
    doc = json.loads(c.splice_document(c.encode_body(make_ranking()), "1-0", 1, "e1"))
    with pytest.raises(ContractError, match="unknown source 'excel'"):
        c.decode_ranking(json.dumps({**doc, "source": "excel"}))


@pytest.mark.parametrize(("url", "masked"), [
    ("redis://:secret@h:1/0", "redis://:***@h:1/0"),
    ("redis://kiwoom-api:pa/ss?w#rd@h:1/0", "redis://kiwoom-api:***@h:1/0"),
    ("redis://h:1/0?password=secret&db=1", "redis://h:1/0?password=***&db=1"),
    ("redis://u@h:1/0?x=1&password=", "redis://u@h:1/0?x=1&password=***"),
    ("redis://h/0?PASSWORD=secret", "redis://h/0?PASSWORD=***"),
    ("rediss://u:p@h/0?ssl_ca_certs=/ca.pem&ssl_password=secret", "rediss://u:***@h/0?ssl_ca_certs=/ca.pem&ssl_password=***"),
    ("redis+sentinel://u:p@s1:26379,s2:26379/mymaster/0?sentinel_password=secret",
     "redis+sentinel://u:***@s1:26379,s2:26379/mymaster/0?sentinel_password=***"),
    ("unix:///run/redis.sock?db=0&password=secret", "unix:///run/redis.sock?db=0&password=***"),
    ("redis://u:p%40q@h", "redis://u:***@h"),
    ("redis://h:6379/0", "redis://h:6379/0"),
])
def test_every_way_to_write_a_password_is_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert "secret" not in mask_url(url)


def test_a_seq_behind_what_the_writer_wrote_starts_a_new_epoch() -> None:
    """After a failover to a replica that lagged, the epoch key survives but the last rankings are gone: the
    next write must not reuse their seq (readers saw those seqs with other content); it starts a new epoch."""
    r = fakeredis.FakeRedis()
    script = r.register_script(c.WRITE_RANKING_LUA)

    def write(last: tuple[str, int]) -> tuple[str, int, str]:
        keys, args = c.write_ranking_args(make_ranking(), last=last)
        rid, seq, epoch = script(keys=keys, args=args)
        return rid.decode(), int(seq), epoch.decode()

    _, _, epoch = write(("", 0))
    for n in range(2, 5):
        assert write((epoch, n - 1))[1:] == (n, epoch), "in step: count on"
    r.set(c.seq_key("kospi-surge"), 2)  # what a lagging replica holds: seq 2 of the writer's 4
    _, seq, fresh = write((epoch, 4))
    assert (seq, fresh != epoch) == (1, True), "a new epoch at seq 1, never seq 3 again"
    assert write((fresh, 1))[1:] == (2, fresh)
    r.set(c.seq_key("kospi-surge"), 9)  # ahead of the writer (another publisher wrote meanwhile): count on
    assert write((fresh, 2))[1:] == (10, fresh)
    assert write(("another-epoch", 50))[1:] == (11, fresh), "another epoch's count says nothing about this one"
