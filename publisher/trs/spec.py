"""What a ranking TR is, as data: its inputs with their allowed values, its outputs and how each parses.

A :class:`TrSpec` holds every Kiwoom spelling the sources need: the OCX's request and record names, its input
and output item names (KOA Studio's TR dump), and the REST API's ``api-id``, body keys and answer keys. The
Redis contract never sees any of this: a document carries ``tr``, English ``params`` and the row fields of its
:class:`~kiwoom_cache.contract.RowSchema`. The TRs themselves are in :mod:`publisher.trs.catalogue`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from kiwoom_cache.contract import ROW_SCHEMAS, RowSchema, RowSchemaName

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


def choices(text: str) -> Mapping[str, str]:
    """``"000:전체, 001:코스피"`` -> ``{"000": "전체", "001": "코스피"}`` (Kiwoom's own notation)."""
    pairs = (item.split(":", 1) for item in text.split(", "))
    return MappingProxyType({k.strip(): v.strip() for k, v in pairs})


