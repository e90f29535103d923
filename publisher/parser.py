"""Raw ranking-TR strings -> typed rows, one set of rules for every TR and every source
(publisher/trs/catalogue.py says which output is which kind).

A raw row is keyed by the TR's row fields: each source maps its own item names to fields, and hands the
parser those names only so that a refused value is reported under the name its provider gave it (the OCX's
``현재가``, the REST API's ``cur_prc``).

Kiwoom returns every field as a padded string. Prices carry ``+``/``-`` meaning direction versus the
previous close, some TRs double the sign (``--4500``: the first is the HTS colour), numbers may have
leading zeros, codes may carry an ``A`` prefix or a venue suffix. A row that does not parse is
dropped *and reported* (:class:`~kiwoom_cache.contract.DroppedRow`); it never becomes 0.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from kiwoom_cache.contract import DroppedRow, Ranking, Row, RowValue, Source
from kiwoom_cache.errors import KiwoomCacheError
from publisher.trs import OPT10023, Kind, RawResponse, TrSpec, tr_spec

log = logging.getLogger(__name__)

_INT_RE = re.compile(r"^([+-]*)(\d+)$")
_DEC_RE = re.compile(r"^([+-]*)(\d+(?:\.\d+)?)$")
_CODE_RE = re.compile(r"^[0-9A-Z]{6}$")
_DOWN_SIGNS = frozenset((4, 5))
_UP_SIGNS = frozenset((1, 2))


class MalformedValue(KiwoomCacheError, ValueError):
    """One raw field that cannot be turned into its typed value."""

    def __init__(self, field: str, value: str, reason: str) -> None:
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"{field}={value!r}: {reason}")


@dataclass(frozen=True, slots=True)
class ParsedRanking:
    rows: tuple[Row, ...]
    dropped: tuple[DroppedRow, ...]


def _number(field: str, raw: str, pattern: re.Pattern[str]) -> tuple[int, str]:
    """(direction -1/0/+1 from the *last* sign char, digits) or MalformedValue."""
    text = raw.strip()
    if not text:
        raise MalformedValue(field, raw, "empty")
    match = pattern.match(text)
    if not match:
        raise MalformedValue(field, raw, "not a number")
    signs, digits = match.groups()
    direction = 0 if not signs else (-1 if signs[-1] == "-" else 1)
    return direction, digits


def parse_int(field: str, raw: str) -> int:
    """Signed integer; the direction is the last sign character (``+-4500`` -> -4500)."""
    direction, digits = _number(field, raw, _INT_RE)
    return -int(digits) if direction < 0 else int(digits)


def parse_unsigned(field: str, raw: str) -> int:
    """Magnitude only: a price's sign is its direction versus yesterday, not a negative price."""
    return int(_number(field, raw, _INT_RE)[1])


def parse_decimal(field: str, raw: str) -> float:
    direction, digits = _number(field, raw, _DEC_RE)
    return -float(digits) if direction < 0 else float(digits)


def parse_sign(field: str, raw: str) -> int:
    text = raw.strip()
    if text not in ("1", "2", "3", "4", "5"):
        raise MalformedValue(field, raw, "전일대비기호 must be 1..5")
    return int(text)


def parse_code(field: str, raw: str) -> str:
    """``A005930``/`` 005930 ``/``005930_AL`` -> ``005930``."""
    text = raw.strip().upper()
    text = text.split("_", 1)[0]
    if len(text) == 7 and text.startswith("A"):
        text = text[1:]
    if not _CODE_RE.match(text):
        raise MalformedValue(field, raw, "not a 6-character KRX code")
    return text


def parse_name(field: str, raw: str) -> str:
    text = raw.strip()
    if not text:
        raise MalformedValue(field, raw, "empty")
    return text


def parse_text(field: str, raw: str) -> str:
    """Free text that may be empty (종목분류): stripped, never invented."""
    return raw.strip()


PARSERS: Final[dict[Kind, Callable[[str, str], RowValue]]] = {
    Kind.code: parse_code, Kind.name: parse_name, Kind.text: parse_text, Kind.sign: parse_sign,
    Kind.signed: parse_int, Kind.unsigned: parse_unsigned, Kind.decimal: parse_decimal,
}


def parse_row(raw: Mapping[str, str], rank: int, spec: TrSpec = OPT10023,
              names: Mapping[str, str] | None = None) -> Row:
    """One raw row (row field -> raw string) of TR ``spec`` into a :class:`Row`; a refused value is reported under
    its provider's item name from ``names`` (row field -> name; the field itself without it)."""
    values: dict[str, RowValue] = {"rank": rank}
    for output in spec.outputs:
        item = names.get(output.field, output.field) if names is not None else output.field
        value = raw.get(output.field)
        if value is None:
            raise MalformedValue(item, "", "missing")
        values[output.field] = PARSERS[output.kind](item, value)
    sign, change, change_rate = int(values["sign"]), int(values["change"]), float(values["change_rate"])
    # Unsigned magnitude with a down sign code: take the direction from 전일대비기호.
    if sign in _DOWN_SIGNS:
        change, change_rate = -abs(change), -abs(change_rate)
    elif sign in _UP_SIGNS:
        change, change_rate = abs(change), abs(change_rate)
    return Row(rank=rank, code=str(values["code"]), name=str(values["name"]), price=int(values["price"]), sign=sign,
               change=change, change_rate=change_rate, volume=int(values["volume"]),
               own={f.name: values[f.name] for f in spec.schema.own})


def parse_rows(raw_rows: Sequence[Mapping[str, str]], *, context: str = "", spec: TrSpec = OPT10023,
               names: Mapping[str, str] | None = None) -> ParsedRanking:
    """Every row in Kiwoom's order (rank = position); malformed rows logged and listed, never zeroed."""
    rows: list[Row] = []
    dropped: list[DroppedRow] = []
    for index, raw in enumerate(raw_rows):
        rank = index + 1
        try:
            rows.append(parse_row(raw, rank, spec, names))
        except MalformedValue as exc:
            log.warning("%s: dropped malformed row %d: %s", context or spec.code, rank, exc)
            dropped.append(DroppedRow(rank=rank, field=exc.field, value=exc.value, reason=exc.reason))
    return ParsedRanking(tuple(rows), tuple(dropped))


def ranking_from_response(raw: RawResponse, *, source: Source, session: str | None = None) -> Ranking:
    """A raw TR answer as a contract :class:`Ranking` (``published_at`` is stamped by the writer)."""
    spec = tr_spec(raw.trcode)
    parsed = parse_rows(raw.rows, context=f"{raw.trcode} {raw.feed}", spec=spec,
                        names=spec.spelling(raw.provider).outputs)
    return Ranking(
        feed=raw.feed,
        tr=spec.code,
        row_schema=spec.row_schema,
        params=dict(raw.inputs),
        source=source,
        requested_at_ms=raw.requested_at_ms,
        received_at_ms=raw.received_at_ms,
        published_at_ms=raw.received_at_ms,
        rows=parsed.rows,
        dropped=parsed.dropped,
        session=session,
    )
