"""Raw Kiwoom strings -> typed rows: signs, padding, quirks, and malformed values that must not become 0."""

from __future__ import annotations

import pytest

from kiwoom_cache.contract import Row
from publisher.parser import (
    MalformedValue,
    ParsedRanking,
    parse_code,
    parse_int,
    parse_row,
    parse_rows,
    ranking_from_response,
)
from publisher.trs import OPT10023, Provider, RawResponse

OCX = OPT10023.ocx


def parse(ocx_row: dict[str, str], rank: int = 1) -> Row:
    """An OCX row as the OCX source hands it on: each item under its row field, refused values named the OCX's way."""
    return parse_row(OCX.fields_of(ocx_row), rank, OPT10023, OCX.outputs)


def parse_all(ocx_rows: list[dict[str, str]], context: str = "") -> ParsedRanking:
    return parse_rows([OCX.fields_of(row) for row in ocx_rows], context=context, spec=OPT10023, names=OCX.outputs)


def raw_row(**over: str) -> dict[str, str]:
    # The ka10023/opt10023 example row (docs/kiwoom-openapi.md §1), padded the way GetCommData returns it.
    row = {
        "종목코드": "005930              ", "종목명": "삼성전자            ", "현재가": "             -152000",
        "전일대비기호": "                   5", "전일대비": "                -100", "등락률": "               -0.07",
        "이전거래량": "            22532511", "현재거래량": "            31103523", "급증량": "            +8571012",
        "급증률": "              +38.04",
    }
    row.update(over)
    return row


def test_example_row() -> None:
    row = parse(raw_row(), rank=1)
    assert (row.code, row.name, row.price, row.sign, row.change, row.change_rate) == (
        "005930", "삼성전자", 152000, 5, -100, -0.07)
    assert row.volume == 31103523
    assert row.own == {"prev_volume": 22532511, "surge_volume": 8571012, "surge_rate": 38.04}


@pytest.mark.parametrize(
    ("raw", "value"),
    [("+4500", 4500), ("-4500", -4500), ("--4500", -4500), ("+-4500", -4500), ("-+4500", 4500), ("0004500", 4500),
     ("   0  ", 0)],
)
def test_signed_ints_take_the_last_sign(raw: str, value: int) -> None:
    assert parse_int("전일대비", raw) == value


def test_price_sign_is_direction_not_negative_price() -> None:
    assert parse(raw_row(현재가="--152000")).price == 152000
    assert parse(raw_row(현재가="+152000")).price == 152000


@pytest.mark.parametrize(("raw", "code"), [("A005930", "005930"), (" 005930 ", "005930"), ("064550_AL", "064550"),
                                           ("0126z0", "0126Z0")])
def test_codes_normalised(raw: str, code: str) -> None:
    assert parse_code("종목코드", raw) == code


def test_leading_zero_volumes() -> None:
    assert parse(raw_row(현재거래량="000031103523")).volume == 31103523


def test_sign_code_gives_direction_to_unsigned_change() -> None:
    row = parse(raw_row(전일대비="100", 등락률="0.07"))
    assert (row.change, row.change_rate) == (-100, -0.07)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [("현재가", "", "empty"), ("현재가", "   ", "empty"), ("현재거래량", "12a4", "not a number"),
     ("등락률", "1.2.3", "not a number"), ("전일대비기호", "7", "must be 1..5"), ("종목코드", "12345", "6-character"),
     ("종목명", "   ", "empty"), ("급증률", "+-", "not a number")],
)
def test_malformed_values_raise_never_zero(field: str, value: str, reason: str) -> None:
    with pytest.raises(MalformedValue, match=reason) as info:
        parse(raw_row(**{field: value}))
    assert info.value.field == field


def test_missing_field() -> None:
    row = raw_row()
    del row["급증량"]
    with pytest.raises(MalformedValue, match="missing") as info:
        parse(row)
    assert info.value.field == "급증량"


def test_parse_rows_drops_and_reports_bad_rows_keeping_ranks(caplog: pytest.LogCaptureFixture) -> None:
    parsed = parse_all([raw_row(), raw_row(현재가="abc"), raw_row(종목코드="000660")], context="opt10023 t")
    assert [r.rank for r in parsed.rows] == [1, 3]
    [dropped] = parsed.dropped
    assert (dropped.rank, dropped.field, dropped.value, dropped.reason) == (2, "현재가", "abc", "not a number")
    assert "dropped malformed row 2" in caplog.text


def test_ranking_from_response_maps_params_and_times() -> None:
    raw = RawResponse(feed="kospi-surge", trcode="OPT10023", screen="2000",
                      inputs=(("market", "001"), ("sort", "1")), prev_next="0",
                      rows=(OCX.fields_of(raw_row()),), requested_at_ms=10, received_at_ms=20, provider=Provider.ocx)
    ranking = ranking_from_response(raw, source="sim", session="regular")
    assert ranking.tr == OPT10023.code and ranking.row_schema == "volume_surge"
    assert ranking.params == {"market": "001", "sort": "1"}
    assert (ranking.requested_at_ms, ranking.received_at_ms, ranking.session) == (10, 20, "regular")
    assert len(ranking.rows) == 1 and not ranking.dropped


@pytest.mark.parametrize(("provider", "price", "code"), [(Provider.ocx, "현재가", "종목코드"),
                                                          (Provider.rest, "cur_prc", "stk_cd")])
def test_a_refused_value_is_named_as_its_provider_spells_it(provider: Provider, price: str, code: str) -> None:
    """The rows are keyed by field whatever the source; the dropped list names the item its provider sent."""
    good = OCX.fields_of(raw_row())
    bad_price, no_code = {**good, "price": "12a4"}, {k: v for k, v in good.items() if k != "code"}
    raw = RawResponse(feed="f", trcode="opt10023", screen="", inputs=(), prev_next="0",
                      rows=(good, bad_price, no_code), requested_at_ms=1, received_at_ms=2, provider=provider)
    ranking = ranking_from_response(raw, source="rest" if provider is Provider.rest else "sim")
    assert [r.rank for r in ranking.rows] == [1]
    assert [(d.rank, d.field, d.value, d.reason) for d in ranking.dropped] == [
        (2, price, "12a4", "not a number"), (3, code, "", "missing")]


def test_without_names_a_refused_value_is_named_by_its_field() -> None:
    with pytest.raises(MalformedValue, match="not a number") as info:
        parse_row({**OCX.fields_of(raw_row()), "surge_rate": "+-"}, 1, OPT10023)
    assert info.value.field == "surge_rate"
