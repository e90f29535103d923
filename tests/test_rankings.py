"""Every ranking TR end to end on the publisher side: Kiwoom's exact names, each TR's raw formats through the one
parser (never a silent zero), one feed per TR on the simulated control and on the fake REST server (real
redis-server), record and replay, one limiter budget for all of them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from kiwoom_cache import contract as c
from kiwoom_cache.contract import Ranking
from publisher.aio_loop import AsyncioLoop
from publisher.app import Publisher
from publisher.controls import ocx
from publisher.controls.replay import ReplayControl, feeds_from_recording
from publisher.controls.simulated import SimulatedControl
from publisher.parser import MalformedValue, parse_row, parse_rows
from publisher.recording import Recorder, read_recording
from publisher.settings import FeedSettings, load_settings
from publisher.sources import create_source
from publisher.sources.base import SourceContext
from publisher.sources.ocx import feed_of, request_name
from publisher.sources.rest import APPKEY_ENV, SECRETKEY_ENV, row_fields
from publisher.trs import OPT10027, OPT10030, OPT10032, TRS, Provider, TrRequest, TrSpec, tr_spec
from tests.publishers import ocx_publisher
from tests.rest_fake_server import APPKEY, SECRETKEY, serve
from tests.waiting import async_wait_until

#: One feed per TR; opt10027 asks for gainers, which the simulated market always has.
FEEDS = [FeedSettings(feed="surge", tr="opt10023", params={"market": "000"}, interval_s=0.2),
         FeedSettings(feed="volume", tr="opt10030", params={"market": "001", "sort": "1"}, interval_s=0.2),
         FeedSettings(feed="gainers", tr="opt10027", params={"market": "000", "sort": "1"}, interval_s=0.2),
         FeedSettings(feed="value", tr="opt10032", params={"market": "101"}, interval_s=0.2)]
W = 20


def pad(**items: str) -> dict[str, str]:
    """An OCX row as GetCommData returns it: each value in a fixed-width field."""
    return {k: v.rjust(W) for k, v in items.items()}


# --- Kiwoom's names (KOA Studio's TR dump, koapy's trinfo_by_code.json; docs/kiwoom-rankings.md) ---------------


def ocx_inputs(spec: TrSpec) -> list[str]:
    """The OCX's input names in SetInputValue order."""
    return [spec.ocx.inputs[i.param] for i in spec.inputs]


def ocx_outputs(spec: TrSpec) -> list[str]:
    """The OCX's output item names in Kiwoom's order."""
    return [spec.ocx.outputs[o.field] for o in spec.outputs]


def test_exact_kiwoom_names_of_each_tr() -> None:
    assert (OPT10030.ocx.rqname, OPT10030.ocx.record, OPT10030.rest.api_id, OPT10030.rest.rows_key) == (
        "당일거래량상위요청", "당일거래량상위", "ka10030", "tdy_trde_qty_upper")
    assert ocx_inputs(OPT10030) == [
        "시장구분", "정렬구분", "관리종목포함", "신용구분", "거래량구분", "가격구분", "거래대금구분", "장운영구분"]
    assert ocx_outputs(OPT10030) == [
        "종목코드", "종목명", "현재가", "전일대비기호", "전일대비", "등락률", "거래량", "전일비", "거래회전율",
        "거래금액"]
    assert (OPT10027.ocx.rqname, OPT10027.ocx.record, OPT10027.rest.api_id, OPT10027.rest.rows_key) == (
        "전일대비등락률상위요청", "전일대비등락률상위", "ka10027", "pred_pre_flu_rt_upper")
    assert ocx_inputs(OPT10027) == [
        "시장구분", "정렬구분", "거래량조건", "종목조건", "신용조건", "상하한포함", "가격조건", "거래대금조건"]
    assert ocx_outputs(OPT10027) == [
        "종목분류", "종목코드", "종목명", "현재가", "전일대비기호", "전일대비", "등락률", "매도잔량", "매수잔량",
        "현재거래량", "체결강도", "횟수"]
    assert (OPT10032.ocx.rqname, OPT10032.ocx.record, OPT10032.rest.api_id, OPT10032.rest.rows_key) == (
        "거래대금상위요청", "거래대금상위", "ka10032", "trde_prica_upper")
    assert ocx_inputs(OPT10032) == ["시장구분", "관리종목포함"]
    assert ocx_outputs(OPT10032) == [
        "종목코드", "현재순위", "전일순위", "종목명", "현재가", "전일대비기호", "전일대비", "등락률", "매도호가",
        "매수호가", "현재거래량", "전일거래량", "거래대금"]
    # REST body keys: the official examples' (Kiwoom-Securities/Kiwoom-REST-API, examples/국내주식/순위정보).
    assert [OPT10030.rest.inputs[p] for p in OPT10030.params] == [
        "mrkt_tp", "sort_tp", "mang_stk_incls", "crd_tp", "trde_qty_tp", "pric_tp", "trde_prica_tp", "mrkt_open_tp"]
    assert [OPT10027.rest.inputs[p] for p in OPT10027.params] == [
        "mrkt_tp", "sort_tp", "trde_qty_cnd", "stk_cnd", "crd_cnd", "updown_incls", "pric_cnd", "trde_prica_cnd"]
    assert [OPT10032.rest.inputs[p] for p in OPT10032.params] == ["mrkt_tp", "mang_stk_incls"]


def test_every_tr_fills_its_row_schema_and_the_core() -> None:
    for spec in TRS.values():
        schema = c.ROW_SCHEMAS[spec.row_schema]
        assert schema.tr == spec.code and c.row_schema_for_tr(spec.code) is schema
        assert schema.field_names[: len(c.CORE_FIELD_NAMES)] == c.CORE_FIELD_NAMES
        assert {o.field for o in spec.outputs} | {"rank"} == set(schema.field_names)
    with pytest.raises(ValueError, match="unknown TR 'opt10001'; this publisher polls opt10023, opt10030"):
        tr_spec("opt10001")


@pytest.mark.parametrize("provider", list(Provider))
@pytest.mark.parametrize("what", ["inputs", "outputs"])
def test_a_spelling_that_misses_an_input_or_output_is_refused_when_built(provider: Provider, what: str) -> None:
    """Each provider's names are checked against the TR when the spec is built, so at the catalogue's import: a
    spelling without a name for one output would otherwise fail only once that provider is polled."""
    spelling = OPT10030.spelling(provider)
    full = dict(getattr(spelling, what))
    missing = list(full)[-1]

    def build(names: dict[str, str]) -> TrSpec:
        return replace(OPT10030, **{provider.value: replace(spelling, **{what: names})})

    with pytest.raises(ValueError, match=rf"opt10030: the {provider} spelling no name for {what[:-1]}\(s\) {missing}$"):
        build({k: v for k, v in full.items() if k != missing})
    with pytest.raises(ValueError, match=r"names .* the TR does not have: bogus"):
        build({**full, "bogus": "x"})
    with pytest.raises(ValueError, match=r"gives two .* the same name"):
        build({**full, missing: next(iter(full.values()))})
    assert build(full) == OPT10030


def test_each_request_carries_its_trs_request_name_and_the_control_its_record(qtbot) -> None:
    """The request name was opt10023's whatever the TR: each TR now sends its own, and the answer routes back."""
    req = TrRequest(feed="value", trcode="opt10032", inputs=FEEDS[3].inputs())
    assert request_name(req) == "거래대금상위요청:value#0" and feed_of(request_name(req)) == "value"
    control = SimulatedControl(seed=2, latency_ms=1, login_delay_ms=1)
    with qtbot.waitSignal(control.OnEventConnect, timeout=2000):
        control.dynamicCall(ocx.COMM_CONNECT)
    for param, value in req.inputs:
        control.dynamicCall(ocx.SET_INPUT_VALUE, OPT10032.ocx.inputs[param], value)
    seen: list[tuple[int, str]] = []

    def on_data(screen: str, rqname: str, trcode: str, *_: object) -> None:
        count = control.dynamicCall(ocx.GET_REPEAT_CNT, trcode, OPT10032.ocx.record)
        seen.append((count, control.dynamicCall(ocx.GET_COMM_DATA, trcode, OPT10032.ocx.record, 0, "거래대금")))

    control.OnReceiveTrData.connect(on_data)
    with qtbot.waitSignal(control.OnReceiveTrData, timeout=2000):
        assert control.dynamicCall(ocx.COMM_RQ_DATA, request_name(req), "opt10032", 0, "2000") == 0
    [(count, value)] = seen
    assert count > 10 and value.strip().isdigit() and len(value) == W, "a right-aligned 20-column number"


# --- each TR's raw formats through the one parser ------------------------------------------------------------


def parse_ocx(row: dict[str, str], rank: int, spec: TrSpec) -> c.Row:
    """An OCX row (items under the OCX's names) as the OCX source hands it to the parser."""
    return parse_row(spec.ocx.fields_of(row), rank, spec, spec.ocx.outputs)


OCX_10030 = pad(종목코드="005930", 종목명="삼성전자", 현재가="+71600", 전일대비기호="2", 전일대비="+100",
                등락률="+0.14", 거래량="000012345678", 전일비="95.32", 거래회전율="0.21", 거래금액="884123")
OCX_10027 = pad(종목분류="", 종목코드="A247540", 종목명="에코프로비엠", 현재가="+166900", 전일대비기호="1",
                전일대비="+38500", 등락률="+29.98", 매도잔량="0", 매수잔량="1523411", 현재거래량="5123456",
                체결강도="245.12", 횟수="3")
OCX_10032 = pad(종목코드="005930", 현재순위="1", 전일순위="2", 종목명="삼성전자", 현재가="--71500", 전일대비기호="5",
                전일대비="300", 등락률="0.42", 매도호가="-71600", 매수호가="-71500", 현재거래량="15234123",
                전일거래량="17342123", 거래대금="1089234")


def test_opt10030_row() -> None:
    row = parse_ocx(OCX_10030, 1, OPT10030)
    assert (row.code, row.name, row.price, row.sign, row.change, row.change_rate, row.volume) == (
        "005930", "삼성전자", 71600, 2, 100, 0.14, 12345678)
    assert row.own == {"volume_ratio": 95.32, "turnover_rate": 0.21, "trade_value": 884123}


def test_opt10027_row_limit_up_with_a_prefix_and_empty_class() -> None:
    row = parse_ocx(OCX_10027, 1, OPT10027)
    assert (row.code, row.price, row.sign, row.change, row.change_rate, row.volume) == (
        "247540", 166900, 1, 38500, 29.98, 5123456)
    assert row.own == {"stock_class": "", "ask_volume": 0, "bid_volume": 1523411, "strength": 245.12, "count": 3}
    assert list(row.to_dict()) == list(c.ROW_SCHEMAS[c.RowSchemaName.change_rate_top].field_names)


def test_opt10032_row_double_sign_and_direction_from_the_sign_code() -> None:
    row = parse_ocx(OCX_10032, 4, OPT10032)
    assert (row.rank, row.price, row.sign, row.change, row.change_rate) == (4, 71500, 5, -300, -0.42)
    assert row.own == {"now_rank": 1, "prev_rank": 2, "ask": 71600, "bid": 71500, "prev_volume": 17342123,
                       "trade_value": 1089234}


@pytest.mark.parametrize(("spec", "item", "ocx_key", "raw"), [
    (OPT10030, "ka10030", "pred_rt", "+95.32"), (OPT10027, "ka10027", "cntr_str", "245.12"),
    (OPT10032, "ka10032", "trde_prica", "1089234")])
def test_rest_rows_parse_like_ocx_rows(spec, item: str, ocx_key: str, raw: str) -> None:
    """The REST answer's keys map onto the same fields as the OCX's items, and the same strings give the same row."""
    ocx = {"opt10030": OCX_10030, "opt10027": OCX_10027, "opt10032": OCX_10032}[spec.code]
    rest = {spec.rest.outputs[o.field]: ocx[spec.ocx.outputs[o.field]].strip() for o in spec.outputs}
    rest[ocx_key] = raw
    assert spec.rest.api_id == item
    parsed = parse_row(row_fields(spec, rest), 1, spec, spec.rest.outputs)
    assert parsed.to_dict() == parse_ocx(ocx, 1, spec).to_dict()


@pytest.mark.parametrize(("spec", "row", "item", "value", "reason"), [
    (OPT10030, OCX_10030, "전일비", "1.2.3", "not a number"),
    (OPT10030, OCX_10030, "거래금액", "", "empty"),
    (OPT10027, OCX_10027, "체결강도", "   ", "empty"),
    (OPT10027, OCX_10027, "횟수", "+-", "not a number"),
    (OPT10032, OCX_10032, "거래대금", "12a4", "not a number"),
    (OPT10032, OCX_10032, "전일순위", "", "empty"),
    (OPT10032, OCX_10032, "전일대비기호", "0", "must be 1..5"),
])
def test_malformed_values_of_each_tr_are_dropped_never_zero(spec, row, item: str, value: str, reason: str) -> None:
    with pytest.raises(MalformedValue, match=reason) as info:
        parse_ocx({**row, item: value}, 1, spec)
    assert info.value.field == item
    parsed = parse_rows([spec.ocx.fields_of(r) for r in (row, {**row, item: value}, row)], spec=spec,
                        names=spec.ocx.outputs)
    assert [r.rank for r in parsed.rows] == [1, 3]
    assert [(d.rank, d.field, d.reason) for d in parsed.dropped] == [(2, item, info.value.reason)]


def test_a_missing_item_is_reported() -> None:
    row = dict(OCX_10030)
    del row["거래회전율"]
    with pytest.raises(MalformedValue, match="missing") as info:
        parse_ocx(row, 1, OPT10030)
    assert info.value.field == "거래회전율"


# --- one feed per TR on each source --------------------------------------------------------------------------


def check_documents(client: redis.Redis) -> dict[str, list[c.Ranking]]:
    by_feed = {}
    for feed in FEEDS:
        docs = [c.decode_ranking(c.document_from_entry(i, f)) for i, f in client.xrange(c.history_key(feed.feed))]
        schema = c.row_schema_for_tr(feed.tr)
        assert docs and all(d.tr == feed.tr and d.row_schema == schema.name and d.rows for d in docs), feed.feed
        assert [d.seq for d in docs] == list(range(1, len(docs) + 1))
        for doc in docs:
            assert all(tuple(r.to_dict()) == schema.field_names for r in doc.rows)
            assert [r.rank for r in doc.rows] == list(range(1, len(doc.rows) + 1))
            assert doc.params == feed.params
        info = c.FeedInfo.decode(client.hget(c.FEEDS_KEY, feed.feed))
        assert (info.tr, dict(info.params)) == (feed.tr, feed.params)
        by_feed[feed.feed] = docs
    return by_feed


@pytest.mark.integration
def test_one_feed_per_tr_on_the_simulated_control(qtbot, redis_url: str, redis_client: redis.Redis) -> None:
    settings = load_settings(redis_url=redis_url, feeds=FEEDS, tr_limits=[(20, 1.0)], heartbeat_s=0.5,
                             status_ttl_s=2.0)
    control = SimulatedControl(seed=6, latency_ms=2, limits=((20, 1.0),))
    publisher = ocx_publisher(settings, control)
    publisher.start()
    qtbot.waitUntil(lambda: all(redis_client.xlen(c.history_key(f.feed)) >= 2 for f in FEEDS), timeout=20000)
    publisher.stop()
    docs = check_documents(redis_client)
    assert not any(d.dropped for feed in docs.values() for d in feed), "the control sends only well-formed rows"
    gainers = docs["gainers"][-1].rows
    assert all(r.change > 0 for r in gainers) and [r.change_rate for r in gainers] == sorted(
        (r.change_rate for r in gainers), reverse=True), "opt10027 sort 1: gainers, biggest rise first"
    value = docs["value"][-1].rows
    assert [r.own["now_rank"] for r in value] == [r.rank for r in value]
    volume = docs["volume"][-1].rows
    assert [r.volume for r in volume] == sorted((r.volume for r in volume), reverse=True)
    assert control.max_in_window[1.0] <= 20, "one limiter for every feed, whatever its TR"
    status = c.PublisherStatus.decode(redis_client.get(c.STATUS_KEY))
    assert {feed: entry["tr"] for feed, entry in status.feeds.items()} == {f.feed: f.tr for f in FEEDS}


@pytest.mark.integration
async def test_one_feed_per_tr_on_the_fake_rest_server(redis_url: str, redis_client: redis.Redis,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(APPKEY_ENV, APPKEY)
    monkeypatch.setenv(SECRETKEY_ENV, SECRETKEY)
    with serve(seed=6, page_size=15, limits=((10, 1.0),)) as (server, url):
        settings = load_settings(redis_url=redis_url, source="rest", rest_base_url=url, feeds=FEEDS,
                                 tr_limits=[(10, 1.0)], heartbeat_s=0.3, status_ttl_s=2.0, respect_market_hours=False)
        loop = AsyncioLoop(asyncio.get_running_loop())
        publisher = Publisher(settings, create_source(settings.source, SourceContext(settings, loop)), loop)
        publisher.start()
        await async_wait_until(lambda: all(redis_client.xlen(c.history_key(f.feed)) >= 2 for f in FEEDS), 30,
                               "rankings of every TR in Redis")
        publisher.stop()
    docs = check_documents(redis_client)
    assert all(d.source == "rest" and not d.dropped for feed in docs.values() for d in feed)
    ids = {call.headers.get("api-id") for call in server.seen if call.path == "/api/dostk/rkinfo"}
    assert ids == {"ka10023", "ka10030", "ka10027", "ka10032"}
    value_call = next(call for call in server.seen if call.headers.get("api-id") == "ka10032")
    assert value_call.body == {"mrkt_tp": "101", "mang_stk_incls": "0", "stex_tp": "1"}
    assert server.refused == 0, "pages and requests of every TR share the limiter"


@pytest.mark.integration
def test_sim_and_rest_publish_the_same_rows_for_every_tr(tmp_path: Path, redis_url: str) -> None:
    """Same seed, frozen market: the OCX's padded strings (with Kiwoom's quirks) and the REST answers' strings give
    the same documents, TR by TR (the CLI with a config file of one feed per TR)."""
    config = tmp_path / "feeds.toml"
    config.write_text("".join(
        f'[[feeds]]\nfeed = "{f.feed}"\ntr = "{f.tr}"\nparams = {{ market = "{f.params["market"]}" }}\n'
        f"interval_s = 0.5\n" for f in FEEDS), encoding="utf-8")
    env = {**os.environ, "KIWOOM_PUBLISHER_SIM_STEP_S": "1e9", "KIWOOM_PUBLISHER_RESPECT_MARKET_HOURS": "false",
           "KIWOOM_PUBLISHER_TR_LIMITS": "[[20, 1.0]]", "KIWOOM_PUBLISHER_SIM_LIMITS": "[[20, 1.0]]"}
    sim_url, rest_url = redis_url[:-1] + "3", redis_url[:-1] + "4"

    def run(args: list[str], extra: dict[str, str]) -> None:
        done = subprocess.run([sys.executable, "-m", "publisher", "--config", str(config), *args, "--duration", "3"],
                              capture_output=True, text=True, timeout=90, check=False, env={**env, **extra})
        assert done.returncode == 0, done.stderr

    run(["--source", "sim", "--seed", "7", "--redis-url", sim_url], {})
    with serve(seed=7, step_s=1e9, page_size=20, limits=((20, 1.0),)) as (_server, url):  # 5 pages hold all
        run(["--source", "rest", "--redis-url", rest_url],
            {APPKEY_ENV: APPKEY, SECRETKEY_ENV: SECRETKEY, "KIWOOM_PUBLISHER_REST_BASE_URL": url})
    a, b = redis.Redis.from_url(sim_url), redis.Redis.from_url(rest_url)
    for feed in FEEDS:
        x, y = (c.decode_ranking(r.get(c.latest_key(feed.feed))) for r in (a, b))
        assert (x.source, y.source) == ("sim", "rest")
        assert (x.tr, x.row_schema, x.params) == (y.tr, y.row_schema, y.params) == (
            feed.tr, c.row_schema_for_tr(feed.tr).name, {**tr_spec(feed.tr).defaults(), **feed.params})
        assert [r.to_dict() for r in x.rows] == [r.to_dict() for r in y.rows] and x.rows, feed.feed
    a.close()
    b.close()


@pytest.mark.integration
def test_record_then_replay_every_tr(qtbot, tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "day.jsonl"
    sim = SimulatedControl(seed=8, latency_ms=2, limits=((50, 1.0),))
    sim.faults.malformed_rate = 0.05  # dropped rows must replay identically too
    settings = load_settings(redis_url=redis_url, feeds=FEEDS, tr_limits=[(50, 1.0)], heartbeat_s=0.5,
                             status_ttl_s=2.0)
    live = ocx_publisher(settings, sim)
    recorder = Recorder(path, source="sim")
    live.source.responseReceived.connect(recorder.record)
    recorded: list[Ranking] = []
    live.poller.rankingReady.connect(recorded.append)
    live.start()
    qtbot.waitUntil(lambda: all(sum(r.feed == f.feed for r in recorded) >= 3 for f in FEEDS), timeout=20000)
    live.stop()
    recorder.close()

    _header, responses = read_recording(path)
    feeds = feeds_from_recording(responses, speed=10)
    assert {(f.feed, f.tr) for f in feeds} == {(f.feed, f.tr) for f in FEEDS}
    replay_settings = load_settings(redis_url=redis_url, source="replay", feeds=feeds, tr_limits=[(50, 1.0)],
                                    heartbeat_s=0.5, status_ttl_s=2.0)
    replay = ocx_publisher(replay_settings, ReplayControl(responses, loop=False, latency_ms=1))
    replayed: list[Ranking] = []
    replay.poller.rankingReady.connect(replayed.append)
    replay.start()
    qtbot.waitUntil(lambda: len(replayed) >= len(responses), timeout=20000)
    replay.stop()
    for feed in FEEDS:
        want = [(r.tr, r.row_schema, r.rows, r.dropped) for r in recorded if r.feed == feed.feed]
        got = [(r.tr, r.row_schema, r.rows, r.dropped) for r in replayed if r.feed == feed.feed][: len(want)]
        assert got == want and want, feed.feed
    assert any(r.dropped for r in replayed)
