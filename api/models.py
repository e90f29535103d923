"""Pydantic response models: they document the API in OpenAPI (``/docs``).

The hot routes write pre-encoded bytes, so these models describe the bytes rather than produce them;
``tests/api`` validates real responses against them so the documentation cannot drift.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

# DroppedRow and the row schemas come from the contract itself, so the API documents exactly the fields the
# publisher writes and never keeps a second copy of them.
from kiwoom_cache.contract import (
    ROW_SCHEMAS,
    DroppedRow,
    Liveness,
    PublisherRole,
    PublisherState,
    RowSchema,
    Source,
)


def _row_model(schema: RowSchema) -> type[BaseModel]:
    """One OpenAPI schema per TR's rows: the core fields, then the TR's own, each with its description."""
    title = "".join(part.title() for part in schema.name.value.split("_")) + "Row"
    # A plain class statement's namespace: the docstring becomes the schema's description in every pydantic 2.
    namespace: dict[str, Any] = {
        "__module__": __name__, "__doc__": f"A row of {schema.tr} ({schema.title}): row_schema {schema.name.value}",
        "__annotations__": {f.name: f.kind for f in schema.fields},
        **{f.name: Field(description=f.doc) for f in schema.fields},
    }
    model: type[BaseModel] = type(title, (BaseModel,), namespace)
    return model


#: Row model per row schema name, in the contract's order.
ROW_MODELS: dict[str, type[BaseModel]] = {name.value: _row_model(schema) for name, schema in ROW_SCHEMAS.items()}
if TYPE_CHECKING:
    AnyRow = BaseModel
else:  # one member per row schema, known only at run time
    AnyRow = Union[tuple(ROW_MODELS.values())]  # noqa: UP007


class RankingModel(BaseModel):
    """One ranking document exactly as stored in Redis (``kiwoom_cache.contract``)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="Stream entry id = ranking id, e.g. 1764050400123-0 (the SSE id is <id>@<epoch>)")
    seq: int = Field(description="Gap-free sequence number per feed and epoch (restarts at 1 with a new epoch)")
    epoch: str | None = Field(None, description="The stream's epoch (schema 2): a new one means the feed's "
                                                "history was lost or replaced")
    schema_: int = Field(alias="schema")
    feed: str
    tr: str = Field(description="The Kiwoom TR that produced the ranking: opt10023, opt10030, opt10027, opt10032")
    row_schema: str = Field("volume_surge", description="Which fields the rows carry: the core (rank, code, name, "
                            "price, sign, change, change_rate, volume) plus the TR's own, see the *Row schemas; "
                            "absent before schema 3 (then volume_surge)")
    params: dict[str, str]
    source: Source
    session: str | None
    requested_at: str
    requested_at_ms: int
    received_at: str
    received_at_ms: int
    published_at: str
    published_at_ms: int
    row_count: int = Field(description="Rows in the ranking (before any ?limit=)")
    rows: list[AnyRow | dict[str, Any]] = Field(description="Row objects of the document's row_schema, or only the "
                                                            "?fields= selected")
    dropped: list[DroppedRow]


class SnapshotModel(RankingModel):
    stale: bool = Field(description="True when the publisher is not alive or the ranking is overdue")
    stale_reason: str | None = None


class HistoryPageModel(BaseModel):
    feed: str
    order: Literal["asc", "desc"]
    limit: int
    count: int
    skipped: int = Field(0, description="Entries of this page skipped because they break the contract (counted "
                                        "in kiwoom_api_contract_errors_total)")
    next_cursor: str | None = Field(description="Pass as after= (asc) or before= (desc) for the next page")
    next: str | None = Field(description="URL of the next page, null on the last one")
    items: list[RankingModel]


class PublisherModel(BaseModel):
    liveness: Liveness
    id: str | None = Field(None, description="The publisher's id, also the value of the feed leases it holds")
    role: PublisherRole | None = Field(
        None, description="leader: holds the feeds' leases and writes; standby: sends no TR, takes over when the "
                          "leader stops renewing")
    state: PublisherState | None = None
    session: str | None = Field(None, description="Market session reported by the publisher")
    source: Source | None = None
    version: str | None = None
    heartbeat_at: str | None = None
    heartbeat_age_s: float | None = None
    last_success_at: str | None = None
    message: str | None = None
    preferred: bool = Field(False, description="Configured to lead whenever it is healthy")
    fenced: int = Field(0, description="Rankings refused by the write script because the lease was not its own")
    restarts: int = Field(0, description="How often `kiwoom-publisher supervise` restarted this publisher")
    error: str | None = Field(None, description="Why the heartbeat document could not be read")


class FeedLinks(BaseModel):
    snapshot: str
    history: str
    events: str


class FeedModel(BaseModel):
    feed: str
    title: str
    tr: str = Field(description="The feed's Kiwoom TR")
    row_schema: str | None = Field(None, description="Its rows' schema (null for a TR this replica does not know)")
    fields: list[str] = Field(default_factory=list, description="Its rows' fields, in order (what ?fields= selects)")
    params: dict[str, str]
    interval_s: float
    last_id: str | None
    epoch: str | None = Field(None, description="The stream's epoch: changes when its history was lost or replaced")
    last_published_at: str | None
    age_s: float | None
    stale: bool
    stale_reason: str | None
    stalled: bool = Field(False, description="The publisher reports a newer ranking than this replica holds")
    leader: str | None = Field(None, description="Id of the publisher holding the feed's lease "
                                                 "(kiwoom:{<feed>}:lease), the one polling and writing it (see "
                                                 "publishers); null when none does")
    clients: int = Field(description="SSE clients of this replica")
    error: str | None = Field(None, description="Last contract violation seen for this feed")
    bad_entries: int = Field(0, description="Entries or messages of this feed skipped for breaking the contract")
    links: FeedLinks


class FeedsModel(BaseModel):
    publisher: PublisherModel = Field(description="The leading publisher (the status key), the one writing")
    publishers: list[PublisherModel] = Field(
        default_factory=list, description="Every publisher heartbeating, leader first (docs/high-availability.md)")
    feeds: list[FeedModel]
    stale: bool = Field(False, description="Redis is unreachable: answered from this replica's memory")
    stale_reason: str | None = None


class ErrorModel(BaseModel):
    detail: str
    reason: str | None = None


class HealthModel(BaseModel):
    status: Literal["ok"]


class ReadyModel(BaseModel):
    ready: bool
    subscription_live: bool
    redis: str
    reason: str | None = None
