"""The ranking document: what one ranking TR's answer looks like in Redis, and its codec.

The stream entry id (``1764050400123-0``) is the ranking id: the snapshot, the channel message and the SSE ``id:``
all carry it. The stream stores the document *without* ``id``/``seq``/``epoch`` (the entry already has them as
fields), and :func:`splice_document` and the write script (:mod:`kiwoom_cache.scripts`) insert them the
same way, byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from kiwoom_cache.clock import iso_kst
from kiwoom_cache.errors import ContractError
from kiwoom_cache.jsonfields import dumps, required
from kiwoom_cache.keys import (
    STREAM_DOC_FIELD,
    STREAM_EPOCH_FIELD,
    STREAM_SEQ_FIELD,
    check_epoch,
    check_feed,
    parse_stream_id,
)
from kiwoom_cache.rows import (
    CORE_FIELDS,
    LEGACY_ROW_SCHEMA,
    ROW_SCHEMAS,
    DroppedRow,
    Row,
    RowSchema,
    RowSchemaName,
    row_schema,
)

__all__ = [
    "READABLE_SCHEMAS", "SCHEMA_VERSION", "SOURCES", "Ranking", "Source", "decode_ranking", "document_from_entry",
    "encode_body", "splice_document",
]

#: 2 added ``epoch``; 3 added ``row_schema`` (rows = the core fields + their TR's own, see :data:`ROW_SCHEMAS`).
#: Readers accept every version in :data:`READABLE_SCHEMAS` (1 has no epoch; 1 and 2 are opt10023 rows).
SCHEMA_VERSION: Final = 3
READABLE_SCHEMAS: Final = (1, 2, 3)


class Source(StrEnum):
    """Where a ranking came from: the ``source`` of every document and of the status key. The one list of names."""

    #: Kiwoom's OpenAPI+ OCX on a Windows desktop.
    kiwoom = "kiwoom"
    #: kiwoom-cache's simulated OCX control (simulated data, never real market data).
    sim = "sim"
    #: A recording played back through the replay control.
    replay = "replay"
    rest = "rest"  #: Kiwoom's REST API (ka10023), no Windows needed.


SOURCES: Final = tuple(s.value for s in Source)


@dataclass(frozen=True, slots=True)
class Ranking:
    """One ranking TR's answer for one feed, as stored in Redis; ``row_schema`` says what its rows carry.

    ``id`` and ``seq`` are assigned by Redis inside the write script, so a ranking built by the
    publisher has them as None; one read back from Redis has both.
    """

    feed: str
    tr: str
    params: Mapping[str, str]
    source: Source
    requested_at_ms: int
    received_at_ms: int
    published_at_ms: int
    rows: tuple[Row, ...]
    dropped: tuple[DroppedRow, ...] = ()
    session: str | None = None
    row_schema: RowSchemaName = LEGACY_ROW_SCHEMA
    id: str | None = None
    seq: int | None = None
    epoch: str | None = None
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, in contract field order (``id``/``seq``/``epoch`` first when known)."""
        doc: dict[str, Any] = {}
        if self.id is not None:
            doc["id"] = self.id
            doc["seq"] = self.seq
            if self.epoch is not None:
                doc["epoch"] = self.epoch
        doc.update(
            schema=self.schema,
            feed=self.feed,
            tr=self.tr,
            row_schema=self.row_schema.value,
            params=dict(self.params),
            source=self.source,
            session=self.session,
            requested_at=iso_kst(self.requested_at_ms),
            requested_at_ms=self.requested_at_ms,
            received_at=iso_kst(self.received_at_ms),
            received_at_ms=self.received_at_ms,
            published_at=iso_kst(self.published_at_ms),
            published_at_ms=self.published_at_ms,
            row_count=len(self.rows),
            rows=[r.to_dict() for r in self.rows],
            dropped=[
                {"rank": d.rank, "field": d.field, "value": d.value, "reason": d.reason} for d in self.dropped
            ],
        )
        return doc



def encode_body(ranking: Ranking) -> bytes:
    """The document without ``id``/``seq``: what the publisher hands to :data:`WRITE_RANKING_LUA`."""
    if ranking.id is not None:
        raise ContractError("encode_body takes a ranking not yet written (id is assigned by Redis)")
    check_feed(ranking.feed)
    if ranking.source not in SOURCES:
        raise ContractError(f"unknown source {ranking.source!r}; expected one of {SOURCES}")
    schema = ROW_SCHEMAS[ranking.row_schema]
    if ranking.tr != schema.tr:
        raise ContractError(f"row schema {schema.name.value} belongs to {schema.tr}, not {ranking.tr}")
    own = tuple(f.name for f in schema.own)
    for row in ranking.rows:
        if tuple(row.own) != own:
            raise ContractError(f"row {row.rank} of {ranking.feed} has fields {tuple(row.own)}; "
                                f"{schema.name.value} rows carry {own}")
    try:
        return dumps(ranking.to_dict())
    except ValueError as exc:  # NaN/inf would produce JSON no browser can parse
        raise ContractError(f"ranking for {ranking.feed} is not JSON-safe: {exc}") from exc


def splice_document(body: bytes, ranking_id: str | bytes, seq: int | str | bytes,
                    epoch: str | bytes | None = None) -> bytes:
    """Insert ``id``, ``seq`` (and ``epoch``) at the front of a stored body; mirrors the Lua script byte for byte."""
    rid = ranking_id.decode() if isinstance(ranking_id, bytes) else ranking_id
    parse_stream_id(rid)
    seq_text = seq.decode() if isinstance(seq, bytes) else str(seq)
    if not seq_text.isdigit():
        raise ContractError(f"invalid seq {seq_text!r}")
    if not body.startswith(b"{") or body.startswith(b"{}"):
        raise ContractError("stored document body is not a non-empty JSON object")
    head = b'{"id":"' + rid.encode() + b'","seq":' + seq_text.encode() + b","
    if epoch is not None:
        epoch_text = check_epoch(epoch.decode() if isinstance(epoch, bytes) else epoch)
        head += b'"epoch":"' + epoch_text.encode() + b'",'
    return head + body[1:]


def document_from_entry(entry_id: str | bytes, fields: Mapping[bytes, bytes] | Mapping[str, str]) -> bytes:
    """The full JSON document for one ``history`` stream entry (as XRANGE returns it)."""
    raw = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
    body, seq = raw.get(STREAM_DOC_FIELD), raw.get(STREAM_SEQ_FIELD)
    if body is None or seq is None:
        raise ContractError(f"stream entry {entry_id!r} lacks the '{STREAM_SEQ_FIELD}'/'{STREAM_DOC_FIELD}' fields")
    body_b = body.encode() if isinstance(body, str) else body
    return splice_document(body_b, entry_id, seq, raw.get(STREAM_EPOCH_FIELD))


def decode_ranking(data: bytes | str, *, key: str | None = None) -> Ranking:
    """Parse and validate a stored document; :class:`ContractError` says exactly what is wrong."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractError(f"not JSON: {exc}", key=key) from exc
    if not isinstance(doc, dict):
        raise ContractError(f"expected a JSON object, got {type(doc).__name__}", key=key)
    schema = doc.get("schema")
    if schema not in READABLE_SCHEMAS or isinstance(schema, bool):
        raise ContractError(f"unsupported schema {schema!r}; this build reads schemas {READABLE_SCHEMAS}", key=key)
    try:
        schema_name = row_schema(required(doc, "row_schema", str)).name if schema >= 3 else LEGACY_ROW_SCHEMA
        rows_schema = ROW_SCHEMAS[schema_name]
        rows = tuple(_decode_row(r, rows_schema) for r in required(doc, "rows", list))
        dropped = tuple(
            DroppedRow(required(d, "rank", int), required(d, "field", str), required(d, "value", str),
                       required(d, "reason", str))
            for d in required(doc, "dropped", list)
        )
        rid = doc.get("id")
        if rid is not None:
            parse_stream_id(rid)
        seq = doc.get("seq")
        if rid is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
            raise ContractError("'seq' must be an integer when 'id' is present")
        epoch = doc.get("epoch")
        if epoch is not None:
            check_epoch(epoch)
        elif rid is not None and schema >= 2:
            raise ContractError("'epoch' is required with 'id' from schema 2 on")
        params = required(doc, "params", dict)
        if not all(isinstance(v, str) for v in params.values()):
            raise ContractError("'params' values must be strings")
        session = doc.get("session")
        if session is not None and not isinstance(session, str):
            raise ContractError("'session' must be a string or null")
        return Ranking(
            feed=check_feed(required(doc, "feed", str)),
            tr=required(doc, "tr", str),
            params=params,
            source=_source(required(doc, "source", str)),
            requested_at_ms=required(doc, "requested_at_ms", int),
            received_at_ms=required(doc, "received_at_ms", int),
            published_at_ms=required(doc, "published_at_ms", int),
            rows=rows,
            dropped=dropped,
            session=session,
            row_schema=schema_name,
            id=rid,
            seq=seq,
            epoch=epoch,
            schema=schema,
        )
    except ContractError as exc:
        raise ContractError(exc.reason, key=key) from exc




def _decode_row(raw: Any, schema: RowSchema) -> Row:
    if not isinstance(raw, dict):
        raise ContractError("each row must be an object")
    core = {f.name: required(raw, f.name, f.kind) for f in CORE_FIELDS}
    return Row(**core, own={f.name: required(raw, f.name, f.kind) for f in schema.own})


def _source(value: str) -> Source:
    try:
        return Source(value)
    except ValueError:
        raise ContractError(f"unknown source {value!r}; expected one of {SOURCES}") from None
