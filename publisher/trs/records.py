"""TR requests and raw answers: plain records shared by the sources, the controls, the parser and the recorder."""

from __future__ import annotations

from dataclasses import dataclass, field

from publisher.trs.catalogue import tr_spec

__all__ = ["RawResponse", "TrRequest"]


@dataclass(frozen=True, slots=True)
class TrRequest:
    feed: str
    trcode: str
    #: (Kiwoom input name, value) in SetInputValue order.
    inputs: tuple[tuple[str, str], ...]
    prev_next: int = 0
    #: The source's request counter: makes each sRQName unique, so a late answer to a timed-out request is
    #: recognised as such and never credited to the resend.
    seq: int = 0

    @property
    def rqname(self) -> str:
        # The control echoes sRQName back; the feed routes the answer, the counter names this one request.
        return f"{tr_spec(self.trcode).rqname}:{self.feed}#{self.seq}"


@dataclass(frozen=True, slots=True)
class RawResponse:
    """One TR answer exactly as the source gave it (rows keyed by the TR's OCX item names): the unit that is
    recorded and replayed."""

    feed: str
    trcode: str
    #: The OCX screen number the answer came on; empty for sources without screens (REST).
    screen: str
    inputs: tuple[tuple[str, str], ...]
    prev_next: str
    rows: tuple[dict[str, str], ...]
    requested_at_ms: int
    received_at_ms: int
    messages: tuple[str, ...] = field(default=())
