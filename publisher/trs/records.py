"""TR requests and raw answers: plain records shared by the sources, the controls, the parser and the recorder."""

from __future__ import annotations

from dataclasses import dataclass, field

from publisher.trs.spec import Provider

__all__ = ["RawResponse", "TrRequest"]


@dataclass(frozen=True, slots=True)
class TrRequest:
    feed: str
    trcode: str
    #: (parameter, value) in the TR's input order; each source spells the names its own way.
    inputs: tuple[tuple[str, str], ...]
    prev_next: int = 0
    #: The source's request counter: makes each sRQName unique, so a late answer to a timed-out request is
    #: recognised as such and never credited to the resend.
    seq: int = 0


@dataclass(frozen=True, slots=True)
class RawResponse:
    """One TR answer with the source's raw strings, each row keyed by the TR's row fields (each source maps its
    own item names to fields): the unit that is recorded and replayed."""

    feed: str
    trcode: str
    #: The OCX screen number the answer came on; empty for sources without screens (REST).
    screen: str
    #: (parameter, value), as in the request.
    inputs: tuple[tuple[str, str], ...]
    prev_next: str
    #: Row field -> the raw string; a value the provider did not send is left out (the parser reports it).
    rows: tuple[dict[str, str], ...]
    requested_at_ms: int
    received_at_ms: int
    #: Whose item names the raw values came under: a value the parser refuses is reported by that name.
    provider: Provider
    messages: tuple[str, ...] = field(default=())
