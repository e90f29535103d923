"""kiwoom-cache's shared package: the Redis contract both the publisher and the API import."""

from kiwoom_cache.contract import (
    FEEDS_KEY,
    SCHEMA_VERSION,
    STATUS_KEY,
    DroppedRow,
    FeedInfo,
    PublisherStatus,
    Ranking,
    Row,
    decode_ranking,
    encode_body,
    history_key,
    latest_key,
    updates_channel,
)
from kiwoom_cache.errors import ContractError, KiwoomCacheError

__version__ = "0.1.0"

__all__ = (
    "FEEDS_KEY",
    "SCHEMA_VERSION",
    "STATUS_KEY",
    "ContractError",
    "DroppedRow",
    "FeedInfo",
    "KiwoomCacheError",
    "PublisherStatus",
    "Ranking",
    "Row",
    "__version__",
    "decode_ranking",
    "encode_body",
    "history_key",
    "latest_key",
    "updates_channel",
)
