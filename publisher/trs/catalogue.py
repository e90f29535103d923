"""The ranking TRs the publisher can poll (facts and sources: docs/kiwoom-rankings.md), checked at import.

Paging: one OCX request answers one page (up to :data:`~publisher.trs.spec.PAGE_ROWS` rows); the OCX source
follows sPrevNext ``"2"`` and the REST source ``cont-yn``/``next-key``, and each merges the pages, each page
through the shared limiter.

One TR is one block: its inputs (our name, default, allowed values) and outputs (row field, kind), then the
OCX's names for them (KOA Studio's dump) and the REST API's (Kiwoom's examples), both keyed by our names.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from kiwoom_cache.contract import CORE_FIELD_NAMES, RowSchemaName
from publisher.trs.spec import Kind, OcxSpelling, RestSpelling, TrInput, TrOutput, TrSpec, choices, names

_MARKET = choices("000:전체, 001:코스피, 101:코스닥")
_CODE = TrOutput("code", Kind.code)
_NAME = TrOutput("name", Kind.name)
_PRICE = TrOutput("price", Kind.unsigned)
_SIGN = TrOutput("sign", Kind.sign)
_CHANGE = TrOutput("change", Kind.signed)
_RATE = TrOutput("change_rate", Kind.decimal)
#: The shared outputs' names, the same in every TR.
_OCX_CORE = names(code="종목코드", name="종목명", price="현재가", sign="전일대비기호", change="전일대비",
                  change_rate="등락률")
_REST_CORE = names(code="stk_cd", name="stk_nm", price="cur_prc", sign="pred_pre_sig", change="pred_pre",
                   change_rate="flu_rt")

OPT10023: Final = TrSpec(
    code="opt10023", row_schema=RowSchemaName.volume_surge,
    inputs=(
        TrInput("market", "000", _MARKET),
        TrInput("sort", "1", choices("1:급증량, 2:급증률")),
        TrInput("time_unit", "1", choices("1:분, 2:전일")),
        TrInput("min_volume", "5", choices(
            "5:5천주이상, 10:만주이상, 50:5만주이상, 100:10만주이상, 200:20만주이상, 300:30만주이상, "
            "500:50만주이상, 1000:백만주이상")),
        TrInput("minutes", "5", bounds=(1, 390)),
        TrInput("stock_filter", "0", choices(
            "0:전체조회, 1:관리종목제외, 5:증100제외, 6:증100만보기, 7:증40만보기, 8:증30만보기, 9:증20만보기")),
        TrInput("price_filter", "0", choices(
            "0:전체조회, 2:5만원이상, 5:1만원이상, 6:5천원이상, 8:1천원이상, 9:10만원이상")),
    ),
    outputs=(
        _CODE, _NAME, _PRICE, _SIGN, _CHANGE, _RATE,
        TrOutput("prev_volume", Kind.unsigned),
        TrOutput("volume", Kind.unsigned),
        TrOutput("surge_volume", Kind.signed),
        TrOutput("surge_rate", Kind.decimal),
    ),
    ocx=OcxSpelling(
        rqname="거래량급증요청", record="거래량급증",
        inputs=names(market="시장구분", sort="정렬구분", time_unit="시간구분", min_volume="거래량구분",
                     minutes="시간", stock_filter="종목조건", price_filter="가격구분"),
        outputs=names(_OCX_CORE, prev_volume="이전거래량", volume="현재거래량", surge_volume="급증량",
                      surge_rate="급증률"),
    ),
    rest=RestSpelling(
        api_id="ka10023", rows_key="trde_qty_sdnin",
        inputs=names(market="mrkt_tp", sort="sort_tp", time_unit="tm_tp", min_volume="trde_qty_tp", minutes="tm",
                     stock_filter="stk_cnd", price_filter="pric_tp"),
        outputs=names(_REST_CORE, prev_volume="prev_trde_qty", volume="now_trde_qty", surge_volume="sdnin_qty",
                      surge_rate="sdnin_rt"),
    ),
)

_VOLUME_CLASSES = ("0:전체조회, 5:5천주이상, 10:1만주이상, 50:5만주이상, 100:10만주이상, 200:20만주이상, "
                   "300:30만주이상, 500:50만주이상, 1000:백만주이상")

OPT10030: Final = TrSpec(
    code="opt10030", row_schema=RowSchemaName.volume_top,
    inputs=(
        TrInput("market", "000", _MARKET),
        TrInput("sort", "1", choices("1:거래량, 2:거래회전율, 3:거래대금")),
        TrInput("stock_filter", "0", choices(
            "0:관리종목 포함, 1:관리종목 미포함, 3:우선주제외, 11:정리매매종목제외, 4:관리종목+우선주제외, "
            "5:증100제외, 6:증100만보기, 13:증60만보기, 12:증50만보기, 7:증40만보기, 8:증30만보기, 9:증20만보기, "
            "14:ETF제외, 15:스팩제외, 16:ETF+ETN제외")),
        TrInput("credit", "0", choices(
            "0:전체조회, 9:신용융자전체, 1:신용융자A군, 2:신용융자B군, 3:신용융자C군, 4:신용융자D군, 8:신용대주")),
        TrInput("min_volume", "0", choices(_VOLUME_CLASSES)),
        TrInput("price_filter", "0", choices(
            "0:전체조회, 1:1천원미만, 2:1천원이상, 3:1천원~2천원, 4:2천원~5천원, 5:5천원이상, 6:5천원~1만원, "
            "10:1만원미만, 7:1만원이상, 8:5만원이상, 9:10만원이상")),
        TrInput("min_value", "0", choices(
            "0:전체조회, 1:1천만원이상, 3:3천만원이상, 4:5천만원이상, 10:1억원이상, 30:3억원이상, 50:5억원이상, "
            "100:10억원이상, 300:30억원이상, 500:50억원이상, 1000:100억원이상, 3000:300억원이상, 5000:500억원이상")),
        TrInput("trading_session", "0", choices("0:전체조회, 1:장중, 2:장전시간외, 3:장후시간외")),
    ),
    outputs=(
        _CODE, _NAME, _PRICE, _SIGN, _CHANGE, _RATE,
        TrOutput("volume", Kind.unsigned),
        TrOutput("volume_ratio", Kind.decimal),
        TrOutput("turnover_rate", Kind.decimal),
        TrOutput("trade_value", Kind.unsigned),
    ),
    ocx=OcxSpelling(
        rqname="당일거래량상위요청", record="당일거래량상위",
        inputs=names(market="시장구분", sort="정렬구분", stock_filter="관리종목포함", credit="신용구분",
                     min_volume="거래량구분", price_filter="가격구분", min_value="거래대금구분",
                     trading_session="장운영구분"),
        outputs=names(_OCX_CORE, volume="거래량", volume_ratio="전일비", turnover_rate="거래회전율",
                      trade_value="거래금액"),
    ),
    rest=RestSpelling(
        api_id="ka10030", rows_key="tdy_trde_qty_upper",
        inputs=names(market="mrkt_tp", sort="sort_tp", stock_filter="mang_stk_incls", credit="crd_tp",
                     min_volume="trde_qty_tp", price_filter="pric_tp", min_value="trde_prica_tp",
                     trading_session="mrkt_open_tp"),
        outputs=names(_REST_CORE, volume="trde_qty", volume_ratio="pred_rt", turnover_rate="trde_tern_rt",
                      trade_value="trde_amt"),
    ),
)

OPT10027: Final = TrSpec(
    code="opt10027", row_schema=RowSchemaName.change_rate_top,
    inputs=(
        TrInput("market", "000", _MARKET),
        TrInput("sort", "1", choices("1:상승률, 2:상승폭, 3:하락률, 4:하락폭, 5:보합")),
        TrInput("min_volume", "0000", choices(
            "0000:전체조회, 0010:만주이상, 0050:5만주이상, 0100:10만주이상, 0150:15만주이상, 0200:20만주이상, "
            "0300:30만주이상, 0500:50만주이상, 1000:백만주이상")),
        TrInput("stock_filter", "0", choices(
            "0:전체조회, 1:관리종목제외, 4:우선주+관리주제외, 3:우선주제외, 5:증100제외, 6:증100만보기, "
            "7:증40만보기, 8:증30만보기, 9:증20만보기, 11:정리매매종목제외, 12:증50만보기, 13:증60만보기, "
            "14:ETF제외, 15:스팩제외, 16:ETF+ETN제외")),
        TrInput("credit", "0", choices(
            "0:전체조회, 1:신용융자A군, 2:신용융자B군, 3:신용융자C군, 4:신용융자D군, 7:신용융자E군, 9:신용융자전체")),
        TrInput("include_limits", "1", choices("0:불포함, 1:포함")),
        TrInput("price_filter", "0", choices(
            "0:전체조회, 1:1천원미만, 2:1천원~2천원, 3:2천원~5천원, 4:5천원~1만원, 5:1만원이상, 8:1천원이상, "
            "10:1만원미만")),
        TrInput("min_value", "0", choices(
            "0:전체조회, 3:3천만원이상, 5:5천만원이상, 10:1억원이상, 30:3억원이상, 50:5억원이상, 100:10억원이상, "
            "300:30억원이상, 500:50억원이상, 1000:100억원이상, 3000:300억원이상, 5000:500억원이상")),
    ),
    outputs=(
        TrOutput("stock_class", Kind.text),
        _CODE, _NAME, _PRICE, _SIGN, _CHANGE, _RATE,
        TrOutput("ask_volume", Kind.unsigned),
        TrOutput("bid_volume", Kind.unsigned),
        TrOutput("volume", Kind.unsigned),
        TrOutput("strength", Kind.decimal),
        TrOutput("count", Kind.unsigned),
    ),
    ocx=OcxSpelling(
        rqname="전일대비등락률상위요청", record="전일대비등락률상위",
        inputs=names(market="시장구분", sort="정렬구분", min_volume="거래량조건", stock_filter="종목조건",
                     credit="신용조건", include_limits="상하한포함", price_filter="가격조건",
                     min_value="거래대금조건"),
        outputs=names(_OCX_CORE, stock_class="종목분류", ask_volume="매도잔량", bid_volume="매수잔량",
                      volume="현재거래량", strength="체결강도", count="횟수"),
    ),
    rest=RestSpelling(
        api_id="ka10027", rows_key="pred_pre_flu_rt_upper",
        inputs=names(market="mrkt_tp", sort="sort_tp", min_volume="trde_qty_cnd", stock_filter="stk_cnd",
                     credit="crd_cnd", include_limits="updown_incls", price_filter="pric_cnd",
                     min_value="trde_prica_cnd"),
        outputs=names(_REST_CORE, stock_class="stk_cls", ask_volume="sel_req", bid_volume="buy_req",
                      volume="now_trde_qty", strength="cntr_str", count="cnt"),
    ),
)

OPT10032: Final = TrSpec(
    code="opt10032", row_schema=RowSchemaName.trade_value_top,
    inputs=(
        TrInput("market", "000", _MARKET),
        TrInput("include_managed", "0", choices("0:관리종목 미포함, 1:관리종목 포함")),
    ),
    outputs=(
        _CODE,
        TrOutput("now_rank", Kind.unsigned),
        TrOutput("prev_rank", Kind.unsigned),
        _NAME, _PRICE, _SIGN, _CHANGE, _RATE,
        TrOutput("ask", Kind.unsigned),
        TrOutput("bid", Kind.unsigned),
        TrOutput("volume", Kind.unsigned),
        TrOutput("prev_volume", Kind.unsigned),
        TrOutput("trade_value", Kind.unsigned),
    ),
    ocx=OcxSpelling(
        rqname="거래대금상위요청", record="거래대금상위",
        inputs=names(market="시장구분", include_managed="관리종목포함"),
        outputs=names(_OCX_CORE, now_rank="현재순위", prev_rank="전일순위", ask="매도호가", bid="매수호가",
                      volume="현재거래량", prev_volume="전일거래량", trade_value="거래대금"),
    ),
    rest=RestSpelling(
        api_id="ka10032", rows_key="trde_prica_upper",
        inputs=names(market="mrkt_tp", include_managed="mang_stk_incls"),
        outputs=names(_REST_CORE, now_rank="now_rank", prev_rank="pred_rank", ask="sel_bid", bid="buy_bid",
                      volume="now_trde_qty", prev_volume="pred_trde_qty", trade_value="trde_prica"),
    ),
)

#: Every TR the publisher can poll, by code (lower case).
TRS: Final[Mapping[str, TrSpec]] = MappingProxyType({s.code: s for s in (OPT10023, OPT10030, OPT10027, OPT10032)})
#: The TR of a feed that names none (configs written before there was a choice).
DEFAULT_TR: Final = OPT10023.code
_BY_RQNAME: Final = {s.ocx.rqname: s for s in TRS.values()}
_BY_API_ID: Final = {s.rest.api_id: s for s in TRS.values()}


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
