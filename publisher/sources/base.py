"""What the poller and the publisher need from a ranking source, whatever it talks to.

A source logs in, sends one request per feed at a time (its inputs by parameter: the source spells them) and
answers with a :class:`~publisher.trs.records.RawResponse` whose rows are keyed by the TR's row fields (each
source maps its own spelling, ``spec.ocx`` or ``spec.rest``, straight to fields; one parser turns the strings
into typed rows and names a refused value as the source's provider spells it). Failures are the typed
families of :mod:`publisher.kiwoom_errors` — raised at once by :meth:`RankingSource.request` or emitted
later through :attr:`RankingSource.requestFailed` — so the poller reacts to classes, never to codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from publisher.limiter import RateLimiter
from publisher.loop import Loop, Signal
from publisher.trs import RawResponse, TrRequest

_Block = TypeVar("_Block")


class RankingSource(Protocol):
    #: ``None`` when logged in, else the :class:`~publisher.kiwoom_errors.KiwoomApiError` that stopped it.
    loggedIn: Signal
    #: A :class:`RawResponse` for the request in flight.
    responseReceived: Signal
    #: ``(feed, error)`` for a request that failed after it was sent; ``error`` is a ``KiwoomCacheError``.
    requestFailed: Signal
    #: ``(feed or None, text)``: Kiwoom's own words about a request, shown as is.
    messageReceived: Signal

    @property
    def account_mode(self) -> str:
        """``real``, ``mock`` (모의투자), ``sim`` or ``replay``; asked after a successful login."""

    @property
    def exhausted(self) -> bool:
        """True when the source has nothing more to answer (a replay played once)."""

    def login(self) -> None:
        """Start logging in; the result arrives through :attr:`loggedIn`. May raise a ``KiwoomApiError``."""

    def is_connected(self) -> bool: ...

    def request(self, req: TrRequest, limiter: RateLimiter) -> None:
        """Send ``req`` (its first page already paced by the caller); further pages, if any, take slots from
        ``limiter``. Raises a ``KiwoomApiError`` family when refused at once."""

    def forget(self, feed: str) -> None:
        """Stop waiting for ``feed``'s answer (it timed out); a late answer is then dropped."""

    def pending_feeds(self) -> Sequence[str]: ...

    def close(self) -> None: ...


class SourceSettings(Protocol):
    """What every source reads from the publisher's settings; the rest is in the source's own settings block
    (publisher/sources/ocx_settings.py, rest_settings.py), fetched with :meth:`SourceContext.block`."""

    def request_budget_s(self) -> float:
        """How long one request may take, pages and retries included."""


@dataclass(frozen=True, slots=True)
class SourceContext:
    """Everything a source factory may use."""

    settings: SourceSettings
    loop: Loop
    #: Recorded answers, for the replay source.
    replay: Sequence[RawResponse] = ()
    #: Replay: start over at the end instead of running out.
    replay_loop: bool = True
    #: The limiter the publisher's poller shares (a REST source paces its token calls on it too).
    limiter: RateLimiter | None = None

    def block(self, block: type[_Block]) -> _Block:
        """The source's own settings block (e.g. ``RestSettings``), which the publisher's settings include."""
        if not isinstance(self.settings, block):
            raise TypeError(f"the settings given have no {block.__name__} block")
        return self.settings
