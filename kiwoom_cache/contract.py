"""The Redis contract between the publisher and the API replicas, defined once.

Every key name, payload field and the atomic write script live here. Neither side spells a key or a
field itself; ``tests/test_contract.py`` pins the exact strings because operators type them into
``redis-cli``. Pure Python: no Qt, FastAPI or redis import, so the 32-bit Windows publisher and the
Linux API import the same file.

Per feed ``<feed>`` (a slug such as ``kospi-surge``) the keys share the hash tag ``{<feed>}`` so they
live in one Redis Cluster slot and one Lua script may touch them all:

========================  =======  ==========================================================
``kiwoom:{<feed>}:latest``   string   the last ranking as a JSON document (the snapshot)
``kiwoom:{<feed>}:history``  stream   one entry per ranking, ``MAXLEN ~ N``; fields ``seq``, ``doc``
``kiwoom:{<feed>}:updates``  channel  one message per ranking, the same JSON document as ``latest``
``kiwoom:{<feed>}:seq``      string   counter behind the gap-free ``seq`` of each document
``kiwoom:{<feed>}:epoch``    string   the stream's epoch: a new one whenever the history was lost
``kiwoom:{<feed>}:lease``    string   the leading publisher's id, expires unless renewed (``PX``)
``kiwoom:publisher:status``  string   the leading publisher's heartbeat JSON, expires after ``ttl_s``
``kiwoom:publishers``        hash     publisher id -> heartbeat JSON of every publisher (leader and standbys)
``kiwoom:feeds``             hash     feed -> feed description JSON (TR code, parameters, period)
========================  =======  ==========================================================

**Rows** (schema 3): every document names its ``tr`` and ``row_schema``; each row carries the core
(:data:`CORE_FIELDS`: rank, code, name, price, sign, change, change_rate, volume) and then its TR's own fields
(:data:`ROW_SCHEMAS`). Documents of schema 1 and 2 have no ``row_schema``: they are opt10023's ``volume_surge``.

The stream entry id (``1764050400123-0``) is the ranking id: the snapshot, the channel message and the
SSE ``id:`` all carry it. The stream stores the document *without* ``id``/``seq``/``epoch`` (the entry
already has them as fields), and :func:`splice_document` / the Lua script insert them the same way.

**Epochs** (Centrifugo's stream position is (offset, epoch), for the same reason): stream ids only grow
within one stream, but once a stream is gone (``DEL``, ``FLUSHALL``, a restart without persistence, a
failover to a replica that lagged) a new one may start anywhere, even below ids clients hold. The write
script therefore creates a new epoch whenever the feed's stream or epoch key is absent, restarts ``seq`` at
1 with it, and every document carries ``epoch``. "Same epoch, later id" means "same history, later entry";
anything else means the history was lost or replaced and a reader must reset. The SSE ``id:`` is
``<ranking id>@<epoch>`` (:func:`event_id`) so a browser's automatic ``Last-Event-ID`` carries both.

**Leases and fencing** (docs/high-availability.md): several publishers may run; one leads. The leader holds
every feed's lease (``SET lease id NX PX ttl``, renewed with its heartbeat) and passes its id to the write
script, which refuses the ranking (a ``FENCED`` error) unless the id is the lease's current value. A lease per
feed, not one lease mirrored into each feed: the check and the lease are then the same key in the feed's
slot, so the check is exact at the moment the lease expires and the script still runs on Redis Cluster; a
mirror would be copied across slots non-atomically and could lag the lease it copies.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from kiwoom_cache.clock import iso_kst
from kiwoom_cache.errors import ContractError

#: 2 added ``epoch``; 3 added ``row_schema`` (rows = the core fields + their TR's own, see :data:`ROW_SCHEMAS`).
#: Readers accept every version in :data:`READABLE_SCHEMAS` (1 has no epoch; 1 and 2 are opt10023 rows).
SCHEMA_VERSION: Final = 3
READABLE_SCHEMAS: Final = (1, 2, 3)
PREFIX: Final = "kiwoom"
STATUS_KEY: Final = f"{PREFIX}:publisher:status"
PUBLISHERS_KEY: Final = f"{PREFIX}:publishers"
FEEDS_KEY: Final = f"{PREFIX}:feeds"
DEFAULT_HISTORY_MAXLEN: Final = 10_000
DEFAULT_HEARTBEAT_S: Final = 5.0
#: The status key outlives three missed heartbeats, then expires: no key means no publisher.
DEFAULT_STATUS_TTL_S: Final = 15.0
STREAM_SEQ_FIELD: Final = "seq"
STREAM_DOC_FIELD: Final = "doc"
STREAM_EPOCH_FIELD: Final = "epoch"



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
# ASCII classes and \Z: Python's \d takes other scripts' digits and $ a trailing newline.
_FEED_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\Z")
_STREAM_ID_RE = re.compile(r"^([0-9]{1,20})-([0-9]{1,20})\Z")
_EPOCH_RE = re.compile(r"^[0-9a-z]{1,32}\Z")
#: The largest part of a stream id (Redis ids are two unsigned 64-bit integers).
MAX_ID_PART: Final = 2**64 - 1

# --- keys ------------------------------------------------------------------------------------


def check_feed(feed: str) -> str:
    """Return ``feed`` if it is a valid slug (lower-case letters, digits, inner dashes), else raise."""
    if not isinstance(feed, str) or not _FEED_RE.match(feed):
        raise ContractError(f"invalid feed slug {feed!r}: use 1-64 of [a-z0-9-], not starting or ending with '-'")
    return feed


def latest_key(feed: str) -> str:
    return f"{PREFIX}:{{{check_feed(feed)}}}:latest"


def history_key(feed: str) -> str:
    return f"{PREFIX}:{{{check_feed(feed)}}}:history"


def updates_channel(feed: str) -> str:
    return f"{PREFIX}:{{{check_feed(feed)}}}:updates"


def seq_key(feed: str) -> str:
    return f"{PREFIX}:{{{check_feed(feed)}}}:seq"


def epoch_key(feed: str) -> str:
    return f"{PREFIX}:{{{check_feed(feed)}}}:epoch"


def lease_key(feed: str) -> str:
    return f"{PREFIX}:{{{check_feed(feed)}}}:lease"


def feed_of_channel(channel: str | bytes) -> str | None:
    """The feed an updates channel belongs to, or None for any other channel name."""
    text = channel.decode() if isinstance(channel, bytes) else channel
    head, sep, rest = text.partition(":{")
    if head != PREFIX or not sep or not rest.endswith("}:updates"):
        return None
    feed = rest[: -len("}:updates")]
    return feed if _FEED_RE.match(feed) else None


#: Pattern matching every feed's updates channel, for one PSUBSCRIBE per API replica.
UPDATES_PATTERN: Final = f"{PREFIX}:{{*}}:updates"


def parse_stream_id(value: str | bytes) -> tuple[int, int]:
    """``"1764050400123-0"`` -> ``(1764050400123, 0)``; a clear ContractError otherwise."""
    text = value.decode() if isinstance(value, bytes) else value
    match = _STREAM_ID_RE.match(text) if isinstance(text, str) else None
    if not match:
        raise ContractError(f"invalid ranking id {text!r}: expected '<ms>-<seq>' like 1764050400123-0")
    ms, seq = int(match.group(1)), int(match.group(2))
    if ms > MAX_ID_PART or seq > MAX_ID_PART:
        raise ContractError(f"invalid ranking id {text!r}: each part must be at most {MAX_ID_PART}")
    return ms, seq


def check_epoch(epoch: str) -> str:
    if not isinstance(epoch, str) or not _EPOCH_RE.match(epoch):
        raise ContractError(f"invalid epoch {epoch!r}: expected 1-32 of [0-9a-z]")
    return epoch


def event_id(ranking_id: str, epoch: str | None) -> str:
    """The SSE ``id:`` of a ranking: ``<ranking id>@<epoch>`` (just the ranking id for a schema-1 entry)."""
    return ranking_id if epoch is None else f"{ranking_id}@{epoch}"


def parse_event_id(value: str) -> tuple[tuple[int, int], str, str | None]:
    """``Last-Event-ID`` -> (stream id, ranking id, epoch or None); a bare ranking id is accepted too."""
    rid, sep, epoch = value.partition("@")
    sid = parse_stream_id(rid)
    return sid, rid, check_epoch(epoch) if sep else None


# --- documents -------------------------------------------------------------------------------


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
#: (publisher/sources/trs.py); the API documents and selects them; the dashboard draws their columns.
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


@dataclass(frozen=True, slots=True)
class Ranking:
    """One ranking TR's answer for one feed, as stored in Redis; ``row_schema`` says what its rows carry.

    ``id`` and ``seq`` are assigned by Redis inside the write script, so a ranking built by the
    publisher has them as None; one read back from Redis has both.
    """

    feed: str
    tr: str
    params: Mapping[str, str]
    source: str
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


def _dumps(obj: Any) -> bytes:
    # ensure_ascii=False keeps Korean names readable with `redis-cli --raw` and a third smaller.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


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
        return _dumps(ranking.to_dict())
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
        schema_name = row_schema(_req(doc, "row_schema", str)).name if schema >= 3 else LEGACY_ROW_SCHEMA
        rows_schema = ROW_SCHEMAS[schema_name]
        rows = tuple(_decode_row(r, rows_schema) for r in _req(doc, "rows", list))
        dropped = tuple(
            DroppedRow(_req(d, "rank", int), _req(d, "field", str), _req(d, "value", str), _req(d, "reason", str))
            for d in _req(doc, "dropped", list)
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
        params = _req(doc, "params", dict)
        if not all(isinstance(v, str) for v in params.values()):
            raise ContractError("'params' values must be strings")
        session = doc.get("session")
        if session is not None and not isinstance(session, str):
            raise ContractError("'session' must be a string or null")
        return Ranking(
            feed=check_feed(_req(doc, "feed", str)),
            tr=_req(doc, "tr", str),
            params=params,
            source=_req(doc, "source", str),
            requested_at_ms=_req(doc, "requested_at_ms", int),
            received_at_ms=_req(doc, "received_at_ms", int),
            published_at_ms=_req(doc, "published_at_ms", int),
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


def _req(doc: Any, name: str, kind: type) -> Any:
    if not isinstance(doc, dict) or name not in doc:
        raise ContractError(f"missing field {name!r}")
    value = doc[name]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        raise ContractError(f"field {name!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _decode_row(raw: Any, schema: RowSchema) -> Row:
    if not isinstance(raw, dict):
        raise ContractError("each row must be an object")
    core = {f.name: _req(raw, f.name, f.kind) for f in CORE_FIELDS}
    return Row(**core, own={f.name: _req(raw, f.name, f.kind) for f in schema.own})


# --- the atomic write ------------------------------------------------------------------------

#: One ranking in one round trip (see :func:`write_ranking_args`).
#:
#: KEYS[1] history stream, KEYS[2] latest document, KEYS[3] seq counter, KEYS[4] epoch, KEYS[5] the feed's lease.
#: ARGV[1] updates channel, ARGV[2] stream MAXLEN (approximate), ARGV[3] body (the document without
#: ``id``/``seq``/``epoch``), ARGV[4] a fresh random epoch, used only if this write starts a new one, ARGV[5] the
#: writer's lease id ("" for a writer without one), ARGV[6] and ARGV[7] the epoch and ``seq`` this writer last
#: wrote for the feed ("" and 0 when it has written none). Returns ``{id, seq, epoch}``.
#:
#: Fencing: the write goes through only if ARGV[5] equals the lease's current value (absent counts as ""), so a
#: publisher whose lease expired (stalled past its TTL, SIGSTOP) or was taken over writes nothing. The refusal
#: is an error reply starting ``FENCED`` and naming the holder (see :func:`fenced_holder`); the write has no
#: effect at all, so ``seq`` stays gap-free.
#:
#: Epoch: when the stream or the epoch key is absent, the history readers knew is gone, so the script takes
#: ARGV[4] as the new epoch and restarts ``seq`` at 1. So it does when the epoch is the one this writer last wrote
#: but its ``seq`` counter is *below* what this writer last wrote: rankings it was told were written are gone
#: while the epoch key survived (a failover to a replica that lagged, a restore of an older snapshot), and
#: counting on would hand readers a ``seq`` they already saw with other content. (The candidate comes from the
#: caller so the script stays deterministic and needs no TIME: the publisher's Redis user runs only the commands
#: listed in deploy/redis-users.acl.)
#: Scripts are not rolled back on error, so XADD (the only call that can fail, e.g. WRONGTYPE) comes before
#: any other write: a refused ranking leaves no trace and ``seq`` stays gap-free. The document gets ``"id"``,
#: ``"seq"`` and ``"epoch"`` spliced in front exactly as :func:`splice_document` does, so snapshot, stream
#: entry and channel message agree.
WRITE_RANKING_LUA: Final = """
local holder = redis.call('GET', KEYS[5]) or ''
if holder ~= ARGV[5] then
  return redis.error_reply('FENCED ' .. KEYS[5] .. ' is held by "' .. holder .. '"')
end
local epoch = redis.call('GET', KEYS[4])
local seq
if epoch and redis.call('EXISTS', KEYS[1]) == 1 then
  seq = tonumber(redis.call('GET', KEYS[3]) or '0')
  if not seq then return redis.error_reply('ERR ' .. KEYS[3] .. ' does not hold an integer') end
  if epoch == ARGV[6] and seq < tonumber(ARGV[7]) then
    epoch = ARGV[4]
    seq = 0
  end
  seq = seq + 1
else
  epoch = ARGV[4]
  seq = 1
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'seq', seq, 'epoch', epoch, 'doc', ARGV[3])
redis.call('SET', KEYS[3], seq)
redis.call('SET', KEYS[4], epoch)
local doc = '{"id":"' .. id .. '","seq":' .. seq .. ',"epoch":"' .. epoch .. '",' .. string.sub(ARGV[3], 2)
redis.call('SET', KEYS[2], doc)
redis.call('PUBLISH', ARGV[1], doc)
return {id, seq, epoch}
"""

#: The error prefix of a fenced write (like Redis's own ``WRONGTYPE``/``MOVED``: the first word names the case).
FENCED: Final = "FENCED"
_FENCED_RE = re.compile(r'^FENCED \S+ is held by "(.*)"\Z', re.S)


def fenced_holder(error: str) -> str | None:
    """For a ``FENCED`` error reply: the lease's holder ("" if nobody holds it); None for any other error."""
    match = _FENCED_RE.match(error)
    return match.group(1) if match else None


def write_ranking_args(ranking: Ranking, maxlen: int = DEFAULT_HISTORY_MAXLEN,
                       lease: str = "", last: tuple[str, int] = ("", 0)) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV for :data:`WRITE_RANKING_LUA`; ``lease`` is the writer's lease id ("" without a lease),
    ``last`` the (epoch, seq) this writer last wrote for the feed."""
    if maxlen < 1:
        raise ContractError(f"history maxlen must be >= 1, got {maxlen}")
    feed = ranking.feed
    keys = [history_key(feed), latest_key(feed), seq_key(feed), epoch_key(feed), lease_key(feed)]
    return keys, [updates_channel(feed), maxlen, encode_body(ranking), new_epoch(), lease, last[0], last[1]]


#: Renew a lease its holder still holds: KEYS[1] the lease, ARGV[1] the holder's id, ARGV[2] TTL in ms.
#: Returns 1 when renewed, 0 when the lease is gone or held by another (the caller lost it).
RENEW_LEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

#: Give a lease up, if it is still ours (graceful hand-over): KEYS[1] the lease, ARGV[1] the holder's id.
RELEASE_LEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_LEASE_ID_RE = re.compile(r"^[0-9a-z][0-9a-z.-]{0,79}\Z")


def new_publisher_id() -> str:
    """A publisher's id and lease value: 64 random bits, new at every start. No host name in it: the id is shown
    by the public ``/v1/feeds``, the host only in the status inside Redis."""
    return secrets.token_hex(8)


def check_publisher_id(value: str) -> str:
    if not isinstance(value, str) or not _LEASE_ID_RE.match(value):
        raise ContractError(f"invalid publisher id {value!r}: expected 1-80 of [0-9a-z.-]")
    return value


def new_epoch() -> str:
    """A random epoch candidate (48 bits, hex): two histories of one feed never share one by chance."""
    return secrets.token_hex(6)


# --- feeds registry and publisher status -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedInfo:
    """One configured feed as registered under :data:`FEEDS_KEY`."""

    feed: str
    title: str
    tr: str
    params: Mapping[str, str]
    interval_s: float

    def encode(self) -> bytes:
        return _dumps({"feed": self.feed, "title": self.title, "tr": self.tr, "params": dict(self.params),
                       "interval_s": self.interval_s})

    @classmethod
    def decode(cls, data: bytes | str) -> FeedInfo:
        try:
            doc = json.loads(data)
            return cls(
                feed=check_feed(_req(doc, "feed", str)),
                title=_req(doc, "title", str),
                tr=_req(doc, "tr", str),
                params=_req(doc, "params", dict),
                interval_s=_req(doc, "interval_s", float),
            )
        except ValueError as exc:
            raise ContractError(f"bad feed description: {exc}", key=FEEDS_KEY) from exc


#: Publisher states written to the status key.
PUBLISHER_STATES: Final = ("starting", "connecting", "standby", "running", "paused", "degraded", "stopping",
                            "stopped")


class PublisherRole(StrEnum):
    """Whether a publisher holds the feeds' leases (docs/high-availability.md)."""

    #: Holds every feed's lease: polls Kiwoom and writes.
    leader = "leader"
    #: Watches the leases and sends no TR; takes over when the leader stops renewing.
    standby = "standby"


@dataclass(frozen=True, slots=True)
class PublisherStatus:
    """The heartbeat document under :data:`STATUS_KEY` (written with a TTL)."""

    state: str
    source: str
    account_mode: str | None
    version: str
    host: str
    pid: int
    started_at_ms: int
    heartbeat_at_ms: int
    last_success_ms: int | None
    heartbeat_s: float
    session: str | None = None
    message: str | None = None
    redis: str | None = None
    feeds: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: The publisher's id, also its lease value (None: a status written before leases existed).
    id: str | None = None
    role: PublisherRole | None = None
    #: Configured to lead whenever it is healthy (``KIWOOM_PUBLISHER_PREFER_LEADER``).
    preferred: bool = False
    #: Rankings the write script refused because this publisher no longer held the lease.
    fenced: int = 0
    #: How often ``kiwoom-publisher supervise`` restarted this publisher (0 without a supervisor).
    restarts: int = 0

    def encode(self) -> bytes:
        last = self.last_success_ms
        return _dumps({
            "state": self.state, "source": self.source, "account_mode": self.account_mode,
            "version": self.version, "host": self.host, "pid": self.pid,
            "started_at": iso_kst(self.started_at_ms), "started_at_ms": self.started_at_ms,
            "heartbeat_at": iso_kst(self.heartbeat_at_ms), "heartbeat_at_ms": self.heartbeat_at_ms,
            "last_success": iso_kst(last) if last is not None else None, "last_success_ms": last,
            "heartbeat_s": self.heartbeat_s, "session": self.session, "message": self.message,
            "redis": self.redis, "feeds": {k: dict(v) for k, v in self.feeds.items()},
            "id": self.id, "role": self.role.value if self.role else None, "preferred": self.preferred,
            "fenced": self.fenced, "restarts": self.restarts,
        })

    @classmethod
    def decode(cls, data: bytes | str) -> PublisherStatus:
        try:
            doc = json.loads(data)
            last = doc.get("last_success_ms")
            if last is not None and not isinstance(last, int):
                raise ContractError("'last_success_ms' must be an integer or null")
            pid_, role = doc.get("id"), doc.get("role")
            if pid_ is not None:
                check_publisher_id(pid_)
            fenced = doc.get("fenced", 0)
            if not isinstance(fenced, int) or isinstance(fenced, bool):
                raise ContractError("'fenced' must be an integer")
            restarts = doc.get("restarts", 0)
            if not isinstance(restarts, int) or isinstance(restarts, bool):
                raise ContractError("'restarts' must be an integer")
            return cls(
                state=_req(doc, "state", str),
                source=_req(doc, "source", str),
                account_mode=doc.get("account_mode"),
                version=_req(doc, "version", str),
                host=_req(doc, "host", str),
                pid=_req(doc, "pid", int),
                started_at_ms=_req(doc, "started_at_ms", int),
                heartbeat_at_ms=_req(doc, "heartbeat_at_ms", int),
                last_success_ms=last,
                heartbeat_s=_req(doc, "heartbeat_s", float),
                session=doc.get("session"),
                message=doc.get("message"),
                redis=doc.get("redis"),
                feeds=_req(doc, "feeds", dict),
                id=pid_,
                role=PublisherRole(role) if role is not None else None,
                preferred=doc.get("preferred") is True,
                fenced=fenced,
                restarts=restarts,
            )
        except ValueError as exc:  # also PublisherRole's ValueError for an unknown role
            raise ContractError(f"bad publisher status: {exc}", key=STATUS_KEY) from exc


def publisher_liveness(status: PublisherStatus | None, now_ms: int) -> str:
    """``dead`` (no heartbeat key), ``stale`` (heartbeat late or publisher not healthy) or ``alive``.

    A quiet market is not staleness: a paused publisher outside trading hours still heartbeats and
    reports ``alive`` with its state ``paused``.
    """
    if status is None or status.state == "stopped":
        return "dead"
    late = now_ms - status.heartbeat_at_ms > 2 * status.heartbeat_s * 1000
    if late or status.state in ("degraded", "connecting", "starting"):
        return "stale"
    return "alive"

