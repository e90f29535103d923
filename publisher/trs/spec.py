"""What a ranking TR is, as data: its inputs with their allowed values, its outputs and how each parses.

A :class:`TrSpec` is provider-neutral: our parameter names, defaults and allowed values, the row fields and
their :class:`Kind`. Each provider's names for the same TR live in a record of their own: :class:`OcxSpelling`
(the OCX's request and record names, input and output item names: KOA Studio's TR dump) and
:class:`RestSpelling` (the REST API's ``api-id``, answer list, body keys and answer keys), refused at build time
unless each names every input and output exactly once. The Redis contract never sees any of this: a document
carries ``tr``, English ``params`` and the row fields of its :class:`~kiwoom_cache.contract.RowSchema`. The
TRs themselves are in :mod:`publisher.trs.catalogue`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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


class Provider(StrEnum):
    """Whose names a raw answer's items carry: Kiwoom's OCX (OpenAPI+) or its REST API."""

    ocx = "ocx"
    rest = "rest"


@dataclass(frozen=True, slots=True)
class TrInput:
    """One input: our parameter name, its default and allowed values (each provider spells the name its way)."""

    param: str
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
    """One output: the row field it fills and how its raw string parses."""

    field: str
    kind: Kind


@dataclass(frozen=True, slots=True, kw_only=True)
class Spelling:
    """One provider's names for a TR's inputs (by parameter) and outputs (by row field)."""

    inputs: Mapping[str, str]
    outputs: Mapping[str, str]

    def __post_init__(self) -> None:
        # Frozen all the way down: the names are copied into read-only mappings, never shared with the caller.
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))
        object.__setattr__(self, "outputs", MappingProxyType(dict(self.outputs)))

    def fields_of(self, row: Mapping[str, str]) -> dict[str, str]:
        """A row under this provider's item names -> the same row by field (items we do not read are left out)."""
        return {f: row[name] for f, name in self.outputs.items() if name in row}

    def named(self, row: Mapping[str, str]) -> dict[str, str]:
        """A row by field -> the same row under this provider's item names."""
        return {self.outputs[f]: value for f, value in row.items() if f in self.outputs}

    def params_of(self, inputs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        """(this provider's input name, value) -> (parameter, value); a name it does not know stays as it is."""
        params = {name: param for param, name in self.inputs.items()}
        return tuple((params.get(name, name), value) for name, value in inputs)

    def mismatch(self, params: Sequence[str], fields: Sequence[str]) -> str | None:
        """None if every parameter and output field has exactly one name here, else what is wrong."""
        problems = []
        for what, wanted, given in (("input", params, self.inputs), ("output", fields, self.outputs)):
            if missing := [w for w in wanted if w not in given]:
                problems.append(f"no name for {what}(s) {', '.join(missing)}")
            if extra := [g for g in given if g not in wanted]:
                problems.append(f"names {what}(s) the TR does not have: {', '.join(extra)}")
            if len(set(given.values())) != len(given):
                problems.append(f"gives two {what}s the same name")
        return "; ".join(problems) or None


@dataclass(frozen=True, slots=True, kw_only=True)
class OcxSpelling(Spelling):
    """The OCX's names: SetInputValue inputs, GetCommData items, and the request and record names."""

    #: sRQName prefix (the feed is appended) and the record name GetCommData reads.
    rqname: str
    record: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RestSpelling(Spelling):
    """The REST API's names: body keys, answer keys, the ``api-id`` and the answer's list of rows."""

    api_id: str
    rows_key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TrSpec:
    code: str
    inputs: tuple[TrInput, ...]
    #: Outputs we publish, in Kiwoom's order; items not listed are not read.
    outputs: tuple[TrOutput, ...]
    row_schema: RowSchemaName
    ocx: OcxSpelling
    rest: RestSpelling

    def __post_init__(self) -> None:
        # A spelling that misses an input or output would fail only when that provider is polled: refuse it here.
        fields = tuple(o.field for o in self.outputs)
        for provider in Provider:
            problem = self.spelling(provider).mismatch(self.params, fields)
            if problem is not None:
                raise ValueError(f"{self.code}: the {provider} spelling {problem}")

    def spelling(self, provider: Provider) -> Spelling:
        return self.ocx if provider is Provider.ocx else self.rest

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




def names(*base: Mapping[str, str], **more: str) -> Mapping[str, str]:
    """A spelling's names (parameter or field -> the provider's name): shared tables merged with the TR's own."""
    merged: dict[str, str] = {}
    for table in base:
        merged.update(table)
    return MappingProxyType({**merged, **more})
