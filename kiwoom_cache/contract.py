"""The Redis contract between the publisher and the API replicas, defined once (docs/contract.md).

Every key name, payload field and Lua script is defined in one small module of :mod:`kiwoom_cache`; neither side
spells a key or a field itself. Pure Python: no Qt, FastAPI or redis import, so the 32-bit Windows publisher and the
Linux API import the same files. One module per subject:

- :mod:`~kiwoom_cache.keys`: key names, feed slugs, stream and event ids, epochs
- :mod:`~kiwoom_cache.rows`: the row schemas (the core and each TR's own fields)
- :mod:`~kiwoom_cache.document`: the ranking document and its codec, the sources
- :mod:`~kiwoom_cache.scripts`: the Lua scripts (the atomic fenced write, lease renew/release)
- :mod:`~kiwoom_cache.leases`: publisher ids (the lease values) and roles
- :mod:`~kiwoom_cache.registry`: the feeds registry
- :mod:`~kiwoom_cache.status`: the publisher heartbeat, its states and liveness
- :mod:`~kiwoom_cache.events`: the SSE event names and WebSocket ops clients see

Both sides import from here (``from kiwoom_cache import contract``), not from the modules: :data:`__all__` below is
the public surface, pinned by ``tests/test_contract.py``, so a rename inside a module cannot break a reader silently.

**Epochs** (Centrifugo's stream position is (offset, epoch), for the same reason): stream ids only grow within one
stream, but once a stream is gone (``DEL``, ``FLUSHALL``, a restart without persistence, a failover to a replica
that lagged) a new one may start anywhere, even below ids clients hold. The write script therefore creates a new
epoch whenever the feed's stream or epoch key is absent, restarts ``seq`` at 1 with it, and every document carries
``epoch``. "Same epoch, later id" means "same history, later entry"; anything else means the history was lost or
replaced and a reader must reset. The SSE ``id:`` is ``<ranking id>@<epoch>`` (:func:`event_id`).
"""

from kiwoom_cache.document import (
    READABLE_SCHEMAS,
    SCHEMA_VERSION,
    SOURCES,
    Ranking,
    Source,
    decode_ranking,
    document_from_entry,
    encode_body,
    splice_document,
)
from kiwoom_cache.errors import ContractError
from kiwoom_cache.events import EventName, WsOp
from kiwoom_cache.keys import (
    FEEDS_KEY,
    MAX_ID_PART,
    PREFIX,
    PUBLISHERS_KEY,
    STATUS_KEY,
    STREAM_DOC_FIELD,
    STREAM_EPOCH_FIELD,
    STREAM_SEQ_FIELD,
    UPDATES_PATTERN,
    check_epoch,
    check_feed,
    epoch_key,
    event_id,
    feed_of_channel,
    history_key,
    latest_key,
    lease_key,
    new_epoch,
    parse_event_id,
    parse_stream_id,
    seq_key,
    updates_channel,
)
from kiwoom_cache.leases import PublisherRole, check_publisher_id, new_publisher_id
from kiwoom_cache.registry import FeedInfo
from kiwoom_cache.rows import (
    ALL_ROW_FIELDS,
    CORE_FIELD_NAMES,
    CORE_FIELDS,
    LEGACY_ROW_SCHEMA,
    ROW_SCHEMA_OF_TR,
    ROW_SCHEMAS,
    DroppedRow,
    Row,
    RowField,
    RowSchema,
    RowSchemaName,
    RowValue,
    row_schema,
    row_schema_for_tr,
)
from kiwoom_cache.scripts import (
    DEFAULT_HISTORY_MAXLEN,
    FENCED,
    RELEASE_LEASE_LUA,
    RENEW_LEASE_LUA,
    WRITE_RANKING_LUA,
    fenced_holder,
    write_ranking_args,
)
from kiwoom_cache.status import (
    DEFAULT_HEARTBEAT_S,
    DEFAULT_STATUS_TTL_S,
    PUBLISHER_STATES,
    AccountMode,
    Liveness,
    PublisherState,
    PublisherStatus,
    publisher_liveness,
)

#: The public surface, pinned by tests/test_contract.py: every module's ``__all__`` plus ContractError.
__all__ = [
    "ALL_ROW_FIELDS", "CORE_FIELDS", "CORE_FIELD_NAMES", "DEFAULT_HEARTBEAT_S", "DEFAULT_HISTORY_MAXLEN",
    "DEFAULT_STATUS_TTL_S", "FEEDS_KEY", "FENCED", "LEGACY_ROW_SCHEMA", "MAX_ID_PART", "PREFIX", "PUBLISHERS_KEY",
    "PUBLISHER_STATES", "READABLE_SCHEMAS", "RELEASE_LEASE_LUA", "RENEW_LEASE_LUA", "ROW_SCHEMAS", "ROW_SCHEMA_OF_TR",
    "SCHEMA_VERSION", "SOURCES", "STATUS_KEY", "STREAM_DOC_FIELD", "STREAM_EPOCH_FIELD", "STREAM_SEQ_FIELD",
    "UPDATES_PATTERN", "WRITE_RANKING_LUA", "AccountMode", "ContractError", "DroppedRow", "EventName", "FeedInfo",
    "Liveness", "PublisherRole", "PublisherState", "PublisherStatus", "Ranking", "Row", "RowField", "RowSchema",
    "RowSchemaName", "RowValue", "Source", "WsOp", "check_epoch", "check_feed", "check_publisher_id",
    "decode_ranking", "document_from_entry", "encode_body", "epoch_key", "event_id", "feed_of_channel",
    "fenced_holder", "history_key", "latest_key", "lease_key", "new_epoch", "new_publisher_id", "parse_event_id",
    "parse_stream_id", "publisher_liveness", "row_schema", "row_schema_for_tr", "seq_key", "splice_document",
    "updates_channel", "write_ranking_args",
]
