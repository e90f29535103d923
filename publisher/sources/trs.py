"""The ranking TRs the publisher can poll, as data: inputs with their allowed values, outputs -> row fields.

One :class:`TrSpec` per TR holds every Kiwoom spelling the sources need: the OCX's request and record names,
its input and output item names (KOA Studio's TR dump), and the REST API's ``api-id``, body keys and answer
keys. The Redis contract never sees any of this: a document carries ``tr``, English ``params`` and the row
fields of its :class:`~kiwoom_cache.contract.RowSchema`. Facts and sources: docs/kiwoom-rankings.md.

Paging: one OCX request answers one page (up to :data:`PAGE_ROWS` rows); the OCX source follows sPrevNext ``"2"``
and the REST source ``cont-yn``/``next-key``, and each merges the pages, each page through the shared limiter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from kiwoom_cache.contract import CORE_FIELD_NAMES, ROW_SCHEMAS, RowSchema, RowSchemaName

#: Rows per OCX answer (KOA Studio's dump: up to 200 for these rankings).
PAGE_ROWS: Final = 200


class Kind(StrEnum):
    """How a raw Kiwoom string becomes a typed value (publisher/parser.py has one function per kind)."""

    code = "code"          # 'A005930', '005930_AL' -> '005930'
    name = "name"          # non-empty text
    text = "text"          # text, may be empty
    sign = "sign"          # 전일대비기호 1..5
    signed = "signed"      # integer, direction from the last +/- ('+-4500' -> -4500)
    unsigned = "unsigned"  # integer magnitude ('-152000' price -> 152000)
    decimal = "decimal"    # signed decimal ('+38.04')


@dataclass(frozen=True, slots=True)
class TrInput:
    """One input: Kiwoom's OCX name, our parameter name, the REST body key, default and allowed values."""

    kiwoom: str
    param: str
    rest: str
    default: str
    #: code -> Kiwoom's description; None for a free number checked against ``bounds``.
    choices: Mapping[str, str] | None = None
    bounds: tuple[int, int] | None = None

    def check(self, value: str) -> str | None:
        """None if ``value`` is allowed, else why not (listing what is)."""
        if self.choices is not None:
            if value in self.choices:
                return None
            allowed = ", ".join(f"{k} ({v})" for k, v in self.choices.items())
            return f"{self.param}={value!r} is not one of {allowed}"
        low, high = self.bounds or (0, 10**9)
        if value.isascii() and value.isdigit() and low <= int(value) <= high:
            return None
        return f"{self.param}={value!r} must be a whole number {low}..{high}"


@dataclass(frozen=True, slots=True)
class TrOutput:
    """One output item: Kiwoom's OCX name, the row field it fills, the REST answer key, how it parses."""

    kiwoom: str
    field: str
    rest: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class TrSpec:
    code: str
    #: sRQName prefix (the feed is appended) and the record name GetCommData reads.
    rqname: str
    record: str
    rest_api_id: str
    #: The REST answer's list of rows.
    rest_rows_key: str
    inputs: tuple[TrInput, ...]
    #: Outputs we publish, in Kiwoom's order; items not listed are not read.
    outputs: tuple[TrOutput, ...]
    row_schema: RowSchemaName

    @property
    def schema(self) -> RowSchema:
        return ROW_SCHEMAS[self.row_schema]

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(i.param for i in self.inputs)

    def defaults(self) -> dict[str, str]:
        return {i.param: i.default for i in self.inputs}

    def input(self, param: str) -> TrInput:
        for item in self.inputs:
            if item.param == param:
                return item
        raise KeyError(param)

    def validate(self, params: Mapping[str, str]) -> dict[str, str]:
        """``params`` completed with defaults, in SetInputValue order; ValueError naming what is wrong."""
        unknown = [k for k in params if k not in self.params]
        if unknown:
            raise ValueError(f"{self.code} has no input {', '.join(map(repr, unknown))}; "
                             f"its inputs are {', '.join(self.params)}")
        full = {i.param: str(params.get(i.param, i.default)) for i in self.inputs}
        problems = [p for i in self.inputs if (p := i.check(full[i.param])) is not None]
        if problems:
            raise ValueError(f"{self.code}: " + "; ".join(problems))
        return full


def _choices(text: str) -> Mapping[str, str]:
    """``"000:전체, 001:코스피"`` -> ``{"000": "전체", "001": "코스피"}`` (Kiwoom's own notation)."""
    pairs = (item.split(":", 1) for item in text.split(", "))
    return MappingProxyType({k.strip(): v.strip() for k, v in pairs})


_MARKET = _choices("000:전체, 001:코스피, 101:코스닥")
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
        TrInput("정렬구분", "sort", "sort_tp", "1", _choices("1:급증량, 2:급증률")),
        TrInput("시간구분", "time_unit", "tm_tp", "1", _choices("1:분, 2:전일")),
        TrInput("거래량구분", "min_volume", "trde_qty_tp", "5", _choices(
            "5:5천주이상, 10:만주이상, 50:5만주이상, 100:10만주이상, 200:20만주이상, 300:30만주이상, "
            "500:50만주이상, 1000:백만주이상")),
        TrInput("시간", "minutes", "tm", "5", bounds=(1, 390)),
        TrInput("종목조건", "stock_filter", "stk_cnd", "0", _choices(
            "0:전체조회, 1:관리종목제외, 5:증100제외, 6:증100만보기, 7:증40만보기, 8:증30만보기, 9:증20만보기")),
        TrInput("가격구분", "price_filter", "pric_tp", "0", _choices(
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
        TrInput("정렬구분", "sort", "sort_tp", "1", _choices("1:거래량, 2:거래회전율, 3:거래대금")),
        TrInput("관리종목포함", "stock_filter", "mang_stk_incls", "0", _choices(
            "0:관리종목 포함, 1:관리종목 미포함, 3:우선주제외, 11:정리매매종목제외, 4:관리종목+우선주제외, "
            "5:증100제외, 6:증100만보기, 13:증60만보기, 12:증50만보기, 7:증40만보기, 8:증30만보기, 9:증20만보기, "
            "14:ETF제외, 15:스팩제외, 16:ETF+ETN제외")),
        TrInput("신용구분", "credit", "crd_tp", "0", _choices(
            "0:전체조회, 9:신용융자전체, 1:신용융자A군, 2:신용융자B군, 3:신용융자C군, 4:신용융자D군, 8:신용대주")),
        TrInput("거래량구분", "min_volume", "trde_qty_tp", "0", _choices(_VOLUME_CLASSES)),
        TrInput("가격구분", "price_filter", "pric_tp", "0", _choices(
            "0:전체조회, 1:1천원미만, 2:1천원이상, 3:1천원~2천원, 4:2천원~5천원, 5:5천원이상, 6:5천원~1만원, "
            "10:1만원미만, 7:1만원이상, 8:5만원이상, 9:10만원이상")),
        TrInput("거래대금구분", "min_value", "trde_prica_tp", "0", _choices(
            "0:전체조회, 1:1천만원이상, 3:3천만원이상, 4:5천만원이상, 10:1억원이상, 30:3억원이상, 50:5억원이상, "
            "100:10억원이상, 300:30억원이상, 500:50억원이상, 1000:100억원이상, 3000:300억원이상, 5000:500억원이상")),
        TrInput("장운영구분", "trading_session", "mrkt_open_tp", "0", _choices(
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
        TrInput("정렬구분", "sort", "sort_tp", "1", _choices("1:상승률, 2:상승폭, 3:하락률, 4:하락폭, 5:보합")),
        TrInput("거래량조건", "min_volume", "trde_qty_cnd", "0000", _choices(
            "0000:전체조회, 0010:만주이상, 0050:5만주이상, 0100:10만주이상, 0150:15만주이상, 0200:20만주이상, "
            "0300:30만주이상, 0500:50만주이상, 1000:백만주이상")),
        TrInput("종목조건", "stock_filter", "stk_cnd", "0", _choices(
            "0:전체조회, 1:관리종목제외, 4:우선주+관리주제외, 3:우선주제외, 5:증100제외, 6:증100만보기, "
            "7:증40만보기, 8:증30만보기, 9:증20만보기, 11:정리매매종목제외, 12:증50만보기, 13:증60만보기, "
            "14:ETF제외, 15:스팩제외, 16:ETF+ETN제외")),
        TrInput("신용조건", "credit", "crd_cnd", "0", _choices(
            "0:전체조회, 1:신용융자A군, 2:신용융자B군, 3:신용융자C군, 4:신용융자D군, 7:신용융자E군, 9:신용융자전체")),
        TrInput("상하한포함", "include_limits", "updown_incls", "1", _choices("0:불포함, 1:포함")),
        TrInput("가격조건", "price_filter", "pric_cnd", "0", _choices(
            "0:전체조회, 1:1천원미만, 2:1천원~2천원, 3:2천원~5천원, 4:5천원~1만원, 5:1만원이상, 8:1천원이상, "
            "10:1만원미만")),
        TrInput("거래대금조건", "min_value", "trde_prica_cnd", "0", _choices(
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
                _choices("0:관리종목 미포함, 1:관리종목 포함")),
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
