"""Row schemas: the core every row carries and each ranking TR's own fields (schema 3 documents).

Every document names its ``tr`` and ``row_schema``; each row carries the core (:data:`CORE_FIELDS`: rank, code,
name, price, sign, change, change_rate, volume) and then its TR's own fields (:data:`ROW_SCHEMAS`). Documents of
schema 1 and 2 have no ``row_schema``: they are opt10023's ``volume_surge``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from kiwoom_cache.errors import ContractError

__all__ = [
    "ALL_ROW_FIELDS", "CORE_FIELDS", "CORE_FIELD_NAMES", "LEGACY_ROW_SCHEMA", "ROW_SCHEMAS", "ROW_SCHEMA_OF_TR",
    "DroppedRow", "Row", "RowField", "RowSchema", "RowSchemaName", "RowValue", "row_schema", "row_schema_for_tr",
]

#: Python type of a row field; JSON numbers and strings.
RowValue = int | float | str


@dataclass(frozen=True, slots=True)
class RowField:
    """One field of a row: its JSON name, its type and what it means (documented in the OpenAPI schema)."""

    name: str
    kind: type
    doc: str


#: The core every row carries, whatever its TR: the ranking's position and the stock's price and volume.
CORE_FIELDS: Final[tuple[RowField, ...]] = (
    RowField("rank", int, "Position in Kiwoom's answer, from 1"),
    RowField("code", str, "KRX stock code, 6 characters (Kiwoom's 'A' prefix and venue suffix removed)"),
    RowField("name", str, "Stock name"),
    RowField("price", int, "Current price in KRW (unsigned: the direction is in sign/change)"),
    RowField("sign", int, "전일대비기호: 1 upper limit, 2 up, 3 flat, 4 lower limit, 5 down"),
    RowField("change", int, "Change versus the previous close in KRW, signed"),
    RowField("change_rate", float, "Change versus the previous close in %, signed"),
    RowField("volume", int, "Today's cumulative volume in shares"),
)
CORE_FIELD_NAMES: Final = tuple(f.name for f in CORE_FIELDS)


class RowSchemaName(StrEnum):
    """The row schemas: which fields a document's rows carry beyond the core. One per ranking TR."""

    volume_surge = "volume_surge"
    volume_top = "volume_top"
    change_rate_top = "change_rate_top"
    trade_value_top = "trade_value_top"


@dataclass(frozen=True, slots=True)
class RowSchema:
    """The row fields of one TR: :data:`CORE_FIELDS` followed by ``own`` (the TR's own fields, in order)."""

    name: RowSchemaName
    tr: str
    title: str
    own: tuple[RowField, ...]

    @property
    def fields(self) -> tuple[RowField, ...]:
        return CORE_FIELDS + self.own

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


#: Row schema by name. The publisher maps each TR's Kiwoom output items onto these names
#: (publisher/trs/catalogue.py); the API documents and selects them; the dashboard draws their columns.
ROW_SCHEMAS: Final[Mapping[RowSchemaName, RowSchema]] = MappingProxyType({s.name: s for s in (
    RowSchema(RowSchemaName.volume_surge, "opt10023", "거래량급증 (volume surge)", (
        RowField("prev_volume", int, "이전거래량: cumulative volume at the comparison point"),
        RowField("surge_volume", int, "급증량: volume minus prev_volume, signed"),
        RowField("surge_rate", float, "급증률: surge_volume / prev_volume in %, signed"),
    )),
    RowSchema(RowSchemaName.volume_top, "opt10030", "당일거래량상위 (today's volume leaders)", (
        RowField("volume_ratio", float, "전일비: today's volume as % of the previous day's"),
        RowField("turnover_rate", float, "거래회전율: volume / listed shares in %"),
        RowField("trade_value", int, "거래금액: traded value, in Kiwoom's unit (millions of KRW)"),
    )),
    RowSchema(RowSchemaName.change_rate_top, "opt10027", "전일대비등락률상위 (top movers vs. previous close)", (
        RowField("stock_class", str, "종목분류: Kiwoom's classification code, as sent (may be empty)"),
        RowField("ask_volume", int, "매도잔량: shares offered at the best asks"),
        RowField("bid_volume", int, "매수잔량: shares bid at the best bids"),
        RowField("strength", float, "체결강도: buy/sell execution strength in %"),
        RowField("count", int, "횟수: Kiwoom's count for the stock (consecutive appearances)"),
    )),
    RowSchema(RowSchemaName.trade_value_top, "opt10032", "거래대금상위 (traded value leaders)", (
        RowField("now_rank", int, "현재순위: Kiwoom's current rank"),
        RowField("prev_rank", int, "전일순위: the stock's rank the previous day"),
        RowField("ask", int, "매도호가: best ask in KRW (unsigned)"),
        RowField("bid", int, "매수호가: best bid in KRW (unsigned)"),
        RowField("prev_volume", int, "전일거래량: the previous day's volume"),
        RowField("trade_value", int, "거래대금: traded value, in Kiwoom's unit (millions of KRW)"),
    )),
)})
#: TR code -> its row schema.
ROW_SCHEMA_OF_TR: Final[Mapping[str, RowSchemaName]] = MappingProxyType({s.tr: s.name for s in ROW_SCHEMAS.values()})
#: Every row field of every schema, for a query that names fields before the document is known.
ALL_ROW_FIELDS: Final = tuple(dict.fromkeys(n for s in ROW_SCHEMAS.values() for n in s.field_names))
#: Documents before schema 3 carry no ``row_schema``: they were all opt10023.
LEGACY_ROW_SCHEMA: Final = RowSchemaName.volume_surge


def row_schema(name: str) -> RowSchema:
    """The row schema called ``name``; a ContractError listing the known ones otherwise."""
    try:
        return ROW_SCHEMAS[RowSchemaName(name)]
    except ValueError:
        known = ", ".join(s.value for s in RowSchemaName)
        raise ContractError(f"unknown row schema {name!r}; this build knows {known}") from None


def row_schema_for_tr(tr: str) -> RowSchema:
    name = ROW_SCHEMA_OF_TR.get(tr.lower())
    if name is None:
        raise ContractError(f"no row schema for TR {tr!r}; known TRs: {', '.join(ROW_SCHEMA_OF_TR)}")
    return ROW_SCHEMAS[name]


@dataclass(frozen=True, slots=True)
class Row:
    """One ranked stock, typed: the core fields, then its TR's own fields (``own``, in the schema's order).

    Field names are the JSON names; each TR spec maps Kiwoom's output items onto them.
    """

    rank: int
    code: str
    name: str
    price: int
    sign: int
    change: int
    change_rate: float
    volume: int
    own: Mapping[str, RowValue] = field(default_factory=dict)

    def to_dict(self) -> dict[str, RowValue]:
        return {"rank": self.rank, "code": self.code, "name": self.name, "price": self.price, "sign": self.sign,
                "change": self.change, "change_rate": self.change_rate, "volume": self.volume, **self.own}


@dataclass(frozen=True, slots=True)
class DroppedRow:
    """A row Kiwoom sent that the parser refused: kept visible in the document, never turned into 0."""

    rank: int
    field: str
    value: str
    reason: str
