"""The names a client reads and sends on the API's streams: SSE ``event:`` names, WebSocket ops.

They live beside the Redis contract because browsers, ``curl`` scripts and the dashboard depend on them as much as
on a key name: a rename is a breaking change, and ``tests/test_contract.py`` pins the values.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["EventName", "WsOp"]


class EventName(StrEnum):
    """The SSE ``event:`` field, and a WebSocket message's ``event``."""

    #: The current ranking, first on every (re)connect without a usable ``Last-Event-ID``.
    snapshot = "snapshot"
    #: One new ranking.
    ranking = "ranking"
    #: The history the client held is gone or too old: drop what it has, a snapshot follows.
    reset = "reset"
    #: First message of a multiplexed stream or a WebSocket: the replica and its limits.
    hello = "hello"
    #: WebSocket keep-alive from the replica (SSE sends a comment line instead).
    ping = "ping"
    #: WebSocket answer to the client's ``ping`` op.
    pong = "pong"
    #: WebSocket: a refused op; nothing else changed.
    error = "error"
    #: WebSocket: a ``subscribe`` op took effect (events of the feed follow).
    subscribed = "subscribed"
    #: WebSocket: an ``unsubscribe`` op took effect (no more events of the feed).
    unsubscribed = "unsubscribed"
    #: WebSocket: the ``auth`` op's key was accepted.
    authenticated = "authenticated"


class WsOp(StrEnum):
    """A WebSocket client message's ``op``."""

    subscribe = "subscribe"
    unsubscribe = "unsubscribe"
    ping = "ping"
    auth = "auth"
