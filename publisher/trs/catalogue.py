"""The ranking TRs the publisher can poll (facts and sources: docs/kiwoom-rankings.md), checked at import.

Paging: one OCX request answers one page (up to :data:`~publisher.trs.spec.PAGE_ROWS` rows); the OCX source
follows sPrevNext ``"2"`` and the REST source ``cont-yn``/``next-key``, and each merges the pages, each page
through the shared limiter.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from kiwoom_cache.contract import CORE_FIELD_NAMES, RowSchemaName
from publisher.trs.spec import Kind, TrInput, TrOutput, TrSpec, choices

_MARKET = choices("000:전체, 001:코스피, 101:코스닥")
_CODE = TrOutput("종목코드", "code", "stk_cd", Kind.code)
_NAME = TrOutput("종목명", "name", "stk_nm", Kind.name)
_PRICE = TrOutput("현재가", "price", "cur_prc", Kind.unsigned)
_SIGN = TrOutput("전일대비기호", "sign", "pred_pre_sig", Kind.sign)
_CHANGE = TrOutput("전일대비", "change", "pred_pre", Kind.signed)
_RATE = TrOutput("등락률", "change_rate", "flu_rt", Kind.decimal)

OPT10023: Final = TrSpec(
    code="opt10023", rqname="거래량급증요청", record="거래량급증", rest_api_id="ka10023",
    rest_rows_key="trde_qty_sdnin", row_schema=RowSchemaName.volume_surge,
    inputs=(
        TrInput("시장구분", "market", "mrkt_tp", "000", _MARKET),
        TrInput("정렬구분", "sort", "sort_tp", "1", choices("1:급증량, 2:급증률")),
        TrInput("시간구분", "time_unit", "tm_tp", "1", choices("1:분, 2:전일")),
        TrInput("거래량구분", "min_volume", "trde_qty_tp", "5", choices(
            "5:5천주이상, 10:만주이상, 50:5만주이상, 100:10만주이상, 200:20만주이상, 300:30만주이상, "
            "500:50만주이상, 1000:백만주이상")),
        TrInput("시간", "minutes", "tm", "5", bounds=(1, 390)),
        TrInput("종목조건", "stock_filter", "stk_cnd", "0", choices(
            "0:전체조회, 1:관리종목제외, 5:증100제외, 6:증100만보기, 7:증40만보기, 8:증30만보기, 9:증20만보기")),
        TrInput("가격구분", "price_filter", "pric_tp", "0", choices(
            "0:전체조회, 2:5만원이상, 5:1만원이상, 6:5천원이상, 8:1천원이상, 9:10만원이상")),
    ),
    outputs=(
        _CODE, _NAME, _PRICE, _SIGN, _CHANGE, _RATE,
        TrOutput("이전거래량", "prev_volume", "prev_trde_qty", Kind.unsigned),
        TrOutput("현재거래량", "volume", "now_trde_qty", Kind.unsigned),
        TrOutput("급증량", "surge_volume", "sdnin_qty", Kind.signed),
        TrOutput("급증률", "surge_rate", "sdnin_rt", Kind.decimal),
    ),
)

_VOLUME_CLASSES = ("0:전체조회, 5:5천주이상, 10:1만주이상, 50:5만주이상, 100:10만주이상, 200:20만주이상, "
                   "300:30만주이상, 500:50만주이상, 1000:백만주이상")

OPT10030: Final = TrSpec(
    code="opt10030", rqname="당일거래량상위요청", record="당일거래량상위", rest_api_id="ka10030",
    rest_rows_key="tdy_trde_qty_upper", row_schema=RowSchemaName.volume_top,
    inputs=(
        TrInput("시장구분", "market", "mrkt_tp", "000", _MARKET),
        TrInput("정렬구분", "sort", "sort_tp", "1", choices("1:거래량, 2:거래회전율, 3:거래대금")),
        TrInput("관리종목포함", "stock_filter", "mang_stk_incls", "0", choices(
            "0:관리종목 포함, 1:관리종목 미포함, 3:우선주제외, 11:정리매매종목제외, 4:관리종목+우선주제외, "
            "5:증100제외, 6:증100만보기, 13:증60만보기, 12:증50만보기, 7:증40만보기, 8:증30만보기, 9:증20만보기, "
            "14:ETF제외, 15:스팩제외, 16:ETF+ETN제외")),
        TrInput("신용구분", "credit", "crd_tp", "0", choices(
            "0:전체조회, 9:신용융자전체, 1:신용융자A군, 2:신용융자B군, 3:신용융자C군, 4:신용융자D군, 8:신용대주")),
        TrInput("거래량구분", "min_volume", "trde_qty_tp", "0", choices(_VOLUME_CLASSES)),
        TrInput("가격구분", "price_filter", "pric_tp", "0", choices(
            "0:전체조회, 1:1천원미만, 2:1천원이상, 3:1천원~2천원, 4:2천원~5천원, 5:5천원이상, 6:5천원~1만원, "
            "10:1만원미만, 7:1만원이상, 8:5만원이상, 9:10만원이상")),
        TrInput("거래대금구분", "min_value", "trde_prica_tp", "0", choices(
            "0:전체조회, 1:1천만원이상, 3:3천만원이상, 4:5천만원이상, 10:1억원이상, 30:3억원이상, 50:5억원이상, "
            "100:10억원이상, 300:30억원이상, 500:50억원이상, 1000:100억원이상, 3000:300억원이상, 5000:500억원이상")),
        TrInput("장운영구분", "trading_session", "mrkt_open_tp", "0", choices(
            "0:전체조회, 1:장중, 2:장전시간외, 3:장후시간외")),
    ),
    outputs=(
        _CODE, _NAME, _PRICE, _SIGN, _CHANGE, _RATE,
        TrOutput("거래량", "volume", "trde_qty", Kind.unsigned),
        TrOutput("전일비", "volume_ratio", "pred_rt", Kind.decimal),
        TrOutput("거래회전율", "turnover_rate", "trde_tern_rt", Kind.decimal),
        TrOutput("거래금액", "trade_value", "trde_amt", Kind.unsigned),
    ),
)

OPT10027: Final = TrSpec(
    code="opt10027", rqname="전일대비등락률상위요청", record="전일대비등락률상위", rest_api_id="ka10027",
    rest_rows_key="pred_pre_flu_rt_upper", row_schema=RowSchemaName.change_rate_top,
    inputs=(
        TrInput("시장구분", "market", "mrkt_tp", "000", _MARKET),
        TrInput("정렬구분", "sort", "sort_tp", "1", choices("1:상승률, 2:상승폭, 3:하락률, 4:하락폭, 5:보합")),
        TrInput("거래량조건", "min_volume", "trde_qty_cnd", "0000", choices(
            "0000:전체조회, 0010:만주이상, 0050:5만주이상, 0100:10만주이상, 0150:15만주이상, 0200:20만주이상, "
            "0300:30만주이상, 0500:50만주이상, 1000:백만주이상")),
        TrInput("종목조건", "stock_filter", "stk_cnd", "0", choices(
            "0:전체조회, 1:관리종목제외, 4:우선주+관리주제외, 3:우선주제외, 5:증100제외, 6:증100만보기, "
            "7:증40만보기, 8:증30만보기, 9:증20만보기, 11:정리매매종목제외, 12:증50만보기, 13:증60만보기, "
            "14:ETF제외, 15:스팩제외, 16:ETF+ETN제외")),
        TrInput("신용조건", "credit", "crd_cnd", "0", choices(
            "0:전체조회, 1:신용융자A군, 2:신용융자B군, 3:신용융자C군, 4:신용융자D군, 7:신용융자E군, 9:신용융자전체")),
        TrInput("상하한포함", "include_limits", "updown_incls", "1", choices("0:불포함, 1:포함")),
        TrInput("가격조건", "price_filter", "pric_cnd", "0", choices(
            "0:전체조회, 1:1천원미만, 2:1천원~2천원, 3:2천원~5천원, 4:5천원~1만원, 5:1만원이상, 8:1천원이상, "
            "10:1만원미만")),
        TrInput("거래대금조건", "min_value", "trde_prica_cnd", "0", choices(
            "0:전체조회, 3:3천만원이상, 5:5천만원이상, 10:1억원이상, 30:3억원이상, 50:5억원이상, 100:10억원이상, "
            "300:30억원이상, 500:50억원이상, 1000:100억원이상, 3000:300억원이상, 5000:500억원이상")),
    ),
    outputs=(
        TrOutput("종목분류", "stock_class", "stk_cls", Kind.text),
        _CODE, _NAME, _PRICE, _SIGN, _CHANGE, _RATE,
        TrOutput("매도잔량", "ask_volume", "sel_req", Kind.unsigned),
        TrOutput("매수잔량", "bid_volume", "buy_req", Kind.unsigned),
        TrOutput("현재거래량", "volume", "now_trde_qty", Kind.unsigned),
        TrOutput("체결강도", "strength", "cntr_str", Kind.decimal),
        TrOutput("횟수", "count", "cnt", Kind.unsigned),
    ),
)

OPT10032: Final = TrSpec(
    code="opt10032", rqname="거래대금상위요청", record="거래대금상위", rest_api_id="ka10032",
    rest_rows_key="trde_prica_upper", row_schema=RowSchemaName.trade_value_top,
    inputs=(
        TrInput("시장구분", "market", "mrkt_tp", "000", _MARKET),
        TrInput("관리종목포함", "include_managed", "mang_stk_incls", "0",
                choices("0:관리종목 미포함, 1:관리종목 포함")),
    ),
    outputs=(
        _CODE,
        TrOutput("현재순위", "now_rank", "now_rank", Kind.unsigned),
        TrOutput("전일순위", "prev_rank", "pred_rank", Kind.unsigned),
        _NAME, _PRICE, _SIGN, _CHANGE, _RATE,
        TrOutput("매도호가", "ask", "sel_bid", Kind.unsigned),
        TrOutput("매수호가", "bid", "buy_bid", Kind.unsigned),
        TrOutput("현재거래량", "volume", "now_trde_qty", Kind.unsigned),
        TrOutput("전일거래량", "prev_volume", "pred_trde_qty", Kind.unsigned),
        TrOutput("거래대금", "trade_value", "trde_prica", Kind.unsigned),
    ),
)

#: Every TR the publisher can poll, by code (lower case).
TRS: Final[Mapping[str, TrSpec]] = MappingProxyType({s.code: s for s in (OPT10023, OPT10030, OPT10027, OPT10032)})
#: The TR of a feed that names none (configs written before there was a choice).
DEFAULT_TR: Final = OPT10023.code
_BY_RQNAME: Final = {s.rqname: s for s in TRS.values()}
_BY_API_ID: Final = {s.rest_api_id: s for s in TRS.values()}


def tr_spec(code: str) -> TrSpec:
    """The spec of TR ``code`` (any case); ValueError listing the known TRs otherwise."""
    spec = TRS.get(code.lower()) if isinstance(code, str) else None
    if spec is None:
        raise ValueError(f"unknown TR {code!r}; this publisher polls {', '.join(TRS)}")
    return spec


def spec_by_rqname(prefix: str) -> TrSpec | None:
    return _BY_RQNAME.get(prefix)


def spec_by_api_id(api_id: str) -> TrSpec | None:
    return _BY_API_ID.get(api_id)


def _check(spec: TrSpec) -> None:
    # Every row field of the contract's schema (rank aside) comes from exactly one output: the core included.
    fields = sorted(o.field for o in spec.outputs)
    wanted = sorted(n for n in spec.schema.field_names if n != "rank")
    if fields != wanted or spec.schema.tr != spec.code or not set(CORE_FIELD_NAMES) - {"rank"} <= set(fields):
        raise RuntimeError(f"{spec.code}: outputs {fields} do not fill row schema {spec.schema.name} {wanted}")


for _spec in TRS.values():
    _check(_spec)
