"""Raw Kiwoom strings -> typed rows: signs, padding, quirks, and malformed values that must not become 0."""

from __future__ import annotations

import pytest

from publisher.parser import MalformedValue, parse_code, parse_int, parse_row, parse_rows, ranking_from_response
from publisher.trs import OPT10023, RawResponse


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
    row = parse_row(raw_row(), rank=1)
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
    assert parse_row(raw_row(현재가="--152000"), 1).price == 152000
    assert parse_row(raw_row(현재가="+152000"), 1).price == 152000


@pytest.mark.parametrize(("raw", "code"), [("A005930", "005930"), (" 005930 ", "005930"), ("064550_AL", "064550"),
                                           ("0126z0", "0126Z0")])
def test_codes_normalised(raw: str, code: str) -> None:
    assert parse_code("종목코드", raw) == code


def test_leading_zero_volumes() -> None:
    assert parse_row(raw_row(현재거래량="000031103523"), 1).volume == 31103523


def test_sign_code_gives_direction_to_unsigned_change() -> None:
    row = parse_row(raw_row(전일대비="100", 등락률="0.07"), 1)
    assert (row.change, row.change_rate) == (-100, -0.07)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [("현재가", "", "empty"), ("현재가", "   ", "empty"), ("현재거래량", "12a4", "not a number"),
     ("등락률", "1.2.3", "not a number"), ("전일대비기호", "7", "must be 1..5"), ("종목코드", "12345", "6-character"),
     ("종목명", "   ", "empty"), ("급증률", "+-", "not a number")],
)
def test_malformed_values_raise_never_zero(field: str, value: str, reason: str) -> None:
    with pytest.raises(MalformedValue, match=reason) as info:
        parse_row(raw_row(**{field: value}), 1)
    assert info.value.field == field


def test_missing_field() -> None:
    row = raw_row()
    del row["급증량"]
    with pytest.raises(MalformedValue, match="missing"):
        parse_row(row, 1)


def test_parse_rows_drops_and_reports_bad_rows_keeping_ranks(caplog: pytest.LogCaptureFixture) -> None:
    parsed = parse_rows([raw_row(), raw_row(현재가="abc"), raw_row(종목코드="000660")], context="opt10023 t")
    assert [r.rank for r in parsed.rows] == [1, 3]
    [dropped] = parsed.dropped
    assert (dropped.rank, dropped.field, dropped.value, dropped.reason) == (2, "현재가", "abc", "not a number")
    assert "dropped malformed row 2" in caplog.text


def test_ranking_from_response_maps_params_and_times() -> None:
    raw = RawResponse(feed="kospi-surge", trcode="OPT10023", screen="2000",
                      inputs=(("시장구분", "001"), ("정렬구분", "1")), prev_next="0",
                      rows=(raw_row(),), requested_at_ms=10, received_at_ms=20)
    ranking = ranking_from_response(raw, source="sim", session="regular")
    assert ranking.tr == OPT10023.code and ranking.row_schema == "volume_surge"
    assert ranking.params == {"market": "001", "sort": "1"}
    assert (ranking.requested_at_ms, ranking.received_at_ms, ranking.session) == (10, 20, "regular")
    assert len(ranking.rows) == 1 and not ranking.dropped
